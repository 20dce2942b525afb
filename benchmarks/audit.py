#!/usr/bin/env python
"""MRI-only audit: how often each image gets the right verdict (face, partial, removed, replaced).

Runs the participant and group levels (the ``facerisk`` command) on

- simulated cohorts (``facerisk-simulate --deface-methods mask,plane,reface``,
  default and ``--mode hard``): one dataset intact (truth ``face``) and one
  per method, the same participants and noise: ``mask`` and ``plane``
  (truth ``removed``) and ``reface`` (truth ``replaced``; the simulator
  pastes the face of one demo head, see :mod:`bids_app.simulate.deface`);
  each dataset is one group run;
- the real heads of ``../shared/data/heads`` beside the checkout (``--heads``), one
  participant per head and one acquisition per alteration (the audit never
  compares one participant's faces): intact (``face``; Colin27, whose field
  of view ends at the nose, ``partial``), intact with a false defacing claim
  in its sidecar (the same; must be flagged "claims de-identification but
  shows a face"), mask defacing (:func:`bids_app.mri.augment.deface`),
  skull stripping and the simulator's quickshear-like plane (``removed``),
  the field of view cut 12 mm and 20 mm below the nose tip (``partial``: eyes
  and nose; at 20 mm the upper lip at most, the mouth corners are about
  30 mm below the tip), refacing with pydeface's mean head, claimed as mri_reface
  (``replaced``),

and prints the confusion table of truth against verdict per method, the
claims checked, and (``--measure``) the distributions the thresholds of
:mod:`bids_app.audit` come from: per-render feature measures, the
similarity of each face to the nearest other participant's and to the
known template face.

Usage (dev seeds 0, 1, 2; a held-out seed is run once, for the final table, with the code
committed: 777, 5151 and 8086 have been used and are no longer held out)::

    python benchmarks/audit.py --work /tmp/audit --seed 0 --n 12 --modes default hard \\
        --methods none mask plane reface --measure
    python benchmarks/audit.py --work /tmp/audit --heads --measure
    python benchmarks/audit.py --work /tmp/audit --seed 0 --regroup  # the group level again, new thresholds
    python benchmarks/audit.py --work /tmp/audit --make-templates    # bids_app/audit_templates.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bids_app import audit  # noqa: E402
from detection import percentiles_text  # noqa: E402

HEADS = REPO.parent / "shared" / "data" / "heads"  # beside the checkout, as in participant_speed.py
#: Real heads whose field of view ends below the nose (no mouth): intact, their truth is ``partial``.
NO_MOUTH_HEADS = ("colin27",)
#: The face pasted by the real heads' refacing, and the known template of ``--make-templates``:
#: pydeface's mean head (a face of no one, as refacing tools use).
MEAN_HEAD = REPO / "data" / "demo" / "bids" / "sub-04" / "anat" / "sub-04_T1w.nii.gz"
TRUTH_OF_METHOD = {"none": "face", "mask": "removed", "plane": "removed", "reface": "replaced"}


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _run(cmd: list[str], log: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(log, "a") as handle:
        subprocess.run(cmd, check=True, stdout=handle, stderr=subprocess.STDOUT, env=env)


def run_facerisk(bids: Path, out: Path, modality: str, regroup: bool = False) -> None:
    """Participant and group levels (skipped when the group outputs are there; ``regroup``:
    the group level again, e.g. after a change of the audit's thresholds)."""
    done = (out / "group_desc-images.tsv").is_file()
    if done and not regroup:
        return
    log = out.with_suffix(".log")
    for level in ("group",) if done else ("participant", "group"):
        _run([_bin("facerisk"), str(bids), str(out), level, "--modality", modality, "--skip-bids-validator"], log)


def read_tsv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


# ----------------------------------------------------------------------------- simulated cohorts


def _cohort_truth(folder: Path, method: str) -> dict[str, str]:
    """participant_id -> true verdict: that of the method (:data:`TRUTH_OF_METHOD`)."""
    truth = {}
    path = folder / "truth.tsv"
    rows = read_tsv(path) if path.is_file() else []
    for row in rows:
        pid = row.get("participant_id") or f"sub-{row.get('label')}"
        truth[pid] = TRUTH_OF_METHOD[method]
    return truth


def simulated(work: Path, seed: int, n: int, modes: list[str], methods: list[str], nprocs: int = 1,
              regroup: bool = False) -> list[dict]:
    """One simulated cohort per mode, written intact and de-identified with each method
    (``facerisk-simulate --deface-methods``: the same participants and noise), one facerisk run each."""
    cases = []
    for mode in modes:
        folder = work / f"seed{seed}-{mode}"
        defaced = [m for m in methods if m != "none"]
        if not (folder / "truth.tsv").is_file():
            cmd = [_bin("facerisk-simulate"), str(folder), "--n", str(n), "--seed", str(seed), "--mode", mode,
                   "--photos", "1", "1", "--nprocs", str(nprocs)]
            if defaced:
                cmd += ["--deface-methods", ",".join(defaced)]
            _run(cmd, work / f"seed{seed}-{mode}.simlog")
        contrast = json.loads((folder / "truth.json").read_text()).get("contrast", "FLAIR")
        for method in methods:
            bids = folder / ("bids" if method == "none" else f"bids_defaced-{method}")
            out = folder / f"out-{method}"
            run_facerisk(bids, out, contrast, regroup)
            truth = _cohort_truth(folder, method)
            for row in read_tsv(out / "group_desc-images.tsv"):
                cases.append({"set": f"sim-{mode}", "method": method, "truth": truth[row["participant_id"]],
                              "claimed_true": method != "none", "out": out, **row})
    return cases


# ----------------------------------------------------------------------------- real heads


def _frame(data, affine):
    from bids_app.mri import reconstruct_head

    zooms = np.sqrt((affine[:3, :3] ** 2).sum(0))
    return reconstruct_head(data, affine, tuple(zooms))


def write_heads_dataset(bids: Path) -> dict[str, tuple[str, str, bool]]:
    """A BIDS dataset of the real heads with alterations (``sub-h<N>_acq-<alteration>_T1w``);
    image name -> (alteration, true verdict, claims de-identification)."""
    import nibabel as nib

    from bids_app.mri import augment, load_head
    from bids_app.simulate import deface as sim_deface
    from bids_app.simulate.heads import load_base

    truth: dict[str, tuple[str, str, bool]] = {}
    if (bids / "truth.json").is_file():
        return {k: tuple(v) for k, v in json.loads((bids / "truth.json").read_text()).items()}
    bids.mkdir(parents=True, exist_ok=True)
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "real heads altered", "BIDSVersion": "1.9.0"}))
    claim = {"DeidentificationMethod": ["pydeface 2.0.2"],
             "DeidentificationMethodCodeSequence": [dict(sim_deface.CLEAN_VISUAL_FEATURES)]}
    template = load_base(MEAN_HEAD)
    if not HEADS.is_dir():
        raise SystemExit(f"--heads: no folder {HEADS} (the real heads beside the checkout)")
    for h, path in enumerate(sorted(HEADS.glob("*.nii*"))):
        vol = load_head(path)
        head = _frame(vol.data, vol.affine)
        f = head.frame
        base = load_base(path)
        face, _ = sim_deface.template_in_base(template, base)
        variants = {
            "intact": ((vol.data, vol.affine), "face", {}),
            "falseclaim": ((vol.data, vol.affine), "face", claim),
            "mask": (augment.deface(vol.data, vol.affine, f.nose_tip, f.anterior, f.superior), "removed", claim),
            "skullstrip": (augment.skull_strip(vol.data, vol.affine, head.mask, floor_z=float(f.nose_tip[2])),
                           "removed", {"DeidentificationMethod": ["skull-stripped (BET)"]}),
            "belownose": (augment.cut_below(vol.data, vol.affine, float(f.nose_tip[2]) - 12.0), "partial", {}),
            "belownose20": (augment.cut_below(vol.data, vol.affine, float(f.nose_tip[2]) - 20.0), "partial", {}),
            "plane": ((np.where(sim_deface.plane_region(base), 0, base.data).astype(np.float32), base.affine),
                      "removed", claim),
            "reface": ((sim_deface.reface_head(base.data, base, face), base.affine), "replaced",
                       {"DeidentificationMethod": ["mri_reface 0.3.3"]}),
        }
        if path.name.startswith(NO_MOUTH_HEADS):
            for name in ("intact", "falseclaim"):
                variants[name] = (variants[name][0], "partial", variants[name][2])
        for name, ((data, affine), verdict, meta) in variants.items():
            # one participant per head, one acquisition per alteration: the audit never compares
            # the faces of one participant, so the copies of one head are not taken for refacing
            stem = f"sub-h{h}_acq-{name}_T1w"
            anat = bids / f"sub-h{h}" / "anat"
            anat.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), anat / f"{stem}.nii.gz")
            (anat / f"{stem}.json").write_text(json.dumps(meta))
            truth[stem] = (name, verdict, bool(meta))
    (bids / "truth.json").write_text(json.dumps(truth))
    return truth


