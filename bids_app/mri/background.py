"""Backgrounds filled with noise over the whole intensity range (MP2RAGE "UNI" images).

In most MR images the air around the head is dark: a noise floor a few percent
of the tissue's intensity, which the head mask's threshold lies above
(:func:`bids_app.mri.mask.skin_threshold`). In an MP2RAGE UNI image (the
ratio of two inversion images, often shared as the T1w) the air is the ratio
of two noises: salt and pepper over the whole intensity range, as bright as the
head on average, unless a tool masked it. No intensity threshold separates the
head from that; what does is that tissue is smooth from voxel to voxel and the
noise is not.

:func:`background_roughness` measures the air's voxel-to-voxel differences on
the image's outer shell; from :data:`NOISY_BACKGROUND_ROUGHNESS` the head mask
is made from :func:`quiet_background`, a map of how smooth the image is around
each voxel (1 inside the head, towards 0 in the noise), instead of the
intensities, where the intensity mask fills the image's outer shell
(:func:`shell_filled`; a very noisy magnitude image is rough too, but its air is
dark enough for the intensities).

:func:`air_offset` reads the level of an air stored below zero (signed integers,
z-scored intensities), for :func:`~bids_app.mri.reconstruct_head` to bring it to zero first;
:func:`inversion_level` recognises an image stored inverted (the air its brightest part: an
intensity scale turned upside down) and gives the level to mirror its intensities about.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from bids_app.presence import MIN_SHELL_FILLED, NOISY_BACKGROUND_ROUGHNESS

from .mask import sampled_percentile

__all__ = ["NOISY_BACKGROUND_ROUGHNESS", "MIN_SHELL_FILLED", "air_offset", "background_roughness",
           "inversion_level", "inversion_measures", "shell_filled", "shell_quartiles", "quiet_background"]  # the two thresholds: from bids_app.presence

#: Voxels of the image's outer shell whose differences :func:`background_roughness` measures.
SHELL_VOXELS = 4

#: Gaussian window (mm) over which :func:`quiet_background` averages the squared differences.
ROUGHNESS_WINDOW_MM = 2.0
#: :func:`quiet_background`: a voxel is air-like where its roughness is above this fraction of
#: the air's median roughness (the noise: about 0.85-1.1 of it at the 5th-95th percentiles;
#: tissue boundaries inside the head: up to about 0.4).
AIR_LIKE = 0.6
#: Radius (mm) of the closing that bridges the head region's narrow gaps (thin skin over bone,
#: whose weak signal is noise in a UNI image too).
CLOSING_MM = 3.0


def _shell_slabs(data: np.ndarray, width: int):
    """``(axis, slab)`` for each of the image's six faces: the ``width`` voxels along ``axis`` at
    that face (float32; edges and corners in more than one slab)."""
    for axis in range(3):
        for side in (slice(0, width), slice(-width, None)):
            index = [slice(None)] * 3
            index[axis] = side
            yield axis, np.asarray(data[tuple(index)], dtype=np.float32)


def _shell_pairs(data: np.ndarray, width: int):
    """Absolute differences between neighbouring voxels within ``width`` voxels of the image's
    six faces (differences along an axis lying in each face)."""
    return np.concatenate([np.abs(np.diff(slab, axis=(axis + 1) % 3)).ravel()
                           for axis, slab in _shell_slabs(data, width)])


def air_offset(data: np.ndarray, *, quartiles: tuple[float, float, float] | None = None) -> float:
    """The level of an image's air where it lies below zero, else 0.

    Magnitude images have their air at zero (a noise floor above it). Some are stored otherwise:
    signed integers with the air at -1024 or -32768, or intensities z-scored for machine learning
    (air about -0.5 to -1), and every intensity threshold of the head mask then takes the air for
    head or nothing for head. The air's level is the median of the image's outer shell
    (:data:`SHELL_VOXELS` thick); where it is below zero and the shell is not noise spanning
    zero (its interquartile range narrower than that level's distance below zero: a signed
    MP2RAGE UNI image's shell spans the whole range, and :func:`quiet_background` handles it),
    it is returned, for the caller to subtract. Where the head fills more than half of the shell,
    the median is tissue and the air's level is not found (0). ``quartiles``: the shell's, where
    the caller has them (:func:`shell_quartiles`).
    """
    low, level, high = shell_quartiles(data) if quartiles is None else quartiles
    if not np.isfinite(level) or level >= 0 or high - low >= -level:
        return 0.0
    return float(level)


#: :func:`inversion_level`: the air's level must be at least this fraction of the image's 99.5th
#: percentile ...
MIN_INVERTED_AIR = 0.8
#: ... and its shell's interquartile range at most this fraction of that level. Measured (``README``,
#: "Images stored inverted, complex, in colour"): on the 8 real heads with their alterations, the
#: shell's median is at most 0.49 of the 99.5th percentile on MP2RAGE UNI images (whose shell's
#: interquartile range is 1.06 times its median or more) and at most 0.24 on every other (25% noise);
#: the same heads inverted, 12 alterations: at least 0.93, the range at most 0.10 of it (low field).
MAX_INVERTED_AIR_SPREAD = 0.25


def inversion_measures(data: np.ndarray, *,
                       quartiles: tuple[float, float, float] | None = None) -> tuple[float, float]:
    """What :func:`inversion_level` reads: the median of the image's outer shell over the image's
    99.5th percentile, and the shell's interquartile range over that median (NaN where either is
    not defined). ``quartiles``: the shell's, where the caller has them (:func:`shell_quartiles`)."""
    low, level, high = shell_quartiles(data) if quartiles is None else quartiles
    top = sampled_percentile(data, 99.5, per_side=64)
    brightness = level / top if np.isfinite(top) and top > 0 else float("nan")
    spread = (high - low) / abs(level) if level else float("nan")
    return float(brightness), float(spread)


