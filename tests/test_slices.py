"""Corrupt slices (bids_app.mri.slices) on the real heads of the demo dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bids_app.mri import augment, load_head, reconstruct_head
from bids_app.mri.slices import find_corrupt_slices, repair_slices

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "bids"
HEADS = {label: DEMO / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz" for label in ("01", "02", "03", "04")}


@pytest.fixture(scope="module")
def head03():
    return load_head(HEADS["03"])


@pytest.mark.parametrize("label", sorted(HEADS))
def test_intact_heads_have_no_corrupt_slice(label):
    assert find_corrupt_slices(load_head(HEADS[label]).data) == []


def test_a_bright_plate_is_found_and_replaced_by_its_neighbours(head03):
    data = head03.data.copy()
    k = data.shape[2] // 2
    data[:, :, k] += 5 * np.percentile(data, 99.9)  # a slice of garbage across the face
    found = find_corrupt_slices(data)
    assert [(c.axis, c.index, c.kind) for c in found] == [(2, k, "bright")]
    repaired = repair_slices(data, found)
    np.testing.assert_allclose(repaired[:, :, k], (data[:, :, k - 1] + data[:, :, k + 1]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(np.delete(repaired, k, axis=2), np.delete(data, k, axis=2))
    assert "axial slice" in found[0].describe() and found[0].to_json()["Kind"] == "bright"


def test_a_dropped_slice_is_found(head03):
    j = head03.data.shape[1] // 2  # a coronal slice lost (zeros) through the middle of the head
    middle = head03.affine @ np.r_[head03.data.shape[0] // 2, j, head03.data.shape[2] // 2, 1.0]
    data, _ = augment.corrupt_slice(head03.data, head03.affine, middle[:3], axis=1, kind="blank")
    assert not data[:, j, :].any()
    assert [(c.axis, c.index, c.kind) for c in find_corrupt_slices(data)] == [(1, j, "blank")]


def test_a_brain_ending_above_empty_slices_is_not_a_dropped_slice(head03):
    data = head03.data.copy()
    data[:, :, : data.shape[2] // 3] = 0  # everything below a level blank (the image of a slab)
    assert find_corrupt_slices(data) == []


def test_the_face_is_found_behind_a_bright_plate(head03):
    """The plate crosses the face near the nose tip: without the repair the mask took it for head
    and no render showed a face (demo sub-03: 0 of 10, called "no face")."""
    plain = reconstruct_head(*head03)
    data, _ = augment.corrupt_slice(head03.data, head03.affine, plain.frame.nose_tip + [0, 0, 7.5], axis=2)
    k = int(round(np.linalg.solve(head03.affine, np.r_[plain.frame.nose_tip + [0, 0, 7.5], 1.0])[2]))
    head = reconstruct_head(data, head03.affine, head03.zooms)
    assert [(c.axis, c.index) for c in head.corrupt_slices] == [(2, k)]
    assert np.linalg.norm(head.frame.nose_tip - plain.frame.nose_tip) < 3.0
