"""Ghosts: copies of the head shifted along a phase-encoding axis (pure numpy / scipy).

A Nyquist (N/2) ghost lays a faint copy of the head, shifted by a fraction
of the field of view along the phase-encoding axis, over the air. Where the field of view is tight the copy of
the back of the head lands in front of the face; at a fifth of the signal
or more it is above the skin threshold, the head mask grows into it and the
face is buried in a block (demo sub-03 with a 20% ghost at half the field
of view: no face in 10 renders).

:func:`find_ghosts` looks for such copies in the air around the head: for
each image axis and each shift of 1/2, 1/3, 2/3, 1/4 and 3/4 of the field
of view, the air is regressed on the head shifted that far. A ghost is
kept when the fit is close (correlation at least :data:`MIN_CORRELATION`)
and its amplitude at least :data:`MIN_AMPLITUDE`. On scans without ghosts
the best fit of any shift reaches 0.43 at most (the 8 real heads of the
development set and 200 simulated scans, intact and defaced:
``benchmarks/ghosts.py``); ghosts of 20-40% of the signal fit at 0.81-0.99.
:func:`remove_ghosts` subtracts the shifted copies: in the air that is
exact up to noise; over the head a ghost made in k-space adds with its own
phase, so the subtraction is only approximate there. Several overlapping
ghosts of different phase (every n-th line of k-space corrupt) do not sum
in magnitude and are found only where one of them dominates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .mask import _ball, _block_mean, _otsu, fill_holes, largest_component, sampled_percentile

__all__ = ["Ghost", "find_ghosts", "remove_ghosts", "MIN_AMPLITUDE", "MIN_CORRELATION"]

#: Shifts looked at, as fractions of the field of view.
FRACTIONS = ((1, 2), (1, 3), (2, 3), (1, 4), (3, 4))
#: A ghost is kept when its amplitude (fraction of the head's intensity) is at least this ...
MIN_AMPLITUDE = 0.08
#: ... and the air fits the shifted head with at least this correlation.
MIN_CORRELATION = 0.7
#: Grid (mm) the search runs on.
GRID_MM = 4.0
#: The voxel axes of a volume from :func:`~bids_app.mri.load_head` (closest RAS+ order).
AXIS_NAMES = ("left-right", "front-back", "up-down")


@dataclass(frozen=True)
class Ghost:
    """A copy of the head shifted by ``shift`` voxels along ``axis`` with ``amplitude``."""

    axis: int
    shift: int
    fraction: str
    amplitude: float
    correlation: float

    def describe(self) -> str:
        direction = AXIS_NAMES[self.axis] if 0 <= self.axis < 3 else f"axis {self.axis}"
        return f"{self.fraction} of the field of view {direction}, amplitude {self.amplitude:.2f}"

    def to_json(self) -> dict:
        return {"Axis": self.axis, "ShiftVoxels": self.shift, "FieldOfView": self.fraction,
                "Amplitude": round(self.amplitude, 3), "Correlation": round(self.correlation, 3)}


def find_ghosts(data: np.ndarray, zooms: Sequence[float]) -> list[Ghost]:
    """Copies of the head shifted by a fraction of the field of view (see the module)."""
    vol = np.asarray(data, dtype=np.float32)
    scale = sampled_percentile(vol, 99.5)
    if not np.isfinite(scale) or scale <= 0:
        return []
    factors = [max(1, int(round(GRID_MM / float(z)))) for z in zooms[:3]]
    coarse = np.minimum(_block_mean(vol, factors) / np.float32(scale), np.float32(4.0))
    czooms = [float(z) * f for z, f in zip(zooms[:3], factors)]
    core = coarse > _otsu(coarse.ravel())
    if not core.any():
        return []
    core = fill_holes(largest_component(core))
    outside = ~ndi.binary_dilation(core, _ball(12.0, czooms))
    ghosts = []
    for axis in range(3):
        n_full = vol.shape[axis]
        for k, g in FRACTIONS:
            # the shift on the coarse grid is fractional: interpolate between the two nearest
            exact = k * n_full / g / factors[axis]
            low = int(np.floor(exact))
            source = np.roll(core, int(round(exact)), axis=axis) & outside
            if source.sum() < 50:
                continue
            weight = exact - low
            x = ((1 - weight) * np.roll(coarse, low, axis=axis)[source].astype(float)
                 + weight * np.roll(coarse, low + 1, axis=axis)[source].astype(float))
            y = coarse[source].astype(float)
            amplitude = float((x * y).sum() / max((x * x).sum(), 1e-12))
            if amplitude < MIN_AMPLITUDE or x.std() == 0 or y.std() == 0:
                continue
            correlation = float(np.corrcoef(x, y)[0, 1])
            if correlation >= MIN_CORRELATION:
                ghosts.append(Ghost(axis, int(round(k * n_full / g)), f"{k}/{g}", amplitude, correlation))
    return ghosts


def remove_ghosts(data: np.ndarray, ghosts: Sequence[Ghost]) -> np.ndarray:
    """``data`` less each ghost's shifted copy of it, clipped at 0 (float32)."""
    vol = np.asarray(data, dtype=np.float32)
    out = vol.copy()
    for ghost in ghosts:
        out -= np.float32(ghost.amplitude) * np.roll(vol, ghost.shift, axis=ghost.axis)
    return np.maximum(out, 0, out=out)
