"""Shared fixtures: real photos that come with installed packages."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest
from PIL import Image
from skimage import data


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins, public domain): one face, RGB uint8."""
    return data.astronaut()


@pytest.fixture(scope="session")
def group() -> np.ndarray:
    """insightface's ``t1.jpg``: a group photo of six people, RGB uint8."""
    path = importlib.resources.files("insightface") / "data/images/t1.jpg"
    with Image.open(str(path)) as im:
        return np.asarray(im.convert("RGB"))