def real_heads(work: Path, regroup: bool = False) -> list[dict]:
    bids = work / "heads" / "bids"
    truth = write_heads_dataset(bids)
    out = work / "heads" / "out"
    run_facerisk(bids, out, "T1w", regroup)
    cases = []
    for row in read_tsv(out / "group_desc-images.tsv"):
        method, verdict, claimed = truth[row["image"]]
        cases.append({"set": "real heads", "method": method, "truth": verdict, "claimed_true": claimed,
                      "out": out, **row})
    return cases


# ----------------------------------------------------------------------------- printing


def confusion(cases: list[dict]) -> None:
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for c in cases:
        by[(c["set"], c["method"])].append(c)
    print("confusion: truth x verdict per set and method (verdicts: face partial removed replaced)")
    print(f"  {'set':14s} {'method':11s} {'truth':9s} {'n':>3s}  face partial removed replaced   right")
    right_all = n_all = 0
    for (name, method), rows in sorted(by.items()):
        for truth in audit.VERDICTS:
            sub = [r for r in rows if r["truth"] == truth]
            if not sub:
                continue
            counts = [sum(r["verdict"] == v for r in sub) for v in audit.VERDICTS]
            right = sum(r["verdict"] == truth for r in sub)
            if truth != "partial":
                right_all += right
                n_all += len(sub)
            print(f"  {name:14s} {method:11s} {truth:9s} {len(sub):3d}  " + " ".join(f"{c:4d}" for c in counts)
                  + f"   {right}/{len(sub)}")
    print(f"  right among face/removed/replaced truths: {right_all}/{n_all}"
          f" = {100.0 * right_all / max(n_all, 1):.1f}%")
    partial_rows = [c for c in cases if c["verdict"] == "partial"]
    print(f"  partial verdicts: {len(partial_rows)}, of which truth partial: "
          f"{sum(c['truth'] == 'partial' for c in partial_rows)}; by truth: "
          + ", ".join(f"{t} {sum(c['truth'] == t for c in partial_rows)}" for t in audit.VERDICTS))
    claimed_face = [c for c in cases if c["claimed_true"] and c["truth"] in ("face", "partial")]
    flagged = [c for c in claimed_face if c["verdict"] in ("face", "partial")]
    print(f"claims checked: images claiming de-identification that still show a face (truth): "
          f"{len(claimed_face)}, flagged {len(flagged)}")
    wrong = [c for c in cases if c["verdict"] != c["truth"]]
    if wrong:
        print("wrong verdicts:")
        for c in wrong:
            print(f"  {c['set']} {c['method']} {c['image']}: truth {c['truth']}, verdict {c['verdict']} "
                  f"({c['confidence']}); {c['evidence']}")


