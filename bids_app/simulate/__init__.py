"""Simulated validation cohort: synthetic participants, their MRI and their "photos".

Real paired MRI and photographs cannot be shared, so facerisk's accuracy is
measured on a documented simulation (``facerisk-simulate`` or
``python -m bids_app.simulate``)::

    python -m bids_app.simulate OUT --n 6 --seed 0 [--contrast FLAIR] [--deface [METHOD]]
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
4. **Defacing** (``--deface [mask|plane|reface]`` for ``OUT/bids`` itself,
   ``--with-defaced`` for ``OUT/bids_defaced``, ``--deface-methods`` for
   ``OUT/bids_defaced-<method>``; same scans, same noise; see
   :mod:`.deface`). ``mask`` removes the face the way pydeface and
   mri_deface do, by zeroing every voxel of the face region (skin, fat,
   muscle, bone, eyes, sinuses), applied after acquisition: everything
   anterior-inferior of the plane through the forehead just above the brow
   and the ear canals (in the base head's face frame, from the known truth,
   so it never misses the face; pydeface itself needs FSL registration,
   which this package does not ship). The cut surface is flat, but it
   crosses the orbit apices, the ethmoid cells and the pharynx, whose
   cross-sections show as dents on it, as on real defaced scans. ``plane``
   is quickshear's shear cut, fitted to an estimate of the base head's
   brain; ``reface`` pastes one template face over the face region
   (``--reface-template``, default the first demo head's face). Each
   image's sidecar states the method (``DeidentificationMethod``,
   ``DeidentificationMethodCodeSequence``) and ``truth.json`` maps every
   dataset folder to its method (``"datasets"``).

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
  (:func:`bids_app.simulate.augment.dim_lower_face`), applied to the signal
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

import os

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

# Modules of the package, one job each (import order = dependency order):
#   augment      realistic alterations of real heads (tests, benchmarks, hard mode)
#   settings     the tables a cohort is drawn from (DEFORMATIONS, CONTRASTS, GRIDS, HARD, ...)
#   heads        base heads: find, load (1 mm RAS, WM = 1), nose protrusion
#   participant  Participant and its sampling (default and hard mode)
#   deform       displacement field of the face-shape bumps, and the warp
#   deface       defacing methods: face mask, quickshear-like plane, refacing; sidecar claims
#   scanner      contrast remap, pads, pose, grid, slice profile, bias, noise, the defacing cut
#   photos       the stand-in portrait photo renderer
#   cohort       simulate_participant, simulate_cohort, the dataset's files
#   cli          the command line (facerisk-simulate, python -m bids_app.simulate)
from .cli import main  # noqa: E402
from .cohort import simulate_cohort, simulate_participant  # noqa: E402
from .deform import deformation_field  # noqa: E402
from .heads import (  # noqa: E402
    NOT_A_BASE, REPO, BaseHead, default_heads, find_heads, load_base, nose_protrusion_mm,
)
from .participant import Participant, sample_participant  # noqa: E402
from .photos import PHOTO, render_photos  # noqa: E402
from .deface import DEFACE_EAR_VW, DEFACE_FOREHEAD_VW, DEFACE_METHODS  # noqa: E402
from .scanner import acquire  # noqa: E402
from .settings import (  # noqa: E402
    CLIP_SD, CONTRAST_NODES, CONTRASTS, DEFORMATIONS, FREE_BUMP_SD, GRIDS, HARD, MODES,
    N_FREE_BUMPS, ORIENTATIONS, POSE_DEG, SHIFT_MM, SUPERFICIAL, SUPERFICIAL_MM,
)

__all__ = [
    "CONTRASTS",
    "DEFACE_METHODS",
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
