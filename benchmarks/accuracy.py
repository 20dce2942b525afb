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

Identity margin retention (printed beside top-1/top-5): for each participant,
``m_render`` = (mean cosine of its photos to its own renders) - (the largest,
over the other participants, of the mean cosine of its photos to that
participant's renders), and ``m_photo`` the same with photo against photo
(its own other photos for the genuine side, every photo of each other
participant for the impostors). Retention = mean(m_render) / mean(m_photo),
with a bootstrap 95% interval over participants: how much of the identity
margin that the photos themselves carry the MRI side keeps, whatever the
cohort's difficulty. Participants without a usable render embedding or with
fewer than two photo embeddings are left out (the count is printed). A
"photos" line per cohort gives photo-only figures: the genuine and
same-base photo-photo cosines and one-photo top-1/top-5 (each photo as a
probe against every participant's other photos, mean cosine per identity).

``--mode hard`` runs ``bids_app.simulate``'s hard mode (sibling-like
identities, flatter noses, dim lower faces, pads, 1-3 mm slices); its
cohorts are kept apart from the default ones (``..._hard``).

Usage::

    python benchmarks/accuracy.py --quick                 # N=20, sface, FLAIR, + defaced (~10 min)
    python benchmarks/accuracy.py --sizes 50 --renders 10 # the target check at default settings
    python benchmarks/accuracy.py                         # everything (hours on 2 cores)
    python benchmarks/accuracy.py --mode hard --seed 1 --sizes 20 --renders 10 --models sface \
        --contrasts FLAIR                                 # the hard mode on a development seed
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


def _unit_rows(x: np.ndarray | None) -> np.ndarray:
    """The finite rows of ``x`` (embeddings; NaN rows: no face), L2-normalised."""
    if x is None:
        return np.zeros((0, 1))
    x = np.asarray(x, float)
    x = x[np.isfinite(x).all(axis=1)]
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x[norm[:, 0] > 0] / norm[norm[:, 0] > 0]


def identity_margins(gallery: dict, photos: dict, subjects: list[str],
                     k_renders: int | None = None) -> dict[str, np.ndarray]:
    """Per-participant identity margins, render side and photo side (NaN: not usable).

    ``gallery[s]``: render embeddings of participant ``s`` (rows; NaN rows
    for renders without a face; None when none), ``photos[s]``: photo
    embeddings (the same). Returns arrays over ``subjects``:

    - ``render_genuine``: mean cosine of s's photos to s's renders;
      ``render_impostor``: the largest, over the other participants t, of
      the mean cosine of s's photos to t's renders; ``m_render`` the
      difference;
    - ``photo_genuine``: mean cosine over pairs of s's own photos;
      ``photo_impostor``: the largest, over t, of the mean cosine of s's
      photos to t's photos; ``m_photo`` the difference.
    """
    ph = [_unit_rows(photos.get(s)) for s in subjects]
    ga = [_unit_rows(None if gallery.get(s) is None else np.asarray(gallery[s])[:k_renders])
          for s in subjects]
    n = len(subjects)
    out = {k: np.full(n, np.nan) for k in ("render_genuine", "render_impostor", "photo_genuine",
                                           "photo_impostor")}
    for i in range(n):
        p = ph[i]
        if len(p) == 0:
            continue
        render = [float((p @ g.T).mean()) if len(g) else np.nan for g in ga]
        photo = [float((p @ q.T).mean()) if len(q) else np.nan for q in ph]
        others = [j for j in range(n) if j != i]
        if len(ga[i]):
            out["render_genuine"][i] = render[i]
        vals = [render[j] for j in others if np.isfinite(render[j])]
        if vals:
            out["render_impostor"][i] = max(vals)
        if len(p) >= 2:
            c = p @ p.T
            out["photo_genuine"][i] = float(c[~np.eye(len(p), dtype=bool)].mean())
        vals = [photo[j] for j in others if np.isfinite(photo[j])]
        if vals:
            out["photo_impostor"][i] = max(vals)
    out["m_render"] = out["render_genuine"] - out["render_impostor"]
    out["m_photo"] = out["photo_genuine"] - out["photo_impostor"]
    return out


def margin_retention(m_render: np.ndarray, m_photo: np.ndarray, *, n_boot: int = 2000,
                     seed: int = 0) -> dict[str, float]:
    """mean(m_render) / mean(m_photo) over participants with both, and a bootstrap 95% CI.

    The interval resamples participants (with replacement) ``n_boot`` times;
    resamples whose mean photo margin is not positive are dropped.
    """
    m_render, m_photo = np.asarray(m_render, float), np.asarray(m_photo, float)
    ok = np.isfinite(m_render) & np.isfinite(m_photo)
    r, q = m_render[ok], m_photo[ok]
    res = {"n": int(ok.sum()), "m_render": float(r.mean()) if r.size else math.nan,
           "m_photo": float(q.mean()) if q.size else math.nan, "retention": math.nan,
           "ci": [math.nan, math.nan]}
    if r.size == 0 or q.mean() <= 0:
        return res
    res["retention"] = float(r.mean() / q.mean())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, r.size, (n_boot, r.size))
    num, den = r[idx].mean(axis=1), q[idx].mean(axis=1)
    ratios = num[den > 0] / den[den > 0]
    if ratios.size:
        res["ci"] = [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]
    return res


