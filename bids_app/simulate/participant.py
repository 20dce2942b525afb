"""One simulated participant's random draws (the truth): :class:`Participant` and its sampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .settings import (
    CLIP_SD, CONTRAST_NODES, CONTRASTS, DEFORMATIONS, FREE_BUMP_SD, GRIDS, HARD, MODES,
    N_FREE_BUMPS, ORIENTATIONS, POSE_DEG, SHIFT_MM,
)


@dataclass
class Participant:
    """Everything random about one simulated participant (the truth)."""

    label: str
    index: int
    seed: list[int]
    base_head: str
    base_path: str
    deformation: dict[str, float]  # mm (or relative for face_width / face_height)
    free_bumps: list[dict[str, Any]]
    contrast: str
    contrast_nodes: list[float]
    voxel_size: tuple[float, float, float]
    orientation: str
    rotation_deg: tuple[float, float, float]
    shift_mm: tuple[float, float, float]
    pad_press_mm: tuple[float, float]
    pad_visible: float  # intensity of the visible pad blocks, 0 = invisible
    noise: float  # Rician sigma, fraction of the brightest brain tissue (CSF, GM or WM)
    bias_coefs: list[float]
    n_photos: int
    photo_seed: int
    extras: dict[str, Any] = field(default_factory=dict)
    mode: str = "default"
    hard: dict[str, Any] = field(default_factory=dict)  # hard-mode parameters (see HARD)

    def row(self) -> dict[str, Any]:
        """One row of ``truth.tsv``."""
        row: dict[str, Any] = {
            "participant_id": f"sub-{self.label}", "base_head": self.base_head,
            "seed": "-".join(str(s) for s in self.seed), "contrast": self.contrast,
            "voxel_size": "x".join(f"{v:g}" for v in self.voxel_size),
            "orientation": self.orientation,
            "rotation_deg": ",".join(f"{v:.2f}" for v in self.rotation_deg),
            "shift_mm": ",".join(f"{v:.2f}" for v in self.shift_mm),
            "pad_press_mm": ",".join(f"{v:.2f}" for v in self.pad_press_mm),
            "pad_visible": round(self.pad_visible, 3), "noise": round(self.noise, 4),
            "n_photos": self.n_photos,
        }
        for k, v in self.deformation.items():
            row[k] = round(v, 4)
        if self.mode != "default":
            row["mode"] = self.mode
            for k, v in self.hard.items():
                row[k] = round(v, 4) if isinstance(v, float) else v
        return row


def sample_participant(index: int, seed: int, heads: list[Path], *, contrast: str = "FLAIR",
                       spread: float = 1.0, label: str | None = None,
                       photos: tuple[int, int] = (3, 5), mode: str = "default") -> Participant:
    """Draw participant ``index`` (0-based) of a cohort; deterministic in (seed, index, mode).

    In the hard mode the identity draws are the default mode's scaled by
    ``HARD["spread"]``, and the hard-mode parameters come from a second
    generator (``[seed, index, 2]``), so the default mode's draws are not
    disturbed.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if mode == "hard":
        spread = spread * HARD["spread"]
    rng = np.random.default_rng([int(seed), int(index)])
    base_path = heads[index % len(heads)]
    deform = {}
    for name, (sd, _) in DEFORMATIONS.items():
        deform[name] = float(np.clip(rng.normal(), -CLIP_SD, CLIP_SD) * sd * spread)
    free = []
    for _ in range(N_FREE_BUMPS):
        centre = [float(rng.uniform(0, 50)), float(rng.uniform(-30, -5)), float(rng.uniform(-65, 55))]
        sigma = float(rng.uniform(9, 16))
        amp = np.clip(rng.normal(size=3), -CLIP_SD, CLIP_SD) * FREE_BUMP_SD * spread
        free.append({"centre": centre, "sigma": sigma, "amp": [float(a) for a in amp],
                     "mirror": bool(rng.uniform() < 0.7)})
    jitter = np.exp(rng.normal(0, 0.08, size=len(CONTRAST_NODES)))
    jitter[0] = 1.0
    nodes = CONTRASTS[contrast] * jitter
    grid = GRIDS[int(rng.integers(len(GRIDS)))]
    orient = ORIENTATIONS[int(rng.integers(len(ORIENTATIONS)))]
    rot = tuple(float(v) for v in rng.uniform(-POSE_DEG, POSE_DEG, 3))
    shift = tuple(float(v) for v in rng.uniform(-SHIFT_MM, SHIFT_MM, 3))
    press = tuple(float(v) for v in rng.uniform(1.0, 4.0, 2))
    pad_visible = float(rng.uniform(0.1, 0.35)) if rng.uniform() < 0.3 else 0.0
    noise = float(rng.uniform(0.02, 0.05))
    bias = [float(v) for v in rng.normal(0, 0.08, 9)]
    n_photos = int(rng.integers(photos[0], photos[1] + 1))
    photo_seed = int(rng.integers(2**31))
    part = Participant(
        label=label or f"{index + 1:02d}", index=index, seed=[int(seed), int(index)],
        base_head=Path(base_path).name.split(".")[0], base_path=str(base_path),
        deformation=deform, free_bumps=free, contrast=contrast,
        contrast_nodes=[float(v) for v in nodes], voxel_size=grid, orientation=orient,
        rotation_deg=rot, shift_mm=shift, pad_press_mm=press, pad_visible=pad_visible,
        noise=noise, bias_coefs=bias, n_photos=n_photos, photo_seed=photo_seed)
    if mode == "hard":
        _harden(part, np.random.default_rng([int(seed), int(index), 2]))
    return part


def _harden(part: Participant, rng: np.random.Generator) -> None:
    """Draw the hard-mode acquisition and nose of ``part`` (in place; see :data:`HARD`)."""
    in_plane = float(HARD["in_plane_mm"][int(rng.integers(len(HARD["in_plane_mm"])))])
    thick = round(float(rng.uniform(*HARD["slice_mm"])), 2)
    part.voxel_size = (in_plane, in_plane, thick)
    part.pad_press_mm = tuple(float(v) for v in rng.uniform(*HARD["pad_press_mm"], 2))
    visible = rng.uniform() < HARD["pad_visible_p"]
    part.pad_visible = float(rng.uniform(*HARD["pad_visible"])) if visible else 0.0
    dim = bool(rng.uniform() < HARD["dim_lower_face"])
    low = float(rng.uniform(*HARD["dim_low"]))
    part.mode = "hard"
    part.hard = {
        "slice_mm": thick,
        "dim_lower_face": int(dim),
        "dim_low": low if dim else 1.0,  # gain at the chin (1: not dimmed)
        "nose_flatten": float(rng.uniform()),  # 0: the nose as drawn, 1: down to the flattest
        "nose_flatten_mm": 0.0,  # set from the base head by simulate_participant
        "nose_protrusion_mm": None,  # measured on the simulated face (simulate_participant)
    }
