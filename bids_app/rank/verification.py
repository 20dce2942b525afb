"""Verification: genuine and impostor photo-render pair similarities, ROC curve and AUC."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["MAX_IMPOSTORS", "auc_score", "roc_curve", "verification_pairs"]

#: Impostor pairs scored at most (all of them below, a seeded sample above): time and
#: memory (1.6 MB of float64) stay bounded, and with this many impostors the AUC's
#: sampling error comes mostly from the (far fewer) genuine pairs.
MAX_IMPOSTORS = 200_000
#: Pairs drawn before removing the genuine ones: 20% more plus a few, so that the
#: sample keeps ``max_impostors`` pairs unless genuine pairs are a large share.
_OVERDRAW = 1.2
_OVERDRAW_EXTRA = 16
#: Pairs per einsum chunk: bounds the float64 copies of the sampled rows (16k x dim).
_CHUNK = 16384
#: ROC thresholds kept (quantiles of all scores); the figure needs no more.
ROC_POINTS = 200


def verification_pairs(
    probes: ArrayLike,
    probe_person: ArrayLike,
    gallery: ArrayLike,
    gallery_owner: ArrayLike,
    max_impostors: int = MAX_IMPOSTORS,
    seed: int = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64], bool]:
    """Cosine similarities of genuine and impostor photo-render pairs.

    ``probe_person`` and ``gallery_owner`` are codes in one shared space (the
    participant); a pair is genuine when they are equal. All genuine pairs
    are scored; impostor pairs are all scored when there are at most
    ``max_impostors`` of them, else a seeded uniform sample of that many
    (with replacement) is drawn, so memory and time stay bounded. The full
    similarity matrix is never formed for large cohorts, and the embeddings
    are converted to float64 only row block by row block.

    Returns
    -------
    genuine, impostor : ndarray of float64
        Genuine pairs by increasing person code, each person's photos in
        their order against the person's renders in their order.
    sampled : bool
        Whether the impostors are a sample.
    """
    p = np.asarray(probes)
    g = np.asarray(gallery)
    if p.ndim != 2 or g.ndim != 2:
        raise ValueError(f"probes {p.shape} and gallery {g.shape} must be 2-D")
    pp = np.asarray(probe_person).astype(np.intp)
    go = np.asarray(gallery_owner).astype(np.intp)
    if pp.shape != (p.shape[0],) or go.shape != (g.shape[0],):
        raise ValueError("probe_person / gallery_owner must match the rows of probes / gallery")
    f64 = np.float64
    order_p = np.argsort(pp, kind="stable")
    order_g = np.argsort(go, kind="stable")
    pp_sorted, go_sorted = pp[order_p], go[order_g]
    persons, p_lo, p_n = np.unique(pp_sorted, return_index=True, return_counts=True)
    g_lo = np.searchsorted(go_sorted, persons, side="left")
    g_hi = np.searchsorted(go_sorted, persons, side="right")
    genuine = []
    for i in np.flatnonzero(g_hi > g_lo):
        rows = p[order_p[p_lo[i]:p_lo[i] + p_n[i]]].astype(f64)
        genuine.append((rows @ g[order_g[g_lo[i]:g_hi[i]]].astype(f64).T).ravel())
    genuine_arr = np.concatenate(genuine) if genuine else np.zeros(0)
    n_pairs = p.shape[0] * g.shape[0]
    n_impostor_total = n_pairs - genuine_arr.size
    if n_impostor_total <= 0:
        return genuine_arr, np.zeros(0), False
    if n_pairs <= max_impostors:
        sim = p.astype(f64) @ g.astype(f64).T
        return genuine_arr, sim[pp[:, None] != go[None, :]], False
    rng = np.random.default_rng(seed)
    i = rng.integers(0, p.shape[0], size=int(max_impostors * _OVERDRAW) + _OVERDRAW_EXTRA)
    j = rng.integers(0, g.shape[0], size=i.size)
    keep = pp[i] != go[j]
    i, j = i[keep][:max_impostors], j[keep][:max_impostors]
    impostor = np.empty(i.size)
    for c in range(0, i.size, _CHUNK):  # chunks: no (pairs x dim) float64 copies of the sample
        ii, jj = i[c:c + _CHUNK], j[c:c + _CHUNK]
        impostor[c:c + ii.size] = np.einsum("ij,ij->i", p[ii].astype(f64), g[jj].astype(f64))
    return genuine_arr, impostor, True


def auc_score(genuine: ArrayLike, impostor: ArrayLike) -> float:
    """Area under the ROC curve: P(genuine > impostor) + P(equal) / 2 (Mann-Whitney).

    NaN when either set is empty.
    """
    gen = np.asarray(genuine, np.float64).ravel()
    imp = np.sort(np.asarray(impostor, np.float64).ravel())
    if gen.size == 0 or imp.size == 0:
        return math.nan
    below = np.searchsorted(imp, gen, side="left")
    at_or_below = np.searchsorted(imp, gen, side="right")
    return float((below + 0.5 * (at_or_below - below)).sum() / (gen.size * imp.size))


def roc_curve(
    genuine: ArrayLike, impostor: ArrayLike, max_points: int = ROC_POINTS
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Verification ROC: false and true positive rates over decreasing thresholds.

    Returns ``(fpr, tpr, thresholds)``, starting at (0, 0) (threshold +inf)
    and ending at (1, 1); at most ``max_points`` thresholds (quantiles of
    all scores) plus the two ends.
    """
    gen = np.sort(np.asarray(genuine, np.float64).ravel())
    imp = np.sort(np.asarray(impostor, np.float64).ravel())
    if gen.size == 0 or imp.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    every = np.unique(np.concatenate([gen, imp]))
    if every.size > max_points:
        every = np.unique(np.quantile(every, np.linspace(0, 1, max_points)))
    thr = every[::-1]
    tpr = (gen.size - np.searchsorted(gen, thr, side="left")) / gen.size
    fpr = (imp.size - np.searchsorted(imp, thr, side="left")) / imp.size
    return (np.concatenate([[0.0], fpr, [1.0]]), np.concatenate([[0.0], tpr, [1.0]]),
            np.concatenate([[np.inf], thr, [-np.inf]]))
