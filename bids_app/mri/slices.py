"""Corrupt slices: a whole slice far brighter or blanker than the slices on both sides of it.

A slice of garbage (a spike, a conversion error, a slice filled with a constant) adds a bright
plate across the head and the air; the head mask takes the plate for head, and where it crosses
the face the renders show a plate, not a face (demo sub-03 with one axial slice raised by five
times the image's brightest tissue: no face in 10 renders, called "no face"). A dropped slice
(all zeros) splits the head in two along it.

:func:`find_corrupt_slices` compares each slice, along each voxel axis, with the slices on both
sides of it (the two nearest on each side), on two robust levels: the slice's 25th percentile
(the air's level where the slice holds air; a constant added to the slice raises it) and its
98th (the tissue's). A slice is *bright* where its air level stands above both sides' by at
least :data:`BRIGHT_STEP` of the image's tissue level, or its tissue level is at least
:data:`BRIGHT_RATIO` times both sides' and :data:`BRIGHT_STEP` above them. It is *blank* where,
of the voxels that are tissue in the slices on both sides of it (at least :data:`TISSUE_LEVEL`
of the image's tissue level; at least :data:`MIN_TISSUE_VOXELS` of those sampled), at least
:data:`BLANK_FRACTION` are under :data:`BLANK_LEVEL` in it: a slice dropped anywhere in the head,
even through the nose alone. Intact heads change far more slowly from slice to slice: on 358
intact scans (the 8 real heads with 26 alterations, 150 simulated scans; ``benchmarks/slices.py``)
the largest air step was 0.087 of the tissue level, no slice was twice as bright as its sides by
more than 0.009, and the largest blank fraction was 0.32 (0.43 on 6.5 mm sagittal slices); one
plate or one dropped slice gives 6-9 and 1.0. :func:`repair_slices` replaces each corrupt slice by
the mean of the nearest intact slices on either side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .mask import sampled_percentile

__all__ = ["CorruptSlice", "SliceContrasts", "find_corrupt_slices", "repair_slices", "slice_contrasts",
           "slice_sample"]

#: The voxel axes of a volume from :func:`~bids_app.mri.load_head` (closest RAS+ order).
AXIS_NAMES = ("sagittal", "coronal", "axial")
#: A bright slice's air level stands this far (fraction of the image's tissue level) above both sides'.
BRIGHT_STEP = 0.5
#: ... or its tissue level is this many times both sides' (and :data:`BRIGHT_STEP` above them).
BRIGHT_RATIO = 2.0
#: A voxel is tissue at this fraction of the image's tissue level ...
TISSUE_LEVEL = 0.3
#: ... and blank under this fraction of it.
BLANK_LEVEL = 0.05
#: A slice is blank where this fraction of the voxels that are tissue on both sides of it is blank ...
BLANK_FRACTION = 0.9
#: ... of at least this many such voxels sampled.
MIN_TISSUE_VOXELS = 8
#: Slices along an axis needed to compare a slice with two on each side.
MIN_SLICES = 8
#: About this many voxels per slice are sampled for its levels.
SAMPLE_VOXELS = 2048


@dataclass(frozen=True)
class CorruptSlice:
    """Slice ``index`` along voxel ``axis`` of the RAS+ volume: ``kind`` "bright" or "blank"."""

    axis: int
    index: int
    kind: str
    air_level: float
    """The slice's 25th percentile over the image's tissue level."""
    tissue_level: float
    """The slice's 98th percentile over the image's tissue level."""

    def describe(self) -> str:
        return (f"{self.kind} {AXIS_NAMES[self.axis]} slice {self.index} (air {self.air_level:.2f}, "
                f"tissue {self.tissue_level:.2f} of the image's tissue level)")

    def to_json(self) -> dict:
        return {"Axis": AXIS_NAMES[self.axis], "Index": self.index, "Kind": self.kind,
                "AirLevel": round(self.air_level, 3), "TissueLevel": round(self.tissue_level, 3)}


def slice_sample(data: np.ndarray, axis: int) -> np.ndarray:
    """About :data:`SAMPLE_VOXELS` voxels of each slice along ``axis``, on a regular grid:
    ``(slices, voxels)`` float32."""
    moved = np.moveaxis(np.asarray(data), axis, 0)
    step = max(1, int(np.sqrt(moved.shape[1] * moved.shape[2] / SAMPLE_VOXELS)))
    return np.asarray(moved[:, ::step, ::step], dtype=np.float32).reshape(moved.shape[0], -1)


@dataclass(frozen=True)
class SliceContrasts:
    """Per slice along one voxel axis, how it stands against the two nearest slices on each side
    (levels as fractions of the image's tissue level; ``nan`` for the first and last slice)."""

    air_level: np.ndarray
    tissue_level: np.ndarray
    air_step: np.ndarray
    """The slice's air level minus the larger of both sides' (a constant added to the slice)."""
    tissue_ratio: np.ndarray
    """The slice's tissue level over the larger of both sides'."""
    tissue_step: np.ndarray
    """The slice's tissue level minus the larger of both sides'."""
    blank_fraction: np.ndarray
    """Of the sampled voxels that are tissue in the slices just before and just after, the fraction
    blank in this one (``nan`` where fewer than :data:`MIN_TISSUE_VOXELS`)."""

    def corrupt(self) -> tuple[np.ndarray, np.ndarray]:
        """Boolean arrays: bright slices, blank slices (the thresholds of the module)."""
        with np.errstate(invalid="ignore"):
            bright = (self.air_step >= BRIGHT_STEP) | ((self.tissue_ratio >= BRIGHT_RATIO)
                                                       & (self.tissue_step >= BRIGHT_STEP))
            blank = self.blank_fraction >= BLANK_FRACTION
        return bright, blank & ~bright


def image_tissue_level(data: np.ndarray) -> float:
    """The image's 98th percentile (on a grid of about 64 voxels a side)."""
    return sampled_percentile(data, 98, per_side=64)


def slice_contrasts(data: np.ndarray, axis: int, tissue: float) -> SliceContrasts:
    """:class:`SliceContrasts` along ``axis`` (at least :data:`MIN_SLICES` slices), levels over ``tissue``."""
    sample = slice_sample(data, axis) / np.float32(tissue)
    low, high = np.percentile(sample, [25, 98], axis=1)
    n = len(low)

    def side(values: np.ndarray, reduce, fill: float) -> tuple[np.ndarray, np.ndarray]:
        """``reduce`` over the two slices before and the two after each slice (``fill`` past the ends)."""
        padded = np.concatenate([[fill, fill], values, [fill, fill]])
        return reduce(padded[0:n], padded[1:n + 1]), reduce(padded[3:n + 3], padded[4:n + 4])

    low_before, low_after = side(low, np.maximum, -np.inf)
    high_before, high_after = side(high, np.maximum, -np.inf)
    sides_high = np.maximum(high_before, high_after)
    tissue_around = np.zeros(sample.shape, dtype=bool)
    tissue_around[1:n - 1] = (sample[:-2] >= TISSUE_LEVEL) & (sample[2:] >= TISSUE_LEVEL)
    counted = tissue_around.sum(axis=1)
    blanked = (tissue_around & (sample < BLANK_LEVEL)).sum(axis=1)
    inner = np.zeros(n, dtype=bool)
    inner[1:n - 1] = True  # the first and last slice have no side to compare with
    with np.errstate(divide="ignore", invalid="ignore"):
        air_step = np.where(inner, low - np.maximum(low_before, low_after), np.nan)
        tissue_ratio = np.where(inner, high / np.maximum(sides_high, 1e-6), np.nan)
        tissue_step = np.where(inner, high - sides_high, np.nan)
        blank_fraction = np.where(inner & (counted >= MIN_TISSUE_VOXELS), blanked / np.maximum(counted, 1), np.nan)
    return SliceContrasts(low, high, air_step, tissue_ratio, tissue_step, blank_fraction)


def find_corrupt_slices(data: np.ndarray) -> list[CorruptSlice]:
    """Slices far brighter (a plate of garbage) or blanker (dropped) than the slices on both sides."""
    if data.ndim != 3:
        return []
    tissue = image_tissue_level(data)
    if not np.isfinite(tissue) or tissue <= 0:
        return []
    found = []
    for axis in range(3):
        if data.shape[axis] < MIN_SLICES:
            continue
        contrasts = slice_contrasts(data, axis, tissue)
        bright, blank = contrasts.corrupt()
        for s in np.flatnonzero(bright | blank):
            found.append(CorruptSlice(axis, int(s), "bright" if bright[s] else "blank",
                                      float(contrasts.air_level[s]), float(contrasts.tissue_level[s])))
    return found


def repair_slices(data: np.ndarray, corrupt: Sequence[CorruptSlice]) -> np.ndarray:
    """A copy of ``data`` with each corrupt slice replaced by the mean of the nearest intact slices
    on either side along its axis (float32)."""
    out = np.array(data, dtype=np.float32, copy=True)
    bad: dict[int, set[int]] = {}
    for c in corrupt:
        bad.setdefault(c.axis, set()).add(c.index)
    for axis, indices in bad.items():
        moved = np.moveaxis(out, axis, 0)  # a view: writing it writes ``out``
        n = moved.shape[0]
        for s in sorted(indices):
            below = next((i for i in range(s - 1, -1, -1) if i not in indices), None)
            above = next((i for i in range(s + 1, n) if i not in indices), None)
            near = [moved[i] for i in (below, above) if i is not None]
            if near:
                moved[s] = np.mean(near, axis=0)
    return out
