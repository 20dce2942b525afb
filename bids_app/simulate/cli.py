"""Command line: ``facerisk-simulate`` / ``python -m bids_app.simulate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cohort import simulate_cohort
from .deface import DEFACE_METHODS
from .settings import CONTRASTS, MODES


def _methods(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    bad = [n for n in names if n not in DEFACE_METHODS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"{value!r}: choose among {','.join(DEFACE_METHODS)} (comma-separated)")
    return names


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
    p.add_argument("--deface", nargs="?", const="mask", default=None, choices=DEFACE_METHODS,
                   help="de-identify OUT_DIR/bids itself: mask (the default without a value: "
                        "every face voxel zeroed, like pydeface), plane (a shear cut fitted to "
                        "the brain, like quickshear) or reface (a template face pasted over each "
                        "face, like mri_reface)")
    p.add_argument("--with-defaced", action="store_true",
                   help="also write OUT_DIR/bids_defaced (same scans, face removed with mask)")
    p.add_argument("--deface-methods", type=_methods, default=(), metavar="M[,M]",
                   help="also write OUT_DIR/bids_defaced-<M> for each of these methods "
                        f"({','.join(DEFACE_METHODS)}): the same scans de-identified each way, "
                        "e.g. --deface-methods mask,plane,reface")
    p.add_argument("--reface-template", type=Path, default=None, metavar="IMAGE",
                   help="head whose face reface pastes (default: the first demo head, "
                        "data/demo/bids/sub-01; e.g. data/demo/bids/sub-04, pydeface's mean head, "
                        "for an average face like mri_reface's)")
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


def _deface_value(argv: list[str]) -> list[str]:
    """``--deface`` without a value followed by a positional (``--deface OUT``): ``--deface=mask``,
    so the older boolean flag keeps working before the output folder."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--deface" and (i + 1 == len(out) or out[i + 1] not in DEFACE_METHODS):
            out[i] = "--deface=mask"
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (``facerisk-simulate``)."""
    args = _parser().parse_args(_deface_value(sys.argv[1:] if argv is None else list(argv)))
    if args.n < 1 or args.spread < 0 or args.photos[0] < 1 or args.photos[1] < args.photos[0]:
        _parser().error("need --n >= 1, --spread >= 0, 1 <= --photos MIN <= MAX")
    try:
        res = simulate_cohort(args.out_dir, args.n, args.seed, contrast=args.contrast,
                              heads=args.heads, deface=args.deface or False,
                              with_defaced=args.with_defaced, deface_methods=args.deface_methods,
                              spread=args.spread, nprocs=args.nprocs, photos=tuple(args.photos),
                              mode=args.mode, template=args.reface_template)
    except (FileNotFoundError, ValueError) as err:
        print(f"facerisk-simulate: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} participants in {res['seconds']:.1f} s: {res['bids']} "
          f"(photos: {res['photos']}, truth: {Path(res['out']) / 'truth.tsv'})")
    return 0
