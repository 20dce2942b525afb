"""Group-level scaling: the real group workflow on synthetic participant outputs.

For each size N, writes N synthetic participants in the documented layout
(``sub-*/anat/*_desc-faces_FLAIR.{npy,json}`` with 10 renders and
``sub-*/photo/*_desc-faces_photo.{npy,json}`` with 5 photos; 128-D unit
vectors: a per-person identity plus noise, so ranks are realistic), then
times ``run_group`` (loading, blocked ranking, verification, audits, TSV,
JSON, boilerplate, HTML report and per-participant pages) in a fresh
process and reports its peak resident memory. Writing the synthetic outputs
is not timed. No images are written (rows have no File), so thumbnails are
absent.

    python benchmarks/group_scale.py                 # 1000 10000 100000
    python benchmarks/group_scale.py 1000 10000      # chosen sizes
    python benchmarks/group_scale.py --limit-s 600 100000
    python benchmarks/group_scale.py --rank-fraction 1 100000   # rank all (hours)
    python benchmarks/group_scale.py --data /tmp/facerisk-scale       # write once, reuse

Target: 10k participants in at most 30 s; under 4 GB at 100k.

The ranking computes every photo-render similarity (5N x 10N dot products
of 128-D float32 vectors: 6.4e11 multiply-adds at 10k, 100 times that at
100k); everything else is linear in N. Above 20000 participants only a
fraction of the photos is ranked (``--rank-fraction``, against the whole
gallery, so memory is the real one) and the ranking time is extrapolated;
the table marks such times with ``~``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# the synthetic participant outputs are the tests' own (tests/helpers.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import PHOTOS, RENDERS, write_synthetic  # noqa: E402


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(out: Path, rank_fraction: float = 1.0) -> None:
    """In a child process: the group workflow, then time and peak memory as JSON lines.

    With ``rank_fraction < 1`` only the photos of that fraction of the
    participants are ranked (against the *whole* gallery, so the blocks and
    their memory are the real ones); the ranking time is extrapolated, every
    other step (loading, verification, TSV, JSON, report) runs in full.
    Progress lines (``{"progress": ...}``) are printed as the ranking goes,
    so that a run stopped by ``--limit-s`` still reports its memory and rate.
    """
    import logging

    import bids_app.rank as rank
    from bids_app.config import Settings
    from bids_app.workflows.group import run_group

    bids = out.parent / "bids"
    bids.mkdir(exist_ok=True)
    (bids / "dataset_description.json").write_text('{"Name": "synthetic", "BIDSVersion": "1.9.0"}')
    settings = Settings(bids_dir=bids, output_dir=out, analysis_level="group")
    timing = {"rank_s": 0.0, "ranked": 1.0}
    full_rank = rank.rank_gallery

    def timed_rank(probes, probe_person, n_persons, *args, **kw):
        t0 = time.perf_counter()
        done = [0, 1]

        def progress(n_done, total):
            done[:] = [n_done, total]
            print(json.dumps({"progress": n_done / total * timing["ranked"], "rank_s": time.perf_counter() - t0,
                              "peak_mb": _peak_mb(), "load": os.getloadavg()[0]}), flush=True)
        kw["progress"] = progress
        if rank_fraction < 1 and kw.get("identity_group") is None:
            keep = np.asarray(probe_person) < max(1, int(round(rank_fraction * n_persons)))
            timing["ranked"] = float(keep.mean())
            probes, probe_person = np.asarray(probes)[keep], np.asarray(probe_person)[keep]
        result = full_rank(probes, probe_person, n_persons, *args, **kw)
        timing["rank_s"] += time.perf_counter() - t0
        return result

    rank.rank_gallery = timed_rank
    logging.getLogger("facerisk").setLevel(logging.WARNING)
    start = time.perf_counter()
    summary = run_group(settings)
    elapsed = time.perf_counter() - start
    estimate = elapsed - timing["rank_s"] + timing["rank_s"] / timing["ranked"]
    print(json.dumps({"seconds": elapsed, "estimate": estimate, "ranked": timing["ranked"],
                      "rank_s": timing["rank_s"], "peak_mb": _peak_mb(), "load": os.getloadavg()[0],
                      "top1": summary["reidentification"]["top1"]["rate"],
                      "auc": summary["verification"]["auc"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--limit-s", type=float, default=None, help="give up a size after this many seconds")
    parser.add_argument("--rank-fraction", type=float, default=0.03,
                        help="above 20000 participants, rank the photos of this fraction of them against the "
                             "whole gallery and extrapolate the ranking time (1: rank all; default 0.03)")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic folders")
    parser.add_argument("--data", type=Path, default=None,
                        help="write the synthetic outputs once to DATA/n<N>/out and reuse them on later runs "
                             "(writing, and deleting, 200k small files takes minutes on some file systems)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-fraction", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args.child, args.child_fraction)
        return
    print(f"{'N':>7} {'probes':>7} {'renders':>8} {'write s':>7} {'group s':>8} {'rank s':>7} {'ranked':>6} "
          f"{'peak MB':>7} {'load':>5} {'top1':>6} {'AUC':>6}")
    previous = None
    for n in args.sizes:
        if args.data:
            tmp, out = None, args.data / f"n{n}" / "out"
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f"facerisk-scale-{n}-"))
            out = tmp / "out"
        t0 = time.perf_counter()
        if not (out / ".synthetic-complete").is_file():
            write_synthetic(out, n)
            (out / ".synthetic-complete").write_text(str(n))
        written = time.perf_counter() - t0
        fraction = args.rank_fraction if n > 20000 else 1.0
        try:
            child = subprocess.run([sys.executable, __file__, "--child", str(out), "--child-fraction", str(fraction)],
                                   capture_output=True, text=True, timeout=args.limit_s)
            stdout, failed = child.stdout, child.returncode
        except subprocess.TimeoutExpired as err:
            stdout = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            failed, child = None, None
        finally:
            if tmp is not None and not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
        if failed:
            print(child.stderr[-2000:], file=sys.stderr)
            raise SystemExit(failed)
        lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        if failed is None:  # stopped by --limit-s: memory so far, ranking rate from the progress lines
            last = lines[-1] if lines else {}
            rate = f"est. rank {last['rank_s'] / last['progress']:.0f} s" if last.get("progress") else ""
            print(f"{n:>7} {n * PHOTOS:>7} {n * RENDERS:>8} {written:>7.1f} {'>' + str(int(args.limit_s)):>8} "
                  f"{'':>7} {'':>6} {last.get('peak_mb', math.nan):>7.0f} {last.get('load', math.nan):>5.1f}  "
                  f"stopped; {rate}", flush=True)
            continue
        r = lines[-1]
        group = f"{r['seconds']:.1f}" if r["ranked"] >= 1 else f"~{r['estimate']:.0f}"
        print(f"{n:>7} {n * PHOTOS:>7} {n * RENDERS:>8} {written:>7.1f} {group:>8} {r['rank_s'] / r['ranked']:>7.1f} "
              f"{r['ranked']:>6.0%} {r['peak_mb']:>7.0f} {r['load']:>5.1f} {r['top1']:>6.3f} {r['auc']:>6.3f}",
              flush=True)
        if r["ranked"] < 1:
            print(f"{'':>7} group s estimated: {r['seconds']:.1f} s measured with {r['ranked']:.0%} of the photos "
                  f"ranked, ranking time scaled to all", flush=True)
        if previous:
            pn, ps = previous
            print(f"{'':>7} x{n / pn:.0f} participants -> x{r['estimate'] / ps:.1f} time "
                  f"(ranking is {PHOTOS}N x {RENDERS}N dot products: x{(n / pn) ** 2:.0f} expected for it)",
                  flush=True)
        previous = (n, r["estimate"])


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    main()
