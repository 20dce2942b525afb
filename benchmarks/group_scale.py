"""Group-level scaling on real participant outputs: wall time, peak memory and output size.

A few real participants are made first (``facerisk-simulate`` then the
``facerisk ... participant`` level: renders, render sidecars, QC images,
photo crops, report thumbnails), once, under ``DATA/real``. Each cohort of N
participants is then built from them under ``DATA/<variant>-n<N>/out``:
participant ``i`` hard-links every file of real participant ``i mod R``
under its own label (the images the report shows are real files), and gets
its own embeddings (a random identity plus noise per row, unit vectors, NaN
where the real participant's render or photo had no face), its own
embedding sidecars and its own completion record. Building is not timed;
a cohort is built once and reused (``--data``).

Variants:

``photos``  10 renders and 5 photos per participant: re-identification.
``mri``     no photos (detectability) and 5% of the participants with a
            second session (linkage: each scan matched against every other).

Each run is the real group level (``run_group``: loading, ranking,
verification, linkage, TSV, JSON, boilerplate, HTML report and participant
pages) in a fresh process; the table gives its wall time, the time of each
stage, its peak resident memory, and the size of what it wrote (all group
files, ``facerisk.html`` alone).

    python benchmarks/group_scale.py --data /tmp/facerisk-scale                    # 1000 10000 100000
    python benchmarks/group_scale.py --data /tmp/facerisk-scale --sizes 1000 10000 --variants photos
    python benchmarks/group_scale.py --data /tmp/facerisk-scale --sizes 10000 --profile   # where the time goes

Targets (2 cores): 10k participants in at most 60 s and 100k in at most
10 minutes under 4 GB, report included, in both variants.

Above ``--full-rank-max`` participants (default 20000) only the photos (or,
MRI-only, the scans) of ``--rank-fraction`` of the participants are ranked
(against the whole gallery, so memory is the real one) and the ranking time
is scaled up to all of them; such times are marked ``~`` (``--rank-fraction
1`` ranks all). Every other stage runs in full.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = ("photos", "mri")
#: Participants of the MRI-only variant with a second session.
SECOND_SESSION = 0.05
#: Real participants the cohorts are made from.
N_REAL = 5
NOISE = 2.5
DIM = 128


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(cmd: list[str]) -> None:
    print("  $", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def build_real(data: Path) -> Path:
    """``DATA/real/out``: the participant level's outputs of ``N_REAL`` simulated participants (once)."""
    real = data / "real"
    out = real / "out"
    if (real / ".complete").is_file():
        return out
    bin_dir = Path(sys.executable).parent
    if not (real / "cohort" / "truth.tsv").is_file():
        shutil.rmtree(real, ignore_errors=True)
        _run([str(bin_dir / "facerisk-simulate"), str(real / "cohort"), "--n", str(N_REAL), "--seed", "7",
              "--photos", "5", "5"])
    _run([str(bin_dir / "facerisk"), str(real / "cohort" / "bids"), str(out), "participant",
          "--photos-dir", str(real / "cohort" / "photos"), "--skip-bids-validator", "--nprocs", "2"])
    (real / ".complete").write_text("")
    return out


class _Template:
    """One real participant's files, by kind, with its label replaced by ``{label}``."""

    def __init__(self, out: Path, subject: str):
        self.record = json.loads((out / f"sub-{subject}" / f"sub-{subject}_facerisk.json").read_text())
        self.links: dict[str, list[tuple[Path, str]]] = {"anat": [], "photo": [], "figures": []}
        self.sidecars: dict[str, tuple[dict, np.ndarray]] = {}
        for rel in self.record["Outputs"]:
            path = out / rel
            folder, name = path.parent.name, path.name
            renamed = name.replace(f"sub-{subject}", "{label}")
            if "_desc-faces_" in name:
                if name.endswith(".json"):
                    sidecar = json.loads(path.read_text())
                    rows = np.array([bool(r.get("Detected")) and r.get("File") is not None for r in sidecar["Rows"]])
                    self.sidecars[folder] = (sidecar, rows)
                continue
            self.links.setdefault(folder, []).append((path, renamed))


def _vectors(rng, base, ok: np.ndarray) -> np.ndarray:
    v = (base + NOISE * rng.normal(size=(ok.size, DIM))).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v[~ok] = np.nan
    return v


