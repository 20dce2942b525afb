"""Identity margin retention of benchmarks/accuracy.py on synthetic embeddings."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"
_spec = importlib.util.spec_from_file_location("facerisk_benchmark_accuracy", _PATH)
accuracy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(accuracy)


def _e(k: int, dim: int = 6) -> np.ndarray:
    v = np.zeros(dim)
    v[k] = 1.0
    return v


def _cohort():
    subjects = ["01", "02", "03"]
    photos = {s: np.stack([_e(i), _e(i)]) for i, s in enumerate(subjects)}  # photo-photo: 1 vs 0
    gallery = {
        "01": np.stack([0.8 * _e(0) + 0.6 * _e(5), np.full(6, np.nan)]),  # a render without a face
        "02": np.stack([0.5 * _e(0) + math.sqrt(0.75) * _e(1)]),  # close to 01's photos too
        "03": np.stack([_e(2), 2.0 * _e(2)]),  # not unit length: cosines normalise
    }
    return subjects, photos, gallery


def test_margins_nearest_other_identity():
    subjects, photos, gallery = _cohort()
    m = accuracy.identity_margins(gallery, photos, subjects)
    assert m["render_genuine"] == pytest.approx([0.8, math.sqrt(0.75), 1.0])
    # 01's photos: 0.5 to 02's render (the nearest other identity), 0 to 03's
    assert m["render_impostor"] == pytest.approx([0.5, 0.0, 0.0])
    assert m["m_render"] == pytest.approx([0.3, math.sqrt(0.75), 1.0])
    assert m["photo_genuine"] == pytest.approx([1.0, 1.0, 1.0])
    assert m["m_photo"] == pytest.approx([1.0, 1.0, 1.0])
    kept = accuracy.margin_retention(m["m_render"], m["m_photo"], n_boot=500)
    expected = (0.3 + math.sqrt(0.75) + 1.0) / 3
    assert kept["retention"] == pytest.approx(expected)
    assert kept["n"] == 3
    lo, hi = kept["ci"]
    assert 0.3 - 1e-9 <= lo <= expected <= hi <= 1.0 + 1e-9


def test_retention_is_ratio_of_means_and_leaves_out_unusable():
    kept = accuracy.margin_retention(np.array([0.1, 0.2, np.nan, 0.3]),
                                     np.array([0.2, 0.2, 0.2, np.nan]), n_boot=200)
    assert kept["n"] == 2
    assert kept["retention"] == pytest.approx(0.15 / 0.2)
    # every participant keeps the same share: the interval is that share
    kept = accuracy.margin_retention(np.array([0.05, 0.1, 0.15]), np.array([0.1, 0.2, 0.3]))
    assert kept["retention"] == pytest.approx(0.5)
    assert kept["ci"] == pytest.approx([0.5, 0.5])


def test_no_render_faces_left_out_and_k_renders():
    subjects, photos, gallery = _cohort()
    gallery["02"] = None  # participant failed: no renders at all
    m = accuracy.identity_margins(gallery, photos, subjects)
    assert np.isnan(m["m_render"][1]) and np.isfinite(m["m_render"][[0, 2]]).all()
    assert m["render_impostor"][0] == pytest.approx(0.0)  # 02 no longer an impostor render
    # only the first render of 01 counts with k_renders=1 (the NaN second row is ignored either way)
    m1 = accuracy.identity_margins(gallery, photos, subjects, k_renders=1)
    assert m1["render_genuine"][0] == pytest.approx(0.8)


def test_photo_identification():
    rng = np.random.default_rng(0)
    subjects = [f"{i:02d}" for i in range(1, 7)]
    bases = {s: "a" if i < 3 else "b" for i, s in enumerate(subjects)}
    centres = rng.normal(size=(6, 32))
    photos = {s: centres[i] + 0.2 * rng.normal(size=(3, 32)) for i, s in enumerate(subjects)}
    photos["06"][1] = np.nan  # one photo without a face
    q = accuracy.photo_identification(photos, subjects, bases)
    assert q["photo_top1"] == 1.0 and q["photo_top5"] == 1.0
    assert q["photo_probes"] == 5 * 3 + 2
    assert q["photo_genuine_cos"] > 0.9
    assert abs(q["photo_same_base_cos"]) < 0.4 and abs(q["photo_other_base_cos"]) < 0.4
