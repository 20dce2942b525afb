"""Time and memory of N participant processes running at once into one output_dir.

    python benchmarks/parallel_participants.py [--n 1 2 4] [--repeats 3]

Each process is `facerisk ... participant --participant-label <one>` on a
copy of a bundled demo head (10 renders), as SLURM array tasks on one node
would run. Prints, per N, the median wall time until all N finish, the
throughput (participants per minute) and the largest peak RSS of any process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAD = REPO / "data" / "demo" / "bids" / "sub-01" / "anat" / "sub-01_T1w.nii.gz"


def run_batch(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        bids_dir = Path(tmp) / "bids"
        for index in range(1, n + 1):
            anat = bids_dir / f"sub-{index:02d}" / "anat"
            anat.mkdir(parents=True)
            shutil.copy(HEAD, anat / f"sub-{index:02d}_T1w.nii.gz")
        (bids_dir / "dataset_description.json").write_text('{"Name": "bench", "BIDSVersion": "1.9.0"}')
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "bids_app", str(bids_dir), str(Path(tmp) / "out"),
                                   "participant", "--participant-label", f"{i:02d}", "--modality", "T1w",
                                   "--skip-bids-validator"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for i in range(1, n + 1)]
        peaks = []
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            if status != 0:
                raise RuntimeError(f"a participant process failed (status {status})")
            peaks.append(usage.ru_maxrss / 1024)
        return time.perf_counter() - start, max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; head {HEAD.name}; median of {args.repeats}")
    print(f"{'N':>3s} {'wall s':>8s} {'per min':>8s} {'max peak MB':>12s}")
    for n in args.n:
        runs = [run_batch(n) for _ in range(args.repeats)]
        wall = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs)
        print(f"{n:3d} {wall:8.1f} {60 * n / wall:8.1f} {peak:12.0f}")


if __name__ == "__main__":
    main()