def photo_identification(photos: dict, subjects: list[str], bases: dict[str, str]) -> dict:
    """Photo-only figures: genuine / same-base / other-base photo-photo cosines and
    one-photo top-1/top-5 (each photo against every participant's photos, its own
    other photos for the genuine identity; mean cosine per identity)."""
    ph = [_unit_rows(photos.get(s)) for s in subjects]
    n = len(subjects)
    pair = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(n):
            if len(ph[i]) and len(ph[j]):
                c = ph[i] @ ph[j].T
                if i == j:
                    pair[i, j] = c[~np.eye(len(c), dtype=bool)].mean() if len(c) >= 2 else np.nan
                else:
                    pair[i, j] = c.mean()
    same = [pair[i, j] for i in range(n) for j in range(i + 1, n)
            if bases[subjects[i]] == bases[subjects[j]] and np.isfinite(pair[i, j])]
    other = [pair[i, j] for i in range(n) for j in range(i + 1, n)
             if bases[subjects[i]] != bases[subjects[j]] and np.isfinite(pair[i, j])]
    hits1 = hits5 = probes = 0
    for i in range(n):
        if len(ph[i]) < 2:
            continue
        for a in range(len(ph[i])):
            probe = ph[i][a]
            scores = np.full(n, -np.inf)
            for j in range(n):
                rows = np.delete(ph[j], a, axis=0) if j == i else ph[j]
                if len(rows):
                    scores[j] = float((rows @ probe).mean())
            rank_i = 1 + int((scores > scores[i]).sum())
            hits1 += rank_i <= 1
            hits5 += rank_i <= 5
            probes += 1
    return {"photo_genuine_cos": float(np.nanmean(np.diag(pair))) if n else math.nan,
            "photo_same_base_cos": float(np.mean(same)) if same else math.nan,
            "photo_other_base_cos": float(np.mean(other)) if other else math.nan,
            "photo_top1": hits1 / probes if probes else math.nan,
            "photo_top5": hits5 / probes if probes else math.nan, "photo_probes": probes}


def _nanmean(x: np.ndarray) -> float:
    """Mean of the finite values (NaN, without a warning, when there are none)."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


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
            f"other-base top1 {100 * r['top1_vs_other_base']:5.1f}%"
            + (f"  retention {r['retention']:.2f} ({r['retention_ci'][0]:.2f}-{r['retention_ci'][1]:.2f}; "
               f"m_render {r['m_render']:.3f} = {r['render_genuine_cos']:.3f} - "
               f"{r['render_impostor_cos']:.3f}, m_photo {r['m_photo']:.3f} = "
               f"{r['photo_genuine_margin_cos']:.3f} - {r['photo_nearest_cos']:.3f}, "
               f"n={r['retention_n']})" if "retention" in r else ""))


def fmt_photos(q: dict) -> str:
    return (f"photos only: genuine cos {q['photo_genuine_cos']:.3f}  same-base cos "
            f"{q['photo_same_base_cos']:.3f}  other-base cos {q['photo_other_base_cos']:.3f}  "
            f"one-photo top1 {100 * q['photo_top1']:5.1f}%  top5 {100 * q['photo_top5']:5.1f}% "
            f"({q['photo_probes']} probes)")


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
    ap.add_argument("--mode", choices=["default", "hard"], default="default",
                    help="bids_app.simulate mode (hard: sibling-like identities, flatter noses, "
                         "dim lower faces, pads, 1-3 mm slices)")
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
        name = f"{contrast}_n{n_max}_seed{args.seed}_spread{args.spread:g}" + (
            f"_{args.mode}" if args.mode != "default" else "")
        cohort = args.out / name
        deface = args.deface and ci == 0
        if not (cohort / "truth.tsv").is_file():
            t = time.perf_counter()
            simulate_cohort(cohort, n_max, args.seed, contrast=contrast, heads=args.heads,
                            with_defaced=deface, spread=args.spread, nprocs=args.nprocs, quiet=True,
                            mode=args.mode)
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
                        margins = identity_margins(gallery, photos, sub, k)
                        kept = margin_retention(margins["m_render"], margins["m_photo"])
                        both = np.isfinite(margins["m_render"]) & np.isfinite(margins["m_photo"])
                        margins = {key: np.where(both, val, np.nan) for key, val in margins.items()}
                        r.update(retention=kept["retention"], retention_ci=kept["ci"],
                                 retention_n=kept["n"], m_render=kept["m_render"],
                                 m_photo=kept["m_photo"],
                                 render_genuine_cos=_nanmean(margins["render_genuine"]),
                                 render_impostor_cos=_nanmean(margins["render_impostor"]),
                                 photo_genuine_margin_cos=_nanmean(margins["photo_genuine"]),
                                 photo_nearest_cos=_nanmean(margins["photo_impostor"]))
                        r.update(model=model, contrast=contrast, state=state, spread=args.spread,
                                 mode=args.mode)
                        if state == "intact" and k == args.renders[0]:
                            r.update(photo_identification(photos, sub, bases))
                            print(f"{contrast:5s} {model:6s} N={n:3d} {fmt_photos(r)}", flush=True)
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
