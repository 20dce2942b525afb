"""Command line: ``facerisk-simulate`` / ``python -m bids_app.simulate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cohort import simulate_cohort
from .settings import CONTRASTS, MODES


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