def _write_set(folder: Path, stem: str, sidecar: dict, vectors: np.ndarray, old: str, new: str) -> list[Path]:
    np.save(folder / f"{stem}.npy", vectors)
    rows = [{**r, "File": r["File"].replace(old, new)} if r.get("File") else r for r in sidecar["Rows"]]
    (folder / f"{stem}.json").write_text(json.dumps({**sidecar, "Rows": rows}))
    return [folder / f"{stem}.npy", folder / f"{stem}.json"]


def build_cohort(real_out: Path, out: Path, n: int, variant: str, seed: int = 0) -> None:
    """N participants made of hard links to the real ones, with their own embeddings and records."""
    subjects = sorted(p.name[4:] for p in real_out.glob("sub-*") if p.is_dir())
    templates = [_Template(real_out, s) for s in subjects]
    rng = np.random.default_rng(seed)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copy(real_out / "dataset_description.json", out)
    (out / "logs").mkdir()
    width = len(str(n))
    sessions_every = round(1 / SECOND_SESSION)
    for i in range(n):
        t = templates[i % len(templates)]
        old = f"sub-{subjects[i % len(templates)]}"
        label = f"{i + 1:0{width}d}"
        base = rng.normal(size=DIM)
        sessions = ["1", "2"] if variant == "mri" and i % sessions_every == 0 else [None]
        written: list[Path] = []
        root = out / f"sub-{label}"
        for ses in sessions:
            prefix = f"sub-{label}" + (f"_ses-{ses}" if ses else "")
            where = root / f"ses-{ses}" if ses else root
            kinds = ("anat", "figures") if variant == "mri" else ("anat", "photo", "figures")
            for kind in kinds:
                (where / kind).mkdir(parents=True, exist_ok=True)
                for src, name in t.links.get(kind, []):
                    if kind == "figures" and variant == "mri" and "_desc-photo" in name:
                        continue
                    dst = where / kind / name.format(label=prefix)
                    os.link(src, dst)
                    written.append(dst)
            sidecar, ok = t.sidecars["anat"]
            suffix = sidecar["Rows"][0]["File"].rsplit("_", 1)[1].split(".")[0]
            written += _write_set(where / "anat", f"{prefix}_desc-faces_{suffix}", sidecar, _vectors(rng, base, ok),
                                  old, prefix)
            if variant == "photos":
                sidecar, ok = t.sidecars["photo"]
                written += _write_set(where / "photo", f"{prefix}_desc-faces_photo", sidecar,
                                      _vectors(rng, base, ok), old, prefix)
        record = {**t.record, "Participant": f"sub-{label}",
                  "Parameters": {**t.record["Parameters"], "Sessions": [s for s in sessions if s]},
                  "Outputs": sorted(p.relative_to(out).as_posix() for p in written)}
        (root / f"sub-{label}_facerisk.json").write_text(json.dumps(record))
    (out / ".cohort-complete").write_text(str(n))


def _output_bytes(out: Path) -> tuple[int, int, int]:
    """Bytes the group level wrote (group files, report, pages, logs), facerisk.html's, and pages written."""
    files = [p for p in out.iterdir() if p.is_file() and (p.name.startswith("group_") or p.suffix == ".html")]
    files += [p for p in (out / "logs").iterdir() if p.is_file()]
    pages = [p for p in out.glob("sub-*.html")]
    html = out / "facerisk.html"
    return sum(p.stat().st_size for p in files), html.stat().st_size if html.is_file() else 0, len(pages)


