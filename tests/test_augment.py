"""Tests of bids_app.mri.augment (the alterations of real heads) on a real bundled head (data/demo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from bids_app.mri import augment, face_frame, head_mask, head_surface, load_head

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "bids"
HEAD = DEMO / "sub-02" / "anat" / "sub-02_T1w.nii.gz"


@pytest.fixture(scope="module")
def head():
    vol = load_head(HEAD)
    mask = head_mask(vol.data, vol.zooms)
    frame = face_frame(head_surface(mask, vol.affine))
    return vol, mask, frame


def _face_coords(vol, frame):
    """mm from the nose tip along the face's superior and anterior axes, per voxel."""
    w = augment._plane_side(vol.data, vol.affine, frame.nose_tip, frame.superior)
    v = augment._plane_side(vol.data, vol.affine, frame.nose_tip, frame.anterior)
    return np.broadcast_to(w, vol.data.shape), np.broadcast_to(v, vol.data.shape)


@pytest.mark.slow
def test_lower_face_dimmed_upper_face_unchanged(head):
    vol, mask, frame = head
    w, v = _face_coords(vol, frame)
    face = mask & (v > -35)  # the front of the head: skin, fat, muscle of the face
    chin = face & (w < -68) & (w > -85)
    upper = face & (w > 0) & (w < 50)
    mid = face & (w < -33) & (w > -37)  # halfway between 5 and 65 mm below the tip
    assert chin.sum() > 500 and upper.sum() > 5000 and mid.sum() > 200
    bright = vol.data > 0.2 * np.percentile(vol.data[mask], 99)

    data, affine = augment.dim_lower_face(vol.data, vol.affine, frame.nose_tip, frame.anterior,
                                          frame.superior, low=0.3, noise=0.0)
    assert affine is vol.affine and data.dtype == np.float32 and data.shape == vol.data.shape
    ratio = data[bright] / vol.data[bright]
    r = np.full(vol.data.shape, np.nan, np.float32)
    r[bright] = ratio
    assert np.nanmedian(r[chin]) == pytest.approx(0.3, abs=1e-4)
    assert np.nanmedian(r[mid]) == pytest.approx(0.65, abs=0.03)  # raised cosine: half way
    assert np.array_equal(data[upper], vol.data[upper])  # the upper face and above: untouched
    above = w > -4.9
    assert np.array_equal(data[above], vol.data[above])
    # the fall is monotonic along the face's superior axis
    gain = augment.lower_face_gain(vol.data.shape, vol.affine, frame.nose_tip, frame.superior)
    order = np.argsort(w[face])
    assert np.all(np.diff(gain[face][order]) >= -1e-6)
    assert gain.min() == pytest.approx(0.3) and gain.max() == 1.0


@pytest.mark.slow
def test_lower_face_noise_relatively_strong(head):
    vol, mask, frame = head
    w, v = _face_coords(vol, frame)
    face = mask & (v > -35)
    chin = face & (w < -68) & (w > -85)
    upper = face & (w > 0) & (w < 50)
    clean, _ = augment.dim_lower_face(vol.data, vol.affine, frame.nose_tip, frame.anterior,
                                      frame.superior, low=0.3, noise=0.0)
    noisy, _ = augment.dim_lower_face(vol.data, vol.affine, frame.nose_tip, frame.anterior,
                                      frame.superior, low=0.3, noise=0.04, seed=1)
    again, _ = augment.dim_lower_face(vol.data, vol.affine, frame.nose_tip, frame.anterior,
                                      frame.superior, low=0.3, noise=0.04, seed=1)
    assert np.array_equal(noisy, again)  # seeded
    assert np.array_equal(noisy[upper], vol.data[upper])  # no noise where nothing was dimmed
    p99 = float(np.percentile(vol.data[vol.data > 0], 99))
    # noise at the chin: about 0.04 x p99 x sqrt(1 - 0.3^2), relative to a signal 0.3 x the original
    bright_chin = chin & (vol.data > 0.3 * p99)
    diff = (noisy - clean)[bright_chin]
    assert np.std(diff) == pytest.approx(0.04 * p99 * np.sqrt(1 - 0.09), rel=0.2)
    assert np.median(noisy[bright_chin] / vol.data[bright_chin]) == pytest.approx(0.3, abs=0.03)
    # relative noise: stronger at the chin than the same noise would be at full signal
    snr_chin = np.median(clean[bright_chin]) / np.std(diff)
    assert snr_chin < 0.4 * np.median(vol.data[bright_chin]) / (0.04 * p99)


