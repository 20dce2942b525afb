"""Head-versus-air mask of an anatomical MRI volume (pure numpy / scipy).

Two resolutions, so that a 256^3 volume takes a fraction of a second:

1. *Coarse* (about 2 mm, block means of the original voxels): Gaussian
   blur; a slowly varying intensity scale of the head is divided out (bias
   fields that darken the chin, the lips or the neck then keep the skin
   above the threshold); the skin/air threshold is read from the data
   (:func:`skin_threshold`); largest connected component; an opening of
   radius ``open_mm`` cuts thin objects attached to the head (goggle-like
   frames, foam and ear pads, coil parts, markers) and the detail it rounds
   off (nose, lips, ears) is given back by reconstruction; holes closed.
2. *Fine* (the original voxels): within a band of one coarse voxel around
   the coarse boundary, the skin edge is re-thresholded at full resolution;
   deeper inside the head is filled, outside the band is air.

Nothing assumes an orientation: the opening works all round the head, and
the face itself is found later on the surface (:func:`bids_app.mri.face_frame`).

Clutter lying close to the face and too thick for the opening (goggles, the
frame on pydeface's mean head) is cut once the face is found, by
:func:`remove_face_overhangs`: layers in front of the upper face with
outside air behind them (:func:`bids_app.mri.reconstruct_head` runs it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

__all__ = ["head_mask", "skin_threshold", "largest_component", "fill_holes", "bias_scale",
           "remove_face_overhangs"]


def _otsu(values: np.ndarray, nbins: int = 256) -> float:
    """Otsu's threshold of a 1D sample."""
    hist, edges = np.histogram(values, bins=nbins)
    centers = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist).astype(float)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centers[int(np.argmax(between[:-1]))])


