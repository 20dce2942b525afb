#!/usr/bin/env python
"""How well the head mask keeps a dim, noisy lower face (coil sensitivity on FLAIR).

For each real head (the demo heads and, where present, ``../shared/data/heads``;
Colin27, whose field of view ends at the nose, is left out) the FLAIR-like
remap of ``augment.remap_contrast`` is masked as it is (the reference) and
again after ``augment.dim_lower_face`` at three strengths. In the lower face
(5-75 mm below the nose tip, in front of a plane 35 mm behind it, along the
head's own face frame) it prints, per head and strength:

- ``miss``: the distance (mm) from each skin voxel of the reference to the
  nearest skin voxel of the dimmed scan's mask, its mean and the fraction
  over 2 mm (skin lost: holes, a fragmented chin);
- ``extra``: the same from the dimmed mask's skin to the reference's (skin
  that is not there: noise grown onto the face).

Strengths: ``dim`` (``dim_lower_face`` defaults: gain 0.3 at the chin, noise
0.03), ``strong`` (gain 0.2 from the nose tip down, noise 0.06, the
``FLAIR-dim-strong`` of ``benchmarks/detection.py``), ``noisy`` (gain 0.25,
noise 0.08).

Usage::

    python benchmarks/lower_face.py            # about 3 min on 2 cores
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bids_app.mri import head_mask, reconstruct_head  # noqa: E402
from bids_app.simulate import augment  # noqa: E402
from participant_speed import default_heads  # noqa: E402  (demo heads + ../shared)

STRENGTHS = {"dim": {}, "strong": {"low": 0.2, "noise": 0.06, "start_mm": 0.0},
             "noisy": {"low": 0.25, "noise": 0.08}}


def lower_face(data, affine, frame) -> np.ndarray:
    """Voxels of ``data``'s grid 5-75 mm below the nose tip and in front of a plane 35 mm behind it."""
    down = augment._plane_side(data, affine, frame.nose_tip, frame.superior)
    front = augment._plane_side(data, affine, frame.nose_tip, frame.anterior)
    return (down > -75) & (down < -5) & (front > -35)


def skin(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndi.binary_erosion(mask)


def distances(ref: np.ndarray, test: np.ndarray, region: np.ndarray, zooms) -> dict[str, float]:
    """Skin-to-skin distances (mm) within ``region``, both ways."""
    ref_skin, test_skin = skin(ref), skin(test)
    to_test = ndi.distance_transform_edt(~test_skin, sampling=zooms)[ref_skin & region]
    to_ref = ndi.distance_transform_edt(~ref_skin, sampling=zooms)[test_skin & region]
    out = {"miss": float(to_test.mean()), "miss_over_2mm": float((to_test > 2).mean())}
    out["extra"] = float(to_ref.mean()) if to_ref.size else float("nan")
    out["extra_over_2mm"] = float((to_ref > 2).mean()) if to_ref.size else float("nan")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("heads", nargs="*", type=Path, help="T1w head images (default: demo + ../shared)")
    args = ap.parse_args(argv)
    heads = args.heads or [h for h in default_heads() if "colin27" not in h.name]
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in STRENGTHS}
    for path in heads:
        img = nib.as_closest_canonical(nib.load(path))
        data, affine = np.asarray(img.dataobj, np.float32), img.affine
        zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
        frame = reconstruct_head(data, affine, zooms).frame
        flair, _ = augment.remap_contrast(data, affine, "FLAIR")
        ref = head_mask(flair, zooms)
        region = lower_face(data, affine, frame)
        line = [path.name.split("_")[0].ljust(20)]
        for name, kw in STRENGTHS.items():
            dimmed, _ = augment.dim_lower_face(flair, affine, frame.nose_tip, frame.anterior,
                                               frame.superior, **kw)
            r = distances(ref, head_mask(dimmed, zooms), region, zooms)
            rows[name].append(r)
            line.append(f"{name}: miss {r['miss']:5.2f} mm ({100 * r['miss_over_2mm']:3.0f}% > 2 mm)  "
                        f"extra {r['extra']:5.2f} mm ({100 * r['extra_over_2mm']:3.0f}%)")
        print(" | ".join(line), flush=True)
    print("mean over heads:")
    for name, rs in rows.items():
        mean = {k: float(np.nanmean([r[k] for r in rs])) for k in rs[0]}
        print(f"  {name:6s} miss {mean['miss']:5.2f} mm ({100 * mean['miss_over_2mm']:3.0f}% > 2 mm)  "
              f"extra {mean['extra']:5.2f} mm ({100 * mean['extra_over_2mm']:3.0f}% > 2 mm)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
