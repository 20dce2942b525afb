"""Realistic alterations of real head images, for robustness tests and checks.

Each function takes and returns ``(data, affine)`` (world mm, RAS+) and
changes one property of the scan the way real scans differ: contrast,
bias field, storage orientation, oblique or anisotropic voxel grids, the
head's pose in the scanner, a cut field of view, defacing, skull
stripping, noise, head motion, a dim and noisy lower face (coil sensitivity), smaller heads,
and objects outside the head (frames, goggles, pads, a phantom). They are pure numpy /
scipy and deterministic (seeded).

Limits: the contrast remaps change the intensity of each tissue class of a
T1-weighted head (CSF, grey and white matter, fat, muscle) deeper than 3 mm
below the skin by a piecewise-linear function of the T1 intensity (the
skin edge and the air keep their T1w values); they reproduce which
classes are dark or bright in FLAIR, T2w and PD images, not the real
contrast mechanisms (tissues with equal T1 intensity stay equal; noise and
partial volume are remapped with them). Resampling (poses, grids) is
linear, so it adds a little blur.
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "remap_contrast", "bias_field", "reorient", "resample", "rotate_head", "cut_below",
    "deface", "skull_strip", "add_noise", "add_spikes", "motion", "mp2rage_uni", "turn_voxels", "lower_face_gain",
    "dim_lower_face", "add_frame", "add_goggles", "add_cheek_pads", "add_phantom", "scale_head", "pad",
]

#: Piecewise-linear remaps of T1w intensity (fractions of the head's 99th
#: percentile; anchors are typical T1w classes: air 0, CSF 0.2, grey
#: matter 0.45, white matter 0.65, fat/marrow 0.9+) to other contrasts.
CONTRASTS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    #             air  dark  CSF   GM    WM    fat   max
    "T1w":   ((0.0, 0.08, 0.20, 0.45, 0.65, 0.90, 1.2), (0.0, 0.08, 0.20, 0.45, 0.65, 0.90, 1.2)),
    # FLAIR: CSF dark, GM brighter than WM, fat and skin bright
    "FLAIR": ((0.0, 0.08, 0.20, 0.45, 0.65, 0.90, 1.2), (0.0, 0.06, 0.10, 0.70, 0.50, 0.90, 1.0)),
    # T2w: CSF brightest, WM dark, fat moderately bright, skin/muscle dark
    "T2w":   ((0.0, 0.08, 0.20, 0.45, 0.65, 0.90, 1.2), (0.0, 0.05, 1.00, 0.55, 0.35, 0.60, 0.65)),
    # T2w with fat suppressed: CSF brightest, fat (marrow, subcutaneous fat) dark
    "T2w-fatsat": ((0.0, 0.08, 0.20, 0.45, 0.65, 0.90, 1.2), (0.0, 0.05, 1.00, 0.55, 0.35, 0.08, 0.08)),
    # PD: little contrast between tissues, all well above air
    "PD":    ((0.0, 0.08, 0.20, 0.45, 0.65, 0.90, 1.2), (0.0, 0.10, 0.75, 0.80, 0.70, 0.85, 0.9)),
}


def remap_contrast(data: np.ndarray, affine: np.ndarray, kind: str, skin_mm: float = 3.0):
    """Remap a T1w head's tissue intensities to look like ``kind`` (FLAIR, T2w, PD).

    Inside the head, deeper than ``skin_mm`` below the skin, each T1w
    intensity class is mapped with :data:`CONTRASTS`; the skin/air edge
    keeps its T1w intensity (blended over 1.5 mm), because in a T1w image
    partial-volume skin shares its intensities with CSF and a class remap
    would move the skin itself. Air and its noise are unchanged.
    """
    xp, fp = CONTRASTS[kind]
    scale = float(np.percentile(data[data > 0], 99)) if np.any(data > 0) else 1.0
    x = data / scale
    zooms = _zooms(affine)
    head = ndi.binary_fill_holes(ndi.gaussian_filter(x, 1.0 / zooms) > 0.12)
    lab, n = ndi.label(head)
    if n > 1:
        head = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    it = max(int(round(skin_mm / zooms.min())), 1)
    deep = ndi.binary_erosion(head, iterations=it).astype(np.float32)
    w = ndi.gaussian_filter(deep, 1.5 / zooms)
    out = (w * np.interp(x, xp, fp) + (1.0 - w) * x) * scale
    return out.astype(np.float32), affine


def _zooms(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) along each voxel axis of ``affine``."""
    return np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(0))


