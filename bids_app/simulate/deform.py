"""Identity warp: the smooth displacement field of a participant's face-shape bumps, and the warp."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .heads import BaseHead
from .participant import Participant
from .settings import DEFORMATIONS, HARD

#: How much of the nose-flattening bump's push-back the protrusion loses (the
#: surface 20 mm beside the tip moves back too, by exp(-0.5 (20/9)^2) of it).
_FLATTEN_GAIN = 1.0 - float(np.exp(-0.5 * (20.0 / HARD["nose_flatten_sigma"][0]) ** 2))


def _bumps(part: Participant, with_pads: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(centre uvw, sigma uvw, displacement uvw in mm) of every Gaussian bump."""
    out = []
    for name, (_, bumps) in DEFORMATIONS.items():
        amp = part.deformation[name]
        for centre, sigma, direction in bumps:
            c, s, d = np.array(centre, float), np.array(sigma, float), np.array(direction, float)
            d = d / np.linalg.norm(d) * amp
            out.append((c, s, d))
            if c[0] != 0:
                out.append((c * [-1, 1, 1], s, d * [-1, 1, 1]))
    for bump in part.free_bumps:
        c, d = np.array(bump["centre"], float), np.array(bump["amp"], float)
        s = np.array([bump["sigma"], 25.0, bump["sigma"]])
        out.append((c, s, d))
        if bump["mirror"]:
            out.append((c * [-1, 1, 1], s, d * [-1, 1, 1]))
        else:
            out.append((c * [-1, 1, 1], s, d * [1, 1, 1] * 0.5))
    flatten = float(part.hard.get("nose_flatten_mm", 0.0))
    if flatten > 0:  # hard mode: the nose tip pushed back, the cheeks beside it stay
        out.append((np.array(HARD["nose_flatten_centre"], float),
                    np.array(HARD["nose_flatten_sigma"], float), np.array([0.0, -flatten, 0.0])))
    if with_pads:
        for side, press in zip((1.0, -1.0), part.pad_press_mm):
            # pads sit beside the cheeks / temples and push them towards the midline
            out.append((np.array([side * 62.0, -45.0, 5.0]), np.array([10.0, 22.0, 24.0]),
                        np.array([-side * press, 0.0, 0.0])))
    return out


def deformation_field(part: Participant, base: BaseHead, box: tuple[slice, slice, slice],
                      with_pads: bool, step: int = 2) -> np.ndarray:
    """Displacement (3, nx, ny, nz) in mm, RAS axes, on the 1 mm base grid inside ``box``.

    The face frame of the base is u = -x (lateral), v = +y (anterior),
    w = +z (superior), origin at the nose tip.
    """
    shape = tuple(s.stop - s.start for s in box)
    ncoarse = [int(np.ceil((n - 1) / step)) + 1 for n in shape]
    axes = [box[k].start + step * np.arange(ncoarse[k]) - base.tip[k] for k in range(3)]
    u, v, w = -axes[0], axes[1], axes[2]  # coordinates along each axis, face frame
    field = np.zeros((3,) + tuple(ncoarse), np.float32)
    for c, s, d in _bumps(part, with_pads):
        g = (np.exp(-0.5 * ((u - c[0]) / s[0]) ** 2)[:, None, None]
             * np.exp(-0.5 * ((v - c[1]) / s[1]) ** 2)[None, :, None]
             * np.exp(-0.5 * ((w - c[2]) / s[2]) ** 2)[None, None, :]).astype(np.float32)
        for k, dk in enumerate((-d[0], d[1], d[2])):  # uvw -> RAS
            if dk:
                field[k] += np.float32(dk) * g
    # localised scaling of face width (about the midline) and height (about the nose tip)
    sw, sh = part.deformation["face_width"], part.deformation["face_height"]
    if sw or sh:
        weight = (np.exp(-0.5 * (u / 70.0) ** 2)[:, None, None]
                  * (1.0 / (1.0 + np.exp(-(v + 70.0) / 10.0)))[None, :, None]
                  * np.exp(-0.5 * (w / 70.0) ** 2)[None, None, :]).astype(np.float32)
        field[0] += np.float32(-sw) * (u[:, None, None] * weight)
        field[2] += np.float32(sh) * (w[None, None, :] * weight)
    if step == 1:
        return field
    if step != 2:
        raise ValueError("step must be 1 or 2")
    return np.stack([_upsample2(field[k], shape) for k in range(3)])


def _upsample2(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Linear 2x upsampling (node i -> 2i, midpoints averaged), cropped to ``shape``."""
    out = c
    for ax in range(3):
        n = out.shape[ax]
        fine_shape = list(out.shape)
        fine_shape[ax] = 2 * n - 1
        f = np.empty(fine_shape, np.float32)
        sl = [slice(None)] * 3
        sl[ax] = slice(0, None, 2)
        f[tuple(sl)] = out
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, n - 1), slice(1, n)
        sl[ax] = slice(1, None, 2)
        f[tuple(sl)] = 0.5 * (out[tuple(lo)] + out[tuple(hi)])
        out = f
    return out[: shape[0], : shape[1], : shape[2]]


def _face_box(base: BaseHead) -> tuple[slice, slice, slice]:
    t = np.round(base.tip).astype(int)
    sh = base.data.shape
    return (slice(0, sh[0]), slice(max(t[1] - 140, 0), sh[1]),
            slice(max(t[2] - 110, 0), min(t[2] + 100, sh[2])))


def _warp(volume: np.ndarray, box: tuple[slice, slice, slice], disp: np.ndarray,
          order: int = 1) -> np.ndarray:
    """``volume`` with the inside of ``box`` replaced by volume(x - disp(x)) (backward map)."""
    out = volume.copy()
    grid = np.indices(disp.shape[1:], dtype=np.float32)
    for k in range(3):
        grid[k] += box[k].start
        grid[k] -= disp[k]
    out[box] = ndi.map_coordinates(volume, grid, order=order, mode="nearest")
    return out
