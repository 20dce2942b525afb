"""Tests of bids_app.mri on the real heads of the demo dataset (data/demo)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_app.mri import ImageError, face_frame, head_mask, head_surface, load_head

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "bids"
HEADS = {label: DEMO / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz"
         for label in ("01", "02", "03", "04")}


@pytest.fixture(scope="module")
def head02():
    vol = load_head(HEADS["02"])
    mask = head_mask(vol.data, vol.zooms)
    surf = head_surface(mask, vol.affine)
    return vol, mask, surf


def test_demo_heads_present():
    for path in HEADS.values():
        assert path.is_file(), f"missing demo head {path}: run scripts/make_demo_dataset.py"


@pytest.mark.parametrize("label", ["01", "03"])
def test_load_reorients_to_ras(label):
    stored = nib.load(HEADS[label])
    assert nib.aff2axcodes(stored.affine) != ("R", "A", "S")  # stored LIA / LAS
    vol = load_head(HEADS[label])
    assert vol.data.dtype == np.float32 and vol.data.ndim == 3
    assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")
    assert len(vol.zooms) == 3 and all(z > 0 for z in vol.zooms)
    data, affine, zooms = vol  # unpacks as a tuple
    assert data is vol.data


def _save(tmp_path, data, name="img.nii.gz"):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def test_load_squeezes_4d_of_one(tmp_path):
    data = np.zeros((16, 16, 16, 1), np.float32)
    data[4:12, 4:12, 4:12] = 1
    assert load_head(_save(tmp_path, data)).data.shape == (16, 16, 16)


@pytest.mark.parametrize("case", ["4d", "zeros", "nan", "garbage", "missing"])
def test_load_errors_name_file_and_reason(tmp_path, case):
    if case == "4d":
        path = _save(tmp_path, np.ones((16, 16, 16, 2), np.float32))
    elif case == "zeros":
        path = _save(tmp_path, np.zeros((16, 16, 16), np.float32))
    elif case == "nan":
        path = _save(tmp_path, np.full((16, 16, 16), np.nan, np.float32))
    elif case == "garbage":
        path = tmp_path / "img.nii.gz"
        path.write_bytes(b"not an image at all")
    else:
        path = tmp_path / "absent.nii.gz"
    with pytest.raises(ImageError) as info:
        load_head(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


def test_load_replaces_some_nonfinite(tmp_path):
    data = np.zeros((16, 16, 16), np.float32)
    data[4:12, 4:12, 4:12] = 1
    data[0, 0, 0] = np.nan
    data[1, 0, 0] = np.inf
    vol = load_head(_save(tmp_path, data))
    assert np.isfinite(vol.data).all()


def test_head_mask_is_a_head(head02):
    vol, mask, _ = head02
    assert mask.dtype == bool and mask.shape == vol.data.shape
    ml = mask.sum() * float(np.prod(vol.zooms)) / 1000.0
    assert 2000 < ml < 7000, ml  # a head with some neck, in mL
    # the centre of the head's bounding box is inside the head
    idx = np.argwhere(mask)
    centre = tuple(((idx.min(0) + idx.max(0)) // 2).tolist())
    assert mask[centre]
    # one piece
    from scipy import ndimage as ndi

    assert ndi.label(mask)[1] == 1


def test_head_mask_rejects_empty():
    with pytest.raises(ValueError):
        head_mask(np.zeros((20, 20, 20), np.float32), (1.0, 1.0, 1.0))


def test_surface_closed_and_small(head02):
    vol, mask, surf = head02
    assert surf.is_all_triangles
    assert 10_000 < surf.n_cells < 150_000
    assert surf.n_open_edges <= 0.001 * surf.n_cells  # closed up to a few edges
    # world coordinates: inside the image's field of view (mm)
    corners = np.array([[i, j, k, 1] for i in (0, vol.data.shape[0]) for j in (0, vol.data.shape[1])
                        for k in (0, vol.data.shape[2])], float) @ vol.affine.T
    lo, hi = corners[:, :3].min(0) - 5, corners[:, :3].max(0) + 5
    assert np.all(surf.points.min(0) >= lo) and np.all(surf.points.max(0) <= hi)
    assert "Normals" in surf.point_data


def test_face_frame(head02):
    _, _, surf = head02
    frame = face_frame(surf)
    assert np.allclose(frame.anterior, [0, 1, 0]) and np.allclose(frame.superior, [0, 0, 1])
    pts = np.asarray(surf.points)
    # the nose tip is near the front of the head, the centre behind it
    assert frame.nose_tip[1] > pts[:, 1].max() - 15
    assert frame.center[1] < frame.nose_tip[1]
    # near the midline, and between chin and vertex
    assert abs(frame.nose_tip[0] - 0.5 * (pts[:, 0].min() + pts[:, 0].max())) < 15
    assert pts[:, 2].min() < frame.nose_tip[2] < pts[:, 2].max() - 60
    assert 130 <= frame.size <= 260
    assert set(frame.to_json()) >= {"Center", "Anterior", "Superior", "Size"}
