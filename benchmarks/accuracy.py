#!/usr/bin/env python
"""Accuracy of facerisk on simulated cohorts (``bids_app.simulate``).

For each contrast, one cohort of ``max(--sizes)`` simulated participants is
written (participants depend only on (seed, index), so the first 20 of a
cohort of 50 *are* the cohort of 20: smaller sizes are prefixes), then
``facerisk participant`` runs once with ``max(--renders)`` renders and all
``--models`` (fusion mode embeds every render with every model), and
``facerisk group`` once. Top-1 / top-5 (Wilson 95% intervals), chance, face
detection on renders and ranks split by impostor kind are computed from
the participant outputs for every size, model and renders count (the
first k of facerisk's seeded render views do not depend on the total, so
the first k rows are what ``--n-renders k`` would give). With ``--deface``
the same cohort defaced (plane cut) is run as well.

Split by impostor kind: participants made from the same base head share
much of their face; "same-base" is the rank of the true MRI among the true
and the same-base impostors only, "other-base" among the true and the
impostors made from other heads only. Top-1 against same-base impostors is
the harder, identity-only test.

What it measures: the robustness of the MRI-to-face pipeline (pose, grid,
contrast, noise, bias, pads) and how well face recognition separates
identities in renders of reconstructed surfaces, with portrait renders of
the clean surface standing in for photographs. It is not a photo-to-MRI
rate on real people (real-world anchors: 83% top-1, NEJM 2019; 97%, 3D
FLAIR, 2021).

Usage::

    python benchmarks/accuracy.py --quick                 # N=20, sface, FLAIR, + defaced (~10 min)
    python benchmarks/accuracy.py --sizes 50 --renders 10 # the target check at default settings
    python benchmarks/accuracy.py                         # everything (hours on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bids_app import rank  # noqa: E402
from bids_app.bids import faces_desc, photo_faces_name  # noqa: E402


def run(cmd: list[str], log: Path) -> float:
    t = time.perf_counter()
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc not in (0, 1):  # 1: some participant failed (e.g. no face frame on a defaced head)
        raise SystemExit(f"command failed ({rc}): {' '.join(cmd)}; see {log}")
    return time.perf_counter() - t


def load_embeddings(deriv: Path, subjects: list[str], contrast: str, model: str):
    desc = faces_desc(model)
    gallery, photos, passes = {}, {}, {}
    for s in subjects:
        g = deriv / f"sub-{s}" / "anat" / f"sub-{s}_desc-{desc}_{contrast}.npy"
        p = deriv / f"sub-{s}" / "photo" / photo_faces_name(s, None, ".npy", desc)
        gallery[s] = np.load(g) if g.is_file() else None
        photos[s] = np.load(p) if p.is_file() else None
        side = g.with_suffix(".json")
        # detection pass of each render (1: default threshold, 2: padded fallback, 0: none)
        rows = json.loads(side.read_text()).get("Rows", []) if side.is_file() else []
        passes[s] = [int(r.get("Pass") or 0) if r.get("Detected") else 0 for r in rows]
    return gallery, photos, passes


def metrics(gallery, photos, subjects: list[str], bases: dict[str, str], k_renders: int,
            passes: dict[str, list[int]] | None = None) -> dict:
    """Top-1/top-5 (NEJM scoring) with k renders per MRI, and the impostor split."""
    n = len(subjects)
    dim = next(g.shape[1] for g in gallery.values() if g is not None)
    g_rows, g_id, p_rows, p_id = [], [], [], []
    det = tot = 0
    for i, s in enumerate(subjects):
        g = gallery[s]
        g = np.full((k_renders, dim), np.nan, np.float32) if g is None else g[:k_renders]
        det += int(np.isfinite(g).all(axis=1).sum())
        tot += g.shape[0]
        g_rows.append(g)
        g_id += [i] * g.shape[0]
        if photos[s] is not None:
            p_rows.append(photos[s])
            p_id += [i] * photos[s].shape[0]
    sim = rank.cosine_similarity(np.concatenate(p_rows), np.concatenate(g_rows))
    photo_scores = rank.identity_scores_nejm(sim, np.array(g_id), n)
    usable = np.zeros(n, bool)
    pid = np.array(p_id)
    ok = np.isfinite(np.concatenate(p_rows)).all(axis=1)
    usable[np.unique(pid[ok])] = True
    person = rank.aggregate_by_person(photo_scores, pid, n)
    ranks = rank.true_ranks(person, np.arange(n), usable=usable)
    used = ranks[np.isfinite(ranks)]
    m = len(used)
    out: dict = {"n": n, "n_ranked": m, "renders": k_renders,
                 "detection": det / tot if tot else math.nan}
    if passes is not None:  # renders of participants that failed count as no face
        p1 = sum(sum(1 for x in (passes.get(s) or [])[:k_renders] if x == 1) for s in subjects)
        out["detection_pass1"] = p1 / tot if tot else math.nan
    for k in (1, 5):
        hits = int((used <= k).sum())
        lo, hi = rank.wilson_interval(hits, m)
        out[f"top{k}"] = hits / m if m else math.nan
        out[f"top{k}_ci"] = [lo, hi]
        out[f"top{k}_hits"] = hits
        out[f"chance{k}"] = rank.chance_rate(k, n)
        out[f"chance{k}_ci_upper"] = _chance_upper(k, n, m)
    # impostor split: rank among self + same-base (or other-base) identities only
    for kind in ("same", "other"):
        hits = count = 0
        for i, s in enumerate(subjects):
            if not usable[i]:
                continue
            cols = [j for j, t in enumerate(subjects)
                    if j == i or ((bases[t] == bases[s]) == (kind == "same"))]
            if len(cols) < 2:
                continue
            r = rank.true_ranks(person[i:i + 1][:, cols], np.array([cols.index(i)]),
                                usable=np.array([True]))[0]
            hits += int(r <= 1)
            count += 1
        out[f"top1_vs_{kind}_base"] = hits / count if count else math.nan
        out[f"n_vs_{kind}_base"] = count
    return out


def _chance_upper(k: int, n: int, m: int) -> float:
    """Upper end of the central 95% range of top-k hits under chance, as a rate."""
    if m == 0:
        return math.nan
    from math import comb
    p = min(k, n) / n
    cum = 0.0
    for h in range(m + 1):
        cum += comb(m, h) * p ** h * (1 - p) ** (m - h)
        if cum >= 0.975:
            return h / m
    return 1.0


def fmt(r: dict) -> str:
    ci1 = "-".join(f"{100 * v:.0f}" for v in r["top1_ci"])
    ci5 = "-".join(f"{100 * v:.0f}" for v in r["top5_ci"])
    return (f"top1 {100 * r['top1']:5.1f}% ({ci1})  top5 {100 * r['top5']:5.1f}% ({ci5})  "
            f"chance {100 * r['chance1']:.1f}/{100 * r['chance5']:.1f}%  "
            f"det {100 * r['detection']:5.1f}% (pass 1 {100 * r.get('detection_pass1', math.nan):5.1f}%)  same-base top1 {100 * r['top1_vs_same_base']:5.1f}%  "
            f"other-base top1 {100 * r['top1_vs_other_base']:5.1f}%")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/facerisk-accuracy"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100])
    ap.add_argument("--models", nargs="+", default=["sface", "dlib"])
    ap.add_argument("--contrasts", nargs="+", default=["FLAIR", "T1w", "T2w"])
    ap.add_argument("--contrast-size", type=int, default=50,
                    help="cohort size for contrasts other than the first (default 50)")
    ap.add_argument("--renders", type=int, nargs="+", default=[1, 5, 10, 20])
    ap.add_argument("--no-deface", dest="deface", action="store_false")
    ap.add_argument("--spread", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heads", nargs="+", default=None)
    ap.add_argument("--nprocs", type=int, default=max(os.cpu_count() or 1, 1))
    ap.add_argument("--quick", action="store_true",
                    help="N=20, sface, FLAIR, renders 1 5 10, defaced too")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.models, args.contrasts, args.renders = [20], ["sface"], ["FLAIR"], [1, 5, 10]

    from bids_app.simulate import simulate_cohort

    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "commands.log"
    results: list[dict] = []
    timing: dict[str, float] = {}
    py = sys.executable
    for ci, contrast in enumerate(args.contrasts):
        n_max = max(args.sizes) if ci == 0 else args.contrast_size
        sizes = sorted(s for s in args.sizes if s <= n_max) if ci == 0 else [n_max]
        name = f"{contrast}_n{n_max}_seed{args.seed}_spread{args.spread:g}"
        cohort = args.out / name
        deface = args.deface and ci == 0
        if not (cohort / "truth.tsv").is_file():
            t = time.perf_counter()
            simulate_cohort(cohort, n_max, args.seed, contrast=contrast, heads=args.heads,
                            with_defaced=deface, spread=args.spread, nprocs=args.nprocs, quiet=True)
            timing[f"simulate {name}"] = time.perf_counter() - t
            print(f"simulated {name} in {timing[f'simulate {name}']:.0f} s", flush=True)
        truth = [line.split("\t") for line in (cohort / "truth.tsv").read_text().splitlines()]
        cols = truth[0]
        bases = {r[0][4:]: r[cols.index("base_head")] for r in truth[1:]}
        subjects = list(bases)
        datasets = [("bids", "intact")] + ([("bids_defaced", "defaced")] if deface else [])
        for folder, state in datasets:
            deriv = cohort / f"derivatives_{folder}"
            common = [str(cohort / folder), str(deriv)]
            opts = ["--photos-dir", str(cohort / "photos"), "--modality", contrast]
            if not (deriv / "group_desc-summary.json").is_file():
                timing[f"participant {name} {state}"] = run(
                    [py, "-m", "bids_app", *common, "participant", *opts, "--nprocs",
                     str(args.nprocs), "--n-renders", str(max(args.renders)),
                     "--face-model", ",".join(args.models), "--skip-bids-validator"], log)
                timing[f"group {name} {state}"] = run(
                    [py, "-m", "bids_app", *common, "group", *opts,
                     "--face-model", ",".join(args.models), "--skip-bids-validator"], log)
            for model in args.models:
                gallery, photos, passes = load_embeddings(deriv, subjects, contrast, model)
                for n in sizes:
                    sub = subjects[:n]
                    for k in args.renders:
                        r = metrics(gallery, photos, sub, bases, k, passes)
                        r.update(model=model, contrast=contrast, state=state, spread=args.spread)
                        results.append(r)
                        print(f"{contrast:5s} {state:7s} {model:6s} N={n:3d} renders={k:2d}: {fmt(r)}",
                              flush=True)
    (args.out / "results.json").write_text(json.dumps({"results": results, "timing_s": timing},
                                                      indent=1) + "\n")
    print("timing (s):", json.dumps({k: round(v) for k, v in timing.items()}))
    print(f"results: {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
