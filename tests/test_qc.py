"""Tests of bids_app.qc: the participant's QC pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bids_app.qc import mask_overlay, render_mosaic

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "bids"


def _face(score=0.9):
    return {"Detected": True, "Score": score, "Box": [100.0, 120.0, 300.0, 320.0],
            "Landmarks": [[200, 240], [320, 240], [260, 300], [210, 360], [310, 360]], "NumFaces": 1}


def test_mosaic_grid_and_marks():
    imgs = [np.full((512, 512, 3), 128, np.uint8) for _ in range(7)]
    faces = [_face(), None, {"Detected": False, "Score": None, "NumFaces": 0}, _face(0.6), None, None, _face()]
    out = render_mosaic(imgs, faces, columns=5, tile=200)
    assert out.dtype == np.uint8 and out.shape == (400, 1000, 3)
    first, second = out[:200, :200], out[:200, 200:400]
    green = (first[..., 1] > 200) & (first[..., 0] < 80)
    assert green.sum() > 200  # the box
    red = (second[..., 0] > 200) & (second[..., 1] < 100)
    assert red.sum() > 20  # "no face" in red
    assert not ((second[..., 1] > 200) & (second[..., 0] < 80)).any()


def test_mosaic_accepts_detections():
    from bids_app.face.base import Detection

    det = Detection(box=(10, 10, 50, 60), landmarks=np.zeros((5, 2)) + 30, score=0.8)
    out = render_mosaic([np.zeros((100, 100, 3), np.uint8)], [det], tile=100)
    assert out.shape == (100, 100, 3)
    with pytest.raises(ValueError):
        render_mosaic([np.zeros((10, 10, 3), np.uint8)], [None, None])


def test_mask_overlay_on_a_real_head():
    from bids_app.mri import face_frame, head_mask, head_surface, load_head

    vol = load_head(DEMO / "sub-03" / "anat" / "sub-03_T1w.nii.gz")
    mask = head_mask(vol.data, vol.zooms)
    frame = face_frame(head_surface(mask, vol.affine))
    out = mask_overlay(vol.data, mask, vol.affine, frame)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape[0] > 300 and out.shape[1] > 400
    cyan = (out[..., 0] < 80) & (out[..., 1] > 180) & (out[..., 2] > 180)
    yellow = (out[..., 0] > 200) & (out[..., 1] > 200) & (out[..., 2] < 80)
    assert cyan.sum() > 500 and yellow.sum() > 20
    # without a frame it still draws the mask
    assert mask_overlay(vol.data, mask, vol.affine).shape[2] == 3


def test_mask_overlay_outlines_every_slice():
    """A ball-shaped head: each of the six panels shows the ball with its mask outline."""
    grid = np.indices((60, 70, 50)).astype(float)
    ball = ((grid - np.array([30, 35, 25])[:, None, None, None]) ** 2).sum(0) < 20 ** 2
    data = np.where(ball, 100.0, 0.0).astype(np.float32)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    out = mask_overlay(data, ball, affine, n_slices=3, panel=200)
    assert out.shape == (2 * (200 + 18), 3 * 200, 3) and out.dtype == np.uint8
    cyan = (out[..., 0] < 80) & (out[..., 1] > 180) & (out[..., 2] > 180)
    for row in range(2):
        for col in range(3):
            panel = cyan[row * 218 + 18:(row + 1) * 218, col * 200:(col + 1) * 200]
            assert panel.sum() > 100, (row, col)
    centre = out[218 + 18 + 100, 300]  # middle axial slice, inside the ball: white
    assert (centre > 200).all()
