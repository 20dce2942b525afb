#!/usr/bin/env python
"""How close the air of scans without ghosts comes to a ghost: the margin of ``MIN_CORRELATION``.

For each scan (the real heads by default, or every ``sub-*/anat/*.nii.gz`` of
the BIDS folders given), :func:`bids_app.mri.ghosts.find_ghosts` is run with
its thresholds off to get the fit of every shift, and again as the App runs
it. Prints, per source, the scans in which a ghost is kept and the
distribution of the best correlation of any shift (median, 99th percentile,
maximum), to compare with ``MIN_CORRELATION`` (0.7; the ghosts of
``augment.add_ghost`` at 20-40% fit at 0.81-0.99).

    python benchmarks/ghosts.py                       # the 8 real heads (demo + ../shared)
    python benchmarks/ghosts.py COHORT/bids COHORT/bids_defaced
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bids_app.mri import ghosts, load_head  # noqa: E402
from participant_speed import default_heads  # noqa: E402  (demo heads + ../shared)


def best_fit(path: Path) -> tuple[float, bool, float]:
    """The best correlation of any shift, whether the App keeps a ghost, and its search's seconds."""
    data, _, zooms = load_head(path)
    start = time.perf_counter()
    kept = bool(ghosts.find_ghosts(data, zooms))
    seconds = time.perf_counter() - start
    saved = ghosts.MIN_AMPLITUDE, ghosts.MIN_CORRELATION
    ghosts.MIN_AMPLITUDE, ghosts.MIN_CORRELATION = -np.inf, -np.inf
    try:
        fits = ghosts.find_ghosts(data, zooms)
    finally:
        ghosts.MIN_AMPLITUDE, ghosts.MIN_CORRELATION = saved
    return max((g.correlation for g in fits), default=float("nan")), kept, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bids", nargs="*", type=Path, help="BIDS folders (default: the real heads)")
    args = ap.parse_args(argv)
    sources = {str(b): sorted(b.glob("sub-*/anat/*.nii*")) for b in args.bids} or {"real heads": default_heads()}
    for name, files in sources.items():
        fits = [best_fit(f) for f in files]
        best = np.array([f for f, _, _ in fits])
        seconds = [t for _, _, t in fits]
        print(f"{name}: {len(files)} scans, ghosts kept in {sum(k for _, k, _ in fits)}; best correlation of "
              f"any shift: median {np.nanmedian(best):.2f}, 99th percentile {np.nanpercentile(best, 99):.2f}, "
              f"max {np.nanmax(best):.2f} (threshold {ghosts.MIN_CORRELATION}); search {np.median(seconds):.2f} s "
              f"median ({min(seconds):.2f}-{max(seconds):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