def _sidecar(case: dict) -> dict:
    stem = case["image"].rsplit("_", 1)[0]
    path = next(Path(case["out"]).glob(f"{case['participant_id']}/**/anat/{stem}_desc-faces_{case['suffix']}.json"))
    return json.loads(path.read_text())


def measure(cases: list[dict]) -> None:
    """Distributions behind the thresholds, per true verdict (and, for similarity, per method)."""
    feats: dict[tuple[str, str], list[float]] = defaultdict(list)
    sims: dict[str, list[float]] = defaultdict(list)
    templ: dict[str, list[float]] = defaultdict(list)
    mouths: dict[str, list[tuple[int, int, float | None, bool]]] = defaultdict(list)
    for c in cases:
        side = _sidecar(c)
        rows = side["Rows"]
        key = f"{c['truth']}/{c['method']}"
        counts = audit.scan_counts(rows, audit.profile_array(side.get("FaceProfile")), True)
        mouths[f"{c['set']} {key}"].append((counts.mouth, counts.renders, counts.mouth_skin,
                                            bool((side.get("FacePresence") or {}).get("FacePresent"))))
        for row in rows:
            fe = row.get("Features")
            if not fe:
                continue
            for name in ("EyeLeft", "EyeRight", "Nose", "Mouth"):
                feats[(key, f"flat {name}")].append(fe["Flat"].get(name))
                feats[(key, f"seen {name}")].append(fe["Seen"].get(name))
            feats[(key, "face flat")].append(fe.get("FaceFlat"))
            relief = row.get("NoseReliefMm") if row.get("Detected") else fe.get("NoseReliefMm")
            feats[(key, "relief mm")].append(relief)
        if c["nearest_similarity"] not in ("n/a", ""):
            sims[f"{c['set']} {c['truth']}/{c['method']}"].append(float(c["nearest_similarity"]))
        if c["template_similarity"] not in ("n/a", ""):
            templ[f"{c['set']} {c['truth']}/{c['method']}"].append(float(c["template_similarity"]))
    print("per-render measures of the detection that counts (or the best rejected one): "
          "percentiles 0 1 5 50 95 99 100")
    for (key, what), values in sorted(feats.items()):
        print(f"  {key:20s} {what:14s} {percentiles_text(values, '5.2f')}")
    print(f"per scan: renders with the mouth (k of n) and the 3D profile's mouth-box skin fraction "
          f"(the mouth is vetoed under {audit.MOUTH_SKIN_FRACTION:g} unless found in "
          f"{audit.MOUTH_RENDERS_KEEP:g} of the renders); scans with a face decided")
    for key, values in sorted(mouths.items()):
        faces = [v for v in values if v[3]]
        if not faces:
            continue
        k = [m / n for m, n, _, _ in faces if n]
        skin = [s for _, _, s, _ in faces if s is not None]
        low = sorted(f"{m}/{n}:{s:.2f}" for m, n, s, _ in faces if s is not None and s < audit.MOUTH_SKIN_FRACTION)
        print(f"  {key:32s} mouth fraction {percentiles_text(k, '5.2f')}")
        print(f"  {'':32s} mouth skin     {percentiles_text(skin, '5.2f')}")
        if low:
            print(f"  {'':32s} skin under the veto (k/n:skin): {' '.join(low)}")
    print(f"similarity of each image's face to the nearest other participant's (a cluster from "
          f"{audit.CLUSTER_SIMILARITY:g}):")
    for key, values in sorted(sims.items()):
        print(f"  {key:32s} {percentiles_text(values, '5.2f')}")
    print(f"similarity of each image's face to the known template face (replaced from "
          f"{audit.TEMPLATE_SIMILARITY:g}):")
    for key, values in sorted(templ.items()):
        print(f"  {key:32s} {percentiles_text(values, '5.2f')}")


