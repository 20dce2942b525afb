#!/usr/bin/env python
"""Images stored inverted: the distribution behind ``mri.background.MIN_INVERTED_AIR`` and
``MAX_INVERTED_AIR_SPREAD``.

For every real head (``benchmarks/robustness.py``'s: the bundled demo heads and, when present,
../shared/data/heads) with every alteration of ``benchmarks/detection.py`` but the three with
motion (slow, and their air is that of the others), and for twelve of those alterations also
stored inverted (``max - x``), and for every scan of the simulated cohorts given (as stored and
inverted), prints the two measures :func:`bids_app.mri.background.inversion_level` reads: the
median of the image's outer shell over the image's 99.5th percentile, and the shell's
interquartile range over that median; then their range per kind (MP2RAGE UNI images, other
images as stored, inverted images) and whether each was recognised as inverted.

    python benchmarks/inverted.py [--cohort OUT [OUT ...]] [--no-heads]

About 25 minutes for the 8 real heads on a 2-core machine (making the alterations dominates).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bids_app.mri import load_head, reconstruct_head  # noqa: E402
from bids_app.mri.background import (  # noqa: E402
    MAX_INVERTED_AIR_SPREAD, MIN_INVERTED_AIR, inversion_level, inversion_measures,
)

#: Alterations of detection.py left out: their air is the others', and making them is slow.
SKIPPED = {"motion", "motion-strong", "deface-motion-strong"}
#: Alterations also measured stored inverted.
INVERTED = ("T1w", "FLAIR", "T2w", "bias", "noise", "lowfield", "iso4", "crop-15mm", "torso",
            "deface", "deface-tight", "skullstrip")


def measures(data: np.ndarray) -> tuple[float, float, bool]:
    """(shell median / 99.5th percentile, shell interquartile range / median, recognised as inverted)."""
    return (*inversion_measures(data), inversion_level(data) > 0)


def real_head_rows():
    from detection import extra_variants
    from participant_speed import default_heads
    from robustness import variants

    for path in default_heads():
        vol = load_head(path)
        plain = reconstruct_head(vol.data, vol.affine, vol.zooms)
        makers = {**variants(vol, plain.mask, plain.frame), **extra_variants(vol, plain.mask, plain.frame)}
        for name, make in makers.items():
            if name in SKIPPED:
                continue
            data, affine = make()
            img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, np.float32), affine))
            data = np.asarray(img.dataobj, np.float32)
            kind = "UNI" if "mp2rage" in name else "stored"
            yield path.name.split(".")[0], name, kind, measures(data)
            if name in INVERTED:
                yield path.name.split(".")[0], f"inverted-{name}", "inverted", measures(data.max() - data)


def cohort_rows(cohorts: list[Path]):
    for cohort in cohorts:
        for path in sorted(cohort.glob("bids*/sub-*/**/anat/*.nii*")):
            data = load_head(path).data
            yield cohort.name, path.name, "stored", measures(data)
            yield cohort.name, f"inverted-{path.name}", "inverted", measures(data.max() - data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", nargs="*", type=Path, default=[], help="simulated cohorts (facerisk-simulate)")
    ap.add_argument("--no-heads", action="store_true", help="only the cohorts")
    args = ap.parse_args(argv)
    rows = []
    sources = ([] if args.no_heads else [real_head_rows()]) + [cohort_rows(args.cohort)]
    print(f"{'source':28s} {'image':34s} {'kind':9s} {'median/p99.5':>12s} {'IQR/median':>10s}  inverted?")
    for source in sources:
        for who, name, kind, (ratio, spread, found) in source:
            rows.append((kind, ratio, spread, found))
            print(f"{who:28s} {name:34s} {kind:9s} {ratio:12.4f} {spread:10.4f}  {'yes' if found else 'no'}", flush=True)
    print(f"\nthresholds: inverted where median/p99.5 >= {MIN_INVERTED_AIR} and IQR/median <= {MAX_INVERTED_AIR_SPREAD}")
    for kind in ("UNI", "stored", "inverted"):
        sub = [r for r in rows if r[0] == kind]
        if not sub:
            continue
        ratios = [r[1] for r in sub if np.isfinite(r[1])]
        spreads = [r[2] for r in sub if np.isfinite(r[2])]
        print(f"{kind:9s} n={len(sub):4d}  median/p99.5 {min(ratios):.4f}-{max(ratios):.4f}  "
              f"IQR/median {min(spreads) if spreads else float('nan'):.4f}-{max(spreads) if spreads else float('nan'):.4f}  "
              f"recognised as inverted: {sum(r[3] for r in sub)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
