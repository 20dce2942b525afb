#!/usr/bin/env python
"""How an MRI face's renders are pooled: the best render (facerisk's scoring) against alternatives.

Rescored from the participant level's outputs of a cohort that
``benchmarks/accuracy.py`` (or ``facerisk-simulate`` and both facerisk
levels) wrote; nothing is rendered again. Per pooling it prints top-1 /
top-5 (NEJM scoring, Wilson 95% intervals), top-1 among the participants of
the same base head, and the identity margin retention of ``accuracy.py``
computed on the pooled rows (which it normalises: for ``template`` and
``mean-cosine`` the margin to one template, not the mean over renders, so
it is not comparable with the renders' own retention):

- ``best-render``: a photo's confidence for an identity is its best cosine
  similarity over the identity's renders (facerisk's scoring);
- ``template``: the cosine similarity to one template, the L2-normalised
  mean of the renders' embeddings (the templates of face recognition
  benchmarks such as IJB-C);
- ``best-of-both``: the template added to the renders;
- ``mean-cosine``: the mean cosine similarity over the renders;
- with ``--mirror``, ``mirrored``: every render's and photo's embedding is
  made again as the normalised sum of the aligned crop's and its mirror
  image's (test-time flip augmentation), pooled by the best render.

Usage::

    python benchmarks/accuracy.py --out OUT --mode hard --seed 1 --sizes 50 --renders 10 \\
        --models sface --contrasts FLAIR --no-deface
    python benchmarks/render_pooling.py OUT/FLAIR_n50_seed1_spread1_hard [--mirror]

README, "Simulated cohorts": what this gave on two development cohorts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from accuracy import identity_margins, load_embeddings, margin_retention, metrics  # noqa: E402


def pooled(gallery: dict, how: str) -> dict:
    """Each participant's gallery rows for the pooling ``how`` (NaN rows: renders without a face)."""
    out = {}
    for subject, rows in gallery.items():
        if rows is None:
            out[subject] = None
            continue
        ok = np.isfinite(rows).all(axis=1)
        mean = rows[ok].mean(axis=0) if ok.any() else np.full(rows.shape[1], np.nan, np.float32)
        template = (mean / np.linalg.norm(mean))[None] if ok.any() else mean[None]
        out[subject] = {"template": template, "best-of-both": np.concatenate([rows, template]),
                        "mean-cosine": mean[None]}[how]
    return out


def mirrored(deriv: Path, subjects: list[str], contrast: str) -> tuple[dict, dict]:
    """Render and photo embeddings made again with the mirror image of each aligned crop (sface)."""
    from bids_app.face import Detection, load_face_model

    model = load_face_model("sface")

    def both(crop: np.ndarray) -> np.ndarray:
        vec = model.embed_crop(np.ascontiguousarray(crop)) + model.embed_crop(np.ascontiguousarray(crop[:, ::-1]))
        return vec / np.linalg.norm(vec)

    gallery, photos = {}, {}
    for s in subjects:
        anat = deriv / f"sub-{s}" / "anat"
        rows = json.loads((anat / f"sub-{s}_desc-faces_{contrast}.json").read_text())["Rows"]
        out = np.full((len(rows), model.dim), np.nan, np.float32)
        for i in range(len(rows)):
            stem = anat / f"sub-{s}_desc-render{i + 1:02d}_{contrast}"
            face = json.loads(stem.with_suffix(".json").read_text()).get("Face", {})
            if face.get("Detected"):
                image = np.asarray(Image.open(stem.with_suffix(".png")).convert("RGB"))
                det = Detection(box=face["Box"], landmarks=face["Landmarks"], score=face["Score"])
                out[i] = both(model.align(image, det))
        gallery[s] = out
        crops = sorted((deriv / f"sub-{s}" / "photo").glob(f"sub-{s}_desc-photo*_photo.png"))
        photos[s] = np.array([both(np.asarray(Image.open(c).convert("RGB"))) for c in crops]) if crops else None
    return gallery, photos


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cohort", type=Path, help="a cohort folder of accuracy.py (truth.tsv, derivatives_bids)")
    ap.add_argument("--contrast", default="FLAIR")
    ap.add_argument("--renders", type=int, default=10)
    ap.add_argument("--mirror", action="store_true", help="also the mirrored embeddings (sface; slower)")
    args = ap.parse_args(argv)

    truth = [line.split("\t") for line in (args.cohort / "truth.tsv").read_text().splitlines()]
    bases = {row[0][4:]: row[truth[0].index("base_head")] for row in truth[1:]}
    subjects = list(bases)
    deriv = args.cohort / "derivatives_bids"
    gallery, photos, _ = load_embeddings(deriv, subjects, args.contrast, "sface")
    gallery = {s: None if g is None else g[:args.renders] for s, g in gallery.items()}
    runs = [("best-render", gallery, photos)]
    runs += [(how, pooled(gallery, how), photos) for how in ("template", "best-of-both", "mean-cosine")]
    if args.mirror:
        runs.append(("mirrored", *mirrored(deriv, subjects, args.contrast)))
    print(f"{args.cohort.name}: {len(subjects)} participants, {args.renders} renders, sface")
    for name, g, p in runs:
        rows = max((len(x) for x in g.values() if x is not None), default=0)
        r = metrics(g, p, subjects, bases, rows)
        kept = margin_retention(**{k: v for k, v in identity_margins(g, p, subjects, rows).items()
                                   if k in ("m_render", "m_photo")})
        print(f"  {name:13s} top-1 {r['top1']:.0%} ({r['top1_ci'][0]:.0%}-{r['top1_ci'][1]:.0%})  "
              f"top-5 {r['top5']:.0%}  same-base top-1 {r['top1_vs_same_base']:.0%}  "
              f"retention {kept['retention']:.2f} ({kept['ci'][0]:.2f}-{kept['ci'][1]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
