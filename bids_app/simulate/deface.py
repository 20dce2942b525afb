"""Defacing methods of the simulator: the face mask, a quickshear-like plane, refacing.

Each works on the base head's 1 mm grid (see :mod:`.heads`), so it follows
every participant made from that head through its pose and voxel grid:

- ``mask`` (:func:`mask_region`): every voxel anterior-inferior of the plane
  through the forehead above the brow and the ear canals is zeroed after
  acquisition, like pydeface and mri_deface (the face mask is fixed in the
  base head's face frame).
- ``plane`` (:func:`plane_region`): a shear cut like quickshear's
  (Schimke & Hale 2011): the brain is estimated from the base head
  (:func:`brain_mask`), projected onto the sagittal plane, and the longest
  edge of its convex hull that faces anterior-inferior is moved
  :data:`PLANE_BUFFER_MM` outwards; everything beyond it is zeroed after
  acquisition. The cut is fitted to the brain, not to the face, so brow and
  forehead often remain, and sometimes the top of the eye sockets.
- ``reface`` (:func:`reface_head`): the face region of ``mask`` is replaced,
  before acquisition, by one template face (:data:`REFACE_TEMPLATE`,
  pydeface's mean head: a face of no one, as mri_reface and afni_refacer
  use an average face) aligned at the face frame (nose tip, anterior and
  superior axes), remapped to the participant's contrast and scaled to
  its skin intensity, blended over :data:`REFACE_BLEND_MM` at the edge of
  the region. Every refaced participant then shows nearly the same face.

:func:`sidecar_claim` gives the BIDS sidecar fields that record it
(``DeidentificationMethod``, ``DeidentificationMethodCodeSequence``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull

from .heads import REPO, BaseHead

#: ``--deface`` choices.
DEFACE_METHODS = ("mask", "plane", "reface")

#: Mask defacing plane, in the base head's face frame (mm from the nose tip; v anterior,
#: w superior): the line through the forehead above the brow and the ear canal.
DEFACE_FOREHEAD_VW, DEFACE_EAR_VW = (-18.0, 62.0), (-88.0, -8.0)

#: Quickshear's default buffer between the brain's hull and the cut (mm).
PLANE_BUFFER_MM = 10.0
#: Outward normal (v, w) of the hull edges the plane is chosen from: anterior-inferior,
#: give or take :data:`PLANE_MAX_TILT_DEG`.
PLANE_NORMAL_VW = (np.sqrt(0.5), -np.sqrt(0.5))
PLANE_MAX_TILT_DEG = 40.0

#: The template face of ``reface``: one real head of the bundled demo (a sharp face;
#: pydeface's mean head, sub-04, has too faint a face to stand for a refaced one).
REFACE_TEMPLATE = REPO / "data" / "demo" / "bids" / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
#: Width (mm) of the blend between the participant's head and the template face.
REFACE_BLEND_MM = 8.0
#: Largest shift (mm) of the template, after the face frames are aligned, to meet the head.
REFACE_SEARCH_MM = 10.0

#: DICOM PS3.15 de-identification option (CID 7050) for removed or replaced facial features.
CLEAN_VISUAL_FEATURES = {"CodeValue": "113102", "CodingSchemeDesignator": "DCM",
                         "CodeMeaning": "Clean Recognizable Visual Features Option"}
_CLAIMS = {
    "mask": "simulated defacing: face voxels zeroed by a face mask (like pydeface), "
            "facerisk-simulate",
    "plane": "simulated defacing: face removed by a shear plane fitted to the brain (like "
             "quickshear), facerisk-simulate",
    "reface": "simulated refacing: face replaced by a template face (like mri_reface), "
              "facerisk-simulate",
}
#: The sidecar's older ``Defaced`` field per method ("plane cut" kept for ``mask``).
DEFACED_FIELD = {"mask": "plane cut", "plane": "shear plane (quickshear-like)",
                 "reface": "refaced (template face)"}


def deface_method(deface: bool | str | None) -> str | None:
    """``None`` (not defaced) or one of :data:`DEFACE_METHODS`; ``True`` means ``mask``."""
    if deface is None or deface is False:
        return None
    if deface is True:
        return "mask"
    if deface in DEFACE_METHODS:
        return str(deface)
    raise ValueError(f"deface must be one of {list(DEFACE_METHODS)} (or True/False), got {deface!r}")


def sidecar_claim(method: str | None) -> dict[str, Any]:
    """The sidecar fields that state how an image was de-identified (BIDS 1.10)."""
    if method is None:
        return {"Defaced": False}
    return {"Defaced": DEFACED_FIELD[method], "DeidentificationMethod": [_CLAIMS[method]],
            "DeidentificationMethodCodeSequence": [dict(CLEAN_VISUAL_FEATURES)]}


def _vw(base: BaseHead) -> tuple[np.ndarray, np.ndarray]:
    """Base voxel coordinates (mm) from the nose tip along y (v) and z (w), as columns/rows."""
    sh = base.data.shape
    y, z = (np.arange(n, dtype=np.float32) - base.tip[k] for k, n in enumerate(sh) if k > 0)
    return y[:, None], z[None, :]


def _mask_region2d(base: BaseHead) -> np.ndarray:
    v, w = _vw(base)
    (v0, w0), (v1, w1) = DEFACE_FOREHEAD_VW, DEFACE_EAR_VW
    # side of the line through (v0, w0) and (v1, w1): positive in front/below
    side = (v - v0) * (w1 - w0) - (w - w0) * (v1 - v0)
    plane = (side * np.sign((0.0 - v0) * (w1 - w0) - (0.0 - w0) * (v1 - v0))) > 0  # the tip's side
    return plane & (v > v1 - 5.0)


def mask_region(base: BaseHead) -> np.ndarray:
    """Face mask in base voxel space: True where the face is removed.

    Like pydeface's and mri_deface's masks, it takes out *all* voxels of the
    face (skin, fat, muscle, cartilage, bone, eyes, sinuses), not a slice of
    skin: everything anterior-inferior of the plane through the forehead
    above the brow and the ear canals (:data:`DEFACE_FOREHEAD_VW`,
    :data:`DEFACE_EAR_VW`), in front of the ear canals, across the whole
    width of the head. The cut goes behind the eyeballs and the nasal
    cavity, so the cut surface is a flat face-less plane: a shallower cut
    (e.g. 30-45 mm behind the nose tip) opens the orbits and the nose,
    whose holes a face detector takes for eyes and a nose.
    """
    return np.broadcast_to(_mask_region2d(base)[None, :, :], base.data.shape)


def brain_mask(base: BaseHead) -> np.ndarray:
    """An estimate of the base head's brain (bool, base voxel space; cached on ``base``).

    Brain-like T1 intensities (0.45-1.3 of white matter) deeper than 8 mm
    below the skin, above 45 mm under the nose tip and behind the face
    (30 mm behind the tip, 60 mm below its level); eroded by 5 mm, which cuts the skull's dark gap
    and the optic canals, the largest piece kept and dilated back. It stands
    in for the skull-stripping mask (BET) quickshear is given.
    """
    if base.brain is not None:
        return base.brain
    v, w = _vw(base)
    depth = ndi.distance_transform_edt(base.mask)
    candidate = base.mask & (base.data > 0.45) & (base.data < 1.3) & (depth > 8.0)
    candidate &= ((w > -45.0) & (v <= -30.0) & ((w > 0.0) | (v <= -60.0)))[None, :, :]
    core = ndi.binary_erosion(candidate, iterations=5)
    labels, n = ndi.label(core)
    if n == 0:
        raise ValueError(f"{base.name}: no brain found for the plane cut")
    sizes = ndi.sum(core, labels, range(1, n + 1))
    brain = ndi.binary_dilation(labels == int(np.argmax(sizes)) + 1, iterations=5) & candidate
    base.brain = brain
    return brain


def plane_line(base: BaseHead) -> tuple[np.ndarray, float]:
    """Quickshear-like cut ``(normal, offset)`` in (v, w) mm: cut where ``normal . p > offset``.

    The longest edge of the convex hull of the brain's sagittal projection
    among those whose outward normal lies within :data:`PLANE_MAX_TILT_DEG`
    of anterior-inferior (:data:`PLANE_NORMAL_VW`), moved
    :data:`PLANE_BUFFER_MM` outwards. Raises ValueError when the cut would
    not take off the nose tip (the brain estimate failed on this head).
    """
    proj = brain_mask(base).any(axis=0)
    vw = np.array(np.nonzero(proj), float).T - base.tip[1:]
    hull = ConvexHull(vw)
    normals, offsets = hull.equations[:, :2], -hull.equations[:, 2]  # n . p <= offset inside
    lengths = np.linalg.norm(vw[hull.simplices[:, 0]] - vw[hull.simplices[:, 1]], axis=1)
    facing = normals @ np.asarray(PLANE_NORMAL_VW) >= np.cos(np.radians(PLANE_MAX_TILT_DEG))
    if not facing.any():
        raise ValueError(f"{base.name}: no anterior-inferior edge on the brain's hull")
    k = int(np.argmax(np.where(facing, lengths, -1.0)))
    offset = float(offsets[k] + PLANE_BUFFER_MM)
    if offset > -30.0:  # the nose tip (0, 0) must lie 30 mm beyond the cut
        raise ValueError(f"{base.name}: the plane fitted to the brain estimate misses the face")
    return normals[k], offset


def plane_region(base: BaseHead) -> np.ndarray:
    """Shear-plane defacing region in base voxel space (True: zeroed)."""
    normal, offset = plane_line(base)
    v, w = _vw(base)
    return np.broadcast_to(((normal[0] * v + normal[1] * w) > offset)[None, :, :], base.data.shape)


def cut_region(base: BaseHead, method: str) -> np.ndarray:
    """The region zeroed after acquisition by ``mask`` or ``plane``."""
    if method == "mask":
        return mask_region(base)
    if method == "plane":
        return plane_region(base)
    raise ValueError(f"{method!r} is not a cut (mask or plane)")


# --------------------------------------------------------------------------- refacing


def _frame_to_world(frame: Any) -> np.ndarray:
    """4x4 from face-frame mm (right, anterior, superior; origin the nose tip) to world mm."""
    a = np.asarray(frame.anterior, float)
    a /= np.linalg.norm(a)
    s = np.asarray(frame.superior, float)
    s = s - (s @ a) * a
    s /= np.linalg.norm(s)
    out = np.eye(4)
    out[:3, :3] = np.column_stack([np.cross(a, s), a, s])
    out[:3, 3] = np.asarray(frame.nose_tip, float)
    return out


def _best_shift(template: BaseHead, base: BaseHead, m: np.ndarray) -> np.ndarray:
    """Shift (base voxels, along y and z) of the template that best matches the two head
    masks within :data:`REFACE_SEARCH_MM` of the face region's edge, where they are blended
    (searched on a 2 mm grid in 2 mm steps)."""
    step, pad = 2, int(REFACE_SEARCH_MM) // 2 + 1
    m2 = m.copy()
    m2[:3, :3] = m[:3, :3] * step
    shape = tuple(-(-n // step) for n in base.data.shape)
    tmask = ndi.affine_transform(template.mask.astype(np.float32), m2[:3, :3], m2[:3, 3],
                                 output_shape=shape, order=1, mode="constant") > 0.5
    want = base.mask[::step, ::step, ::step]
    region = _mask_region2d(base)[::step, ::step]
    near = np.minimum(ndi.distance_transform_edt(region), ndi.distance_transform_edt(~region))
    band = np.broadcast_to((near * step <= REFACE_SEARCH_MM)[None], want.shape)
    padded = np.pad(tmask, pad)
    idx = np.ravel_multi_index(tuple(c + pad for c in np.nonzero(band)), padded.shape)
    flat, target = padded.ravel(), want[band]
    strides = np.array(padded.strides[1:]) // padded.itemsize
    best, score = (0, 0), -1.0
    for dj in range(-pad + 1, pad):
        for dk in range(-pad + 1, pad):
            agree = float(np.mean(flat[idx - dj * strides[0] - dk * strides[1]] == target))
            if agree > score:
                best, score = (dj, dk), agree
    return np.array([0.0, best[0] * step, best[1] * step])


_ALIGNED: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def template_in_base(template: BaseHead, base: BaseHead) -> tuple[np.ndarray, np.ndarray]:
    """The template head's T1 data and depth weights resampled onto ``base``'s grid,
    aligned at the face frame (nose tip on nose tip, same anterior and superior axes),
    then shifted (up to :data:`REFACE_SEARCH_MM`) so the heads meet where they are blended.
    Cached per process for each pair of (cached) heads; read-only arrays."""
    key = (id(template), id(base))
    if key not in _ALIGNED:
        _ALIGNED[key] = _align_template(template, base)
    return _ALIGNED[key]


def _align_template(template: BaseHead, base: BaseHead) -> tuple[np.ndarray, np.ndarray]:
    m = (np.linalg.inv(template.affine) @ _frame_to_world(template.frame)
         @ np.linalg.inv(_frame_to_world(base.frame)) @ base.affine)
    shift = np.eye(4)
    shift[:3, 3] = -_best_shift(template, base, m)
    m = m @ shift
    out = []
    for vol in (template.data, template.deep):
        out.append(ndi.affine_transform(vol, m[:3, :3], m[:3, 3], output_shape=base.data.shape,
                                        order=1, mode="constant", cval=0.0).astype(np.float32))
        out[-1].flags.writeable = False
    return out[0], out[1]


def reface_weights(base: BaseHead) -> np.ndarray:
    """0..1 weight of the template face in base voxel space (broadcast over x): 1 deeper than
    :data:`REFACE_BLEND_MM` inside the face region, falling smoothly to 0 at its edge."""
    inside = ndi.distance_transform_edt(_mask_region2d(base))
    t = np.clip(inside / REFACE_BLEND_MM, 0.0, 1.0)
    weight = (t * t * (3.0 - 2.0 * t)).astype(np.float32)  # smoothstep
    return np.broadcast_to(weight[None, :, :], base.data.shape)


def reface_head(head: np.ndarray, base: BaseHead, face: np.ndarray) -> np.ndarray:
    """``head`` (contrast-mapped, base grid) with its face replaced by ``face`` (the
    template in the same contrast and grid), scaled to the participant's skin intensity."""
    weight = reface_weights(base)
    edge = (weight > 0) & (weight < 1) & (head > 0.05) & (face > 0.05)
    scale = 1.0
    if edge.sum() > 100:
        scale = float(np.clip(np.median(head[edge]) / np.median(face[edge]), 0.7, 1.4))
    return (head * (1.0 - weight) + scale * face * weight).astype(np.float32)


def reface_template(heads: list[Path]) -> Path:
    """The template head: :data:`REFACE_TEMPLATE`, or the first base head without it."""
    return REFACE_TEMPLATE if REFACE_TEMPLATE.is_file() else Path(heads[0])