def inversion_level(data: np.ndarray, *, quartiles: tuple[float, float, float] | None = None) -> float:
    """The level about which to mirror an image stored inverted (the air its brightest part), else 0.

    An intensity scale turned upside down (a conversion that wrote ``max - x``) puts the air,
    the largest part of most fields of view, at the top of the range and the head below it; every
    intensity threshold of the head mask then takes the air for head. Such an image is recognised
    by its air's level, the median of the image's outer shell (as for :func:`air_offset`): at
    least :data:`MIN_INVERTED_AIR` of the image's 99.5th percentile, with the shell uniform
    (interquartile range at most :data:`MAX_INVERTED_AIR_SPREAD` of that level: not the noise of
    an MP2RAGE UNI image, nor a head filling the shell; :func:`inversion_measures`). The level
    returned is the image's maximum: mirrored about it, the intensities are the image's as stored
    the usual way, less their minimum (the air's noise floor kept as it was, not clipped).
    """
    brightness, spread = inversion_measures(data, quartiles=quartiles)
    if not (brightness >= MIN_INVERTED_AIR and spread <= MAX_INVERTED_AIR_SPREAD):  # NaN: not inverted
        return 0.0
    return float(np.max(data))


def shell_quartiles(data: np.ndarray) -> tuple[float, float, float]:
    """25th, 50th and 75th percentiles of the image's outer shell (:data:`SHELL_VOXELS` thick); NaN
    where the image is too small to have one."""
    if min(data.shape[:3]) < 2 * SHELL_VOXELS + 1:
        return float("nan"), float("nan"), float("nan")
    shell = np.concatenate([slab.ravel() for _, slab in _shell_slabs(data, SHELL_VOXELS)])
    low, level, high = np.percentile(shell, [25, 50, 75])
    return float(low), float(level), float(high)


