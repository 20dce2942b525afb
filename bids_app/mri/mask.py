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
:func:`bids_app.mri.overhangs.remove_face_overhangs`: layers in front of
the upper face with outside air behind them (:func:`bids_app.mri.reconstruct_head`
runs it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

__all__ = ["head_mask", "image_edge_cut", "skin_threshold", "largest_component", "fill_holes", "bias_scale"]


def sampled_percentile(data: np.ndarray, q: float, per_side: int = 96) -> float:
    """The ``q``-th percentile of ``data`` on a regular grid of about ``per_side`` voxels along
    each axis (the percentiles of a head image's intensities are stable at that sampling)."""
    step = tuple(max(1, n // per_side) for n in data.shape[:3])
    return float(np.percentile(np.asarray(data[:: step[0], :: step[1], :: step[2]], dtype=np.float32), q))


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
    if axial:
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[:, :, 1] = ndi.generate_binary_structure(2, 1)
    else:
        structure = None
    labels, count = ndi.label(~mask, structure=structure)
    # outside: the background's pieces that reach the volume's border (within their slice)
    faces = [labels[0], labels[-1], labels[:, 0], labels[:, -1]]
    if not axial:
        faces += [labels[:, :, 0], labels[:, :, -1]]
    inside = np.ones(count + 1, dtype=bool)  # lookup: label -> not outside
    inside[np.concatenate([f.ravel() for f in faces])] = False
    inside[0] = True  # label 0: the mask itself
    return inside[labels]


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box (one slice per axis) holding every True voxel of a non-empty ``mask``."""
    box = []
    for ax in range(mask.ndim):
        idx = np.nonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax)))[0]
        box.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(box)


def _ball(radius: float, zooms: Sequence[float]) -> np.ndarray:
    """Ellipsoidal structuring element of ``radius`` mm on the voxel grid."""
    r = [max(int(np.floor(radius / float(zm))), 1) for zm in zooms]
    grids = np.ogrid[tuple(slice(-ri, ri + 1) for ri in r)]
    dist2 = sum((g * float(zm) / radius) ** 2 for g, zm in zip(grids, zooms))
    return dist2 <= 1.0 + 1e-6


def block_sums(vol: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Sums over ``factors``-sized blocks of a volume already padded to whole blocks, in its dtype.

    Summed from strided views (four times faster than numpy's reduction over
    the non-contiguous block axes of the reshaped volume) in the order that
    reduction adds float32: each run along the last axis first, then the
    runs one after the other. Integer sums (a mask's voxel counts) are exact
    in any order; the caller picks a dtype wide enough for them.
    """
    f = [int(v) for v in factors]
    total = None
    for i in range(f[0]):
        for j in range(f[1]):
            run = vol[i:: f[0], j:: f[1], 0:: f[2]]
            for k in range(1, f[2]):
                run = run + vol[i:: f[0], j:: f[1], k:: f[2]]
            total = run.copy() if total is None else np.add(total, run, out=total)
    return total


def _block_mean(vol: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Mean over ``factors``-sized blocks (the volume is zero-padded to fit).

    The float32 mean over the block axes of the reshaped volume: the
    :func:`block_sums` divided by the block size as :func:`numpy.mean`
    divides, the same floats on the machines measured (numpy's own order
    may change between versions; the tests check agreement to float32
    rounding). Runs of 8 or more, which numpy sums pairwise, go through
    :func:`numpy.mean` itself.
    """
    f = [int(v) for v in factors]
    shape = [-(-n // k) * k for n, k in zip(vol.shape, f)]
    if list(vol.shape) != shape:
        vol = np.pad(vol, [(0, s - n) for s, n in zip(shape, vol.shape)])
    vol = np.asarray(vol, dtype=np.float32)
    if f[2] >= 8:
        r = vol.reshape(shape[0] // f[0], f[0], shape[1] // f[1], f[1], shape[2] // f[2], f[2])
        return r.mean(axis=(1, 3, 5), dtype=np.float32)
    total = block_sums(vol, f)
    np.true_divide(total, np.intp(np.prod(f)), out=total, casting="unsafe")
    return total


def _upsample(mask: np.ndarray, factors: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour inverse of :func:`_block_mean` cropped to ``shape``.

    Each coarse voxel broadcast into its block of one array allocated once
    (three :func:`numpy.repeat` calls made two intermediate copies).
    """
    (n0, n1, n2), (f0, f1, f2) = mask.shape, [int(k) for k in factors]
    out = np.empty((n0, f0, n1, f1, n2, f2), dtype=mask.dtype)
    out[...] = mask[:, None, :, None, :, None]
    return out.reshape(n0 * f0, n1 * f1, n2 * f2)[: shape[0], : shape[1], : shape[2]]


def _refine_band(refined: np.ndarray, band: np.ndarray, level: np.ndarray, fine: np.ndarray,
                 factors: Sequence[int]) -> None:
    """Set ``refined`` True wherever ``fine`` is above ``level`` within the coarse ``band``.

    ``band`` and ``level`` are on the coarse grid (``factors`` fine voxels a
    side), ``refined`` and ``fine`` on the fine grid (cropped to its shape);
    only the fine voxels of the band's blocks are compared, each with its
    block's level: the full-size comparison ``upsample(band) & (fine >
    upsample(level))`` without its full-size arrays (the skin band is a few
    percent of the head's box).
    """
    coarse = np.nonzero(band)
    thresholds = level[coarse]
    shape = fine.shape
    for offset in np.ndindex(*[int(f) for f in factors]):
        index = [c * int(f) + o for c, f, o in zip(coarse, factors, offset)]
        inside = (index[0] < shape[0]) & (index[1] < shape[1]) & (index[2] < shape[2])
        index = tuple(i[inside] for i in index)
        above = fine[index] > thresholds[inside]
        refined[tuple(i[above] for i in index)] = True


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
    return np.clip(_linear_upsample(scale, coords), 0.25, 1.0).astype(np.float32)


def _linear_upsample(values: np.ndarray, coords: Sequence[np.ndarray]) -> np.ndarray:
    """``values`` linearly interpolated at the grid of per-axis voxel coordinates ``coords``,
    clamped at the edges: :func:`scipy.ndimage.map_coordinates` with ``order=1, mode="nearest"``
    on that grid, one axis at a time (in float64, returned in ``values``' dtype; ten times
    faster than the general interpolation on every point of the grid)."""
    out = np.asarray(values, dtype=np.float64)
    for axis, c in enumerate(coords):
        n = out.shape[axis]
        c = np.clip(np.asarray(c, dtype=np.float64), 0.0, n - 1.0)
        low = np.minimum(np.floor(c).astype(np.intp), max(n - 2, 0))
        weight = c - low
        high = np.minimum(low + 1, n - 1)
        shape = [1] * out.ndim
        shape[axis] = len(c)
        weight = weight.reshape(shape)
        out = np.take(out, low, axis=axis) * (1.0 - weight) + np.take(out, high, axis=axis) * weight
    return out.astype(values.dtype)


#: Intensities are clipped at this multiple of the volume's 99.5th percentile
#: before segmentation. Real heads reach 1.2-3.1 times it (the demo heads, the
#: heads of ../shared/data/heads and simulated FLAIR scans; the ROBEX atlas is the
#: highest), so the clip leaves them unchanged; a few spike voxels (corrupt
#: or hot, thousands of times brighter) no longer decide the thresholds.
MAX_INTENSITY = 4.0


def head_mask(
    data: np.ndarray,
    zooms: Sequence[float],
    *,
    smooth_mm: float = 1.0,
    open_mm: float = 3.0,
    coarse_mm: float = 2.0,
    bias_correct: bool = True,
    threshold: float | None = None,
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
    scale = sampled_percentile(vol, 99.5)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("volume has no positive intensities")
    step = tuple(max(1, n // 96) for n in vol.shape)  # the same grid, for the box around the signal

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
    # spikes (a few corrupt or hot voxels, thousands of times the tissue) would
    # otherwise set the histograms' range and Otsu's thresholds
    np.minimum(sub, np.float32(MAX_INTENSITY), out=sub)

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
    outer = ndi.binary_dilation(cmask, cross)
    if any(f > 1 for f in factors):
        # The fine mask lies within ``outer``: only the box of whole coarse
        # blocks around it is refined (the field of view often holds much
        # air). The blur is computed on that box grown by its reach, so its
        # values inside the box are those of the whole volume's blur; the
        # holes are filled in the box, whose outside is all air.
        cbox = _bounding_box(outer)
        fbox = tuple(slice(b.start * f, min(b.stop * f, n)) for b, f, n in zip(cbox, factors, sub.shape))
        sigma = [smooth_mm / z for z in zooms]
        reach = [int(2.5 * sd + 0.5) for sd in sigma]  # the radius of scipy's truncated kernel
        grown = tuple(slice(max(b.start - r, 0), min(b.stop + r, n)) for b, r, n in zip(fbox, reach, sub.shape))
        fsmooth = ndi.gaussian_filter(sub[grown], sigma=sigma, mode="nearest", truncate=2.5)
        fsmooth = fsmooth[tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(fbox, grown))]
        inner = ndi.binary_erosion(cmask, cross)[cbox]
        refined = _upsample(inner, factors, fsmooth.shape)
        _refine_band(refined, outer[cbox] & ~inner, t * bias[cbox], fsmooth, factors)
        mask = np.zeros(sub.shape, dtype=bool)
        mask[fbox] = fill_holes(refined) if sub.shape[2] > 1 else refined
    else:
        mask = _upsample(cmask, factors, sub.shape)

    out = np.zeros(vol.shape, dtype=bool)
    out[box_t] = mask
    return out


#: :func:`image_edge_cut` with a face frame counts only the cut within the face's height and width:
#: from this far (mm) below the nose tip ...
FACE_CUT_BELOW_MM = 80.0
#: ... to this far above it ...
FACE_CUT_ABOVE_MM = 70.0
#: ... and this far to either side of it. A neck or chest on the image's front edge (a field of view
#: down to the chest: 5,239-22,159 mm^2 on the real heads, 129-300 mm below the nose tip) is not a
#: face cut by the field of view; faces whose image ends 15 mm behind the nose tip keep 585-4,191
#: mm^2 of their cut in this window (``README``, "Faces cut by the field of view").
FACE_CUT_HALF_WIDTH_MM = 60.0


def image_edge_cut(mask: np.ndarray, affine: np.ndarray, direction: Sequence[float], *,
                   min_cos: float = 0.7, nose_tip: Sequence[float] | None = None,
                   superior: Sequence[float] | None = None) -> tuple[float, np.ndarray]:
    """Where the image's edge cuts the head on the side facing ``direction``: the cut's area
    (mm^2) and its voxels' centres (world mm, ``(n, 3)``; none where the head does not reach
    that edge).

    Counts the mask's voxels in the outermost layer of every face of the voxel
    grid whose outward normal (in world space, from ``affine``) is within
    about 45 degrees of ``direction`` (cosine at least ``min_cos``), each as
    the area of one voxel face. Along the face's anterior axis it tells a face
    cut by the field of view (the nose or more outside the image) from a face
    cut by defacing, which lies inside the image: 0 mm^2 on a head the image
    holds whole. With the face frame's ``nose_tip`` and ``superior`` axis, only
    the voxels within the face's height and width count
    (:data:`FACE_CUT_BELOW_MM`, :data:`FACE_CUT_ABOVE_MM`,
    :data:`FACE_CUT_HALF_WIDTH_MM`).
    """
    axes, origin = np.asarray(affine, dtype=float)[:3, :3], np.asarray(affine, dtype=float)[:3, 3]
    lengths = np.linalg.norm(axes, axis=0)
    unit = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    area, points = 0.0, []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        for outward, index in ((1.0, mask.shape[axis] - 1), (-1.0, 0)):
            if outward * float(axes[:, axis] @ unit) / lengths[axis] < min_cos:
                continue
            ij = np.argwhere(np.take(mask, index, axis=axis))
            if not len(ij):
                continue
            ijk = np.empty((len(ij), 3))
            ijk[:, others], ijk[:, axis] = ij, index
            xyz = ijk @ axes.T + origin
            if nose_tip is not None and superior is not None:
                xyz = xyz[_in_face_window(xyz, nose_tip, unit, superior)]
            area += len(xyz) * float(np.prod(lengths[others]))
            points.append(xyz)
    return area, np.concatenate(points) if points else np.empty((0, 3))


def _in_face_window(points: np.ndarray, nose_tip: Sequence[float], anterior: np.ndarray,
                    superior: Sequence[float]) -> np.ndarray:
    """Which ``points`` lie within the face's height and width around ``nose_tip``."""
    up = np.asarray(superior, dtype=float)
    up = up - anterior * float(up @ anterior)
    up /= np.linalg.norm(up)
    right = np.cross(anterior, up)
    rel = points - np.asarray(nose_tip, dtype=float)
    height, side = rel @ up, rel @ right
    return (height >= -FACE_CUT_BELOW_MM) & (height <= FACE_CUT_ABOVE_MM) & (np.abs(side) <= FACE_CUT_HALF_WIDTH_MM)
