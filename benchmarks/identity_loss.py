#!/usr/bin/env python
"""Where the identity goes: the cohort's scans again, one acquisition factor switched off.

A cohort written by ``facerisk-simulate`` (typically ``--mode hard``) is
scanned again with the same participants (the same faces, poses and noise
draws) but one factor of the acquisition switched off, and the participant
level is run on each such dataset against the cohort's own photos. Per
variant it prints top-1 / top-5 (NEJM scoring, Wilson 95% intervals) and
the identity margin retention of ``benchmarks/accuracy.py`` (the render
side's identity margin over the photos' own, bootstrap 95% interval): the
rise over the full acquisition is what that factor costs.

Variants:

- ``full``: the cohort's own scans (``COHORT/bids``), as scanned;
- ``slices``: in-plane voxel size on all three axes (no thick slices);
- ``dim``: no dim lower face (hard mode);
- ``pads``: no pads pressing the cheeks and none visible;
- ``noise``: no Rician noise;
- ``all``: all of the above and no bias field, so what is left is the
  reconstruction and the render-to-photo gap.

Usage::

    facerisk-simulate COHORT --n 50 --seed 1 --mode hard
    python benchmarks/identity_loss.py COHORT --work WORK [--variants full slices dim pads noise all]

Each variant costs a simulation and a participant level run (3-9 min each
for 50 participants on this 2-core machine, shared; README "Where the hard mode loses identity").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402  (the margins and top-k of the accuracy benchmark)

VARIANTS = ["full", "slices", "dim", "pads", "noise", "all"]


def switched_off(part, variant: str):
    """A copy of the participant ``part`` with the acquisition factor ``variant`` switched off."""
    part = dataclasses.replace(part, hard=dict(part.hard))
    if variant in ("slices", "all"):
        part.voxel_size = (part.voxel_size[0],) * 3
        if "slice_mm" in part.hard:
            part.hard["slice_mm"] = part.voxel_size[0]
    if variant in ("dim", "all") and part.hard:
        part.hard["dim_lower_face"] = 0
    if variant in ("pads", "all"):
        part.pad_press_mm = (0.0, 0.0)
        part.pad_visible = 0.0
    if variant in ("noise", "all"):
        part.noise = 0.0
    if variant == "all":
        part.bias_coefs = [0.0] * len(part.bias_coefs)
    return part


def participants(cohort: Path):
    """The cohort's participants, drawn again from its truth.json (deterministic in seed and index)."""
    from bids_app.simulate.heads import default_heads, find_heads
    from bids_app.simulate.participant import sample_participant

    truth = json.loads((cohort / "truth.json").read_text())
    heads = [Path(h) for h in truth.get("heads", [])]
    heads = find_heads(heads) if heads and all(h.is_file() for h in heads) else default_heads()
    n, width = int(truth["n"]), max(2, len(str(int(truth["n"]))))
    parts = [sample_participant(i, int(truth["seed"]), heads, contrast=truth["contrast"],
                                spread=float(truth["spread"]), label=f"{i + 1:0{width}d}",
                                mode=truth.get("mode", "default")) for i in range(n)]
    for part, row in zip(parts, truth["participants"]):  # the cohort is the one on disk
        if {k: part.row()[k] for k in ("participant_id", "noise", "voxel_size")} != {
                k: row[k] for k in ("participant_id", "noise", "voxel_size")}:
            raise SystemExit(f"{cohort}: participant {row['participant_id']} is not drawn again the same")
    return truth, parts


def scan(parts, variant: str, bids_dir: Path, contrast: str) -> None:
    from bids_app.simulate.cohort import simulate_participant

    bids_dir.mkdir(parents=True, exist_ok=True)
    (bids_dir / "dataset_description.json").write_text(
        json.dumps({"Name": f"identity loss: {variant} off", "BIDSVersion": "1.9.0"}))
    for part in parts:
        if not (bids_dir / f"sub-{part.label}" / "anat" / f"sub-{part.label}_{contrast}.nii.gz").is_file():
            simulate_participant(switched_off(part, variant), bids_dir, None)


def measure(deriv: Path, contrast: str, bases: dict[str, str]) -> dict:
    """Top-1/top-5 and margin retention of the participants ``bases`` (label -> base head)."""
    subjects = sorted(bases)
    gallery, photos, _ = accuracy.load_embeddings(deriv, subjects, contrast, "sface")
    top = accuracy.metrics(gallery, photos, subjects, bases, 10)
    m = accuracy.identity_margins(gallery, photos, subjects)
    return {**top, "retention": accuracy.margin_retention(m["m_render"], m["m_photo"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cohort", type=Path, help="a cohort folder written by facerisk-simulate")
    ap.add_argument("--work", type=Path, required=True, help="where the variants are written")
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=VARIANTS)
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--limit", type=int, help="only the first N participants (a quick check)")
    args = ap.parse_args(argv)
    truth, parts = participants(args.cohort)
    parts = parts[: args.limit] if args.limit else parts
    labels = [p.label for p in parts]
    bases = {row["participant_id"][4:]: row["base_head"] for row in truth["participants"]
             if row["participant_id"][4:] in labels}
    contrast = truth["contrast"]
    rows = []
    for variant in args.variants:
        start = time.perf_counter()
        deriv = args.work / variant / "derivatives"
        if variant == "full":
            bids = args.cohort / "bids"
        else:
            bids = args.work / variant / "bids"
            scan(parts, variant, bids, contrast)
        # the participant level resumes: participants already done are not run again
        cmd = [sys.executable, "-m", "bids_app", str(bids), str(deriv), "participant",
               "--photos-dir", str(args.cohort / "photos"), "--modality", contrast,
               "--nprocs", str(args.nprocs), "--n-renders", "10", "--face-model", "sface",
               "--skip-bids-validator", "--participant-label", *labels]
        deriv.parent.mkdir(parents=True, exist_ok=True)
        with open(deriv.parent / "participant.log", "a") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
        r = measure(deriv, contrast, bases)
        ret = r["retention"]
        line = (f"{variant:7s} off  top1 {100 * r['top1']:5.1f}% ({100 * r['top1_ci'][0]:.0f}-"
                f"{100 * r['top1_ci'][1]:.0f})  top5 {100 * r['top5']:5.1f}% ({100 * r['top5_ci'][0]:.0f}-"
                f"{100 * r['top5_ci'][1]:.0f})  retention {ret['retention']:.2f} ({ret['ci'][0]:.2f}-"
                f"{ret['ci'][1]:.2f}, n={ret['n']})  renders with a face {100 * r['detection']:.1f}%  "
                f"({time.perf_counter() - start:.0f} s)")
        print(line.replace("full    off", "full (as scanned)"), flush=True)
        rows.append({"variant": variant, **r})
    (args.work / "results.json").write_text(json.dumps(rows, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