def _world(shape: Sequence[int], affine: np.ndarray, step: int = 1):
    """World coordinates (3, *shape) of the voxel grid."""
    ijk = np.meshgrid(*[np.arange(0, n, step) for n in shape], indexing="ij", sparse=True)
    a = np.asarray(affine, float)
    return [a[r, 0] * ijk[0] + a[r, 1] * ijk[1] + a[r, 2] * ijk[2] + a[r, 3] for r in range(3)]


def bias_field(data, affine, direction=(0.0, 1.0, -1.0), low: float = 0.3, length_mm: float = 120.0):
    """Multiply by a smooth ramp falling to ``low`` towards ``direction``.

    The gain is 1 at the head's centre side and falls linearly (then
    flat) to ``low`` over ``length_mm`` along the world ``direction``
    (default: towards the face and the neck, anterior-inferior), the way a
    head coil's sensitivity falls off at its open end.
    """
    d = np.asarray(direction, float)
    d /= np.linalg.norm(d)
    x, y, z = _world(data.shape, affine)
    proj = d[0] * x + d[1] * y + d[2] * z
    head = data > np.percentile(data, 75)
    c = float(np.median(np.asarray(np.broadcast_to(proj, data.shape))[head]))
    gain = np.clip(1.0 - (1.0 - low) * (proj - c) / length_mm, low, 1.0)
    return (data * gain).astype(np.float32), affine


def reorient(data, affine, codes: str):
    """Store the same image in another voxel order (e.g. ``"LIA"``, ``"LPS"``)."""
    img = nib.Nifti1Image(np.asarray(data), affine)
    cur = nib.orientations.io_orientation(affine)
    tgt = nib.orientations.axcodes2ornt(tuple(codes))
    xfm = nib.orientations.ornt_transform(cur, tgt)
    out = img.as_reoriented(xfm)
    return np.asarray(out.dataobj), out.affine


def _resample(data, affine, new_affine, shape, order=1):
    """Resample ``data`` onto ``new_affine`` / ``shape`` (linear)."""
    m = np.linalg.inv(affine) @ new_affine
    return ndi.affine_transform(np.asarray(data, np.float32), m[:3, :3], m[:3, 3], output_shape=tuple(shape),
                                order=order, mode="constant", cval=0.0).astype(np.float32)


def resample(data, affine, zooms: Sequence[float], rotation_deg: Sequence[float] = (0.0, 0.0, 0.0)):
    """The same head on a new voxel grid: voxel size ``zooms`` (mm), the grid
    optionally rotated by ``rotation_deg`` (about x, y, z, degrees) relative
    to the old one (an oblique acquisition: the head stays where it was)."""
    a = np.asarray(affine, float)
    rot = _rotmat(rotation_deg)
    old_z = _zooms(a)
    new = np.eye(4)
    new[:3, :3] = rot @ (a[:3, :3] / old_z) @ np.diag(zooms)
    # keep the field of view centred
    centre = a @ np.r_[(np.array(data.shape) - 1) / 2.0, 1.0]
    extent = np.array(data.shape) * old_z
    shape = np.ceil(extent / np.asarray(zooms)).astype(int) + (4 if any(rotation_deg) else 0)
    new[:3, 3] = centre[:3] - new[:3, :3] @ ((shape - 1) / 2.0)
    return _resample(data, a, new, shape), new


def _rotmat(deg: Sequence[float]) -> np.ndarray:
    rx, ry, rz = np.deg2rad(np.asarray(deg, float))
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


def _turn_about_centre(shape: Sequence[int], affine, pitch: float, roll: float, yaw: float) -> np.ndarray:
    """4x4 world rotation (degrees, as :func:`rotate_head`) about the centre of the field of view."""
    a = np.asarray(affine, float)
    centre = a @ np.r_[(np.array(shape) - 1) / 2.0, 1.0]
    rot = np.eye(4)
    rot[:3, :3] = _rotmat((pitch, roll, yaw))
    t1, t2 = np.eye(4), np.eye(4)
    t1[:3, 3], t2[:3, 3] = -centre[:3], centre[:3]
    return t2 @ rot @ t1


def rotate_head(data, affine, pitch: float = 0.0, roll: float = 0.0, yaw: float = 0.0):
    """Rotate the head in the scanner (degrees; pitch about x, nose up for
    positive; roll about y; yaw about z) about the centre of the field of
    view; the grid and affine stay the same."""
    a = np.asarray(affine, float)
    world = _turn_about_centre(data.shape, a, pitch, roll, yaw)  # moves the head
    # output voxel -> world -> (inverse head motion) -> input voxel
    return _resample(data, a, np.linalg.inv(world) @ a, data.shape), a


