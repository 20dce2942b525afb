"""Skin surface of a head mask and the face's position on it.

:func:`head_surface` turns a boolean mask into a smooth triangle mesh in
world coordinates (mm, RAS+); :func:`face_frame` finds where the face is
and which way it looks, so that a camera can be aimed at it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyvista as pv
from nibabel.affines import voxel_sizes
from nibabel.orientations import io_orientation
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation

from .mask import block_sums

__all__ = ["FaceFrame", "head_surface", "face_frame", "face_frame_at", "face_frame_in_image", "symmetry_axis"]

#: Angle (degrees) above the posterior axis of the line from the nose tip to
#: the centre of the cranial vault, on an upright head (median of the eight
#: development heads: 9-25 degrees; see face_frame).
VAULT_PITCH = 18.0
#: The nose tip is searched within this distance (mm) of the plane of mirror
#: symmetry (the nose tip of a head rolled or yawed by 15 degrees is within
#: 3 mm of it; the pads beside the cheeks are 60-80 mm away).
NOSE_MIDLINE_MM = 20.0
#: An image whose voxel axes are turned by more than this (degrees) from the
#: scanner's is stored oblique: :func:`face_frame_in_image` then also tries
#: the voxel axes as the prior for the head's axes.
OBLIQUE_DEG = 10.0
#: Cell (mm) of the depth map the nose tip is searched on (:func:`face_frame`).
NOSE_CELL_MM = 2.0
#: Field of a mesh from :func:`head_surface` that was decimated: the triangles it had before.
DECIMATED_FROM = "DecimatedFromTriangles"
#: Field of such a mesh holding its points for the nose search (:func:`_surface_samples`), made
#: on the first search: the frames of one scan (both priors, the turned looks) search one mesh.
NOSE_SEARCH_POINTS = "NoseSearchPoints"


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
    prominence: float = float("nan")
    """How far (mm) the nose tip stands out in front of the surface 20 mm to
    either side: 15-31 on the eight development heads, 4-15 on defaced
    copies, but 18-26 on skull-stripped ones (gyri stand out too): a QC
    hint, not a face/no-face decision."""

    @property
    def right(self) -> np.ndarray:
        """The head's left-right axis (towards its right): ``anterior x superior``."""
        return np.cross(self.anterior, self.superior)

    def aimed_higher(self, mm: float) -> "FaceFrame":
        """The same frame with the camera's aim point ``mm`` further along :attr:`superior`."""
        return replace(self, center=self.center + float(mm) * self.superior)

    def to_json(self) -> dict[str, object]:
        """Plain-Python description for JSON sidecars."""
        return {
            "Center": [round(float(v), 3) for v in self.center],
            "Anterior": [round(float(v), 6) for v in self.anterior],
            "Superior": [round(float(v), 6) for v in self.superior],
            "Size": round(float(self.size), 3),
            "NoseTip": [round(float(v), 3) for v in self.nose_tip],
            "NoseProminence": None if not np.isfinite(self.prominence) else round(float(self.prominence), 2),
        }


