"""Run facerisk across the BIDS example datasets: a result or a clear error, never a traceback.

    python benchmarks/bids_examples.py [EXAMPLES_DIR] [--n-renders 2]

EXAMPLES_DIR defaults to ../shared/data/bids-examples (beside the checkout).
For each dataset: the participant level with the validator (expect a clear
refusal where image files are empty), then with --skip-bids-validator for
FLAIR and T1w (expect per-participant errors naming the file, or outputs),
then the group level. Prints one row per dataset and run; exits 1 if any run
printed a Python traceback or ended with an unexpected exit code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def facerisk(*args: str | Path) -> tuple[int, str, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bids_app", *map(str, args)],
                          capture_output=True, text=True, timeout=1800)
    return done.returncode, done.stderr, time.perf_counter() - start


def last_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "ERROR" in line or "error:" in line]
    return (lines[-1] if lines else stderr.strip().splitlines()[-1] if stderr.strip() else "")[:150]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("examples", nargs="?", type=Path,
                        default=REPO.parent / "shared" / "data" / "bids-examples")
    parser.add_argument("--n-renders", default="2")
    args = parser.parse_args()
    datasets = sorted(p for p in args.examples.iterdir() if (p / "dataset_description.json").is_file())
    bad = 0
    print(f"{'dataset':16s} {'run':28s} {'exit':>4s} {'sec':>6s}  outcome")
    for dataset in datasets:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            runs = [
                ("validate", ["participant", "--modality", "FLAIR", "T1w"], {0, 1, 2}),
                ("participant FLAIR+T1w", ["participant", "--skip-bids-validator", "--modality", "FLAIR",
                                           "T1w", "--n-renders", args.n_renders, "--nprocs", "2"], {0, 1}),
                ("group", ["group", "--modality", "FLAIR", "T1w"], {0, 2}),
            ]
            for name, extra, allowed in runs:
                code, stderr, seconds = facerisk(dataset, out, *extra)
                traceback = "Traceback" in stderr
                ok = code in allowed and not traceback
                bad += not ok
                failed = stderr.count("FAILED sub-")
                outcome = "TRACEBACK" if traceback else (
                    f"{failed} participant(s) failed; last: {last_error(stderr)}" if failed
                    else last_error(stderr) if code else "ok")
                print(f"{dataset.name:16s} {name:28s} {code:4d} {seconds:6.1f}  {'' if ok else '!! '}{outcome}")
    print(f"{len(datasets)} datasets, {bad} unexpected outcome(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