@pytest.mark.parametrize("label", ["01", "04"])
def test_skull_strip_leaves_no_face(label):
    """The simulated brain extraction keeps the brain and parts it from the orbits, the nose and
    the cheek muscles that the intensity band lets through: nothing within 37 mm of the nose tip
    (now 53 and 42 mm on these heads; the 3 mm opening alone left tissue 32 mm from it on sub-04),
    a brain-sized volume, the intensities of the brain unchanged and zero elsewhere."""
    vol = load_head(DEMO / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz")
    mask = head_mask(vol.data, vol.zooms)
    tip = face_frame(head_surface(mask, vol.affine)).nose_tip
    stripped, affine = augment.skull_strip(vol.data, vol.affine, mask, floor_z=float(tip[2]))
    kept = stripped > 0
    xyz = np.argwhere(kept) @ affine[:3, :3].T + affine[:3, 3]
    assert np.linalg.norm(xyz - tip, axis=1).min() > 37.0
    assert 700 < kept.sum() * abs(np.linalg.det(affine[:3, :3])) / 1000 < 1800  # mL
    np.testing.assert_array_equal(stripped[kept], vol.data[kept])


def test_field_of_view_crops_keep_world_positions(head):
    """crop_front ends the image the given mm before the head's front; crop_to_content keeps the
    box of non-zero voxels; both leave every kept voxel at its world position."""
    vol, _, _ = head
    data, affine = np.asarray(vol.data, np.float32), vol.affine

    def world(aff, ijk):
        return aff[:3, :3] @ np.asarray(ijk, float) + aff[:3, 3]

    front, front_affine = augment.crop_front(data, affine, 15.0)
    zoom = float(np.linalg.norm(affine[:3, 1]))
    bright = np.flatnonzero(data.max(axis=(0, 2)) > 0.2 * np.percentile(data, 99))
    assert front.shape[1] == bright[-1] + 1 - round(15.0 / zoom)
    np.testing.assert_array_equal(front, data[:, :front.shape[1]])
    np.testing.assert_allclose(front_affine, affine)
    padded = np.zeros((data.shape[0] + 7, data.shape[1] + 5, data.shape[2] + 3), np.float32)
    padded[3:-4, 2:-3, 1:-2] = data + 1.0  # every voxel of the head image non-zero, air around it
    box, box_affine = augment.crop_to_content(padded, affine)
    np.testing.assert_array_equal(box, data + 1.0)
    np.testing.assert_allclose(world(box_affine, (0, 0, 0)), world(affine, (3, 2, 1)))


def test_mp2rage_uni_fills_the_air_with_noise_and_keeps_the_head_smooth(head):
    """``augment.mp2rage_uni``: the air is noise over the whole 0-4095 range (its 5th to 95th
    percentiles more than half the range apart, neighbours as far apart as that), while inside
    the head neighbouring voxels differ by a small part of it; the same seed gives the same image."""
    vol, mask, _ = head
    uni, affine = augment.mp2rage_uni(vol.data, vol.affine)
    assert uni.shape == vol.data.shape and np.array_equal(affine, vol.affine)
    assert 0 <= uni.min() and uni.max() <= 4095
    air = np.zeros(uni.shape, bool)
    air[:4], air[-4:] = True, True  # the image's left and right ends: air
    assert not (air & mask).any()
    low, high = np.percentile(uni[air], [5, 95])
    assert high - low > 2048
    steps = np.abs(np.diff(uni, axis=1))
    deep = np.asarray(ndi.binary_erosion(mask, iterations=8))  # brain and deep tissue
    assert np.median(steps[air[:, 1:]]) > 5 * np.median(steps[(deep[:, 1:] & deep[:, :-1])])
    assert np.array_equal(uni, augment.mp2rage_uni(vol.data, vol.affine)[0])


def test_pad_and_scale_head_move_the_grid_not_the_head(head):
    """``pad`` adds zeros around the image and keeps every voxel at its world position;
    ``scale_head`` scales every length (voxel sizes and positions) and keeps the voxels."""
    vol, _, frame = head
    data, affine = np.asarray(vol.data, np.float32), vol.affine
    padded, padded_affine = augment.pad(data, affine, 10.0)
    n = (np.array(padded.shape) - np.array(data.shape)) // 2
    assert np.all(n * np.linalg.norm(affine[:3, :3], axis=0) >= 10.0)
    inner = tuple(slice(k, k + s) for k, s in zip(n, data.shape))
    np.testing.assert_array_equal(padded[inner], data)
    assert not padded[: n[0]].any() and not padded[-n[0]:].any()
    np.testing.assert_allclose(padded_affine[:3, :3] @ n + padded_affine[:3, 3], affine[:3, 3])
    small, small_affine = augment.scale_head(data, affine, 0.65)
    np.testing.assert_array_equal(small, data)
    tip_voxel = np.linalg.solve(affine, np.r_[frame.nose_tip, 1.0])
    np.testing.assert_allclose((small_affine @ tip_voxel)[:3], 0.65 * frame.nose_tip, atol=1e-6)


def test_motion_rings_along_the_phase_axis_and_keeps_the_head_in_place(head):
    """``augment.motion``: k-space lines from other poses add ghosts and ringing along the
    phase-encoding axis (the air in front of and behind the head gains signal), while the head
    stays where it was (k-space centre in the original pose: the centre of mass moves under a
    voxel); the same seed gives the same image."""
    vol, _, _ = head
    data, coarse = augment.resample(vol.data, vol.affine, (2.0, 2.0, 2.0))  # 8 times fewer voxels: quick
    mask = head_mask(data, (2.0, 2.0, 2.0))
    moved, affine = augment.motion(data, coarse, n_moves=4, degrees=6.0, shift_mm=5.0)
    assert moved.shape == data.shape and np.array_equal(affine, coarse)
    air = ~np.asarray(ndi.binary_dilation(mask, iterations=3))
    assert moved[air].mean() > 3 * data[air].mean()
    assert moved[air].mean() > 0.005 * np.percentile(data, 99)
    shift = np.subtract(ndi.center_of_mass(moved), ndi.center_of_mass(data))
    assert np.linalg.norm(shift) < 1.0
    assert np.array_equal(moved, augment.motion(data, coarse, n_moves=4, degrees=6.0, shift_mm=5.0)[0])


def test_a_phantom_stands_beside_the_head_not_in_it(head):
    """``augment.add_phantom``: a bright bottle beside the head, outside its mask; the head unchanged
    (in a field of view padded by 40 mm: the demo's ends close to the head)."""
    vol, _, frame = head
    data, affine = augment.pad(vol.data, vol.affine, 40.0)
    mask = head_mask(data, vol.zooms)
    with_bottle, _ = augment.add_phantom(data, affine, mask, frame.nose_tip)
    changed = with_bottle != data
    volume_ml = changed.sum() * abs(np.linalg.det(affine[:3, :3])) / 1000
    assert 60 < volume_ml < 110  # a cylinder of radius 20 mm, 80 mm tall: 100 mL, less what was as bright
    assert not (changed & mask).any()


def test_tilt_header_turns_the_affine_about_the_field_of_views_centre(head):
    """``augment.tilt_header``: the voxels unchanged, the affine rotated by the given pitch about the
    centre of the field of view (which stays where it was)."""
    vol, _, _ = head
    data, affine = augment.tilt_header(vol.data, vol.affine, pitch=40.0)
    np.testing.assert_array_equal(data, vol.data)
    centre = np.r_[(np.array(data.shape) - 1) / 2.0, 1.0]
    np.testing.assert_allclose(affine @ centre, vol.affine @ centre, atol=1e-6)
    turn = affine[:3, :3] @ np.linalg.inv(vol.affine[:3, :3])
    assert np.degrees(np.arccos((np.trace(turn) - 1) / 2)) == pytest.approx(40.0)
    np.testing.assert_allclose(turn @ [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], atol=1e-9)  # about left-right


def test_a_torso_is_added_below_the_head_which_stays_in_place(head):
    """``augment.add_torso``: the image extended 220 mm downwards, every old voxel at its world
    position, the body below the head as bright as the head's median, its chest's front where asked (or
    at the field of view's front: the image is extended downwards only)."""
    vol, mask, frame = head
    data, affine = augment.add_torso(vol.data, vol.affine, mask, frame.nose_tip, front_mm=20.0)
    below = data.shape[2] - vol.data.shape[2]
    assert below * vol.zooms[2] >= 220.0
    np.testing.assert_allclose(affine[:3, :3] @ [0, 0, below] + affine[:3, 3], vol.affine[:3, 3])
    old = data[:, :, below:]
    assert np.array_equal(old[old != vol.data], np.full((old != vol.data).sum(), np.median(vol.data[mask]),
                                                        np.float32))  # only body added, never dimmed
    body = data[:, :, :below] > 0
    def y_max(voxels):
        return (affine[:3, :3] @ np.argwhere(voxels).T + affine[:3, 3:4])[1].max()
    edge = y_max(np.ones_like(body))  # the front of the field of view, below the head
    assert y_max(body) == pytest.approx(min(frame.nose_tip[1] + 20.0, edge), abs=2 * vol.zooms[1])
