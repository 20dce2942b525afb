"""Skin surface of a head mask and the face's position on it.

:func:`head_surface` turns a boolean mask into a smooth triangle mesh in
world coordinates (mm, RAS+); :func:`face_frame` finds where the face is
and which way it looks, so that a camera can be aimed at it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyvista as pv
from scipy import ndimage as ndi

__all__ = ["FaceFrame", "head_surface", "face_frame"]


@dataclass(frozen=True)
class FaceFrame:
    """Where the face is on a head surface (world mm, RAS+).

    Attributes
    ----------
    center
        Point to aim the camera at: the middle of the face, on the face's
        midline, about at the level of the nose tip and some way behind it.
    anterior
        Unit vector the face looks along.
    superior
        Unit vector from chin to forehead (the camera's view-up).
    size
        Face height scale in mm (about forehead to chin); renderers frame
        this many mm of the face vertically.
    nose_tip
        The most prominent anterior point of the face profile.
    """

    center: np.ndarray
    anterior: np.ndarray
    superior: np.ndarray
    size: float
    nose_tip: np.ndarray

    def to_json(self) -> dict[str, object]:
        """Plain-Python description for JSON sidecars."""
        return {
            "Center": [round(float(v), 3) for v in self.center],
            "Anterior": [round(float(v), 6) for v in self.anterior],
            "Superior": [round(float(v), 6) for v in self.superior],
            "Size": round(float(self.size), 3),
            "NoseTip": [round(float(v), 3) for v in self.nose_tip],
        }


def head_surface(
    mask: np.ndarray,
    affine: np.ndarray,
    *,
    blur_vox: float = 0.8,
    max_triangles: int = 140_000,
    smooth_iter: int = 25,
    pass_band: float = 0.08,
) -> pv.PolyData:
    """Extract the outer skin surface of a head mask as a triangle mesh.

    Steps: crop to the mask's bounding box; blur the binary mask slightly
    (removes the voxel staircase while keeping the surface where the mask
    edge is); flying-edges isosurface at 0.5; quadric decimation to at most
    ``max_triangles``; windowed-sinc (Taubin-like, non-shrinking) smoothing;
    points mapped to world coordinates with ``affine``; outward normals.

    Parameters
    ----------
    mask
        Boolean 3D head mask.
    affine
        4x4 voxel-to-world matrix of ``mask``.
    blur_vox
        Gaussian sigma (voxels) applied to the mask before contouring.
    max_triangles
        Upper bound on the triangle count after decimation.
    smooth_iter, pass_band
        Windowed-sinc smoothing settings (see
        :meth:`pyvista.PolyData.smooth_taubin`).

    Returns
    -------
    pyvista.PolyData
        Triangle mesh in world mm with point normals.

    Raises
    ------
    ValueError
        If the mask is empty or not 3D.
    """
    if mask.ndim != 3:
        raise ValueError(f"expected a 3D mask, got shape {mask.shape}")
    idx = [np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3)]
    if any(i.size == 0 for i in idx):
        raise ValueError("mask is empty")
    pad = 3
    lo = np.array([i[0] for i in idx]) - pad
    hi = np.array([i[-1] for i in idx]) + pad + 1
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(hi, mask.shape)
    crop = np.zeros(tuple(hi - lo), dtype=np.float32)
    crop[tuple(slice(a - l, b - l) for a, b, l in zip(src_lo, src_hi, lo))] = mask[
        tuple(slice(a, b) for a, b in zip(src_lo, src_hi))
    ]
    if blur_vox > 0:
        crop = ndi.gaussian_filter(crop, blur_vox, mode="constant")

    grid = pv.ImageData(dimensions=crop.shape, origin=tuple(float(v) for v in lo))
    grid.point_data["m"] = crop.ravel(order="F")
    surf = grid.contour([0.5], scalars="m", method="flying_edges", compute_normals=False)
    surf = surf.triangulate().clean()
    if surf.n_cells == 0:
        raise ValueError("mask produced an empty surface")
    if surf.n_cells > max_triangles:
        surf = surf.decimate(1.0 - max_triangles / surf.n_cells * 0.98)
    if smooth_iter > 0:
        surf = surf.smooth_taubin(n_iter=smooth_iter, pass_band=pass_band,
                                  boundary_smoothing=False, feature_smoothing=False)
    # voxel indices -> world mm
    pts = np.asarray(surf.points, dtype=float)
    surf.points = pts @ np.asarray(affine, float)[:3, :3].T + np.asarray(affine, float)[:3, 3]
    surf = surf.compute_normals(auto_orient_normals=True, consistent_normals=True,
                                split_vertices=False, cell_normals=False)
    surf.clear_cell_data()
    return surf


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def face_frame(
    surf: pv.PolyData,
    *,
    anterior: np.ndarray | None = None,
    superior: np.ndarray | None = None,
) -> FaceFrame:
    """Locate the face on a head surface.

    The head is assumed to face ``anterior`` (+y, RAS+) with the top of
    the head along ``superior`` (+z). The anterior profile of the head's
    midsagittal band (for each height, the most anterior surface point
    within 25 mm of the midline) is searched for the nose tip: the point
    most prominent relative to the profile 30 mm above and below it, among
    points within 40 mm of the most anterior one. This works wherever the
    head sits in the field of view and whether or not the chin or forehead
    sticks out further than the nose.

    The face centre is placed 8 mm above the nose tip and 25 mm behind it;
    the size is the face height scale, taken as 1.15 times the head's
    width (ear to ear) around eye level, clipped to 120-260 mm.

    Returns
    -------
    FaceFrame
    """
    a = _unit(np.asarray([0.0, 1.0, 0.0] if anterior is None else anterior, float))
    s = np.asarray([0.0, 0.0, 1.0] if superior is None else superior, float)
    s = _unit(s - a * float(s @ a))
    r = np.cross(a, s)
    pts = np.asarray(surf.points, dtype=float)
    if pts.shape[0] < 100:
        raise ValueError("surface too small to locate a face")
    # coordinates in the face frame: u (right), v (anterior), w (superior)
    u, v, w = pts @ r, pts @ a, pts @ s

    # midline: the middle of the head's left-right extent in its front half
    front = v > np.percentile(v, 60)
    mid_u = 0.5 * (np.percentile(u[front], 2) + np.percentile(u[front], 98))
    band = np.abs(u - mid_u) < 25.0
    if band.sum() < 50:
        band = np.ones_like(u, bool)
    wb = w[band]
    vb = v[band]
    w_lo, w_hi = float(wb.min()), float(wb.max())
    nbin = max(int(np.ceil(w_hi - w_lo)), 1)  # 1 mm bins
    bins = np.clip(((wb - w_lo) // 1.0).astype(int), 0, nbin - 1)
    profile = np.full(nbin, -np.inf)
    np.maximum.at(profile, bins, vb)
    have = np.isfinite(profile)
    heights = np.arange(nbin)[have]
    prof = profile[have]
    # fill gaps by interpolation, then smooth lightly
    full = np.interp(np.arange(nbin), heights, prof)
    full = ndi.uniform_filter1d(full, 3, mode="nearest")
    k = 30
    above = np.concatenate([full[k:], np.full(k, full[-1])])
    below = np.concatenate([np.full(k, full[0]), full[:-k]])
    # rows near the very top/bottom have no real neighbour on one side
    prominence = full - 0.5 * (above + below)
    candidate = full > full.max() - 40.0
    valid = np.zeros(nbin, bool)
    valid[k:nbin - k] = True
    if not (candidate & valid).any():
        valid[:] = True
    score = np.where(candidate & valid, prominence, -np.inf)
    i = int(np.argmax(score))
    tip_w = w_lo + i + 0.5
    sel = band & (np.abs(w - tip_w) < 2.0)
    j = np.nonzero(sel)[0][int(np.argmax(v[sel]))]
    tip = pts[j]

    # head width around eye level (20-50 mm above the nose tip)
    eye = (w > tip_w + 20) & (w < tip_w + 50)
    if eye.sum() > 50:
        width = float(np.percentile(u[eye], 99.5) - np.percentile(u[eye], 0.5))
    else:
        width = 150.0
    size = float(np.clip(1.15 * width, 120.0, 260.0))
    center = tip + 8.0 * s - 25.0 * a
    return FaceFrame(center=center, anterior=a, superior=s, size=size, nose_tip=tip)