def tilt_header(data, affine, pitch: float = 0.0, roll: float = 0.0, yaw: float = 0.0):
    """A tilted head imaged on a slab aligned with it (an AC-PC-aligned acquisition): the voxels
    unchanged, the affine rotated (degrees, as :func:`rotate_head`) about the field of view's
    centre, so that the head lies straight in its voxel axes and tilted in the scanner's."""
    a = np.asarray(affine, float)
    return np.asarray(data, np.float32), _turn_about_centre(data.shape, a, pitch, roll, yaw) @ a


def _plane_side(data, affine, point, normal):
    x, y, z = _world(data.shape, affine)
    n = np.asarray(normal, float)
    return (x - point[0]) * n[0] + (y - point[1]) * n[1] + (z - point[2]) * n[2]


def cut_below(data, affine, z_mm: float):
    """Zero everything below world height ``z_mm`` (a field of view cut through the face)."""
    side = _plane_side(data, affine, (0, 0, z_mm), (0, 0, 1)) < 0
    return np.where(side, 0, data).astype(np.float32), affine


def deface(data, affine, nose_tip: Sequence[float], anterior=(0, 1, 0), superior=(0, 0, 1)):
    """Zero the face the way defacing tools (pydeface, mri_deface) do:
    everything in front of a plane 35 mm behind the nose tip and below a
    plane 45 mm above it (eyes, nose, mouth, chin; the brow and the brain
    stay)."""
    tip = np.asarray(nose_tip, float)
    front = _plane_side(data, affine, tip - 35.0 * np.asarray(anterior, float), anterior) > 0
    low = _plane_side(data, affine, tip + 45.0 * np.asarray(superior, float), superior) < 0
    return np.where(front & low, 0, data).astype(np.float32), affine


def skull_strip(data, affine, head: np.ndarray, floor_z: float | None = None):
    """A crude brain extraction, like a skull-stripped image: voxels at least
    10 mm inside ``head`` with grey/white-matter intensity (25-85 % of the
    99th percentile: not CSF, bone or fat), above ``floor_z`` (mm), opened
    by 3 mm so that the eyes and muscles come off, parted from what is
    left of the face by a wider opening (:data:`BRAIN_CORE_MM`: its pieces of
    at least :data:`BRAIN_PIECE` of the largest, and what lies within that
    distance of them), largest piece, holes filled. No face is left."""
    zooms = _zooms(affine)
    it = max(int(round(10.0 / zooms.min())), 1)
    p99 = float(np.percentile(data[head], 99))
    brain = ndi.binary_erosion(head, iterations=it) & (data > 0.25 * p99) & (data < 0.85 * p99)
    if floor_z is not None:
        brain &= _plane_side(data, affine, (0, 0, floor_z), (0, 0, 1)) > 0
    r = max(int(round(3.0 / zooms.min())), 1)
    brain = ndi.binary_opening(brain, structure=ndi.generate_binary_structure(3, 1), iterations=r)
    # the brain and what is left of the orbits, the nose and the cheek muscles touch through
    # necks of tissue that a 3 mm opening keeps: a wider opening parts them, its large pieces are
    # the brain, and only what lies within that width of them is given back (distance
    # transforms: the erosion's large pieces, then everything within twice the width of them,
    # the opening's dilation and the width given back)
    from bids_app.mri.mask import largest_component

    core = _large_pieces(ndi.distance_transform_edt(brain, sampling=zooms) > BRAIN_CORE_MM)
    if core.any():
        brain &= ndi.distance_transform_edt(~core, sampling=zooms) <= 2.0 * BRAIN_CORE_MM
    brain = ndi.binary_fill_holes(largest_component(brain))
    return np.where(brain, data, 0).astype(np.float32), affine


#: Radius (mm) of the opening that parts the brain from the tissue of the face in
#: :func:`skull_strip`, and the least size of a piece it keeps (fraction of the largest).
BRAIN_CORE_MM = 7.0
BRAIN_PIECE = 0.1


def _large_pieces(mask: np.ndarray) -> np.ndarray:
    """The pieces of ``mask`` at least :data:`BRAIN_PIECE` of the largest: the eroded brain may
    come apart (hemispheres, cerebellum), the eyes and muscles it parts from are far smaller."""
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask.astype(bool, copy=True)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return (sizes >= BRAIN_PIECE * sizes.max())[labels]


def add_noise(data, affine, level: float = 0.04, seed: int = 0):
    """Rician-like noise everywhere (``level`` of the 99th percentile): the air
    gets a noise floor, as in scans without background masking."""
    rng = np.random.default_rng(seed)
    s = level * float(np.percentile(data, 99))
    re = data + rng.normal(0, s, data.shape)
    im = rng.normal(0, s, data.shape)
    return np.sqrt(re * re + im * im).astype(np.float32), affine