def run_one(out: Path, rank_fraction: float, profile: bool) -> None:
    """In a child process: the group level with stage times, then one JSON line."""
    import logging

    import bids_app.rank as rank
    import bids_app.workflows.group as group
    import bids_app.workflows.group.analysis as analysis
    from bids_app.config import Settings

    logging.basicConfig(level=logging.INFO, format="    %(asctime)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    settings = Settings(bids_dir=out.parent / "bids", output_dir=out, analysis_level="group")
    stages: dict[str, float] = {}
    ranked = [1.0]

    def timed(name, fn, module, attr):
        def wrapper(*args, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - t0
        setattr(module, attr, wrapper)

    full_rank = rank.rank_gallery

    def partial_rank(probes, probe_person, n_persons, *args, **kw):
        if rank_fraction < 1:  # the re-identification ranking, or the linkage one (MRI-only)
            keep = np.asarray(probe_person) < max(1, int(round(rank_fraction * n_persons)))
            ranked[0] = float(keep.mean())
            probes, probe_person = np.asarray(probes)[keep], np.asarray(probe_person)[keep]
        return full_rank(probes, probe_person, n_persons, *args, **kw)

    rank.rank_gallery = partial_rank
    timed("load", analysis._load_all, analysis, "_load_all")
    timed("rank", rank.rank_gallery, rank, "rank_gallery")
    timed("tables", group.write_tables, group, "write_tables")
    timed("report inputs", group.write_report_inputs, group, "write_report_inputs")
    timed("report", group.write_reports, group, "write_reports")
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    start = time.perf_counter()
    summary = group.run_group(settings)
    elapsed = time.perf_counter() - start
    if profiler is not None:
        import pstats
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    estimate = elapsed + stages.get("rank", 0.0) * (1 / ranked[0] - 1)
    total, html, pages = _output_bytes(out)
    print(json.dumps({"seconds": elapsed, "estimate": estimate, "ranked": ranked[0], "stages": stages,
                      "peak_mb": _peak_mb(), "load": os.getloadavg()[0], "bytes": total, "html": html,
                      "pages": pages, "top1": summary["reidentification"]["top1"]["rate"],
                      "linkage_top1": ((summary.get("linkage") or {}).get("top1") or {}).get("rate")}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--data", type=Path,
                        help="folder for the real participants and the cohorts (built once, reused)")
    parser.add_argument("--rank-fraction", type=float, default=0.05)
    parser.add_argument("--full-rank-max", type=int, default=20000)
    parser.add_argument("--profile", action="store_true", help="print the 25 costliest calls (cProfile)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-fraction", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args.child, args.child_fraction, args.profile)
        return
    if args.data is None:
        parser.error("--data DIR is required")
    data = args.data.resolve()
    real = build_real(data)
    (data / "bids").mkdir(exist_ok=True)
    (data / "bids" / "dataset_description.json").write_text('{"Name": "scale", "BIDSVersion": "1.9.0"}')
    rows = []
    for variant in args.variants:
        for n in args.sizes:
            out = data / f"{variant}-n{n}" / "out"
            if not (out / ".cohort-complete").is_file():
                t0 = time.perf_counter()
                build_cohort(real, out, n, variant)
                print(f"  built {out} in {time.perf_counter() - t0:.0f} s", flush=True)
            if not (out.parent / "bids").exists():
                os.symlink(data / "bids", out.parent / "bids")
            fraction = args.rank_fraction if n > args.full_rank_max else 1.0
            child = subprocess.run([sys.executable, __file__, "--child", str(out), "--child-fraction",
                                    str(fraction)] + (["--profile"] if args.profile else []),
                                   stdout=subprocess.PIPE, text=True)
            if child.returncode:
                raise SystemExit(child.returncode)
            r = json.loads(child.stdout.strip().splitlines()[-1])
            rows.append((variant, n, r))
            st = r["stages"]
            wall = f"{r['seconds']:.1f}" if r["ranked"] >= 1 else f"~{r['estimate']:.0f}"
            rank_s = st.get("rank", 0.0) / r["ranked"]
            print(f"| {variant} | {n} | {wall} | {st.get('load', 0):.1f} | {rank_s:.1f}"
                  f"{'' if r['ranked'] >= 1 else ' (~)'} | {st.get('report', 0):.1f} | "
                  f"{st.get('tables', 0) + st.get('report inputs', 0):.1f} | {r['peak_mb']:.0f} | "
                  f"{r['bytes'] / 1e6:.1f} | {r['html'] / 1e6:.2f} | {r['pages']} | {r['load']:.1f} |", flush=True)
    print("\n| variant | N | group s | load s | rank s | report s | tables+json s | peak MB | written MB "
          "| facerisk.html MB | pages | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for variant, n, r in rows:
        st = r["stages"]
        wall = f"{r['seconds']:.1f}" if r["ranked"] >= 1 else f"~{r['estimate']:.0f} ({r['seconds']:.0f} measured, "\
            f"{r['ranked']:.0%} of the photos ranked)"
        print(f"| {variant} | {n} | {wall} | {st.get('load', 0):.1f} | {st.get('rank', 0) / r['ranked']:.1f} | "
              f"{st.get('report', 0):.1f} | {st.get('tables', 0) + st.get('report inputs', 0):.1f} | "
              f"{r['peak_mb']:.0f} | {r['bytes'] / 1e6:.1f} | {r['html'] / 1e6:.2f} | {r['pages']} | {r['load']:.1f} |")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    main()
