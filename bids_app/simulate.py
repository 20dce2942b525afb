"""Simulated validation cohort: synthetic participants, their MRI and their "photos".

Real paired MRI and photographs cannot be shared, so facerisk's accuracy is
measured on a documented simulation (``facerisk-simulate`` or
``python -m bids_app.simulate``)::

    python -m bids_app.simulate OUT --n 6 --seed 0 [--contrast FLAIR] [--deface]
    facerisk OUT/bids OUT/derivatives/facerisk participant --photos-dir OUT/photos
    facerisk OUT/bids OUT/derivatives/facerisk group --photos-dir OUT/photos

writes ``OUT/bids`` (a BIDS dataset, one ``sub-XX_<contrast>.nii.gz`` each),
``OUT/photos/sub-XX/*.{png,jpg}`` and ``OUT/truth.tsv`` (+ ``truth.json``).

What one participant is
-----------------------
1. **Identity.** A base head (a real public head MRI, by default the three
   heads of real people in ``data/demo/bids``, assigned in turn; the
   demo's mean head is not a person, see :data:`NOT_A_BASE`) is loaded, resampled to a 1 mm RAS
   grid and its face located (:func:`bids_app.mri.face_frame`: nose tip,
   anterior and superior directions). A smooth random displacement field
   made of Gaussian bumps placed at facial landmarks relative to the nose
   tip changes: nose length, width, height and bridge; eye spacing, depth
   and height; brow; cheek fullness; jaw width; chin projection and height;
   lip thickness; mouth width; overall face width and height (a localised
   scaling); plus a few random symmetric "idiosyncratic" bumps. Each
   parameter is drawn from a normal distribution (clipped at 2 SD) whose
   SD in mm is in :data:`DEFORMATIONS`, times ``spread`` (``--spread``,
   default 1). The displacement is at most a fraction of the bump width, so
   the warp (backward mapping, linear interpolation) does not fold.
2. **Photos** are made from the deformed head *before* acquisition: its
   head mask, warped with the same field, gives a clean full-resolution
   (1 mm, lightly smoothed, not decimated) surface, rendered with a
   perspective portrait camera aimed with the base head's face frame (see
   :data:`PHOTO`: yaw spread over -18..18 degrees +-4, pitch -6..10, roll
   +-5, view angle 18-28 degrees, the face filling 50-68 % of the height),
   a skin colour per participant (light to dark), a white-to-mildly
   warm/cool key light, a fill light, sometimes a rim light, and a muted
   plain or gradient background; 3-5 photos, 640 x 480 or 480 x 640, PNG
   or JPEG. The pose range is that of passport-to-social-media portraits:
   profiles are rare in such photos and are where face recognisers are
   weakest (an earlier +-30 degree, strongly coloured version lost about a
   tenth of the genuine similarity for no realism gained). They are not
   made like facerisk's MRI renders (different surface, camera, light,
   colour, background), but they are renders of a surface, not
   photographs: no skin texture, hair, eyebrows, eye colour, glasses or
   expression.
3. **Acquisition.** The MRI side gets, on top of the identity warp: pads
   pressing each cheek inward (1-4 mm), sometimes visible as a dim block
   beside the cheek; a contrast remap of the T1 intensities (FLAIR-like by
   default, see :data:`CONTRASTS` and :data:`SUPERFICIAL`, with
   per-participant jitter); a random rigid head pose in the scanner
   (rotation up to +-10 degrees about each axis, shift up to +-10 mm); a
   per-participant voxel grid (see :data:`GRIDS`, partial-volume blur along
   thick axes) and storage orientation (see :data:`ORIENTATIONS`); a smooth
   multiplicative bias field (up to about +-25 %); Rician noise (2-5 % of
   the brightest brain tissue of the contrast). The image is stored as
   int16 with an affine that is correct for the simulated scanner space.
4. **Defacing** (``--deface``): the same dataset with the face removed the
   way pydeface and mri_deface do it, by zeroing every voxel of the face
   region (skin, fat, muscle, bone, eyes, sinuses), applied after
   acquisition: everything anterior-inferior of the plane through the
   forehead just above the brow and the ear canals (in the base head's face
   frame, from the known truth, so it never misses the face; pydeface
   itself needs FSL registration, which this package does not ship). The
   cut surface is flat, but it crosses the orbit apices, the ethmoid cells
   and the pharynx, whose cross-sections show as dents on it, as on real
   defaced scans.

Hard mode (``--mode hard``)
---------------------------
A harder cohort, so that facerisk is not only tuned on the default one
(:data:`HARD`; participant ``i`` of a seed keeps its base head, pose,
contrast jitter, bias, noise and photo camera, and its face-shape draws
scaled down):

- **sibling-like identities**: every face-shape change is scaled by
  ``HARD["spread"]`` (0.7), so that participants made from the same base
  head are about as alike as siblings. Measured with SFace on the photos
  of 50 participants (seed 1, a development seed): mean photo-to-photo
  cosine of two same-base participants 0.54, of a participant's photos to
  its nearest other participant 0.63, of two photos of one person 0.71;
  one photo against every participant's other photos ranks the right one
  first 85 % of the time (top-5 93 %). With 0.5: 0.58, 0.65, 0.70 and 72 %
  (too hard: the photos themselves no longer tell the participants
  apart); default mode (spread 1, 12 participants): same-base 0.48. The
  stand-in photos vary more (pose, light) than two real photos of one
  person, so a same-base cosine of 0.6 and a one-photo top-1 of 90 % cannot
  both be had; 0.7 is a compromise between the two;
- **flatter noses**: a nose-flattening bump (:data:`HARD`
  ``nose_flatten_centre`` / ``nose_flatten_sigma``, narrow sideways, so the
  cheeks beside the nose stay) pushes the nose tip back by a fraction
  ``nose_flatten`` (uniform 0-1, per participant) of what would bring the
  base head's nose protrusion (:func:`nose_protrusion_mm`: the tip in front
  of the surface 20 mm to either side) down to 8 mm; photos and MRI share it;
- **dim lower face** in half of the participants: coil sensitivity falling
  off below the nose to 0.25-0.35 at the chin
  (:func:`bids_app.mri.augment.dim_lower_face`), applied to the signal
  before the scanner's noise, so the noise is relatively strong there;
- **pads**: pressing the cheeks 1-5 mm, visible beside them in 60 % of the
  participants (intensity 0.15-0.45);
- **1-3 mm slices**: in-plane 0.9-1.2 mm, slice thickness uniform in
  1-3 mm along the third stored axis (axial, coronal or sagittal, by the
  storage orientation), with a box slice profile (the partial volume of the
  whole slice thickness) instead of the default mode's Gaussian blur.

``truth.tsv`` then has the columns ``mode``, ``slice_mm``,
``dim_lower_face`` (0/1), ``dim_low`` (gain at the chin, 1 when not dimmed),
``nose_flatten``, ``nose_flatten_mm`` and ``nose_protrusion_mm`` (measured on
the simulated face), and ``truth.json`` the mode and :data:`HARD`. The
default mode writes the same dataset as before the hard mode existed (its
random draws are unchanged; the hard mode's own come from a second
generator, ``[seed, index, 2]``).

Intensity model (an approximation, documented here): the T1 head is
normalised so that white matter (80th percentile of the voxels deeper than
30 mm) is 1; intensities are then mapped through a piecewise-linear curve
whose nodes stand for air (0), CSF (0.3), grey matter (0.65), white matter
(1.0) and fat/bright skin (1.5). FLAIR: CSF dark, grey brighter than white,
fat bright. T2w: CSF bright, white darker than grey. T1w: identity. An
intensity remap cannot tell CSF from muscle or thin skin of the same T1
intensity, so it is applied to the inside of the head only (deeper than
8-14 mm below the skin, blended); the superficial tissue gets a monotonic
remap (:data:`SUPERFICIAL`) that keeps it above the noise, as on real
FLAIR and T2 scans (applying the FLAIR curve everywhere nulled lips and
perioral muscle and broke the reconstructed mouth under noise; it was the
main reason a first version of this simulation reached only 30 % top-1).
It changes contrasts, not tissue segmentation: no lesions, no
T2-specific artefacts.

Everything random comes from ``numpy.random.default_rng([seed, index])``,
so the same seed writes the same dataset (participants are independent,
so ``--nprocs`` does not change it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

__all__ = [
    "CONTRASTS",
    "DEFORMATIONS",
    "GRIDS",
    "HARD",
    "MODES",
    "NOT_A_BASE",
    "ORIENTATIONS",
    "BaseHead",
    "Participant",
    "default_heads",
    "deformation_field",
    "find_heads",
    "load_base",
    "main",
    "nose_protrusion_mm",
    "sample_participant",
    "simulate_cohort",
    "simulate_participant",
]

REPO = Path(__file__).resolve().parents[1]

#: Identity parameters: name -> (SD in mm, or relative for "scale" kinds, bumps).
#: Each bump: (centre (u, v, w) mm from the nose tip; u lateral, v anterior,
#: w superior), sigma (su, sv, sw) mm, unit direction (du, dv, dw)). Bumps
#: with u != 0 are mirrored to the other side with du mirrored.
#: "nose_length" moves the nose tip forward or back (its protrusion). Its SD
#: was 5 mm: at -2 SD that flattened the nose of a base head whose nose
#: already stands only about 17 mm in front of its eyes (pycortex S1) to
#: 6-9 mm, a face no adult has (adult norms of nasal tip protrusion vary by a
#: few mm); 3 mm keeps noses within what people have.
DEFORMATIONS: dict[str, tuple[float, list[tuple[tuple[float, float, float],
                                                 tuple[float, float, float],
                                                 tuple[float, float, float]]]]] = {
    "nose_length": (3.0, [((0, -4, -2), (11, 14, 15), (0, 1, 0))]),
    "nose_width": (3.5, [((15, -12, -4), (9, 11, 11), (1, 0, 0))]),
    "nose_height": (4.0, [((0, -6, 0), (11, 13, 12), (0, 0, 1))]),
    "nose_bridge": (3.5, [((0, -18, 30), (10, 13, 13), (0, 1, 0))]),
    "eye_spacing": (4.0, [((32, -22, 33), (12, 14, 12), (1, 0, 0))]),
    "eye_depth": (3.5, [((32, -22, 33), (12, 13, 11), (0, 1, 0))]),
    "eye_height": (3.5, [((32, -22, 33), (13, 14, 11), (0, 0, 1))]),
    "brow": (3.5, [((30, -15, 48), (15, 12, 10), (0, 1, 0))]),
    "cheek_fullness": (5.0, [((42, -30, 5), (15, 15, 17), (0.6, 0.8, 0))]),
    "jaw_width": (6.0, [((52, -60, -45), (18, 22, 20), (1, 0, 0))]),
    "chin_projection": (5.0, [((0, -12, -60), (16, 15, 14), (0, 1, 0))]),
    "chin_height": (5.0, [((0, -12, -62), (18, 16, 14), (0, 0, -1))]),
    "lip_thickness": (3.0, [((0, -8, -28), (15, 9, 11), (0, 1, 0))]),
    "mouth_width": (3.5, [((24, -18, -30), (9, 11, 9), (1, 0, 0))]),
    "face_width": (0.06, []),  # relative scaling of u, localised to the face
    "face_height": (0.06, []),  # relative scaling of w about the nose tip
}
#: Random idiosyncratic bumps per participant, SD of their amplitude (mm).
N_FREE_BUMPS, FREE_BUMP_SD = 8, 2.5
CLIP_SD = 2.0

#: Contrast remaps: T1 intensity nodes (WM = 1) -> output nodes.
CONTRAST_NODES = np.array([0.0, 0.12, 0.3, 0.65, 1.0, 1.5, 4.0])
CONTRASTS: dict[str, np.ndarray] = {
    #            air  noise  CSF   GM    WM    fat   max
    "T1w": np.array([0.0, 0.12, 0.30, 0.65, 1.00, 1.35, 1.6]),
    "FLAIR": np.array([0.0, 0.10, 0.12, 0.80, 0.62, 0.95, 1.1]),
    "T2w": np.array([0.0, 0.12, 1.00, 0.60, 0.45, 0.80, 0.9]),
}
#: Remaps of the superficial tissue (skin, fat, muscle, bone: less than
#: :data:`SUPERFICIAL_MM` deep in the head). A T1 intensity remap cannot tell
#: CSF from muscle or skin of the same T1 intensity, but FLAIR nulls free fluid
#: only: applied to the whole head, the FLAIR curve would darken lips, perioral
#: muscle and thin skin to the noise floor, and the face surface would break
#: up under noise where a real FLAIR shows it intact. Near the surface the
#: remap is monotonic (tissue order kept, nothing nulled), deeper it is
#: :data:`CONTRASTS`, with a linear blend between.
SUPERFICIAL: dict[str, np.ndarray] = {
    #            air  noise  "CSF" GM    WM    fat   max
    "T1w": CONTRASTS["T1w"],
    "FLAIR": np.array([0.0, 0.10, 0.30, 0.55, 0.70, 0.95, 1.1]),
    "T2w": np.array([0.0, 0.12, 0.28, 0.42, 0.50, 0.80, 0.9]),
}
#: Depth (mm below the skin) over which the superficial remap gives way to the brain one.
SUPERFICIAL_MM = (8.0, 14.0)
#: Voxel sizes (in-plane, in-plane, slice) drawn per participant.
GRIDS: list[tuple[float, float, float]] = [
    (1.0, 1.0, 1.2), (0.9, 0.9, 1.5), (1.0, 1.0, 1.0), (1.2, 1.2, 1.2), (0.94, 0.94, 1.3)]
#: Storage orientations drawn per participant (nibabel axis codes).
ORIENTATIONS: list[str] = ["RAS", "LAS", "LPS", "LIA", "RPI", "PIR", "ASL", "LSA"]
POSE_DEG, SHIFT_MM = 10.0, 10.0
#: Stand-in photo camera and light. Yaw: the photos' yaw spans +-``yaw``
#: degrees (evenly, plus +-``yaw_jitter``), like passport-to-social-media
#: portraits; profiles are rare in such photos and are where face recognisers
#: (SFace, dlib) are weakest. ``fill``: fraction of the frame height the face
#: fills; ``light_tint``: 0 white light, 1 strongly warm or cool;
#: ``background_colour``: saturation of the backgrounds.
PHOTO: dict[str, Any] = {
    "yaw": 18.0, "yaw_jitter": 4.0, "pitch": (-6.0, 10.0), "roll": (-5.0, 5.0),
    "fill": (0.5, 0.68), "light_tint": 0.5, "background_colour": 0.15,
}

#: Simulation modes (``--mode``): "default" (the cohort described above) and
#: "hard" (:data:`HARD`).
MODES: tuple[str, ...] = ("default", "hard")
#: Hard mode (``--mode hard``), see the module docstring. ``spread``: factor on
#: the identity spread (sibling-like identities); ``nose_protrusion_mm``: the
#: flattest nose a participant gets (nose tip in front of the surface 20 mm to
#: either side, as :func:`nose_protrusion_mm` measures it), the nose-flattening
#: bump (``nose_flatten_centre``, ``nose_flatten_sigma``: face frame, mm, as in
#: :data:`DEFORMATIONS`) pushing the nose tip back; ``dim_lower_face``:
#: probability of a dim lower face (:func:`bids_app.mri.augment.dim_lower_face`,
#: gain ``dim_low`` at the chin); pads: press on each cheek (mm), probability and
#: intensity of visible pad blocks; grids: in-plane voxel sizes and slice
#: thickness (mm, uniform), with a box slice profile (partial volume) along the
#: thick axis.
HARD: dict[str, Any] = {
    "spread": 0.7,
    "nose_protrusion_mm": 8.0,
    "nose_flatten_centre": (0.0, 0.0, -2.0),
    "nose_flatten_sigma": (9.0, 16.0, 16.0),
    "dim_lower_face": 0.5,
    "dim_low": (0.25, 0.35),
    "pad_press_mm": (1.0, 5.0),
    "pad_visible_p": 0.6,
    "pad_visible": (0.15, 0.45),
    "in_plane_mm": (0.9, 0.94, 1.0, 1.2),
    "slice_mm": (1.0, 3.0),
}


# --------------------------------------------------------------------------- base heads


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


# --------------------------------------------------------------------------- parameters


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


# --------------------------------------------------------------------------- deformation


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


# --------------------------------------------------------------------------- acquisition


def _orientation_affine(codes: str, zooms: tuple[float, float, float], lo: np.ndarray,
                        hi: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of a grid covering world box [lo, hi] stored in ``codes`` order."""
    world_axis = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    aff = np.zeros((4, 4))
    aff[3, 3] = 1
    shape = []
    origin = np.zeros(3)
    for j, code in enumerate(codes):
        k, sign = world_axis[code]
        aff[k, j] = sign * zooms[j]
        n = int(np.ceil((hi[k] - lo[k]) / zooms[j])) + 1
        shape.append(n)
        origin[k] = lo[k] if sign > 0 else lo[k] + (n - 1) * zooms[j]
    aff[:3, 3] = origin
    return aff, tuple(shape)  # type: ignore[return-value]


