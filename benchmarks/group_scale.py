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

Target: 10k participants in at most 30 s; under 4 GB at 100k.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM, RENDERS, PHOTOS = 128, 10, 5


def write_synthetic(out: Path, n: int, seed: int = 0, noise: float = 2.5) -> None:
    """N synthetic participants (10 renders, 5 photos, unit vectors) under ``out``."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset_description.json").write_text(json.dumps(
        {"Name": "synthetic", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
         "GeneratedBy": [{"Name": "facerisk"}]}))
    (out / "logs").mkdir(exist_ok=True)
    model = {"Name": "sface", "Files": {"recognizer": {"SHA256": "0" * 64}}, "Dimension": DIM}
    width = len(str(n))
    for i in range(n):
        label = f"{i + 1:0{width}d}"
        base = rng.normal(size=DIM)
        for kind, rows, folder, suffix in (("render", RENDERS, "anat", "FLAIR"), ("photo", PHOTOS, "photo", "photo")):
            v = (base + noise * rng.normal(size=(rows, DIM))).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            d = out / f"sub-{label}" / folder
            d.mkdir(parents=True, exist_ok=True)
            stem = f"sub-{label}_desc-faces_{suffix}"
            np.save(d / f"{stem}.npy", v)
            (d / f"{stem}.json").write_text(json.dumps(
                {"FaceModel": model, "Dimension": DIM,
                 "Rows": [{"Detected": True, "Score": 0.9} for _ in range(rows)]}))


def run_one(out: Path) -> None:
    """In a child process: the group workflow, then time and peak memory as JSON."""
    from bids_app.config import Settings
    from bids_app.workflows.group import run_group

    bids = out.parent / "bids"
    bids.mkdir(exist_ok=True)
    (bids / "dataset_description.json").write_text('{"Name": "synthetic", "BIDSVersion": "1.9.0"}')
    settings = Settings(bids_dir=bids, output_dir=out, analysis_level="group")
    start = time.perf_counter()
    summary = run_group(settings)
    elapsed = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": elapsed, "peak_mb": peak_kb / 1024,
                      "top1": summary["reidentification"]["top1"]["rate"],
                      "auc": summary["verification"]["auc"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--limit-s", type=float, default=None, help="give up a size after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic folders")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args.child)
        return
    print(f"{'N':>8} {'probes':>8} {'renders':>9} {'write s':>8} {'group s':>8} {'peak MB':>8} {'top1':>6} {'AUC':>6}")
    previous = None
    for n in args.sizes:
        tmp = Path(tempfile.mkdtemp(prefix=f"facerisk-scale-{n}-"))
        out = tmp / "out"
        t0 = time.perf_counter()
        write_synthetic(out, n)
        written = time.perf_counter() - t0
        try:
            child = subprocess.run([sys.executable, __file__, "--child", str(out)], capture_output=True,
                                   text=True, timeout=args.limit_s)
        except subprocess.TimeoutExpired:
            print(f"{n:>8} {n * PHOTOS:>8} {n * RENDERS:>9} {written:>8.1f} {'>' + str(int(args.limit_s)):>8}")
            continue
        finally:
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
        if child.returncode:
            print(child.stderr[-2000:], file=sys.stderr)
            raise SystemExit(child.returncode)
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{n:>8} {n * PHOTOS:>8} {n * RENDERS:>9} {written:>8.1f} {r['seconds']:>8.1f} "
              f"{r['peak_mb']:>8.0f} {r['top1']:>6.3f} {r['auc']:>6.3f}", flush=True)
        if previous:
            pn, ps = previous
            print(f"{'':>8} x{n / pn:.0f} participants -> x{r['seconds'] / ps:.1f} time")
        previous = (n, r["seconds"])


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    main()
