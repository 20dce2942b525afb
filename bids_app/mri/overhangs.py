"""Cut clutter that stands in front of the upper face with air behind it.

A goggle-like frame lying close to the eyes and brow (pydeface's mean head
has one) can be too thick for the opening of :func:`bids_app.mri.head_mask`
to remove; it then covers the eyes in every render. Once the face is found
on the surface (:func:`bids_app.mri.face_frame`), :func:`remove_face_overhangs`
looks at the mask along the face's own anterior axis and cuts the layers
of "head" that have outside air between them and the skin
(:func:`bids_app.mri.reconstruct_head` runs it). Pure numpy / scipy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from nibabel.affines import voxel_sizes
from scipy import ndimage as ndi

from .mask import largest_component

__all__ = ["remove_face_overhangs"]


def _face_grid(mask: np.ndarray, affine: np.ndarray, tip: np.ndarray, axes: np.ndarray,
               ranges: Sequence[np.ndarray]) -> np.ndarray:
    """``mask`` sampled (nearest voxel) on a grid aligned with the face.

    ``axes`` holds the unit vectors (right, anterior, superior) as rows and
    ``ranges`` the mm offsets from ``tip`` along each of them; the result
    has shape ``(len(u), len(v), len(w))``.
    """
    inv = np.linalg.inv(np.asarray(affine, float))
    lin = inv[:3, :3]
    coords = (lin @ tip + inv[:3, 3])[:, None, None, None]
    for k, offsets in enumerate(ranges):
        shape = [1, 1, 1]
        shape[k] = len(offsets)
        coords = coords + (lin @ axes[k])[:, None, None, None] * np.reshape(offsets, [1, *shape])
    return ndi.map_coordinates(mask.view(np.uint8), coords.reshape(3, -1), order=0, mode="constant",
                               cval=0).reshape(coords.shape[1:]).astype(bool)


def _peel_front_layers(grid: np.ndarray, min_gap: int, layers: int = 3):
    """Front layers, seen along axis 1 (front first), with air and then more head behind.

    Returns ``(front, gap)``: the voxels of such layers (up to ``layers``
    of them per column) and the air voxels between each layer and the head
    behind it (at least ``min_gap`` voxels deep).
    """
    depth = np.arange(grid.shape[1])[None, :, None]
    rest = grid.copy()
    front = np.zeros_like(grid)
    gap = np.zeros_like(grid)
    for _ in range(layers):
        first = np.argmax(rest, axis=1)[:, None, :]
        air_after = ~rest & (depth > first)
        gap_start = np.argmax(air_after, axis=1)[:, None, :]
        behind = rest & (depth > gap_start) & air_after.any(axis=1, keepdims=True)
        back = np.where(behind.any(axis=1, keepdims=True), np.argmax(behind, axis=1)[:, None, :], -1)
        layer = (back - gap_start >= min_gap) & (back >= 0)
        piece = layer & rest & (depth >= first) & (depth < gap_start)
        if not piece.any():
            break
        front |= piece
        gap |= layer & (depth >= gap_start) & (depth < back)
        rest &= ~piece
    return front, gap


def _front_layers(mask: np.ndarray, affine: np.ndarray, tip: np.ndarray, axes: np.ndarray, *,
                  above_tip_mm: float, min_gap_mm: float):
    """The face-aligned grid of :func:`remove_face_overhangs` and the front layers on it.

    Returns ``(ranges, grid, gap, labels, footprint)``: the grid's mm
    offsets from ``tip`` (left-right, anterior front first, superior from
    ``above_tip_mm``), the sampled mask, the air behind the layers, the
    layers labelled as 26-connected pieces, and each label's frontal
    footprint in mm^2 (index 0: background, 0).
    """
    ranges = (np.arange(-60.0, 61.0), np.arange(40.0, -61.0, -1.0), np.arange(above_tip_mm, 66.0))
    grid = _face_grid(mask, affine, tip, axes, ranges)
    front, gap = _peel_front_layers(grid, int(np.ceil(min_gap_mm - 1e-6)))
    labels, _ = ndi.label(front, structure=np.ones((3, 3, 3), dtype=bool))
    footprint = np.array([0] + [int(np.count_nonzero((labels[sl] == k).any(axis=1)))
                                for k, sl in enumerate(ndi.find_objects(labels), start=1)])
    return ranges, grid, gap, labels, footprint


def _open_sideways(grid: np.ndarray) -> np.ndarray:
    """Voxels from which a straight line along axis 0 or 2, one way or the
    other, leaves ``grid`` without meeting a True voxel."""
    out = np.zeros_like(grid)
    for axis in (0, 2):
        seen = np.cumsum(grid, axis=axis)
        total = np.take(seen, [-1], axis=axis)
        out |= (seen == 0) | (seen == total) & ~grid
    return out & ~grid


def remove_face_overhangs(
    mask: np.ndarray,
    affine: np.ndarray,
    nose_tip: Sequence[float],
    anterior: Sequence[float],
    superior: Sequence[float],
    *,
    min_gap_mm: float = 2.0,
    min_area_mm2: float = 30.0,
    max_contact: float = 3.0,
    min_open: float = 0.15,
    above_tip_mm: float = 5.0,
    nose_mm: float = 12.0,
    brow_mm: float = 30.0,
    open_mm: float = 5.0,
    near_mm: float = 15.0,
) -> tuple[np.ndarray, int]:
    """Cut objects that stand in front of the upper face with air behind them.

    A goggle-like frame lying close to the eyes and brow (pydeface's mean
    head has one) can be thick enough to survive the opening of
    :func:`bids_app.mri.head_mask`; it then covers the eyes in every render. Seen along
    the face's own anterior axis (from :func:`bids_app.mri.face_frame`),
    such an object is a layer of "head" with at least ``min_gap_mm`` of air
    between it and the skin behind it. The face is searched from
    ``above_tip_mm`` above the nose tip upwards (below it, the nose, lips
    and chin overhang the face anyway), on a face-aligned 1 mm grid
    (120 x 100 x 60 mm), so the head may sit in the image in any orientation.

    Skin can look like that too: over an eye, sinus or nasal cavity that is
    dark in the image (the eyes in FLAIR), or over a dark skull. So a layer
    is cut only if all of these hold:

    * it is not the nose: its footprint's centre is not within ``nose_mm``
      of the midline and below ``brow_mm`` above the nose tip (where the
      skin of the nose's sides is dark, as in T2w, the mask misses it, and
      the cavity behind the nose's bridge then looks like outside air);
    * its frontal footprint is at least ``min_area_mm2``;
    * it touches the head behind and beside it little: at most
      ``max_contact`` neighbouring head voxels per mm^2 of footprint (the
      mean head's frame pieces: 1.4-2.3; the skin over dark cavities of
      simulated FLAIR heads: 2.5-32);
    * the air behind it is outside air: from at least ``min_open`` of it a
      straight line left, right, up or down leaves the head's
      neighbourhood (200 x 190 mm) without meeting the head (the mean
      head's frame: 0.99-1; the larger cavities of the simulated FLAIR
      heads: 0-0.06; the goggles of :func:`bids_app.mri.augment.add_goggles`,
      closed above by their band: 0.2-0.7).

    What the cut pieces leave where they rested on the skin (a shelf on
    the brow, stubs) is then opened away (radius ``open_mm``) within
    ``near_mm`` of them, and only the largest connected piece of head kept.

    Parameters
    ----------
    mask
        Boolean head mask (:func:`bids_app.mri.head_mask`).
    affine
        4x4 voxel-to-world matrix of ``mask``.
    nose_tip, anterior, superior
        Nose tip (world mm) and unit axes of the face (``FaceFrame``).

    Returns
    -------
    mask, removed
        The mask without the overhanging pieces (a new array; ``mask``
        itself if nothing was removed) and the number of voxels removed.
    """
    mask = np.asarray(mask, dtype=bool)
    a = np.asarray(anterior, float)
    s = np.asarray(superior, float)
    axes = np.stack([np.cross(a, s), a, s])
    tip = np.asarray(nose_tip, float)
    (us, vs, ws), grid, gap, labels, footprint = _front_layers(
        mask, affine, tip, axes, above_tip_mm=above_tip_mm, min_gap_mm=min_gap_mm)
    candidates = np.nonzero(footprint >= min_area_mm2)[0]
    if candidates.size == 0:
        return mask, 0
    # the head's whole neighbourhood, for the open-air test (only when needed)
    wide_u = np.arange(-100.0, 101.0)
    wide_w = np.arange(-60.0, 131.0)
    wide = _face_grid(mask, affine, tip, axes, (wide_u, vs, wide_w))
    off_u, off_w = int(np.searchsorted(wide_u, us[0])), int(np.searchsorted(wide_w, ws[0]))
    open_air = _open_sideways(wide)[off_u:off_u + len(us), :, off_w:off_w + len(ws)]
    rest = grid & (labels == 0)
    cut = np.zeros_like(grid)
    ball = np.ones((3, 3, 3), dtype=bool)
    for k in candidates:
        piece = labels == k
        iu, _, iw = np.nonzero(piece)
        if abs(us[iu].mean()) < nose_mm and ws[iw].mean() < brow_mm:
            continue  # the nose: the bridge over a cavity whose dark sides the mask missed
        contact = np.count_nonzero(ndi.binary_dilation(piece, ball) & rest) / footprint[k]
        behind = gap & piece.any(axis=1, keepdims=True)
        opened = float(open_air[behind].mean()) if behind.any() else 0.0
        if contact <= max_contact and opened >= min_open:
            cut |= piece
    if not cut.any():
        return mask, 0

    # grid -> voxels: every head voxel whose nearest grid point is cut (or
    # next to a cut one and not part of the head that stays)
    cut = ndi.binary_dilation(cut, structure=ball) & ~(grid & ~cut)
    zooms = voxel_sizes(np.asarray(affine, float))
    idx = np.stack(np.nonzero(cut))
    corners = np.stack([us[idx[0]], vs[idx[1]], ws[idx[2]]]).T @ axes + tip
    inv = np.linalg.inv(np.asarray(affine, float))
    ijk = corners @ inv[:3, :3].T + inv[:3, 3]
    pad = np.ceil(2.0 / zooms).astype(int)
    lo = np.maximum(np.floor(ijk.min(axis=0)).astype(int) - pad, 0)
    hi = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + pad + 1, mask.shape)
    sub = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    vox = np.stack(np.nonzero(sub)).T + lo
    rel = (vox @ np.asarray(affine, float)[:3, :3].T + np.asarray(affine, float)[:3, 3] - tip) @ axes.T
    gu = np.rint(rel[:, 0] - us[0]).astype(int)
    gv = np.rint(vs[0] - rel[:, 1]).astype(int)
    gw = np.rint(rel[:, 2] - ws[0]).astype(int)
    inside = ((gu >= 0) & (gu < len(us)) & (gv >= 0) & (gv < len(vs)) & (gw >= 0) & (gw < len(ws)))
    hit = np.zeros(len(vox), dtype=bool)
    hit[inside] = cut[gu[inside], gv[inside], gw[inside]]
    if not hit.any():
        return mask, 0
    out = mask.copy()
    out[tuple(vox[hit].T)] = False
    _open_near(out, vox[hit], affine, radius_mm=open_mm, near_mm=near_mm)
    out = largest_component(out)
    return out, int(mask.sum() - out.sum())


def _open_near(mask: np.ndarray, seeds: np.ndarray, affine: np.ndarray, *,
               radius_mm: float, near_mm: float) -> None:
    """Open ``mask`` (in place) within ``near_mm`` of the ``seeds`` voxels only.

    What the frame leaves where it rested on the skin (a shelf on the
    brow, the stubs of cut pieces) is thinner than ``2 * radius_mm``; the
    opening (two Euclidean distance transforms on a box around the seeds)
    takes it off. Within ``near_mm`` it also rounds off whatever else is
    that thin; further away the head is left as it was.
    """
    zooms = voxel_sizes(np.asarray(affine, float))
    pad = np.ceil((near_mm + 2 * radius_mm) / zooms).astype(int)
    lo = np.maximum(seeds.min(axis=0) - pad, 0)
    hi = np.minimum(seeds.max(axis=0) + pad + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    sub = mask[box]
    marks = np.ones(sub.shape, dtype=bool)
    marks[tuple((seeds - lo).T)] = False
    near = ndi.distance_transform_edt(marks, sampling=zooms) <= near_mm
    core = ndi.distance_transform_edt(sub, sampling=zooms) > radius_mm
    opened = ndi.distance_transform_edt(~core, sampling=zooms) <= radius_mm
    mask[box] = sub & (opened | ~near)
