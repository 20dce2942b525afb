"""Corrupt slices: how far intact scans stay from the thresholds of ``bids_app.mri.slices``.

For every scan (the real heads with alterations, as in ``benchmarks/detection.py``, and the
NIfTI files of simulated cohorts), each slice along each voxel axis is compared with the two
nearest slices on either side (``slice_contrasts``): the step of its air level (25th
percentile) over both sides', the step of its tissue level (98th percentile) over both sides'
where it is at least ``BRIGHT_RATIO`` times theirs, and the fraction of the voxels that are
tissue in the slices just before and after it that are blank in it. Printed: the most extreme
value of each over every slice of every scan, against the thresholds, the scans with a slice found
corrupt, and the time of the search. Two alterations made here show what a corrupt slice looks
like (``augment.corrupt_slice``): ``plate`` (the axial slice through the nose tip raised by five
times the image's 99.9th percentile) and ``dropped`` (the coronal slice 10 mm behind the nose tip
set to zero).

    python benchmarks/slices.py [--heads] [--variants NAME ...] [--cohort DIR ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bids_app.mri import augment, load_head, reconstruct_head  # noqa: E402
from bids_app.mri import slices  # noqa: E402

#: Alterations of the real heads looked at by default: contrasts, grids, thick slices, cuts,
#: defacing and skull stripping, ghosts, motion, noise, encodings and poses.
DEFAULT_VARIANTS = ("T1w", "FLAIR", "T2w", "aniso3", "iso4", "axial-1x1x5", "coronal-1x5x1", "sagittal-5x1x1",
                    "deface", "skullstrip", "skullstrip-cropped", "deface-tight", "crop-15mm", "cut-nose+10mm",
                    "torso", "ghost-third", "kspace-ghosts", "motion-strong", "noise-25%", "mp2rage-uni",
                    "lowfield", "signed-1024", "header-face-up", "tilted-pitch40", "oblique-pitch40",
                    "FLAIR-dim-strong", "plate", "dropped")
#: Made here: a corrupt slice of each kind (the scans that should be found).
CORRUPT = ("plate", "dropped")


def measure(data: np.ndarray) -> dict:
    """The extremes of the slice contrasts over the scan's three axes, and what was found:
    the largest air step, the largest tissue step of a slice at least ``BRIGHT_RATIO`` times as
    bright as both sides (0 where none is), and the largest blank fraction."""
    tissue = slices.image_tissue_level(data)
    out = {"air_step": 0.0, "tissue_step": 0.0, "blank_fraction": 0.0}
    for axis in range(3):
        if data.shape[axis] < slices.MIN_SLICES:
            continue
        c = slices.slice_contrasts(data, axis, tissue)
        with np.errstate(invalid="ignore"):
            ratio_met = c.tissue_ratio >= slices.BRIGHT_RATIO
        out["air_step"] = max(out["air_step"], float(np.nanmax(c.air_step)))
        if ratio_met.any():
            out["tissue_step"] = max(out["tissue_step"], float(np.nanmax(c.tissue_step[ratio_met])))
        if np.isfinite(c.blank_fraction).any():
            out["blank_fraction"] = max(out["blank_fraction"], float(np.nanmax(c.blank_fraction)))
    start = time.perf_counter()
    found = slices.find_corrupt_slices(data)
    out["seconds"] = time.perf_counter() - start
    out["found"] = [c.describe() for c in found]
    return out


def real_head_scans(only):
    import nibabel as nib

    from detection import extra_variants
    from participant_speed import default_heads
    from robustness import variants

    for path in default_heads():
        vol = load_head(path)
        head = reconstruct_head(vol.data, vol.affine, vol.zooms)
        makers = {**variants(vol, head.mask, head.frame), **extra_variants(vol, head.mask, head.frame),
                  "plate": lambda: augment.corrupt_slice(vol.data, vol.affine, head.frame.nose_tip, axis=2),
                  "dropped": lambda: augment.corrupt_slice(vol.data, vol.affine, head.frame.nose_tip - 10.0
                                                           * np.asarray(head.frame.anterior), axis=1, kind="blank")}
        for name in only:
            if name not in makers:
                continue
            data, affine = makers[name]()
            img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, np.float32), affine))
            yield path.name.split(".")[0], name, np.asarray(img.dataobj, np.float32)


def cohort_scans(cohort: Path):
    for path in sorted(cohort.glob("bids*/sub-*/anat/*.nii*")):
        yield f"{cohort.name}/{path.parent.parent.parent.name}", path.name.split("_")[0], load_head(path).data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", action="store_true", help="real heads x alterations")
    parser.add_argument("--variants", nargs="*", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--cohort", nargs="*", default=[], type=Path, help="simulated cohorts (every NIfTI file)")
    args = parser.parse_args()
    scans = []
    sources = []
    if args.heads or not args.cohort:
        sources.append(real_head_scans(args.variants))
    sources += [cohort_scans(c) for c in args.cohort]
    for source in sources:
        for where, name, data in source:
            m = measure(data)
            corrupt = name in CORRUPT
            scans.append((corrupt, m))
            print(f"  {where:28s} {name:18s} air step {m['air_step']:6.3f}  tissue step at ratio >= "
                  f"{slices.BRIGHT_RATIO:g} {m['tissue_step']:6.3f}  blank fraction {m['blank_fraction']:5.3f}  "
                  f"{m['seconds'] * 1000:4.0f} ms  found: {'; '.join(m['found']) or '-'}", flush=True)
    print(f"thresholds: bright from an air step of {slices.BRIGHT_STEP} or a tissue ratio of {slices.BRIGHT_RATIO} "
          f"with a step of {slices.BRIGHT_STEP}; blank from a blank fraction of {slices.BLANK_FRACTION} "
          f"(voxels under {slices.BLANK_LEVEL} where both sides are at least {slices.TISSUE_LEVEL})")
    for corrupt in (False, True):
        group = [m for c, m in scans if c == corrupt]
        if not group:
            continue
        label = "corrupt slice made" if corrupt else "intact slices    "
        print(f"{label}: {len(group)} scans, found on {sum(bool(m['found']) for m in group)}; largest air step "
              f"{max(m['air_step'] for m in group):.3f}, largest tissue step at the ratio "
              f"{max(m['tissue_step'] for m in group):.3f}, largest blank fraction "
              f"{max(m['blank_fraction'] for m in group):.3f}; search median "
              f"{np.median([m['seconds'] for m in group]) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
