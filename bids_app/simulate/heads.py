"""Base heads: real public head MRIs found, loaded on a 1 mm RAS grid (WM = 1) and measured."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .settings import SUPERFICIAL_MM

REPO = Path(__file__).resolve().parents[2]


@dataclass
class BaseHead:
    """A real head resampled to 1 mm RAS, normalised so that white matter = 1."""

    name: str
    data: np.ndarray  # float32
    mask: np.ndarray  # bool
    affine: np.ndarray  # 1 mm, axis-aligned RAS
    tip: np.ndarray  # nose tip, voxel index (float)
    center: np.ndarray  # head centroid, voxel index
    deep: np.ndarray | None = None  # float32 0..1: weight of the brain remap (depth below the skin)
    frame: Any = None  # FaceFrame of the whole base head (world mm of ``affine``)
    protrusion: float | None = None  # nose_protrusion_mm of the base head (hard mode; lazily)
    brain: np.ndarray | None = None  # bool brain estimate (plane defacing; lazily, see deface.py)


_BASE_CACHE: dict[str, BaseHead] = {}


#: Bundled demo heads that are not used as default base heads, and why.
NOT_A_BASE: dict[str, str] = {
    "sub-04": "pydeface's mean head: an average of many heads, so its eye sockets, lips and "
              "nose are blurred into a face no one has, and a goggle-like frame lies over its "
              "eyes and brow; identities made from it are not faces of people",
}


def default_heads() -> list[Path]:
    """The bundled demo heads (``data/demo/bids``) of real people, in a source checkout.

    The demo's mean head is left out (see :data:`NOT_A_BASE`); ``--heads``
    can still name it.
    """
    heads = sorted((REPO / "data" / "demo" / "bids").glob("sub-*/anat/*.nii*"))
    return [h for h in heads if h.name.split("_")[0] not in NOT_A_BASE]


def find_heads(items: list[str | os.PathLike[str]]) -> list[Path]:
    """Head images from files, folders of images or BIDS datasets (``sub-*/anat``)."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.glob("sub-*/anat/*.nii*")) or sorted(p.glob("*.nii*"))
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    if not out:
        raise FileNotFoundError(f"no head images found in {[str(i) for i in items]}")
    return out


def load_base(path: str | os.PathLike[str]) -> BaseHead:
    """Load a base head (cached per process): 1 mm RAS grid, mask, nose tip, WM = 1."""
    key = str(Path(path).resolve())
    if key in _BASE_CACHE:
        return _BASE_CACHE[key]
    from bids_app.mri import face_frame, head_mask, head_surface, load_head

    vol = load_head(path)
    mask0 = head_mask(vol.data, vol.zooms)
    idx = np.array(np.nonzero(mask0))
    lo, hi = idx.min(axis=1) - 1, idx.max(axis=1) + 1
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    world = corners @ vol.affine[:3, :3].T + vol.affine[:3, 3]
    wlo, whi = world.min(axis=0) - 12.0, world.max(axis=0) + 12.0
    shape = tuple(int(v) for v in np.ceil(whi - wlo) + 1)
    affine = np.eye(4)
    affine[:3, 3] = wlo
    m = np.linalg.inv(vol.affine) @ affine
    data = ndi.affine_transform(vol.data, m[:3, :3], m[:3, 3], output_shape=shape, order=1,
                                mode="constant", cval=0.0).astype(np.float32)
    maskf = ndi.affine_transform(mask0.astype(np.float32), m[:3, :3], m[:3, 3], output_shape=shape,
                                 order=1, mode="constant", cval=0.0)
    mask = maskf > 0.5
    # white matter level: 80th percentile of voxels deeper than 30 mm
    depth = ndi.distance_transform_edt(mask[::2, ::2, ::2], sampling=2.0)
    lo_mm, hi_mm = SUPERFICIAL_MM
    deep2 = np.clip((depth - lo_mm) / (hi_mm - lo_mm), 0.0, 1.0).astype(np.float32)
    deep = ndi.zoom(deep2, [n / m for n, m in zip(mask.shape, deep2.shape)], order=1)
    deep = deep[: mask.shape[0], : mask.shape[1], : mask.shape[2]].astype(np.float32)
    inner = data[::2, ::2, ::2][depth > 30.0]
    wm = float(np.percentile(inner, 80)) if inner.size > 1000 else float(np.percentile(data[mask], 90))
    data /= max(wm, 1e-6)
    surf = head_surface(mask, affine)
    frame = face_frame(surf)
    tip = np.asarray(frame.nose_tip, float) - wlo
    center = np.array(np.nonzero(mask[::2, ::2, ::2])).mean(axis=1) * 2.0
    base = BaseHead(name=Path(path).name.split(".")[0], data=data, mask=mask, affine=affine,
                    tip=tip, center=center, deep=deep, frame=frame)
    _BASE_CACHE[key] = base
    return base


def nose_protrusion_mm(mask: np.ndarray, affine: np.ndarray, frame: Any, *,
                       side_mm: float = 20.0) -> float:
    """How far the nose tip stands in front of the face beside it (mm).

    ``mask`` (a head mask or a soft 0..1 one) is probed along the face's
    anterior axis (``frame``: the base head's face frame, world mm of
    ``affine``): the most anterior point near the frame's nose tip (within
    8 mm sideways and 12 mm up or down, 1 mm steps) is the tip, and its depth
    is compared with the mean depth of the surface ``side_mm`` to its left
    and right at the same height (like the frame's nose prominence). Depths
    are read to 0.25 mm. NaN when a probe misses the head.
    """
    a = np.asarray(frame.anterior, float)
    s = np.asarray(frame.superior, float)
    r = np.cross(a, s)
    tip = np.asarray(frame.nose_tip, float)
    inv = np.linalg.inv(affine)
    t = np.arange(40.0, -90.0, -0.25)
    maskf = np.asarray(mask, np.float32)

    def depth(uw: np.ndarray) -> np.ndarray:
        """Depth (mm along ``a`` from the tip's plane) of the surface at each (u, w)."""
        base = tip + uw[:, :1] * r + uw[:, 1:] * s
        pts = base[:, None, :] + t[None, :, None] * a
        ijk = pts.reshape(-1, 3) @ inv[:3, :3].T + inv[:3, 3]
        inside = ndi.map_coordinates(maskf, ijk.T, order=1, mode="constant").reshape(len(uw), -1) > 0.5
        first = inside.argmax(axis=1)
        return np.where(inside.any(axis=1), t[first], np.nan)

    grid = np.array([(u, w) for u in np.arange(-8.0, 9.0) for w in np.arange(-12.0, 13.0)])
    d = depth(grid)
    if not np.isfinite(d).any():
        return float("nan")
    k = int(np.nanargmax(d))
    u0, w0 = grid[k]
    sides = depth(np.array([[u0 - side_mm, w0], [u0 + side_mm, w0]]))
    return float(d[k] - np.mean(sides))


def _base_protrusion(base: BaseHead) -> float:
    if base.protrusion is None:
        base.protrusion = nose_protrusion_mm(base.mask, base.affine, base.frame)
    return base.protrusion
