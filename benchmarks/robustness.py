#!/usr/bin/env python
"""Face detection on real heads and realistically altered copies of them.

For each head (the bundled demo heads and, when present, the extra heads in
``../shared/data/heads``) and each alteration of :mod:`bids_app.mri.augment`
(contrast remaps, bias field, storage orientation, oblique and anisotropic
grids, pitch and roll in the scanner, noise, clutter in front of the face
(a thin frame; goggles close to the eyes),
visible pads beside the cheeks, a field of view cut below the nose,
defacing, skull stripping), the MRI-to-face steps of the participant level
run as in ``facerisk participant``: head mask, surface, face frame, cut of
clutter in front of the upper face (``reconstruct_head``),
``--n-renders`` seeded renders, YuNet detection (two passes) and the 3D face
decision (:mod:`bids_app.presence`: landmarks cast onto the surface, a nose
standing out of a face of human size, pooled over the scan's renders). Printed per head and alteration: renders with a face (out of n),
the median nose relief of the detections, how far the nose tip moved from
the one found on the unaltered head (mm), and the seconds taken.

Expected: faces on the intact variants, none on "deface" and
"skullstrip" (the 3D check rejects what the detector finds there).

    python benchmarks/robustness.py [--n-renders 10] [--variants FLAIR deface ...] [HEAD ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bids_app.mri import augment, load_head, reconstruct_head  # noqa: E402
from participant_speed import default_heads  # noqa: E402  (the same heads: demo + ../shared)

FACE_VARIANTS = ["T1w", "FLAIR", "T2w", "PD", "bias", "LIA", "LPS", "oblique", "aniso1.5",
                 "aniso3", "pitch15", "roll15", "noise", "frame", "goggles", "cheekpads", "cutnose", "dimlowerface",
                 "spikes", "ghost"]
NO_FACE_VARIANTS = ["deface", "skullstrip"]


def variants(vol, mask, frame) -> dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]]:
    """Name -> function returning the altered (data, affine) of one head."""
    d, a, tip = vol.data, vol.affine, frame.nose_tip
    return {
        "T1w": lambda: (d, a),
        "FLAIR": lambda: augment.remap_contrast(d, a, "FLAIR"),
        "T2w": lambda: augment.remap_contrast(d, a, "T2w"),
        "PD": lambda: augment.remap_contrast(d, a, "PD"),
        "bias": lambda: augment.bias_field(d, a),
        "LIA": lambda: augment.reorient(d, a, "LIA"),
        "LPS": lambda: augment.reorient(d, a, "LPS"),
        "oblique": lambda: augment.resample(d, a, vol.zooms, rotation_deg=(12.0, 0.0, 8.0)),
        "aniso1.5": lambda: augment.resample(d, a, (0.9, 0.9, 1.5)),
        "aniso3": lambda: augment.resample(d, a, (1.0, 1.0, 3.0)),
        "pitch15": lambda: augment.rotate_head(d, a, pitch=15.0),
        "roll15": lambda: augment.rotate_head(d, a, roll=15.0),
        "noise": lambda: augment.add_noise(d, a, 0.03),
        "frame": lambda: augment.add_frame(d, a, tip),
        "goggles": lambda: augment.add_goggles(d, a, mask, tip, frame.anterior, frame.superior),
        "cheekpads": lambda: augment.add_cheek_pads(d, a, mask, tip),
        "cutnose": lambda: augment.cut_below(d, a, float(tip[2]) - 8.0),
        "dimlowerface": lambda: augment.dim_lower_face(*augment.remap_contrast(d, a, "FLAIR"), tip, frame.anterior, frame.superior),
        "spikes": lambda: augment.add_spikes(d, a, 1e-4),
        "ghost": lambda: augment.add_ghost(d, a, 0.25, axis=1),
        "deface": lambda: augment.deface(d, a, tip, frame.anterior, frame.superior),
        "skullstrip": lambda: augment.skull_strip(d, a, mask, floor_z=float(tip[2])),
    }


def faces_found(data, affine, model, n_renders: int, min_relief: float) -> dict:
    """The participant level's MRI-to-face steps on one image: what was found."""
    import nibabel as nib

    from bids_app.presence import scan_decision
    from bids_app.render import camera_pose, render_views, sample_view_params
    from bids_app.workflows.face_search import detect_in_3d

    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, np.float32), affine))
    data = np.asarray(img.dataobj, np.float32)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    try:
        head = reconstruct_head(data, img.affine, zooms)
    except ValueError:
        return {"faces": 0, "relief": float("nan"), "tip": None}
    frame = head.frame
    views = sample_view_params(0, n_renders)
    pictures, depths = render_views(head.surface, frame, views, with_depth=True)
    _, geometries = detect_in_3d(model, pictures, depths, [camera_pose(frame, v) for v in views], 0.5)
    decision = scan_decision(geometries, min_relief=min_relief)
    reliefs = [geometries[i][j].relief for i, j in enumerate(decision.chosen) if j is not None]
    return {"faces": sum(j is not None for j in decision.chosen),
            "relief": statistics.median(reliefs) if reliefs else float("nan"),
            "tip": np.asarray(frame.nose_tip, float)}


def main(argv: list[str] | None = None) -> int:
    from bids_app.face import load_face_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("heads", nargs="*", type=Path)
    ap.add_argument("--n-renders", type=int, default=10)
    ap.add_argument("--min-nose-relief", type=float, default=None,
                    help="3D nose check threshold (mm; default: the participant level's)")
    ap.add_argument("--variants", nargs="+", default=FACE_VARIANTS + NO_FACE_VARIANTS,
                    choices=FACE_VARIANTS + NO_FACE_VARIANTS)
    args = ap.parse_args(argv)
    from bids_app.config import Settings

    model = load_face_model("sface")
    if args.min_nose_relief is None:
        args.min_nose_relief = Settings.min_nose_relief
    heads = args.heads or default_heads()
    n = args.n_renders
    print(f"renders with a face (of {n}), median nose relief (mm), nose tip shift from the "
          f"unaltered head (mm), seconds")
    totals: dict[str, list[int]] = {}
    for head in heads:
        vol = load_head(head)
        unaltered = reconstruct_head(vol.data, vol.affine, vol.zooms)
        frame = unaltered.frame
        makers = variants(vol, unaltered.mask, frame)
        name = head.name.split(".")[0]
        for variant in args.variants:
            t = time.perf_counter()
            data, affine = makers[variant]()
            found = faces_found(data, affine, model, n, args.min_nose_relief)
            seconds = time.perf_counter() - t
            shift = (f"{np.linalg.norm(found['tip'] - frame.nose_tip):5.1f}"
                     if found["tip"] is not None and variant not in ("pitch15", "roll15") else "    -")
            print(f"{name:28s} {variant:11s} {found['faces']:3d}/{n}  relief {found['relief']:5.1f}  "
                  f"tip shift {shift}  {seconds:5.1f} s", flush=True)
            totals.setdefault(variant, []).append(found["faces"])
    print("\ntotal renders with a face per alteration (all heads):")
    for variant, counts in totals.items():
        print(f"  {variant:11s} {sum(counts):4d}/{n * len(counts)}  "
              f"({100.0 * sum(counts) / (n * len(counts)):.0f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
