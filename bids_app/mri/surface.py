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
    resolution_mm: float = 1.25,
    max_triangles: int = 140_000,
    smooth_iter: int = 25,
    pass_band: float = 0.08,
) -> pv.PolyData:
    """Extract the outer skin surface of a head mask as a triangle mesh.

    Steps: crop to the mask's bounding box; blur the binary mask slightly
    (removes the voxel staircase while keeping the surface where the mask
    edge is); resample to ``resolution_mm``; flying-edges isosurface at 0.5; quadric decimation to at most
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
    resolution_mm
        Grid spacing (mm) the blurred mask is resampled to before
        contouring, when the voxels are smaller. 1.25 mm keeps the face's
        shape while halving the mesh the decimation must reduce (the
        slowest step); use the voxel size for full detail.
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

    # resample to ``resolution_mm`` (linear, corners aligned) before contouring
    zooms = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))
    factor = np.minimum(zooms / float(resolution_mm), 1.0)
    spacing = np.ones(3)
    if np.any(factor < 0.999):
        out_shape = np.maximum(np.round(np.array(crop.shape) * factor).astype(int), 2)
        spacing = (np.array(crop.shape) - 1) / (out_shape - 1)
        crop = ndi.zoom(crop, out_shape / np.array(crop.shape), order=1, prefilter=False,
                        grid_mode=False)

    grid = pv.ImageData(dimensions=crop.shape, origin=tuple(float(v) for v in lo),
                        spacing=tuple(float(v) for v in spacing))
    grid.point_data["m"] = crop.ravel(order="F")
    surf = grid.contour([0.5], scalars="m", method="flying_edges", compute_normals=False)
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
    the head along ``superior`` (+z). A depth map of the head seen from the
    front (most anterior surface point per 2 mm cell of the left-right /
    inferior-superior plane, max-filtered over 6 mm) is searched for the nose tip: the point that
    stands out most in front of the surface 20 mm to its left and to its
    right (the smaller of the two),
    among the cells within 40 mm of the most anterior one. Unlike "the most
    anterior point", this does not pick a jutting chin or forehead, and it
    works wherever the head sits in the field of view.

    The face centre is placed 15 mm above the nose tip and 25 mm behind
    it; the size is the face height scale, taken as 1.2 times the head's
    width (ear to ear) around eye level, clipped to 130-260 mm.

    Returns
    -------
    FaceFrame

    Raises
    ------
    ValueError
        If the surface is too small or no nose-like protrusion is found.
    """
    a = _unit(np.asarray([0.0, 1.0, 0.0] if anterior is None else anterior, float))
    s = np.asarray([0.0, 0.0, 1.0] if superior is None else superior, float)
    s = _unit(s - a * float(s @ a))
    r = np.cross(s, a)  # completes a right-handed (right, anterior, superior) frame
    pts = np.asarray(surf.points, dtype=float)
    if pts.shape[0] < 100:
        raise ValueError("surface too small to locate a face")
    # coordinates in the face frame: u (right), v (anterior), w (superior)
    u, v, w = pts @ r, pts @ a, pts @ s

    cell = 2.0
    iu = ((u - u.min()) // cell).astype(int)
    iw = ((w - w.min()) // cell).astype(int)
    depth = np.full((iu.max() + 1, iw.max() + 1), -np.inf)
    np.maximum.at(depth, (iu, iw), v)
    # a decimated mesh leaves cells without a front vertex: close them
    depth = ndi.maximum_filter(depth, size=3, mode="constant", cval=-np.inf)
    off = int(round(20.0 / cell))
    left = np.full_like(depth, -np.inf)
    right = np.full_like(depth, -np.inf)
    left[off:] = depth[:-off]
    right[:-off] = depth[off:]
    ok = np.isfinite(depth) & np.isfinite(left) & np.isfinite(right)
    ok &= depth > depth[np.isfinite(depth)].max() - 40.0
    # stands out on both sides (a face's edge stands out on one side only)
    with np.errstate(invalid="ignore"):
        prominence = np.where(ok, depth - np.maximum(left, right), -np.inf)
    if not ok.any():
        raise ValueError("no face found on the surface")
    i, j = np.unravel_index(int(np.argmax(prominence)), depth.shape)
    sel = (iu == i) & (iw == j)
    tip = pts[np.nonzero(sel)[0][int(np.argmax(v[sel]))]]
    tip_w = float(tip @ s)

    # head width around eye level (20-50 mm above the nose tip)
    eye = (w > tip_w + 20) & (w < tip_w + 50)
    if eye.sum() > 50:
        width = float(np.percentile(u[eye], 99.5) - np.percentile(u[eye], 0.5))
    else:
        width = 150.0
    size = float(np.clip(1.2 * width, 130.0, 260.0))
    center = tip + 15.0 * s - 25.0 * a
    return FaceFrame(center=center, anterior=a, superior=s, size=size, nose_tip=tip)