def turn_voxels(data, affine, k: int = 1, axes: tuple[int, int] = (1, 2)):
    """A header that is wrong about how the head lies: the voxel array turned
    by ``k`` x 90 degrees in the plane of ``axes`` (:func:`numpy.rot90`) and
    the affine kept, so that in world space the face points up, down or
    sideways instead of anterior (as some converters and hand-made files
    leave it). Unlike :func:`reorient`, the world is not kept."""
    return np.ascontiguousarray(np.rot90(np.asarray(data, np.float32), k, axes)), affine


def add_spikes(data, affine, fraction: float = 1e-4, level: float = 1000.0, seed: int = 0):
    """Spike voxels: ``fraction`` of the voxels, anywhere in the image, set to
    ``level`` times the image's maximum (corrupt or hot voxels, as left by
    a faulty conversion or a reconstruction glitch)."""
    rng = np.random.default_rng(seed)
    out = np.array(data, dtype=np.float32)
    out[rng.random(out.shape) < fraction] = np.float32(level * float(out.max()))
    return out, affine


def corrupt_slice(data, affine, point: Sequence[float], axis: int = 2, kind: str = "bright",
                  level: float = 5.0):
    """One voxel slice along ``axis`` through world ``point`` made corrupt: ``"bright"`` adds
    ``level`` times the image's 99.9th percentile to all of it (a plate of garbage across head and
    air), ``"blank"`` sets it to zero (a dropped slice)."""
    out = np.array(data, dtype=np.float32, copy=True)
    index = int(round(np.linalg.solve(np.asarray(affine, float), np.r_[np.asarray(point, float), 1.0])[axis]))
    index = min(max(index, 0), out.shape[axis] - 1)
    moved = np.moveaxis(out, axis, 0)
    if kind == "bright":
        moved[index] += np.float32(level * np.percentile(data, 99.9))
    elif kind == "blank":
        moved[index] = 0
    else:
        raise ValueError(f"kind must be 'bright' or 'blank', got {kind!r}")
    return out, affine


def add_ghost(data, affine, amplitude: float = 0.25, axis: int = 1, fraction: float = 0.5):
    """A ghost: the image plus ``amplitude`` times itself shifted by ``fraction``
    of the field of view along voxel ``axis`` (a Nyquist ghost along the
    phase-encoding axis, added in magnitude). In a tight field of view the
    ghost of the back of the head lies in front of the face."""
    d = np.asarray(data, dtype=np.float32)
    shift = int(round(fraction * d.shape[axis]))
    return (d + np.float32(amplitude) * np.roll(d, shift, axis=axis)).astype(np.float32), affine