def skin_threshold(
    smoothed: np.ndarray,
    zooms: Sequence[float],
    *,
    otsu_fraction: float = 0.35,
    noise_factor: float = 3.0,
    bounds: tuple[float, float] = (0.25, 0.8),
) -> float:
    """Choose the intensity separating skin from air, from the data.

    Otsu's threshold separates air from tissue but sits too high for
    darker skin (lips, eyelids, bias-darkened chin), which then shows pits
    and holes. The threshold is therefore ``otsu_fraction`` of Otsu's,
    raised where the air is noisy to ``noise_factor`` times the air level
    around the head (75th percentile of the blurred air 6-20 mm outside
    the Otsu surface, along rays entering the head from the front, the
    sides and the top, where ghosting and noise live), and kept within
    ``bounds`` (fractions of Otsu). On the development heads (four scanners
    and a mean head) this gives 0.35-0.5 of Otsu; 0.25 lets noise grow onto
    noisy faces, 0.6 and above opens holes at the lips of clean ones.

    Parameters
    ----------
    smoothed
        Blurred (and bias-normalised) volume.
    zooms
        Voxel size (mm).

    Returns
    -------
    float
        Threshold in the units of ``smoothed``.
    """
    sample = smoothed[::2, ::2, ::2].ravel() if smoothed.size > 2_000_000 else smoothed.ravel()
    otsu = _otsu(sample)
    coarse = smoothed > otsu
    z = np.asarray(zooms, dtype=float)

    air: list[np.ndarray] = []
    # anterior, right, left, superior: where ghosting and noise live in
    # front of the face and around the head (not the cut neck, often noisier)
    for axis, from_high in ((1, True), (0, True), (0, False), (2, True)):
        vol = np.moveaxis(smoothed, axis, -1)
        hit = np.moveaxis(coarse, axis, -1)
        if from_high:
            vol, hit = vol[..., ::-1], hit[..., ::-1]
        first = np.argmax(hit, axis=-1)
        step = float(z[axis])
        far, near = int(round(20 / step)), max(int(round(6 / step)), 1)
        ok = hit.any(axis=-1) & (first >= far)
        if ok.sum() < 20:
            continue
        idx = np.nonzero(ok)
        f = first[idx]
        lines = vol[idx]
        rows = np.arange(len(f))[:, None]
        air.append(lines[rows, f[:, None] - np.arange(near, far + 1)[None, :]].ravel())
    noise = float(np.percentile(np.concatenate(air), 75)) if air else 0.0
    t = max(otsu_fraction * otsu, noise_factor * noise)
    return float(np.clip(t, bounds[0] * otsu, bounds[1] * otsu))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 6-connected component of a boolean mask."""
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask.astype(bool, copy=True)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def fill_holes(mask: np.ndarray, *, axial: bool = True) -> np.ndarray:
    """Fill cavities of a head mask.

    Without ``axial``, every 3D cavity not connected to the border of the
    volume is filled. With ``axial`` (the default), every hole enclosed
    within a slice of the last axis is filled, which includes the 3D
    cavities and also closes the airways, sinuses and mouth that reach the
    outside only through the nostrils, the lips or the cut neck: the
    renders never see them, and without this they triple the size of the
    surface mesh. One labelling of the background replaces the iterated
    dilation of :func:`scipy.ndimage.binary_fill_holes`.
    """
    padded = np.pad(~mask, 1, constant_values=True)
    if axial:
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[:, :, 1] = ndi.generate_binary_structure(2, 1)
    else:
        structure = None
    labels, _ = ndi.label(padded, structure=structure)
    border = np.concatenate([labels[0].ravel(), labels[-1].ravel(),
                             labels[:, 0].ravel(), labels[:, -1].ravel()])
    inside = np.ones(int(labels.max()) + 1, dtype=bool)  # lookup: label -> not outside
    inside[border] = False
    inside[0] = True  # label 0: the mask itself
    return inside[labels[1:-1, 1:-1, 1:-1]]


def _ball(radius: float, zooms: Sequence[float]) -> np.ndarray:
    """Ellipsoidal structuring element of ``radius`` mm on the voxel grid."""
    r = [max(int(np.floor(radius / float(zm))), 1) for zm in zooms]
    grids = np.ogrid[tuple(slice(-ri, ri + 1) for ri in r)]
    dist2 = sum((g * float(zm) / radius) ** 2 for g, zm in zip(grids, zooms))
    return dist2 <= 1.0 + 1e-6


def _block_mean(vol: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Mean over ``factors``-sized blocks (the volume is zero-padded to fit)."""
    f = [int(v) for v in factors]
    shape = [-(-n // k) * k for n, k in zip(vol.shape, f)]
    if list(vol.shape) != shape:
        vol = np.pad(vol, [(0, s - n) for s, n in zip(shape, vol.shape)])
    r = vol.reshape(shape[0] // f[0], f[0], shape[1] // f[1], f[1], shape[2] // f[2], f[2])
    return r.mean(axis=(1, 3, 5), dtype=np.float32)


def _upsample(mask: np.ndarray, factors: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour inverse of :func:`_block_mean` cropped to ``shape``."""
    out = mask
    for ax, k in enumerate(factors):
        if k > 1:
            out = np.repeat(out, int(k), axis=ax)
    return out[: shape[0], : shape[1], : shape[2]]


def bias_scale(smoothed: np.ndarray, zooms: Sequence[float], *, sigma_mm: float = 25.0) -> np.ndarray:
    """Slowly varying intensity scale of the head tissue (for bias correction).

    The mean of the tissue (voxels above Otsu's threshold) within a
    Gaussian window of ``sigma_mm``, normalised to 1 at its 90th
    percentile, and clipped below at 0.25 (far from tissue it is 1). Dividing by it
    flattens receive-coil fall-off towards the neck and face, so that the
    chin and lips of a bias-darkened face stay above the skin threshold.
    """
    # on an ~8 mm grid: the scale is smooth, and a 25 mm window is costly at 2 mm
    k = [max(1, int(round(8.0 / float(z)))) for z in zooms]
    low = _block_mean(smoothed, k)
    sig = [sigma_mm / (float(z) * f) for z, f in zip(zooms, k)]
    scale = np.ones_like(low)
    for _ in range(3):  # tissue darkened by the bias is found once the rest is corrected
        flat = low / scale
        tissue = flat > 0.8 * _otsu(flat.ravel())
        num = ndi.gaussian_filter(np.where(tissue, low, 0).astype(np.float32), sig, mode="constant")
        den = ndi.gaussian_filter(tissue.astype(np.float32), sig, mode="constant")
        wide = [3 * g for g in sig]
        num_w = ndi.gaussian_filter(np.where(tissue, low, 0).astype(np.float32), wide, mode="constant")
        den_w = ndi.gaussian_filter(tissue.astype(np.float32), wide, mode="constant")
        with np.errstate(invalid="ignore", divide="ignore"):
            level = np.where(den > 0.05, num / np.maximum(den, 1e-6),
                             np.where(den_w > 0.01, num_w / np.maximum(den_w, 1e-6), np.nan))
        ref = float(np.nanpercentile(level, 90)) if np.isfinite(level).any() else 1.0
        scale = np.clip(np.where(np.isfinite(level), level / ref, 1.0), 0.25, 1.0).astype(np.float32)
    # back to the input grid (linear, block centres aligned)
    coords = [(np.arange(n) + 0.5) / f - 0.5 for n, f in zip(smoothed.shape, k)]
    grid = np.meshgrid(*coords, indexing="ij", sparse=True)
    scale = ndi.map_coordinates(scale, np.broadcast_arrays(*grid), order=1, mode="nearest")
    return np.clip(scale, 0.25, 1.0).astype(np.float32)


def head_mask(
    data: np.ndarray,
    zooms: Sequence[float],
    *,
    smooth_mm: float = 1.0,
    open_mm: float = 3.0,
    coarse_mm: float = 2.0,
    bias_correct: bool = True,
    threshold: float | None = None,
    face_depth_mm: float | None = None,
) -> np.ndarray:
    """Segment the head (skin and everything inside it) from the air around it.

    Parameters
    ----------
    data
        3D intensities (any orientation; ``load_head(...).data``).
    zooms
        Voxel size in mm.
    smooth_mm
        Standard deviation (mm) of the Gaussian blur applied before
        thresholding; it suppresses air noise and makes the skin continuous.
    open_mm
        Radius (mm) of the opening that removes thin objects attached to
        the head (frames, pads, markers); 0 disables it.
    coarse_mm
        Voxel size (mm) of the coarse grid the head is segmented on; the
        skin edge is then refined at the original resolution.
    bias_correct
        Divide out a slowly varying intensity scale (:func:`bias_scale`).
    threshold
        Fixed threshold on the blurred, normalised volume, in units of its
        99.5th percentile; by default chosen from the data with
        :func:`skin_threshold`.
    face_depth_mm
        Ignored (kept for compatibility: the opening now covers the whole head).

    Returns
    -------
    numpy.ndarray
        Boolean mask of ``data.shape``: True inside the head.

    Raises
    ------
    ValueError
        If ``data`` is not 3D or no head can be found.
    """
    if data.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {data.shape}")
    zooms = tuple(float(z) for z in zooms[:3])
    vol = np.asarray(data, dtype=np.float32)
    step = tuple(max(1, n // 96) for n in vol.shape)
    scale = float(np.percentile(vol[:: step[0], :: step[1], :: step[2]], 99.5))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("volume has no positive intensities")

    # crop to where there is signal to save time on empty field of view
    rough = vol[:: step[0], :: step[1], :: step[2]] > 0.05 * scale
    margin = [int(np.ceil(8 / z)) for z in zooms]
    box = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        idx = np.nonzero(rough.any(axis=other))[0] * step[ax]
        if idx.size == 0:
            raise ValueError("no head found: the volume is (nearly) empty")
        box.append(slice(max(idx[0] - margin[ax], 0),
                         min(idx[-1] + step[ax] + margin[ax], vol.shape[ax])))
    box_t = tuple(box)
    sub = vol[box_t] * np.float32(1.0 / scale)

    # ---- coarse grid --------------------------------------------------
    factors = [max(1, int(round(coarse_mm / z))) for z in zooms]
    czooms = tuple(z * f for z, f in zip(zooms, factors))
    coarse = _block_mean(sub, factors)
    csig = [max(smooth_mm / z, 0.5) for z in czooms]
    csmooth = ndi.gaussian_filter(coarse, sigma=csig, mode="nearest")
    bias = bias_scale(csmooth, czooms) if bias_correct else np.ones_like(csmooth)
    cnorm = csmooth / bias
    t = skin_threshold(cnorm, czooms) if threshold is None else float(threshold)
    cmask = cnorm > t
    if not cmask.any():
        raise ValueError("no head found: nothing above the skin threshold")
    cmask = largest_component(cmask)
    if open_mm > 0:
        ball = _ball(open_mm, czooms)
        core = largest_component(ndi.binary_opening(cmask, structure=ball))
        if core.sum() > 0.5 * cmask.sum():
            # give back what the opening rounded off next to the kept core
            near = ndi.binary_dilation(core, structure=ball, iterations=2)
            cmask = largest_component(cmask & near)
    cmask = fill_holes(cmask)

    # ---- fine grid: re-threshold the skin edge within one coarse voxel ----
    cross = ndi.generate_binary_structure(3, 1)
    outer = _upsample(ndi.binary_dilation(cmask, cross), factors, sub.shape)
    inner = _upsample(ndi.binary_erosion(cmask, cross), factors, sub.shape)
    if any(f > 1 for f in factors):
        fsmooth = ndi.gaussian_filter(sub, sigma=[smooth_mm / z for z in zooms], mode="nearest",
                                      truncate=2.5)
        fbias = _upsample(bias, factors, sub.shape)
        mask = inner | (outer & (fsmooth > t * fbias))
        mask = fill_holes(mask) if mask.shape[2] > 1 else mask
    else:
        mask = _upsample(cmask, factors, sub.shape)

    out = np.zeros(vol.shape, dtype=bool)
    out[box_t] = mask
    return out


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
    :func:`head_mask`; it then covers the eyes in every render. Seen along
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
        Boolean head mask (:func:`head_mask`).
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
    zooms = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))
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
    zooms = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))
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