def make_templates(work: Path) -> None:
    """Write ``bids_app/audit_templates.json``: the mean sface embedding of the template head
    (pydeface's mean head, ``data/demo`` sub-04, :data:`MEAN_HEAD`), from
    the participant level with default settings."""
    import shutil

    bids = work / "template" / "bids"
    anat = bids / "sub-04" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    shutil.copy(MEAN_HEAD, anat / "sub-04_T1w.nii.gz")
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "template", "BIDSVersion": "1.9.0"}))
    out = work / "template" / "out"
    _run([_bin("facerisk"), str(bids), str(out), "participant", "--modality", "T1w", "--skip-bids-validator"],
         work / "template" / "run.log")
    side = json.loads((out / "sub-04" / "anat" / "sub-04_desc-faces_T1w.json").read_text())
    vectors = np.load(out / "sub-04" / "anat" / "sub-04_desc-faces_T1w.npy")
    mean = audit.mean_embedding(vectors)
    data = {"Description": "Mean MRI-face embeddings of template faces that refacing tools paste, one per face "
                           "model (written by benchmarks/audit.py --make-templates: the participant level on "
                           "the head, default settings, mean of the renders with a face)",
            "Models": {"sface": {"Recognizer": side["FaceModel"]["Files"]["recognizer"], "Templates": [
                {"Name": "pydeface mean head (mean_reg2mean.nii.gz; data/demo sub-04)",
                 "RendersWithFace": int(np.isfinite(vectors).all(axis=1).sum()),
                 "Embedding": [round(float(v), 6) for v in mean]}]}}}
    audit.TEMPLATES_FILE.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {audit.TEMPLATES_FILE}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--seed", type=int, action="append", default=[])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--modes", nargs="+", default=["default", "hard"])
    parser.add_argument("--methods", nargs="+", default=["none", "mask", "plane", "reface"])
    parser.add_argument("--heads", action="store_true", help="real heads with alterations")
    parser.add_argument("--measure", action="store_true", help="print the distributions behind the thresholds")
    parser.add_argument("--nprocs", type=int, default=1, help="participants simulated in parallel")
    parser.add_argument("--regroup", action="store_true",
                        help="rerun the group level on existing outputs (after a change of thresholds)")
    parser.add_argument("--make-templates", action="store_true",
                        help="write bids_app/audit_templates.json (the known template faces) and stop")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.make_templates:
        make_templates(args.work)
        return 0
    cases = []
    for seed in args.seed:
        cases += simulated(args.work, seed, args.n, args.modes, args.methods, args.nprocs, args.regroup)
    if args.heads:
        cases += real_heads(args.work, args.regroup)
    if args.measure:
        measure(cases)
    confusion(cases)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