def kspace_ghosts(data, affine, n_ghosts: int = 4, intensity: float = 1.0, axis: int = 1,
                  keep_centre: float = 0.02):
    """Ghosts made in k-space: every ``n_ghosts``-th line along ``axis`` scaled by
    ``1 - intensity`` except the central ``keep_centre`` of k-space (as TorchIO's
    ``RandomGhosting`` does); several ghosts at multiples of 1/``n_ghosts`` of the field
    of view, each with its own phase, then the magnitude."""
    d = np.asarray(data, dtype=np.float32)
    k = np.fft.fftshift(np.fft.fftn(d))
    original = k.copy()
    lines = [slice(None)] * 3
    lines[axis] = slice(None, None, int(n_ghosts))
    k[tuple(lines)] *= 1.0 - float(intensity)
    n = d.shape[axis]
    half = max(int(keep_centre * n / 2), 1)
    centre = [slice(None)] * 3
    centre[axis] = slice(n // 2 - half, n // 2 + half)
    k[tuple(centre)] = original[tuple(centre)]
    return np.abs(np.fft.ifftn(np.fft.ifftshift(k))).astype(np.float32), affine


def motion(data, affine, n_moves: int = 3, degrees: float = 4.0, shift_mm: float = 3.0,
           axis: int = 1, seed: int = 0):
    """Head motion during the scan (ringing and ghosts along the phase-encoding ``axis``).

    k-space is acquired line by line along ``axis``, in order; the lines are split into
    ``n_moves + 1`` consecutive segments, and the head holds a different pose in each (seeded
    random rotations up to ``degrees`` about each axis and shifts up to ``shift_mm``, about the
    centre of the field of view). The segment holding the centre of k-space keeps the original
    pose, so the image's overall position does not move. Returns the magnitude image."""
    d = np.asarray(data, dtype=np.float32)
    a = np.asarray(affine, float)
    rng = np.random.default_rng(seed)
    k = np.fft.fftshift(np.fft.fftn(d))
    n = d.shape[axis]
    bounds = np.linspace(0, n, int(n_moves) + 2).round().astype(int)
    zooms = _zooms(a)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        if start <= n // 2 < stop:
            continue  # the centre of k-space: the original pose
        pitch, roll, yaw = rng.uniform(-degrees, degrees, 3)
        moved, _ = rotate_head(d, a, pitch=pitch, roll=roll, yaw=yaw)
        voxels = rng.uniform(-shift_mm, shift_mm, 3) / zooms
        moved = ndi.shift(moved, voxels, order=1, mode="constant", cval=0.0)
        lines = [slice(None)] * 3
        lines[axis] = slice(int(start), int(stop))
        k[tuple(lines)] = np.fft.fftshift(np.fft.fftn(moved))[tuple(lines)]
    return np.abs(np.fft.ifftn(np.fft.ifftshift(k))).astype(np.float32), affine


def _head_extent(d: np.ndarray, affine, beyond_mm: float, axis: int) -> tuple[int, int, int]:
    """Along voxel ``axis``: the head's first and last voxel (bright voxels, 0.2 of the 99th
    percentile), and the end of a field of view stopping ``beyond_mm`` before the last."""
    zoom = float(np.linalg.norm(np.asarray(affine)[:3, axis]))
    other = tuple(a for a in range(3) if a != axis)
    inside = np.flatnonzero(d.max(axis=other) > 0.2 * float(np.percentile(d, 99)))
    back, front = int(inside[0]), int(inside[-1])
    return back, front, front + 1 - int(round(beyond_mm / zoom))


def crop_front(data, affine, beyond_mm: float, axis: int = 1):
    """A field of view that ends ``beyond_mm`` before the head's front along ``axis`` (voxel
    axis, increasing towards the face), without aliasing: what lies beyond is not in the image
    (a slab placed too far back, an image cropped into the face). Returns the cropped image
    and its affine (the same: the first voxel is kept)."""
    d = np.asarray(data, dtype=np.float32)
    stop = _head_extent(d, affine, beyond_mm, axis)[2]
    return np.take(d, np.arange(stop), axis=axis).copy(), np.array(affine, dtype=float)


def crop_to_content(data, affine, level: float = 0.0):
    """The image cropped to the bounding box of its voxels above ``level`` (0: the non-zero
    voxels, as tools that crop a skull-stripped or masked image do). Returns the image and its
    affine (moved to the box's first voxel)."""
    d = np.asarray(data, dtype=np.float32)
    inside = np.argwhere(d > level)
    first, last = inside.min(axis=0), inside.max(axis=0) + 1
    new_affine = np.array(affine, dtype=float)
    new_affine[:3, 3] = (np.asarray(affine, dtype=float) @ np.r_[first, 1.0])[:3]
    return d[tuple(slice(a, b) for a, b in zip(first, last))].copy(), new_affine


def fold_front(data, affine, beyond_mm: float, axis: int = 1):
    """Aliasing in a field of view too short along ``axis`` (voxel axis, increasing towards
    the face): the field of view ends ``beyond_mm`` before the head's front and what lies
    beyond it is folded onto the other end (added), 3 voxels behind the back of the head
    or at the image's edge. Returns the cropped image and its affine."""
    d = np.asarray(data, dtype=np.float32)
    back, front, stop = _head_extent(d, affine, beyond_mm, axis)
    start = max(back - (front + 1 - stop) - 3, 0)
    out = np.take(d, np.arange(start, stop), axis=axis).copy()
    folded = np.take(d, np.arange(stop, front + 1), axis=axis)
    head = [slice(None)] * 3
    head[axis] = slice(0, folded.shape[axis])
    out[tuple(head)] += folded
    shift = np.zeros(4)
    shift[axis] = start
    new_affine = np.array(affine, dtype=float)
    new_affine[:3, 3] = (np.asarray(affine, dtype=float) @ np.r_[shift[:3], 1.0])[:3]
    return out, new_affine


#: T1w intensity (fraction of the head's 99th percentile, as in :data:`CONTRASTS`) -> the
#: signed ratio of the MP2RAGE's first inversion to its second (long T1 negative: CSF; short T1
#: positive: white matter, fat), for :func:`mp2rage_uni`.
MP2RAGE_RATIO = ((0.0, 0.08, 0.20, 0.45, 0.65, 0.90, 1.2), (-0.9, -0.9, -0.8, -0.1, 0.3, 0.6, 0.7))


def mp2rage_uni(data, affine, noise: float = 0.03, seed: int = 0):
    """An MP2RAGE "UNI" image made from a T1w head: ``Re(S1 conj(S2)) / (|S1|^2 + |S2|^2)``
    of two complex inversion images with Gaussian noise (``noise`` of the second inversion's
    99th percentile), stored as 0-4095 (UNI -0.5 ... 0.5) as scanners export it.

    The second inversion is proton-density-like (the ``PD`` remap); the first is that times a
    signed ratio given by the T1w intensity (:data:`MP2RAGE_RATIO`). Inside the head the UNI
    image is a T1 map in all but name, with little noise; in the air both inversions are noise,
    so the ratio is too: the background is salt-and-pepper over the whole intensity range
    (unless a tool masked it), with the skin at mid-grey between it and the head."""
    rng = np.random.default_rng(seed)
    scale = float(np.percentile(data[data > 0], 99)) if np.any(data > 0) else 1.0
    ratio = np.interp(np.asarray(data, float) / scale, *MP2RAGE_RATIO)
    s2 = remap_contrast(data, affine, "PD")[0].astype(float)
    sigma = noise * float(np.percentile(s2, 99))
    inv2 = s2 + rng.normal(0, sigma, s2.shape) + 1j * rng.normal(0, sigma, s2.shape)
    inv1 = ratio * s2 + rng.normal(0, sigma, s2.shape) + 1j * rng.normal(0, sigma, s2.shape)
    uni = (inv1 * np.conj(inv2)).real / np.maximum(np.abs(inv1) ** 2 + np.abs(inv2) ** 2, 1e-12)
    return ((uni + 0.5) * 4095.0).astype(np.float32), affine


def lower_face_gain(shape: Sequence[int], affine, nose_tip: Sequence[float],
                    superior: Sequence[float] = (0, 0, 1), *, low: float = 0.3,
                    start_mm: float = 5.0, end_mm: float = 65.0) -> np.ndarray:
    """The gain of :func:`dim_lower_face` on a voxel grid (float32, ``shape``).

    1 down to ``start_mm`` below the nose tip (along ``superior``), ``low``
    from ``end_mm`` below it (about the chin) down, and a raised-cosine
    (smooth, monotonic) fall between the two.
    """
    w = _plane_side(np.empty(tuple(shape), np.uint8), affine, np.asarray(nose_tip, float),
                    np.asarray(superior, float) / np.linalg.norm(superior))
    t = np.clip((-w - start_mm) / max(end_mm - start_mm, 1e-6), 0.0, 1.0)
    gain = 1.0 - (1.0 - low) * 0.5 * (1.0 - np.cos(np.pi * t))
    return np.broadcast_to(gain, tuple(shape)).astype(np.float32)


def dim_lower_face(data, affine, nose_tip: Sequence[float], anterior: Sequence[float] = (0, 1, 0),
                   superior: Sequence[float] = (0, 0, 1), *, low: float = 0.3,
                   start_mm: float = 5.0, end_mm: float = 65.0, noise: float = 0.03,
                   seed: int = 0):
    """A dim, noisy lower face: the coil sensitivity of FLAIR and thick-slice scans.

    Head coils are open at their lower end, and on many FLAIR and thick-slice
    scans the signal falls off below the nose: lips and chin come out dark
    and grainy. The image is multiplied by :func:`lower_face_gain`: 1 above
    ``start_mm`` below the nose tip (along the face's ``superior`` axis),
    falling smoothly (raised cosine) to ``low`` (default 0.3) at
    ``end_mm`` below it (about the chin) and below. Thermal noise does not
    fall with the signal: the dimmed voxels get Rician noise of standard
    deviation ``noise`` x the 99th percentile x sqrt(1 - gain^2) (the noise
    the dimming took from the image's own, for an image whose noise was
    ``noise``), so the relative noise at the chin is about 1/``low`` times
    that of the upper face. Voxels with a gain of 1 (the upper face, the
    brain) are returned unchanged. ``anterior`` is accepted for symmetry
    with the other face-frame alterations; the fall-off follows the
    superior axis only, across the whole width and depth of the head (the
    neck and the lower back of the head are dimmed too).
    """
    del anterior  # the fall-off is along the head's superior axis only
    x = np.asarray(data, np.float32)
    gain = lower_face_gain(x.shape, affine, nose_tip, superior, low=low, start_mm=start_mm,
                           end_mm=end_mm)
    dim = gain < 1.0
    out = x.copy()
    out[dim] = x[dim] * gain[dim]
    if noise > 0 and dim.any():
        rng = np.random.default_rng(seed)
        s = (noise * float(np.percentile(x[x > 0], 99)) if np.any(x > 0) else 0.0)
        s = s * np.sqrt(1.0 - gain[dim].astype(np.float64) ** 2)
        re = out[dim] + rng.normal(0.0, 1.0, s.shape) * s
        im = rng.normal(0.0, 1.0, s.shape) * s
        out[dim] = np.sqrt(re * re + im * im)
    return out.astype(np.float32), affine


def add_frame(data, affine, nose_tip: Sequence[float], value: float | None = None):
    """Add clutter near the face: a goggle-like frame 3 mm thick, 12 mm in
    front of the eyes, joined to the forehead by two 3 mm stalks, and a
    6 mm pad 18 mm below the chin level in front of the neck."""
    tip = np.asarray(nose_tip, float)
    v = float(np.percentile(data, 99)) if value is None else value
    x, y, z = _world(data.shape, affine)
    eyes = tip + np.array([0.0, -8.0, 30.0])
    # frame: a rectangular ring in the plane y = eyes_y + 12 (the nose pokes through below)
    yy = np.abs(y - (eyes[1] + 12.0)) < 1.5
    dx, dz = np.abs(x - eyes[0]), np.abs(z - eyes[2])
    ring = yy & (dx < 70) & (dz < 22) & ~((dx < 66) & (dz < 18))
    # stalks from the top of the ring back to the forehead
    stalk = (np.abs(dx - 40) < 1.5) & (np.abs(z - (eyes[2] + 20.5)) < 1.5) & (y > eyes[1] - 30) & (y < eyes[1] + 12)
    pad = (np.abs(y - (tip[1] + 5)) < 3.0) & (dx < 40) & (np.abs(z - (tip[2] - 75)) < 12)
    clutter = np.broadcast_to(ring | stalk | pad, data.shape)
    out = np.where(clutter, np.maximum(data, v), data)
    return out.astype(np.float32), affine


def add_goggles(data, affine, head: np.ndarray, nose_tip: Sequence[float],
                anterior: Sequence[float] = (0, 1, 0), superior: Sequence[float] = (0, 0, 1), *,
                gap_mm: float = 6.0, thickness_mm: float = 6.0, value: float | None = None):
    """Add goggles lying close to the face, too thick for a head mask's opening.

    Two lenses ``thickness_mm`` thick follow the face at ``gap_mm`` from
    the skin (``head``: its mask) in front of the eyes and brow (10-50 mm
    either side of the midline, 12-38 mm above the nose tip, along the
    face's ``anterior`` and ``superior`` axes), and a band 4 mm high joins
    their top to the brow across the midline, like the frame left on
    pydeface's mean head. Returns ``(data, affine)``; the goggles are the
    voxels where the output exceeds the input.
    """
    tip = np.asarray(nose_tip, float)
    a = np.asarray(anterior, float)
    s = np.asarray(superior, float)
    v = float(np.percentile(data, 99)) if value is None else value
    zooms = _zooms(affine)
    # mm from the nose tip along the face's right, superior and anterior axes
    u = _plane_side(data, affine, tip, np.cross(a, s))
    w = _plane_side(data, affine, tip, s)
    depth = _plane_side(data, affine, tip, a)
    near_face = np.broadcast_to((np.abs(u) < 50) & (depth > -40), data.shape)
    dist = ndi.distance_transform_edt(~np.asarray(head, bool), sampling=zooms)
    lenses = near_face & (np.abs(u) > 10) & (w > 12) & (w < 38)
    lenses &= (dist > gap_mm) & (dist <= gap_mm + thickness_mm)
    band = near_face & (w >= 38) & (w < 42) & (dist > 0) & (dist <= gap_mm + thickness_mm)
    out = np.where(lenses | band, np.maximum(data, v), data)
    return out.astype(np.float32), affine


def add_cheek_pads(data, affine, head: np.ndarray, nose_tip: Sequence[float],
                   thickness_mm: float = 12.0, value: float | None = None):
    """Add two visible pads pressed against the sides of the face: blocks
    ``thickness_mm`` thick outside the skin, from 15 to 75 mm behind the
    nose tip and from 25 mm below to 35 mm above it, touching the head
    (``head``: its mask) at cheek level, as foam pads with some signal show
    on real scans. Their front corners stand out of the face's sides more
    than the nose stands out of the face."""
    tip = np.asarray(nose_tip, float)
    v = float(np.percentile(data, 99)) * 0.4 if value is None else value
    x, y, z = _world(data.shape, affine)
    ys = (y > tip[1] - 75.0) & (y < tip[1] - 15.0)
    zs = (z > tip[2] - 25.0) & (z < tip[2] + 35.0)
    band = np.broadcast_to(ys & zs, data.shape)
    inside = np.asarray(head, bool) & band
    xw = np.broadcast_to(x, data.shape)[inside]
    left, right = float(xw.min()), float(xw.max())  # the skin at cheek level, each side
    pads = ((x > left - thickness_mm) & (x <= left + 1.0)) | ((x >= right - 1.0) & (x < right + thickness_mm))
    pads = np.broadcast_to(pads, data.shape) & band & ~np.asarray(head, bool)
    out = np.where(pads, np.maximum(data, v), data)
    return out.astype(np.float32), affine


def add_phantom(data, affine, head: np.ndarray, nose_tip: Sequence[float], radius_mm: float = 20.0,
                gap_mm: float = 10.0, value: float | None = None):
    """A bottle of water standing beside the head (a phantom or a marker placed in the coil): a
    cylinder of ``radius_mm`` along the world's superior axis, ``gap_mm`` outside the skin on the
    head's right at the height of the nose tip, 80 mm tall, as bright as ``value`` (default 0.8 of
    the 99th percentile)."""
    tip = np.asarray(nose_tip, float)
    v = float(np.percentile(data, 99)) * 0.8 if value is None else value
    x, y, z = _world(data.shape, affine)
    xw = np.broadcast_to(x, data.shape)[np.asarray(head, bool)]
    centre_x = float(xw.max()) + gap_mm + radius_mm
    centre_y = tip[1] - 60.0
    bottle = ((x - centre_x) ** 2 + (y - centre_y) ** 2 <= radius_mm ** 2) & (np.abs(z - tip[2]) <= 40.0)
    out = np.where(np.broadcast_to(bottle, data.shape), np.maximum(data, v), data)
    return out.astype(np.float32), affine


def scale_head(data, affine, factor: float):
    """The same image with every length scaled by ``factor`` (its voxels and its position): a smaller
    (a child's, for ``factor`` below 1) or larger head of the same shape."""
    a = np.asarray(affine, float).copy()
    a[:3, :] *= float(factor)
    return np.asarray(data, np.float32), a


def pad(data, affine, margin_mm: float):
    """The same image in a field of view ``margin_mm`` larger on every side (zeros around it)."""
    a = np.asarray(affine, float)
    zooms = _zooms(a)
    n = np.ceil(margin_mm / zooms).astype(int)
    out = np.pad(np.asarray(data, np.float32), [(int(k), int(k)) for k in n])
    new = a.copy()
    new[:3, 3] = a[:3, :3] @ (-n.astype(float)) + a[:3, 3]
    return out, new


def add_torso(data, affine, head: np.ndarray, nose_tip: Sequence[float], front_mm: float = 0.0,
              value: float | None = None):
    """Neck, shoulders and chest in a field of view extended 220 mm downwards (a large head-and-neck
    field of view): an image in closest-RAS voxel order gets zeros added below it, a neck (a
    cylinder of radius 50 mm whose axis is 80 mm behind the nose tip, from the chest up to 40 mm
    below the nose tip) and a chest (an ellipsoid 380 mm wide, 220 mm deep and 240 mm tall whose
    front is ``front_mm`` in front of the nose tip: positive for a chest that stands out further
    than the nose, as on a supine person with a large chest), as bright as ``value`` (default the
    median of the head)."""
    tip = np.asarray(nose_tip, float)
    a = np.asarray(affine, float)
    v = float(np.median(np.asarray(data)[np.asarray(head, bool)])) if value is None else value
    below = int(np.ceil(220.0 / _zooms(a)[2]))
    out = np.pad(np.asarray(data, np.float32), [(0, 0), (0, 0), (below, 0)])
    new = a.copy()
    new[:3, 3] = a[:3, 3] - a[:3, 2] * below
    x, y, z = _world(out.shape, new)
    bottom = float((a @ np.r_[0.0, 0.0, 0.0, 1.0])[2])  # the old image's lowest slice (world height)
    centre_z = bottom - 100.0
    neck = ((x - tip[0]) ** 2 + (y - (tip[1] - 80.0)) ** 2 <= 50.0 ** 2) & (z >= centre_z) & (z <= tip[2] - 40.0)
    chest = (((x - tip[0]) / 190.0) ** 2 + ((y - (tip[1] + front_mm - 110.0)) / 110.0) ** 2
             + ((z - centre_z) / 120.0) ** 2) <= 1.0
    body = np.broadcast_to(neck | chest, out.shape)
    return np.where(body, np.maximum(out, np.float32(v)), out).astype(np.float32), new
