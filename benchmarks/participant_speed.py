"""Participant-level speed and memory, per stage, median of several runs.

Each run is a fresh process that runs the participant workflow on one head
(10 renders, face detection and embedding included, photos excluded) and
prints its per-stage timings, then runs the same head once more in the same
process ("again": what each further participant of a multi-participant run
costs, once the libraries are imported and the renderer and models are
warm); this script measures the process's wall time (the second run taken
off) and peak resident memory (``ru_maxrss`` from ``os.wait4``).

    python benchmarks/participant_speed.py [--repeats 5] [--n-renders 10] [HEAD.nii.gz ...]

Without heads it uses the bundled demo heads (data/demo/bids) and, when
present, the extra heads in ../shared/data/heads.

The table has one column per stage the workflow records in
``ParticipantResult.stage_seconds`` (load, mask, surface, render, faces,
qc, and any stage added later) of the first run, then the whole
participant level (first run; the libraries it imports lazily, about a
second, are in it), the same again in the same process, the process's
wall time (start-up and model loading included) and its peak memory (of
both runs: a second participant adds little).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RUNNER = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from bids_app.cli.parser import parse_args
from bids_app import bids as bidsio
from bids_app.cli.run import model_threads
from bids_app.face import load_face_model
from bids_app.workflows.participant import run_participant
settings = parse_args([sys.argv[1], sys.argv[2], "participant", "--modality", "T1w",
                       "--n-renders", sys.argv[3], "--skip-bids-validator", "--force"])
bidsio.init_derivatives(settings.output_dir, settings.bids_dir)
layout = bidsio.load_layout(settings.bids_dir, validate=False)
model = load_face_model("sface", threads=model_threads(1))  # as the command loads it for one process
t1 = time.perf_counter()
result = run_participant("01", layout, settings, [model])
again = run_participant("01", layout, settings, [model])  # the same head again, in the same process
print(json.dumps({"startup": t1 - t0, "participant": result.seconds, "again": again.seconds,
                  **result.stage_seconds, "n_renders": result.renders, "n_faces": result.renders_with_face}))
"""


def default_heads() -> list[Path]:
    heads = sorted((REPO / "data" / "demo" / "bids").glob("sub-*/anat/*_T1w.nii.gz"))
    shared = REPO.parent / "shared" / "data" / "heads"
    if shared.is_dir():
        heads += sorted(shared.glob("*.nii.gz"))
    return heads


#: Stages in workflow order; stages the workflow records beyond these are added after them.
STAGES = ["load", "mask", "surface", "render", "faces", "qc"]
#: Keys of a run's record that are not stages.
NOT_STAGES = {"startup", "participant", "again", "n_renders", "n_faces", "wall", "peak_mb"}


def one_run(head: Path, n_renders: int) -> dict:
    """Run the participant level on ``head`` in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        bids_dir = Path(tmp) / "bids"
        (bids_dir / "sub-01" / "anat").mkdir(parents=True)
        (bids_dir / "dataset_description.json").write_text('{"Name": "bench", "BIDSVersion": "1.9.0"}')
        shutil.copy(head, bids_dir / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
        log = Path(tmp) / "stderr.txt"
        start = time.perf_counter()
        with open(log, "w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-c", RUNNER, str(bids_dir), str(Path(tmp) / "out"), str(n_renders)],
                stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if status != 0:
            raise RuntimeError(f"{head.name}: benchmark run failed (status {status}):\n{log.read_text()[-2000:]}")
        record = json.loads(out.strip().splitlines()[-1])
        record["wall"] = wall - record["again"]  # the process as if it had stopped after the first run
        record["peak_mb"] = usage.ru_maxrss / 1024  # kB on Linux
        return record


def stage_names(runs: list[dict]) -> list[str]:
    """The stages recorded in ``runs``: :data:`STAGES` first, then any others."""
    recorded = {key for run in runs for key in run if key not in NOT_STAGES}
    return [s for s in STAGES if s in recorded] + sorted(recorded - set(STAGES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("heads", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-renders", type=int, default=10)
    args = parser.parse_args()
    heads = args.heads or default_heads()
    print(f"participant level, {args.n_renders} renders, median of {args.repeats} runs (seconds; MB)")
    summary = []
    stages: list[str] = []
    for head in heads:
        runs = [one_run(head, args.n_renders) for _ in range(args.repeats)]
        if not stages:  # the columns: what the first head's runs recorded
            stages = stage_names(runs)
            print(f"{'head':34s} " + " ".join(f"{s:>7s}" for s in stages)
                  + f" {'particip':>8s} {'again':>7s} {'process':>8s} {'peakMB':>7s} {'faces':>6s}")
        med = {key: statistics.median(r.get(key, 0.0) for r in runs)
               for key in [*stages, "participant", "again", "wall", "peak_mb"]}
        faces = f"{runs[0]['n_faces']}/{runs[0]['n_renders']}"
        name = head.name.replace(".nii.gz", "")[:34]
        print(f"{name:34s} " + " ".join(f"{med[s]:7.2f}" for s in stages)
              + f" {med['participant']:8.2f} {med['again']:7.2f} {med['wall']:8.2f} {med['peak_mb']:7.0f} {faces:>6s}", flush=True)
        summary.append(med)
    print(f"median over heads: participant {statistics.median(m['participant'] for m in summary):.2f} s "
          f"(first in its process), {statistics.median(m['again'] for m in summary):.2f} s (again, same process), "
          f"process wall {statistics.median(m['wall'] for m in summary):.2f} s, "
          f"peak {statistics.median(m['peak_mb'] for m in summary):.0f} MB")


if __name__ == "__main__":
    main()
