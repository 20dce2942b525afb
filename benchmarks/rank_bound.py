"""Could an exact pre-selection by identity mean make the NEJM ranking cheaper at 100k? Measured: no.

Per identity j, keep the mean render embedding m_j and the radius
rho_j = max_i ||r_i - m_j||. For a unit photo p, every render of j has
p.r <= p.m_j + rho_j (an upper bound of the confidence), and p.m_j (the mean
of the p.r_i) is at most their maximum (a lower bound). The identities that
can be in the photo's exact top-k are those whose upper bound reaches the
k-th largest lower bound; only they would need their renders scored. This
script counts them, on random identities with render noise of several
sizes (``--noise``; the spread of real SFace renders is printed from
participant outputs with ``--outputs``), and prints the radius and the
fraction of identities kept.

    python benchmarks/rank_bound.py
    python benchmarks/rank_bound.py --outputs OUT     # rho of real renders (participant outputs)
    python benchmarks/rank_bound.py --pool OUT1 OUT2 ...   # a non-exact pre-selection on real outputs

``--pool`` takes participant outputs with photos (the ``derivatives_bids``
of ``benchmarks/accuracy.py`` cohorts), pools their identities (render
embeddings) and photos, and prints what an *approximate* pre-selection by
identity mean would face: the gap between an identity's best render and
its mean (the best render is what the NEJM scoring uses) and, per photo, the
rank by mean similarity of its best identity by best render.

In 128 dimensions a photo's product with a render's deviation from the
mean is far smaller than the deviation's length, so the bound is loose: with
the spread of real renders (rho about 0.5) it keeps nearly every identity,
and the ranking stays the exact brute force of ``bids_app.rank.blocked``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def pooled_gaps(outputs: list[Path]) -> None:
    """Best render against mean render, on the real embeddings of ``outputs`` pooled."""
    renders, photos, owner = [], [], []
    for out in outputs:
        for npy in sorted(out.glob("sub-*/anat/*_desc-faces_*.npy")):
            r = np.load(npy)
            r = r[np.isfinite(r).all(axis=1)]
            ph_file = npy.parents[1] / "photo" / (npy.name.rsplit("_", 1)[0] + "_photo.npy")
            if len(r) < 2 or not ph_file.is_file():
                continue
            ph = np.load(ph_file)
            ph = ph[np.isfinite(ph).all(axis=1)]
            renders.append(_unit(r))
            photos.append(_unit(ph) if len(ph) else ph)
            owner += [len(renders) - 1] * len(ph)
    p, owner = np.concatenate(photos), np.array(owner)
    n = len(renders)
    best = np.stack([(p @ r.T).max(axis=1) for r in renders], axis=1)
    mean = p @ np.stack([r.mean(axis=0) for r in renders]).T
    impostor = np.ones(best.shape, bool)
    impostor[np.arange(len(p)), owner] = False
    gap = (best - mean)[impostor]
    print(f"{n} identities, {len(p)} photos (pooled from {len(outputs)} outputs)")
    print("best render minus mean render, cosine, other identities: percentiles 50/90/99/99.9/max "
          + " ".join(f"{v:.3f}" for v in np.percentile(gap, [50, 90, 99, 99.9, 100])))
    by_mean = np.argsort(np.argsort(-mean, axis=1), axis=1) + 1  # 1-based rank by mean
    top = by_mean[np.arange(len(p)), np.argmax(best, axis=1)]
    print(f"each photo's best identity (by best render), its rank by mean similarity: median "
          f"{np.median(top):.0f}, 99th percentile {np.percentile(top, 99):.0f}, worst {top.max()} of {n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=20000)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--noise", type=float, nargs="+", default=[2.5, 1.0, 0.5, 0.3])
    parser.add_argument("--outputs", type=Path, help="participant outputs: print the radius of their renders")
    parser.add_argument("--pool", type=Path, nargs="+", help="participant outputs with photos (see above)")
    args = parser.parse_args()
    if args.pool:
        pooled_gaps(args.pool)
        return
    if args.outputs:
        for npy in sorted(args.outputs.glob("sub-*/anat/*_desc-faces_*.npy")):
            r = np.load(npy)
            r = r[np.isfinite(r).all(axis=1)]
            if len(r) < 2:
                continue
            m = r.mean(axis=0)
            pairs = (r @ r.T)[np.triu_indices(len(r), 1)]
            print(f"{npy.name}: {len(r)} renders, rho {np.linalg.norm(r - m, axis=1).max():.3f}, "
                  f"mean render-render cosine {pairs.mean():.3f}")
    rng = np.random.default_rng(0)
    n, dim, k = args.identities, 128, args.top_k
    base = rng.normal(size=(n, dim))
    print(f"| render noise | median rho | mean render-render cosine | identities kept per photo (median, min) of {n} |")
    print("|---|---|---|---|")
    for noise in args.noise:
        g = _unit(base[:, None, :] + noise * rng.normal(size=(n, 10, dim)))
        m = g.mean(axis=1)
        rho = np.linalg.norm(g - m[:, None], axis=2).max(axis=1)
        cos = np.einsum("nid,njd->nij", g[:200], g[:200])[:, *np.triu_indices(10, 1)].mean()
        p = _unit(base[: args.photos] + noise * rng.normal(size=(args.photos, dim)))
        lower = p @ m.T
        kth = -np.partition(-lower, k - 1, axis=1)[:, k - 1]
        kept = (lower + rho >= kth[:, None]).sum(axis=1)
        print(f"| {noise} | {np.median(rho):.2f} | {cos:.2f} | {np.median(kept):.0f} ({np.median(kept) / n:.1%}), "
              f"{kept.min()} |")


if __name__ == "__main__":
    main()
