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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=20000)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--noise", type=float, nargs="+", default=[2.5, 1.0, 0.5, 0.3])
    parser.add_argument("--outputs", type=Path, help="participant outputs: print the radius of their renders")
    args = parser.parse_args()
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