def _block_counts(mask: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Number of True voxels in each ``factors``-sized block of ``mask`` (zero-padded to whole blocks).

    Small integers (:func:`~bids_app.mri.mask.block_sums`): exact in any
    order, so the block means made from them are the floats the mean of the
    mask as ``float32`` over reshaped block axes gave, at a fraction of the
    cost of that reduction over non-contiguous axes.
    """
    f = [int(k) for k in factors]
    dtype = np.uint8 if np.prod(f) < 256 else np.uint32
    padded = np.zeros([-(-n // k) * k for n, k in zip(mask.shape, f)], dtype=dtype)
    padded[: mask.shape[0], : mask.shape[1], : mask.shape[2]] = mask
    return block_sums(padded, f)


def _resample_mask(crop: np.ndarray, zooms: np.ndarray, resolution_mm: float):
    """Partial-volume resampling of a binary crop to about ``resolution_mm``.

    Returns the float field, the position (in input voxel units) of its
    first sample and its spacing (input voxel units), per axis. Integer
    down-sampling is a block mean (fast, exact partial volume); axes whose
    voxels are much coarser than ``resolution_mm`` (thick slices) are
    up-sampled linearly.
    """
    f = np.maximum(np.round(resolution_mm / zooms).astype(int), 1)
    origin = (f - 1) / 2.0
    spacing = f.astype(float)
    if np.any(f > 1):
        field = _block_counts(crop, f).astype(np.float32)
        # divided as numpy.mean divides a float32 sum by its count: the same floats
        np.true_divide(field, np.intp(np.prod(f)), out=field, casting="unsafe")
    else:
        field = crop.astype(np.float32)
    up = np.maximum(np.round(zooms * spacing / resolution_mm).astype(int), 1)
    if np.any(up > 1):
        out_shape = (np.array(field.shape) - 1) * up + 1
        field = ndi.zoom(field, out_shape / np.array(field.shape), order=1, prefilter=False,
                         grid_mode=False)
        spacing = spacing / up
    return field, origin, spacing


def head_surface(
    mask: np.ndarray,
    affine: np.ndarray,
    *,
    blur_mm: float = 1.2,
    resolution_mm: float = 2.0,
    max_triangles: int = 200_000,
    smooth_iter: int = 20,
    pass_band: float = 0.1,
    blur_vox: float | None = None,
) -> pv.PolyData:
    """Extract the outer skin surface of a head mask as a triangle mesh.

    Steps: crop to the mask's bounding box; resample the binary mask to
    about ``resolution_mm`` by block means (each sample is the fraction of
    head in its block, so the 0.5 isosurface keeps sub-sample detail;
    thick slices are interpolated up); a light Gaussian blur (``blur_mm``)
    removes the voxel staircase; flying-edges isosurface at 0.5 (no
    decimation is needed at 2 mm: about 100k triangles for a head with
    neck); windowed-sinc (Taubin-like, non-shrinking) smoothing; points
    mapped to world coordinates with ``affine``; outward point normals.

    Parameters
    ----------
    mask
        Boolean 3D head mask (any orientation, any voxel size).
    affine
        4x4 voxel-to-world matrix of ``mask``.
    blur_mm
        Gaussian sigma (mm) applied to the resampled mask before contouring.
    resolution_mm
        Grid spacing (mm) the mask is resampled to before contouring.
    max_triangles
        Upper bound on the triangle count (quadric decimation beyond it).
    smooth_iter, pass_band
        Windowed-sinc smoothing settings (see
        :meth:`pyvista.PolyData.smooth_taubin`).
    blur_vox
        Deprecated: Gaussian sigma in input voxels; overrides ``blur_mm``.

    Returns
    -------
    pyvista.PolyData
        Triangle mesh in world mm with outward point normals (``"Normals"``).

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
    aff = np.asarray(affine, float)
    zooms = voxel_sizes(aff)
    pad = np.maximum(np.ceil(4.0 / zooms).astype(int), 2)
    lo = np.array([i[0] for i in idx]) - pad
    hi = np.array([i[-1] for i in idx]) + pad + 1
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(hi, mask.shape)
    crop = np.zeros(tuple(hi - lo), dtype=bool)
    crop[tuple(slice(a - l, b - l) for a, b, l in zip(src_lo, src_hi, lo))] = mask[
        tuple(slice(a, b) for a, b in zip(src_lo, src_hi))
    ]
    field, origin, spacing = _resample_mask(crop, zooms, float(resolution_mm))
    if blur_vox is not None:
        sigma = float(blur_vox) / spacing
    else:
        sigma = float(blur_mm) / (zooms * spacing)
    if np.any(sigma > 0):
        field = ndi.gaussian_filter(field, sigma, mode="constant", truncate=3.0)

    grid = pv.ImageData(dimensions=field.shape, origin=tuple(float(v) for v in lo + origin),
                        spacing=tuple(float(v) for v in spacing))
    grid.point_data["m"] = field.ravel(order="F")
    surf = grid.contour([0.5], scalars="m", method="flying_edges", compute_normals=False)
    if surf.n_cells == 0:
        raise ValueError("mask produced an empty surface")
    contoured = surf.n_cells
    if contoured > max_triangles:
        surf = surf.decimate(1.0 - max_triangles / surf.n_cells * 0.98)
    if smooth_iter > 0:
        surf = surf.smooth_taubin(n_iter=smooth_iter, pass_band=pass_band,
                                  boundary_smoothing=False, feature_smoothing=False)
    # voxel indices -> world mm
    pts = np.asarray(surf.points, dtype=float)
    surf.points = pts @ aff[:3, :3].T + aff[:3, 3]
    normals = dict(auto_orient_normals=False, consistent_normals=False, split_vertices=False,
                   cell_normals=False)
    surf = surf.compute_normals(**normals)
    # the winding depends on the contour filter and the affine's handedness:
    # make the normals point out of the head
    pts = np.asarray(surf.points)
    if float(np.mean(np.einsum("ij,ij->i", pts - pts.mean(0), surf.point_data["Normals"]))) < 0:
        surf = surf.flip_faces().compute_normals(**normals)
    surf.clear_cell_data()
    if contoured > max_triangles:  # what the nose search needs to know (_surface_samples)
        surf.field_data[DECIMATED_FROM] = np.array([contoured])
    return surf


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def symmetry_axis(pts: np.ndarray, prior: np.ndarray, *, max_deg: float = 30.0,
                  n_points: int = 3000, seed: int = 0) -> np.ndarray:
    """Normal of the head's plane of mirror symmetry (the left-right axis).

    The plane ``n . x = d`` that best maps the surface onto itself under
    reflection (mean distance from each reflected point to the nearest
    surface point) is searched within ``max_deg`` of ``prior`` (Nelder-Mead
    from a coarse grid). Returned with the sign of ``prior``.
    """
    return _symmetry_fit(pts, prior, max_deg=max_deg, n_points=n_points, seed=seed)[0]


def _symmetry_fit(pts: np.ndarray, prior: np.ndarray, *, max_deg: float = 30.0,
                  n_points: int = 3000, seed: int = 0) -> tuple[np.ndarray, float]:
    """:func:`symmetry_axis` and its cost (mean mirror distance, mm): how well the plane fits."""
    from scipy.optimize import minimize
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    sample = pts[rng.choice(len(pts), size=min(n_points, len(pts)), replace=False)]
    tree = cKDTree(sample)
    prior = _unit(np.asarray(prior, float))
    # two axes orthogonal to the prior, to tilt the normal
    e1 = _unit(np.cross(prior, [0.0, 0.0, 1.0] if abs(prior[2]) < 0.9 else [0.0, 1.0, 0.0]))
    e2 = np.cross(prior, e1)

    def normal(x):
        return _unit(prior + np.tan(np.deg2rad(x[0])) * e1 + np.tan(np.deg2rad(x[1])) * e2)

    def cost(x):
        n = normal(x)
        proj = sample @ n
        d = float(np.median(proj))
        refl = sample - 2.0 * (proj - d)[:, None] * n[None, :]
        dist, _ = tree.query(refl, k=1)
        return float(np.mean(np.minimum(dist, 15.0))) + (0.0 if max(abs(x[0]), abs(x[1])) <= max_deg else 1e3)

    grid = [(a, b) for a in (-20.0, -10.0, 0.0, 10.0, 20.0) for b in (-20.0, -10.0, 0.0, 10.0, 20.0)]
    best = min(grid, key=cost)
    res = minimize(cost, np.array(best), method="Nelder-Mead",
                   options={"xatol": 0.3, "fatol": 1e-3, "initial_simplex":
                            np.array(best) + np.array([[0, 0], [6.0, 0], [0, 6.0]]), "maxfev": 80})
    return normal(res.x), float(res.fun)


#: A turned frame (:func:`turned_frames`) is only worth a look when its
#: anterior axis is at least this far (degrees) from the frame that missed.
MIN_TURN_DEG = 45.0


def turned_frames(surf: pv.PolyData, frame: FaceFrame) -> list[FaceFrame]:
    """Face frames in the other orientations the head allows, found without the image header.

    :func:`face_frame` takes the header's anterior and superior axes as a
    prior (within 30 degrees). When the header is wrong about how the head
    lies (voxels stored turned by 90 or 180 degrees against their affine,
    as some converters and hand-made files do), its cameras look at the
    neck or the crown, and a face would be called face-less. The head's
    left-right axis is read from the head alone (the plane of mirror
    symmetry that fits best, :func:`symmetry_axis` searched around each of
    the three image axes); each of the four directions along the other two
    image axes, with either superior axis across it, is then a prior for
    :func:`face_frame`. Returned: those fitted frames whose anterior axis is
    at least :data:`MIN_TURN_DEG` from ``frame``'s (up to eight; which one
    shows the face is for the face detector to say).
    """
    pts = np.asarray(surf.points, dtype=float)
    fits = [_symmetry_fit(pts, axis) for axis in np.eye(3)]
    r0 = min(fits, key=lambda fit: fit[1])[0]
    frames = []
    for index in np.argsort(np.abs(r0))[:2]:  # the two image axes furthest from left-right
        for sign in (1.0, -1.0):
            a = np.zeros(3)
            a[index] = sign
            a = _unit(a - r0 * float(a @ r0))
            for up in (1.0, -1.0):
                try:
                    turned = face_frame(surf, anterior=a, superior=up * np.cross(r0, a), right=up * r0)
                except ValueError:
                    continue
                if float(turned.anterior @ frame.anterior) <= np.cos(np.deg2rad(MIN_TURN_DEG)):
                    frames.append(turned)
    return frames


def _surface_samples(surf: pv.PolyData, spacing: float) -> np.ndarray:
    """The mesh's vertices and points spread over its triangles longer than twice ``spacing`` (mm).

    A head mesh contoured at 2 mm has edges of at most about 3.5 mm, but
    one decimated because it was large (a field of view down to the chest,
    a noisy mask) keeps few vertices on its smooth parts: a depth map of
    its vertices alone has holes there, through which the surface behind
    shows, and a neck seen beside such a hole "stood out" 176 mm. Points on
    a barycentric grid of each long triangle (edges cut into pieces of at
    most ``spacing``) fill them. A mesh that :func:`head_surface` did not
    decimate comes back as its vertices. The points are kept in the mesh's
    field data (:data:`NOSE_SEARCH_POINTS`) and made once per mesh (0.1-0.16 s
    for a chest in view or 25% noise, for each of up to ten frames fitted).
    """
    pts = np.asarray(surf.points, dtype=float)
    if DECIMATED_FROM not in surf.field_data:
        return pts
    if NOSE_SEARCH_POINTS in surf.field_data:
        return np.asarray(surf.field_data[NOSE_SEARCH_POINTS])
    faces = np.asarray(surf.regular_faces)
    tri = pts[faces]  # (triangles, 3 corners, xyz)
    longest = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max(axis=1)
    pieces = np.where(longest > 2.0 * spacing, np.minimum(np.ceil(longest / spacing), 64), 1).astype(int)
    extra = [pts]
    for n in np.unique(pieces[pieces > 1]):
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        keep = (i + j) <= n
        weights = np.stack([i[keep], j[keep], n - i[keep] - j[keep]], axis=1) / float(n)
        extra.append(np.einsum("kc,tcd->tkd", weights, tri[pieces == n]).reshape(-1, 3))
    samples = np.concatenate(extra) if len(extra) > 1 else pts
    surf.field_data[NOSE_SEARCH_POINTS] = samples
    return samples


def _nose_tip(pts: np.ndarray, r: np.ndarray, a: np.ndarray, s: np.ndarray,
              midline: float | None = None) -> tuple[np.ndarray, float]:
    """Most nose-like protrusion of the surface seen from ``a`` (see :func:`face_frame`).

    Returns the nose tip (a surface point) and its prominence (mm in front
    of the surface 20 mm to either side, :attr:`FaceFrame.prominence`).

    With ``midline`` (the position of the plane of mirror symmetry along
    ``r``), only cells within :data:`NOSE_MIDLINE_MM` of it are candidates:
    the corner of a pad or coil part beside the cheek can stand out more
    than the nose, but it is never on the midline.
    """
    u, v, w = pts @ r, pts @ a, pts @ s
    cell = NOSE_CELL_MM
    iu = ((u - u.min()) // cell).astype(int)
    iw = ((w - w.min()) // cell).astype(int)
    depth = np.full((iu.max() + 1, iw.max() + 1), -np.inf)
    np.maximum.at(depth, (iu, iw), v)
    raw = depth
    depth = ndi.maximum_filter(depth, size=3, mode="constant", cval=-np.inf)
    off = int(round(20.0 / cell))
    left = np.full_like(depth, -np.inf)
    right = np.full_like(depth, -np.inf)
    left[off:] = depth[:-off]
    right[:-off] = depth[off:]
    ok = np.isfinite(depth) & np.isfinite(left) & np.isfinite(right)
    ok &= depth > depth[np.isfinite(depth)].max() - 40.0
    # the cell itself reaches (nearly) the filtered front: not a gap the
    # filter bridged, nor the flat cut of a field of view seen edge-on
    with np.errstate(invalid="ignore"):
        ok &= np.isfinite(raw) & (raw > depth - 3.0)
    if midline is not None:
        centres = u.min() + (np.arange(depth.shape[0]) + 0.5) * cell
        ok &= (np.abs(centres - midline) <= NOSE_MIDLINE_MM)[:, None]
    if not ok.any():
        raise ValueError("no face found on the surface")
    with np.errstate(invalid="ignore"):
        prominence = np.where(ok, depth - np.maximum(left, right), -np.inf)
    i, j = np.unravel_index(int(np.argmax(prominence)), depth.shape)
    sel = (np.abs(iu - i) <= 1) & (np.abs(iw - j) <= 1)
    return pts[np.nonzero(sel)[0][int(np.argmax(v[sel]))]], float(prominence[i, j])


def _vault_pitch(pts: np.ndarray, r: np.ndarray, a: np.ndarray, s: np.ndarray,
                 tip: np.ndarray) -> float | None:
    """Angle (degrees, towards ``s``) of the line from the nose tip to the
    centre of the cranial vault, measured from ``a`` backwards.

    A circle is fitted (least squares, Kasa) to the mid-sagittal profile of
    the vault (surface points within 8 mm of the symmetry plane, more than
    30 mm above the nose tip and behind it); the direction from the nose tip
    to its centre is fixed in the head, so its change measures the head's pitch.
    """
    c = pts - tip
    u, v, w = c @ r, c @ a, c @ s
    sel = (np.abs(u - np.median(u)) < 8.0) & (w > 30.0) & (v < 0)
    if sel.sum() < 100:
        return None
    x, y = v[sel], w[sel]
    design = np.stack([x, y, np.ones_like(x)], axis=1)
    sol, *_ = np.linalg.lstsq(design, x * x + y * y, rcond=None)
    cx, cy = sol[0] / 2.0, sol[1] / 2.0
    return float(np.degrees(np.arctan2(cy, -cx)))


def face_frame(
    surf: pv.PolyData,
    *,
    anterior: np.ndarray | None = None,
    superior: np.ndarray | None = None,
    fit_orientation: bool = True,
    nose_tip: np.ndarray | None = None,
    right: np.ndarray | None = None,
) -> FaceFrame:
    """Locate the face on a head surface and the head's own axes.

    ``anterior`` and ``superior`` (default +y and +z: the scanner's RAS
    frame, from the image header) are only a prior; with
    ``fit_orientation`` the head's axes are read from the surface, so that
    a head pitched or rolled in the scanner still gets frontal cameras:

    1. *left-right*: the normal of the head's plane of mirror symmetry
       (:func:`symmetry_axis`, within 30 degrees of the prior);
    2. *nose tip*: a depth map of the head seen from the front (most
       anterior surface point per 2 mm cell, max-filtered over 6 mm) is
       searched for the point that stands out most in front of the surface
       20 mm to its left and to its right (the smaller of the two), among
       the cells within 40 mm of the most anterior one. Unlike "the most
       anterior point", this does not pick a jutting chin or forehead;
    3. *pitch*: the direction from the nose tip to the centre of a circle
       fitted to the mid-sagittal profile of the cranial vault
       (:func:`_vault_pitch`) is turned to :data:`VAULT_PITCH` above the
       posterior axis; changes of more than 30 degrees from the prior are
       ignored. Heads differ by about +-8 degrees here, less than the
       renders' pitch range.

    Steps 2-3 are repeated once in the new frame. With ``nose_tip`` (a point
    found otherwise, e.g. the nose that the face detector's renders agree on),
    step 2 takes the surface point nearest to it instead of searching (the
    prominence is then NaN). With ``right`` (a left-right axis already
    found, :attr:`FaceFrame.right`), step 1 takes it instead of searching.
    The face centre is placed
    15 mm above the nose tip and 25 mm behind it; the size is the face
    height scale, 1.2 times the head's width (ear to ear) around eye level,
    clipped to 130-260 mm.

    Raises
    ------
    ValueError
        If the surface is too small or no nose-like protrusion is found.
    """
    a = _unit(np.asarray([0.0, 1.0, 0.0] if anterior is None else anterior, float))
    s = np.asarray([0.0, 0.0, 1.0] if superior is None else superior, float)
    s = _unit(s - a * float(s @ a))
    r = np.cross(a, s)  # right-handed (right, anterior, superior): r = a x s
    pts = np.asarray(surf.points, dtype=float)
    if pts.shape[0] < 100:
        raise ValueError("surface too small to locate a face")
    a0 = a.copy()

    midline = None
    if fit_orientation:
        r = symmetry_axis(pts, r) if right is None else _unit(np.asarray(right, float))
        a = _unit(a - r * float(a @ r))
        s = np.cross(r, a)
        midline = float(np.median(pts @ r))

    samples = None

    def find_tip():
        nonlocal samples
        if nose_tip is None:
            if samples is None:
                samples = _surface_samples(surf, NOSE_CELL_MM)
            return _nose_tip(samples, r, a, s, midline)
        return pts[int(np.argmin(np.linalg.norm(pts - np.asarray(nose_tip, float), axis=1)))], float("nan")

    tip, prominence = find_tip()
    if fit_orientation:
        for _ in range(2):
            pitch = _vault_pitch(pts, r, a, s, tip)
            if pitch is None:
                break
            # about the unit left-right axis r: a positive angle turns a towards s
            rot = Rotation.from_rotvec((VAULT_PITCH - pitch) * r, degrees=True)
            a_new, s_new = rot.apply(a), rot.apply(s)
            if float(a_new @ a0) < np.cos(np.deg2rad(30.0)):
                break
            a, s = _unit(a_new), _unit(s_new)
            tip, prominence = find_tip()
            if abs(VAULT_PITCH - pitch) < 1.0:
                break

    u, w = pts @ r, pts @ s
    tip_w = float(tip @ s)
    # head width around eye level (20-50 mm above the nose tip)
    eye = (w > tip_w + 20) & (w < tip_w + 50)
    if eye.sum() > 50:
        width = float(np.percentile(u[eye], 99.5) - np.percentile(u[eye], 0.5))
    else:
        width = 150.0
    size = float(np.clip(1.2 * width, 130.0, 260.0))
    center = tip + 15.0 * s - 25.0 * a
    return FaceFrame(center=center, anterior=a, superior=s, size=size, nose_tip=tip,
                     prominence=prominence)


def _pitch_error(pts: np.ndarray, frame: FaceFrame) -> float:
    """How far (degrees) ``frame``'s pitch is from an upright head's (:func:`_vault_pitch`); inf if unmeasured."""
    pitch = _vault_pitch(pts, frame.right, frame.anterior, frame.superior, frame.nose_tip)
    return float("inf") if pitch is None else abs(VAULT_PITCH - pitch)


def _voxel_axes(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World directions (unit) of the voxel axes nearest the scanner's anterior and superior ones:
    the anterior and superior axes of the slab the image was acquired on (any voxel order)."""
    columns = np.asarray(affine, float)[:3, :3]
    axis_of = {int(world): (voxel, float(sign)) for voxel, (world, sign) in enumerate(io_orientation(affine))}
    anterior, superior = (_unit(columns[:, axis_of[w][0]] * axis_of[w][1]) for w in (1, 2))
    return anterior, superior


def face_frame_in_image(surf: pv.PolyData, affine: np.ndarray) -> FaceFrame:
    """:func:`face_frame` with the better of two priors for the head's axes.

    The scanner's axes (world RAS) are the prior of an image stored straight.
    An image stored oblique (voxel axes more than :data:`OBLIQUE_DEG` from
    the scanner's; ``affine`` is the image's, in any voxel order) was usually
    acquired on a slab aligned with the head (AC-PC), so a head tilted in
    the scanner lies straight in its voxel axes; since :func:`face_frame`
    fits the pitch only within 30 degrees of its prior, a head tilted by 40
    degrees got a frame looking at its brow or chin. Both priors are then
    fitted and the frame whose nose-to-vault line is nearer an upright head's
    (:data:`VAULT_PITCH`) is kept; the scanner's on a tie.
    """
    frame = face_frame(surf)
    anterior, superior = _voxel_axes(affine)
    cosines = np.clip([anterior[1], superior[2]], -1.0, 1.0)
    if float(np.degrees(np.arccos(cosines.min()))) <= OBLIQUE_DEG:
        return frame
    try:
        slab = face_frame(surf, anterior=anterior, superior=superior)
    except ValueError:
        return frame
    pts = np.asarray(surf.points, dtype=float)
    return slab if _pitch_error(pts, slab) < _pitch_error(pts, frame) else frame


def face_frame_at(surf: pv.PolyData, frame: FaceFrame, nose_tip: np.ndarray) -> FaceFrame:
    """``frame`` re-fitted with its nose tip at the surface point nearest ``nose_tip``.

    Its left-right axis is kept (no new symmetry search); the pitch is fitted
    again from the new tip (:func:`face_frame`). For the nose the face
    detector's renders agree on, when the frame's own tip was elsewhere.
    """
    return face_frame(surf, anterior=frame.anterior, superior=frame.superior, nose_tip=nose_tip,
                      right=frame.right)
