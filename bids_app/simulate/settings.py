"""The tables a simulated cohort is drawn from: face-shape bumps, contrasts, grids,
orientations, pose, modes and the hard mode's settings (see the package docstring)."""

from __future__ import annotations

from typing import Any

import numpy as np

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
#: Simulation modes (``--mode``): "default" (the cohort described above) and
#: "hard" (:data:`HARD`).
MODES: tuple[str, ...] = ("default", "hard")
#: Hard mode (``--mode hard``), see the module docstring. ``spread``: factor on
#: the identity spread (sibling-like identities); ``nose_protrusion_mm``: the
#: flattest nose a participant gets (nose tip in front of the surface 20 mm to
#: either side, as :func:`nose_protrusion_mm` measures it), the nose-flattening
#: bump (``nose_flatten_centre``, ``nose_flatten_sigma``: face frame, mm, as in
#: :data:`DEFORMATIONS`) pushing the nose tip back; ``dim_lower_face``:
#: probability of a dim lower face (:func:`bids_app.simulate.augment.dim_lower_face`,
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