def background_roughness(data: np.ndarray) -> float:
    """Median absolute difference between neighbouring voxels on the image's outer shell
    (:data:`SHELL_VOXELS` thick), over the image's 99.5th percentile.

    Near 0 where the air is dark or smoothly varying (a noise floor of a few percent gives about
    0.05); about 0.25 where it is noise over the whole range (an MP2RAGE UNI image). A head
    touching the image's edge adds smooth tissue to the shell, which lowers the median.
    """
    if min(data.shape[:3]) < 2 * SHELL_VOXELS + 1:
        return 0.0
    top = sampled_percentile(data, 99.5, per_side=64)
    if not np.isfinite(top) or top <= 0:
        return 0.0
    return float(np.median(_shell_pairs(data, SHELL_VOXELS)) / top)


def _shell(shape: Sequence[int]) -> np.ndarray:
    """The voxels within :data:`SHELL_VOXELS` of the image's six faces."""
    shell = np.zeros(tuple(shape), dtype=bool)
    for axis in range(3):
        for side in (slice(0, SHELL_VOXELS), slice(-SHELL_VOXELS, None)):
            index = [slice(None)] * 3
            index[axis] = side
            shell[tuple(index)] = True
    return shell


def shell_filled(mask: np.ndarray) -> float:
    """The fraction of the image's outer shell (:data:`SHELL_VOXELS` thick) that ``mask`` holds."""
    return float(mask[_shell(mask.shape)].mean())


def quiet_background(data: np.ndarray, zooms: Sequence[float]) -> np.ndarray:
    """A map for the head mask of an image whose background is noise: 1 inside the head, falling
    towards 0 in the noise (float32, the image's shape).

    The roughness of each voxel: the mean squared difference to its six neighbours, averaged in a
    Gaussian window of :data:`ROUGHNESS_WINDOW_MM`, as a fraction of its median on the image's
    outer shell (the air), square-rooted. The air is the air-like voxels (above :data:`AIR_LIKE`,
    or at the image's minimum: zeros a defacing mask left in the noise) connected to that shell;
    what it does not reach is the head (the edges between tissues inside the head are rough too,
    but the skin walls them off), closed over :data:`CLOSING_MM` in one-voxel steps (a diamond;
    on anisotropic grids as many steps along every axis as along the finest) and set to 1;
    elsewhere the map is 1 minus the roughness (clipped to 0-1), and 0 where blank. An image whose
    shell has no roughness at all (not a noisy background) is returned as it is.
    """
    vol = np.asarray(data, dtype=np.float32)
    z = [float(v) for v in zooms[:3]]
    rough = np.zeros_like(vol)
    for axis in range(3):
        sq = np.diff(vol, axis=axis) ** 2
        before, after = [(0, 0)] * 3, [(0, 0)] * 3
        before[axis], after[axis] = (1, 0), (0, 1)
        rough += np.pad(sq, before, mode="edge")
        rough += np.pad(sq, after, mode="edge")
    rough = ndi.gaussian_filter(rough / 6.0, [ROUGHNESS_WINDOW_MM / v for v in z])
    shell = _shell(vol.shape)
    air_level = float(np.median(rough[shell]))
    if air_level <= 0:
        return vol
    rough = np.sqrt(rough / air_level)
    # blank voxels (the image's minimum: a defacing mask or a masked background, smooth but empty)
    # are air too
    blank = vol <= vol.min()
    air_like = (rough > AIR_LIKE) | blank
    labels, _ = ndi.label(air_like)
    outside_labels = np.unique(labels[shell & air_like])
    outside = np.isin(labels, outside_labels[outside_labels > 0])
    # closed by steps of one voxel (a diamond of the closing's radius along the finest axis:
    # a ball's closing on the full grid costs seconds)
    steps = max(int(round(CLOSING_MM / min(z))), 1)
    head = ndi.binary_closing(np.pad(~outside, steps), iterations=steps)[steps:-steps, steps:-steps, steps:-steps]
    out = 1.0 - np.clip(rough, 0.0, 1.0)
    out[blank] = 0.0
    out[head] = 1.0
    return out.astype(np.float32)