def _rotation(deg: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = np.deg2rad(deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


#: How much of the nose-flattening bump's push-back the protrusion loses (the
#: surface 20 mm beside the tip moves back too, by exp(-0.5 (20/9)^2) of it).
_FLATTEN_GAIN = 1.0 - float(np.exp(-0.5 * (20.0 / HARD["nose_flatten_sigma"][0]) ** 2))

#: Defacing plane, in the base head's face frame (mm from the nose tip; v anterior,
#: w superior): the line through the forehead above the brow and the ear canal.
DEFACE_FOREHEAD_VW, DEFACE_EAR_VW = (-18.0, 62.0), (-88.0, -8.0)


def _deface_region(base: BaseHead) -> np.ndarray:
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
    sh = base.data.shape
    y, z = (np.arange(n, dtype=np.float32) - base.tip[k] for k, n in enumerate(sh) if k > 0)
    v, w = y[:, None], z[None, :]
    (v0, w0), (v1, w1) = DEFACE_FOREHEAD_VW, DEFACE_EAR_VW
    # side of the line through (v0, w0) and (v1, w1): positive in front/below
    side = (v - v0) * (w1 - w0) - (w - w0) * (v1 - v0)
    plane = (side * np.sign((0.0 - v0) * (w1 - w0) - (0.0 - w0) * (v1 - v0))) > 0  # the tip's side
    region2d = plane & (v > v1 - 5.0)
    return np.broadcast_to(region2d[None, :, :], sh)


def _slice_profile(thickness: float) -> np.ndarray:
    """Box slice profile ``thickness`` mm wide as weights on the 1 mm grid (sum 1)."""
    half = thickness / 2.0
    n = int(np.ceil(half))
    offsets = np.arange(-n, n + 1, dtype=float)
    w = np.clip(np.minimum(offsets + 0.5, half) - np.maximum(offsets - 0.5, -half), 0.0, None)
    return (w / w.sum()).astype(np.float32)


def acquire(part: Participant, base: BaseHead, head: np.ndarray, *,
            deface: bool = False, rng: np.random.Generator) -> nib.Nifti1Image:
    """Scan a (deformed, contrast-mapped) head: pose, grid, orientation, bias, noise."""
    zooms = tuple(float(z) for z in part.voxel_size)
    rot = _rotation(part.rotation_deg)
    centre = base.affine[:3, :3] @ base.center + base.affine[:3, 3]
    shift = np.asarray(part.shift_mm)
    # head world p -> scanner world x = R (p - c) + c + t
    to_scanner = np.eye(4)
    to_scanner[:3, :3] = rot
    to_scanner[:3, 3] = centre + shift - rot @ centre
    idx = np.array(np.nonzero(base.mask[::4, ::4, ::4])) * 4.0
    pts = idx.T @ base.affine[:3, :3].T + base.affine[:3, 3]
    pts = pts @ rot.T + to_scanner[:3, 3]
    margin = rng.uniform(8.0, 20.0, 3)
    lo, hi = pts.min(axis=0) - margin, pts.max(axis=0) + margin
    out_aff, out_shape = _orientation_affine(part.orientation, zooms, lo, hi)
    # partial-volume blur along thick axes (rotation ignored: small)
    sigma = np.zeros(3)
    world_axis = {"R": 0, "L": 0, "A": 1, "P": 1, "S": 2, "I": 2}
    if part.mode == "hard":  # thick slices: a box slice profile, averaged over the thickness
        vol = head
        for j, code in enumerate(part.orientation):
            if zooms[j] > 1.0:
                vol = ndi.convolve1d(vol, _slice_profile(zooms[j]), axis=world_axis[code],
                                     mode="nearest")
    else:
        for j, code in enumerate(part.orientation):
            sigma[world_axis[code]] = np.sqrt(max(zooms[j] ** 2 - 1.0, 0.0)) / 2.355
        vol = ndi.gaussian_filter(head, sigma) if sigma.any() else head
    # output voxel -> scanner world -> head world -> base voxel
    m = np.linalg.inv(base.affine) @ np.linalg.inv(to_scanner) @ out_aff
    img = ndi.affine_transform(vol, m[:3, :3], m[:3, 3], output_shape=out_shape, order=1,
                               mode="constant", cval=0.0)
    # smooth bias field: exp of a quadratic in normalised scanner coordinates
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in out_shape]
    c = part.bias_coefs
    b = (c[0] * axes[0][:, None, None] + c[1] * axes[1][None, :, None] + c[2] * axes[2][None, None, :]
         + c[3] * axes[0][:, None, None] ** 2 + c[4] * axes[1][None, :, None] ** 2
         + c[5] * axes[2][None, None, :] ** 2
         + c[6] * axes[0][:, None, None] * axes[1][None, :, None]
         + c[7] * axes[1][None, :, None] * axes[2][None, None, :]
         + c[8] * axes[0][:, None, None] * axes[2][None, None, :])
    img = (img * np.exp(np.clip(b, -0.3, 0.3))).astype(np.float32)
    # Rician noise; sigma relative to the brightest brain tissue of this contrast
    sigma = np.float32(part.noise * max(part.contrast_nodes[2:5]))
    img += sigma * rng.standard_normal(out_shape, dtype=np.float32)
    img = np.sqrt(img ** 2 + (sigma * rng.standard_normal(out_shape, dtype=np.float32)) ** 2)
    if deface:
        cut = ndi.affine_transform(_deface_region(base).astype(np.uint8), m[:3, :3], m[:3, 3],
                                   output_shape=out_shape, order=0, mode="constant", cval=0)
        img[cut > 0] = 0.0
    scaled = np.clip(np.round(img * 1000.0), 0, 32767).astype(np.int16)
    nii = nib.Nifti1Image(scaled, out_aff)
    nii.header.set_xyzt_units("mm", "sec")
    nii.header.set_qform(out_aff, code=1)
    nii.header.set_sform(out_aff, code=1)
    return nii


# --------------------------------------------------------------------------- photos


def render_photos(part: Participant, mask: np.ndarray, affine: np.ndarray, outdir: Path,
                  frame: Any, *, size: tuple[int, int] | None = None) -> list[Path]:
    """Portrait "photos" of the clean deformed head (see module docstring).

    ``frame`` is the base head's face frame (:func:`bids_app.mri.face_frame`
    of the whole head): the photo surface is the front of the face only, and
    a frame read from that partial surface tilts about 20 degrees (the
    missing back of the skull biases its pitch) and misjudges the face size,
    which cut chins off the pictures.
    """
    import pyvista as pv
    from PIL import Image

    from bids_app.mri import head_surface

    rng = np.random.default_rng(part.photo_seed)
    surf = head_surface(mask, affine, blur_vox=1.5, resolution_mm=1.0, max_triangles=300_000,
                        smooth_iter=30, pass_band=0.05)
    a, s = frame.anterior, frame.superior
    right = np.cross(s, a)
    light_t = float(rng.uniform())  # skin: light to dark
    skin = (1 - light_t) * np.array([0.96, 0.80, 0.70]) + light_t * np.array([0.42, 0.27, 0.18])
    skin = np.clip(skin * rng.uniform(0.94, 1.06, 3), 0, 1)
    portrait = bool(rng.uniform() < 0.4)
    wsize = size or ((480, 640) if portrait else (640, 480))
    pl = pv.Plotter(off_screen=True, window_size=wsize, lighting="none")
    paths: list[Path] = []
    outdir.mkdir(parents=True, exist_ok=True)
    ymax, yjit = PHOTO["yaw"], PHOTO["yaw_jitter"]
    yaws = np.linspace(-ymax, ymax, part.n_photos) + rng.uniform(-yjit, yjit, part.n_photos)
    rng.shuffle(yaws)
    try:
        actor = pl.add_mesh(surf, color=tuple(skin), smooth_shading=True,
                            diffuse=float(rng.uniform(0.8, 0.95)), specular=float(rng.uniform(0.1, 0.35)),
                            specular_power=float(rng.uniform(10, 40)), ambient=float(rng.uniform(0.12, 0.22)))
        for k in range(part.n_photos):
            yaw, pitch, roll = float(yaws[k]), float(rng.uniform(*PHOTO["pitch"])), float(rng.uniform(*PHOTO["roll"]))
            t = np.deg2rad(yaw)
            d = np.cos(t) * a + np.sin(t) * right
            d = np.cos(np.deg2rad(pitch)) * d + np.sin(np.deg2rad(pitch)) * s
            angle = float(rng.uniform(18, 28))
            fill = float(rng.uniform(*PHOTO["fill"]))  # fraction of the frame height the face fills
            dist = frame.size * 0.8 / fill / (2 * np.tan(np.deg2rad(angle / 2)))
            focal = frame.center + s * float(rng.uniform(-5, 15)) + right * float(rng.uniform(-10, 10))
            up = s - d * float(s @ d)
            up /= np.linalg.norm(up)
            r = np.deg2rad(roll)
            up = np.cos(r) * up + np.sin(r) * np.cross(d, up)
            pl.camera.position = tuple(focal + dist * d)
            pl.camera.focal_point = tuple(focal)
            pl.camera.up = tuple(up)
            pl.camera.view_angle = angle
            pl.reset_camera_clipping_range()
            # muted backgrounds: a grey level plus a little colour
            top = np.clip(rng.uniform(0.25, 0.85) + rng.uniform(-1, 1, 3) * PHOTO["background_colour"], 0, 1)
            if rng.uniform() < 0.5:
                pl.set_background(tuple(top * rng.uniform(0.3, 0.8)), top=tuple(top))
            else:
                pl.set_background(tuple(top))
            pl.remove_all_lights()
            kelvin = rng.uniform(-1, 1) * PHOTO["light_tint"]  # warm (+) or cool (-) key light
            key_col = (1.0 - 0.1 * max(-kelvin, 0), 1.0 - 0.12 * abs(kelvin), 1.0 - 0.3 * max(kelvin, 0))
            key_col = tuple(float(np.clip(c, 0, 1)) for c in key_col)
            fill_col = tuple(float(c) for c in 1.0 - rng.uniform(0, 1, 3) * PHOTO["light_tint"] * 0.3)
            lights = [(rng.uniform(-50, 50), rng.uniform(5, 40), key_col, rng.uniform(0.8, 1.0)),
                      (rng.uniform(-80, 80), rng.uniform(-15, 15), fill_col, rng.uniform(0.35, 0.6))]
            if rng.uniform() < 0.5:
                lights.append((rng.choice([-1, 1]) * rng.uniform(110, 150), rng.uniform(10, 40),
                               (1.0, 1.0, 1.0), rng.uniform(0.2, 0.5)))
            for az, el, col, inten in lights:
                ld = np.cos(np.deg2rad(az)) * a + np.sin(np.deg2rad(az)) * right
                ld = np.cos(np.deg2rad(el)) * ld + np.sin(np.deg2rad(el)) * s
                light = pv.Light(position=tuple(frame.center + 1000 * ld), focal_point=tuple(frame.center),
                                 color=col, intensity=float(inten), light_type="scene light")
                light.positional = False
                pl.add_light(light)
            actor.prop.color = tuple(np.clip(skin * rng.uniform(0.97, 1.03, 3), 0, 1))
            pl.render()
            img = np.ascontiguousarray(pl.screenshot(return_img=True)[..., :3])
            if rng.uniform() < 0.5:
                path = outdir / f"sub-{part.label}_photo{k + 1:02d}.jpg"
                Image.fromarray(img).save(path, quality=int(rng.integers(85, 96)))
            else:
                path = outdir / f"sub-{part.label}_photo{k + 1:02d}.png"
                Image.fromarray(img).save(path)
            paths.append(path)
    finally:
        pl.close()
    return paths


# --------------------------------------------------------------------------- one participant


def _contrast_map(head: np.ndarray, nodes: list[float], contrast: str = "T1w",
                  deep: np.ndarray | None = None) -> np.ndarray:
    """T1 intensities -> ``contrast``: :data:`SUPERFICIAL` near the skin, ``nodes`` deeper."""
    brain = np.interp(head, CONTRAST_NODES, np.asarray(nodes)).astype(np.float32)
    if deep is None or contrast not in SUPERFICIAL:
        return brain
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.asarray(nodes) / CONTRASTS[contrast]  # the participant's jitter
    skin_nodes = SUPERFICIAL[contrast] * np.where(np.isfinite(scale), scale, 1.0)
    skin = np.interp(head, CONTRAST_NODES, skin_nodes).astype(np.float32)
    return (deep * brain + (1.0 - deep) * skin).astype(np.float32)


def _add_pads(part: Participant, base: BaseHead, head: np.ndarray, mask: np.ndarray) -> None:
    """Visible pad blocks beside the cheeks, in air only (in place)."""
    if part.pad_visible <= 0:
        return
    t = base.tip
    x = np.arange(head.shape[0]) - t[0]
    y = np.arange(head.shape[1]) - t[1]
    z = np.arange(head.shape[2]) - t[2]
    zsel = (z > -25) & (z < 35)
    ysel = (y > -75) & (y < -15)
    for side in (1.0, -1.0):
        # lateral skin position at cheek level, then a 12 mm block outside it
        sub = mask[:, ysel][:, :, zsel]
        cols = np.nonzero(sub.any(axis=(1, 2)))[0]
        if cols.size == 0:
            continue
        edge = x[cols.min()] if side > 0 else x[cols.max()]  # side +1: u>0 is -x (left of array)
        xsel = (x > edge - 12) & (x <= edge + 1) if side > 0 else (x >= edge - 1) & (x < edge + 12)
        block = np.zeros(head.shape, bool)
        block[np.ix_(xsel, ysel, zsel)] = True
        block &= ~mask
        head[block] = np.maximum(head[block], part.pad_visible)


def simulate_participant(part: Participant, bids_dir: Path, photos_dir: Path | None, *,
                         deface_dirs: tuple[Path, ...] = (), deface: bool = False,
                         photo_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Write one participant's MRI (and photos); returns timing and file info."""
    t0 = time.perf_counter()
    base = load_base(part.base_path)
    t1 = time.perf_counter()
    hard = part.mode == "hard"
    if hard:  # the nose flattening in mm, from the base head's own nose
        part = dataclasses.replace(part, hard=dict(part.hard))
        excess = max(_base_protrusion(base) - HARD["nose_protrusion_mm"], 0.0)
        part.hard["nose_flatten_mm"] = part.hard["nose_flatten"] * excess / _FLATTEN_GAIN
    box = _face_box(base)
    d_face = deformation_field(part, base, box, with_pads=False)
    d_mri = deformation_field(part, base, box, with_pads=True)
    head = _warp(base.data, box, d_mri)
    deep = _warp(base.deep, box, d_mri) if base.deep is not None else None
    head = _contrast_map(head, part.contrast_nodes, part.contrast, deep)
    del deep
    _add_pads(part, base, head, base.mask)
    if hard and part.hard["dim_lower_face"]:
        from bids_app.mri.augment import dim_lower_face

        # coil sensitivity: the signal falls, the scanner's noise (added in acquire) does not
        head, _ = dim_lower_face(head, base.affine, base.frame.nose_tip, base.frame.anterior,
                                 base.frame.superior, low=part.hard["dim_low"], noise=0.0)
    t2 = time.perf_counter()
    stem = f"sub-{part.label}_{part.contrast}"
    sidecar = {
        "Simulated": True,
        "GeneratedBy": "bids_app.simulate (facerisk); see truth.tsv of the parent folder",
        "ContrastApproximation": f"{part.contrast}-like remap of T1 intensities",
        "VoxelSize": list(part.voxel_size), "StorageOrientation": part.orientation,
    }
    outs = [(bids_dir, deface)] + [(d, True) for d in deface_dirs]
    for target, cut in outs:
        rng = np.random.default_rng(part.seed + [1])  # same noise with and without defacing
        nii = acquire(part, base, head, deface=cut, rng=rng)
        anat = target / f"sub-{part.label}" / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        nib.save(nii, anat / f"{stem}.nii.gz")
        meta = dict(sidecar, Defaced=("plane cut" if cut else False))
        (anat / f"{stem}.json").write_text(json.dumps(meta, indent=2) + "\n")
    t3 = time.perf_counter()
    photos: list[Path] = []
    if photos_dir is not None or hard:
        # the face only (up to 120 mm behind the nose tip), soft edge kept for contouring
        front = max(int(base.tip[1]) - 120, 0)
        soft = base.mask.astype(np.float32)
        soft[:, :front] = 0.0
        mask_photo = _warp(soft, box, d_face)
        if hard:
            part.hard["nose_protrusion_mm"] = nose_protrusion_mm(mask_photo, base.affine, base.frame)
        if photos_dir is not None:
            photos = render_photos(part, mask_photo, base.affine, photos_dir / f"sub-{part.label}",
                                   base.frame, size=photo_size)
    t4 = time.perf_counter()
    return {"label": part.label, "photos": [str(p) for p in photos],
            "hard": dict(part.hard) if hard else {},
            "seconds": {"base": t1 - t0, "deform": t2 - t1, "acquire": t3 - t2, "photos": t4 - t3}}


# --------------------------------------------------------------------------- cohort


def _worker(args: tuple) -> dict[str, Any]:
    return simulate_participant(*args[0], **args[1])


def simulate_cohort(out_dir: str | os.PathLike[str], n: int = 6, seed: int = 0, *,
                    contrast: str = "FLAIR", heads: list[str | os.PathLike[str]] | None = None,
                    deface: bool = False, with_defaced: bool = False, spread: float = 1.0,
                    nprocs: int = 1, photos: tuple[int, int] = (3, 5),
                    photo_size: tuple[int, int] | None = None, quiet: bool = False,
                    mode: str = "default") -> dict[str, Any]:
    """Write ``out_dir/bids``, ``out_dir/photos``, ``out_dir/truth.tsv`` (+ ``truth.json``).

    With ``with_defaced``, ``out_dir/bids_defaced`` (same participants,
    same noise, face cut off) is written as well. ``mode``: "default" or
    "hard" (:data:`HARD`, see the module docstring).
    """
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {sorted(CONTRASTS)}, got {contrast!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if n < 1:
        raise ValueError("n must be >= 1")
    head_paths = find_heads(list(heads)) if heads else default_heads()
    if not head_paths:
        raise FileNotFoundError("no base heads: pass --heads (a BIDS dataset or head images)")
    out = Path(out_dir)
    bids_dir, photos_dir = out / "bids", out / "photos"
    width = max(2, len(str(n)))
    parts = [sample_participant(i, seed, head_paths, contrast=contrast, spread=spread,
                                label=f"{i + 1:0{width}d}", photos=photos, mode=mode)
             for i in range(n)]
    defaced_dirs = (out / "bids_defaced",) if with_defaced else ()
    for d in (bids_dir, *defaced_dirs):
        d.mkdir(parents=True, exist_ok=True)
        _write_dataset_files(d, parts, contrast, deface or d in defaced_dirs, seed, spread, mode)
    jobs = [((p, bids_dir, photos_dir), {"deface_dirs": defaced_dirs, "deface": deface,
                                          "photo_size": photo_size}) for p in parts]
    begin = time.perf_counter()
    results = []
    if nprocs > 1 and n > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(nprocs, n), mp_context=ctx) as pool:
            for res in pool.map(_worker, jobs):
                results.append(res)
                if not quiet:
                    print(f"sub-{res['label']}: {len(res['photos'])} photos, "
                          f"{sum(res['seconds'].values()):.1f} s", flush=True)
    else:
        for job in jobs:
            res = _worker(job)
            results.append(res)
            if not quiet:
                print(f"sub-{res['label']}: {len(res['photos'])} photos, "
                      f"{sum(res['seconds'].values()):.1f} s", flush=True)
    for part, res in zip(parts, results):  # what the hard mode set from the base heads
        part.hard.update(res.get("hard") or {})
    rows = [p.row() for p in parts]
    cols = list(rows[0])
    (out / "truth.tsv").write_text("\t".join(cols) + "\n" + "".join(
        "\t".join(str(r[c]) for c in cols) + "\n" for r in rows))
    truth = {"seed": seed, "n": n, "contrast": contrast, "spread": spread, "deface": deface,
             "mode": mode, **({"hard": HARD} if mode == "hard" else {}),
             "heads": [str(p) for p in head_paths],
             "participants": [{**p.row(), "free_bumps": p.free_bumps,
                               "contrast_nodes": p.contrast_nodes, "bias_coefs": p.bias_coefs}
                              for p in parts]}
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return {"out": str(out), "bids": str(bids_dir), "photos": str(photos_dir),
            "seconds": time.perf_counter() - begin, "participants": results}


def _write_dataset_files(bids_dir: Path, parts: list[Participant], contrast: str, defaced: bool,
                         seed: int, spread: float, mode: str = "default") -> None:
    (bids_dir / "dataset_description.json").write_text(json.dumps({
        "Name": f"facerisk simulated cohort (n={len(parts)}, seed={seed}, {contrast}"
                + (f", {mode} mode" if mode != "default" else "")
                + (", defaced" if defaced else "") + ")",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "Derived from public heads (BSD-2-Clause, MIT, BSD); see README",
        "Authors": ["facerisk simulate"],
        "GeneratedBy": [{"Name": "facerisk-simulate",
                         "Description": f"bids_app.simulate seed={seed} spread={spread}"
                                        + (f" mode={mode}" if mode != "default" else "")}],
    }, indent=2) + "\n")
    (bids_dir / "README").write_text(
        "Simulated participants made by bids_app.simulate (facerisk): each is a real public\n"
        "head with a random smooth change of face shape, scanned with a random pose, grid,\n"
        "contrast remap, pads, bias field and noise. Not real people. See truth.tsv beside\n"
        "this folder for the parameters.\n")
    (bids_dir / "participants.tsv").write_text("participant_id\tbase_head\n" + "".join(
        f"sub-{p.label}\t{p.base_head}\n" for p in parts))
    (bids_dir / "participants.json").write_text(json.dumps({
        "base_head": {"Description": "real public head the simulated participant was made from"}},
        indent=2) + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="facerisk-simulate",
        description="Write a simulated cohort (BIDS dataset, photos, truth table) for facerisk.")
    p.add_argument("out_dir", type=Path, help="writes OUT_DIR/bids, OUT_DIR/photos, OUT_DIR/truth.tsv")
    p.add_argument("--n", type=int, default=6, help="number of participants (default 6)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--contrast", choices=sorted(CONTRASTS), default="FLAIR",
                   help="image contrast and BIDS suffix (default FLAIR)")
    p.add_argument("--heads", nargs="+", default=None, metavar="PATH",
                   help="base heads: BIDS datasets, folders or image files "
                        "(default: the bundled data/demo/bids)")
    p.add_argument("--deface", action="store_true", help="remove the faces (plane cut)")
    p.add_argument("--with-defaced", action="store_true",
                   help="also write OUT_DIR/bids_defaced (same scans, face removed)")
    p.add_argument("--spread", type=float, default=1.0,
                   help="scale of the random face-shape changes (default 1; smaller = "
                        "participants more alike)")
    p.add_argument("--mode", choices=MODES, default="default",
                   help="default, or hard: sibling-like identities, flatter noses, dim lower "
                        "faces, more visible pads, 1-3 mm slices (see the module docstring)")
    p.add_argument("--photos", type=int, nargs=2, default=(3, 5), metavar=("MIN", "MAX"),
                   help="photos per participant (default 3 5)")
    p.add_argument("--nprocs", type=int, default=1, help="participants simulated in parallel")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (``facerisk-simulate``)."""
    args = _parser().parse_args(argv)
    if args.n < 1 or args.spread < 0 or args.photos[0] < 1 or args.photos[1] < args.photos[0]:
        _parser().error("need --n >= 1, --spread >= 0, 1 <= --photos MIN <= MAX")
    try:
        res = simulate_cohort(args.out_dir, args.n, args.seed, contrast=args.contrast,
                              heads=args.heads, deface=args.deface, with_defaced=args.with_defaced,
                              spread=args.spread, nprocs=args.nprocs, photos=tuple(args.photos),
                              mode=args.mode)
    except (FileNotFoundError, ValueError) as err:
        print(f"facerisk-simulate: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} participants in {res['seconds']:.1f} s: {res['bids']} "
          f"(photos: {res['photos']}, truth: {Path(res['out']) / 'truth.tsv'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
