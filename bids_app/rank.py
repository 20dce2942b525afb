"""Scoring, ranking and summary metrics for face re-identification.

Everything here is pure NumPy on arrays: no file access, no logging.

Terminology
-----------
gallery
    The MRI renders, one embedding row per render. Several renders belong
    to one *identity* (one participant's MRI); ``gallery_identity`` holds the
    integer identity code of every render.
probes
    The participants' photos, one embedding row per photo. Several photos
    belong to one *person*; ``probe_person`` holds the person code of every
    photo.

Scoring follows Schwarz et al. (N Engl J Med 2019;381:1684-1686): the
renders of each MRI were enrolled as one identity of a face-recognition
service; for every photo the service returned the top-50 identities with a
non-negative confidence; the confidences were summed over a person's photos
and the rank of the person's own MRI in that sum was reported (top-1: 83%,
top-5: 95% of 84 volunteers). :func:`identity_scores_nejm` plays the role of
the service (identity confidence = best cosine similarity over the identity's
renders, clipped at 0, top-k only), :func:`aggregate_by_person` sums over
photos and :func:`true_ranks` ranks the true identity.

Conventions
-----------
* Embeddings are L2-normalised rows; a row of NaN means "no face detected".
* Ranks are 1-based and returned as ``float64`` arrays so that *unusable*
  persons can be ``NaN`` (a person with no usable photo, i.e. an all-zero or
  non-finite score row, or whose identity is not in the gallery, ``-1``).
  ``NaN`` never passes a ``rank <= k`` test, so it cannot be counted as a hit
  by mistake; callers write it as ``n/a``. Under ``ties="max"``/``"min"`` all
  finite ranks are whole numbers.
* The metrics (:func:`cmc_curve`, :func:`summarise`) leave ``NaN`` ranks out
  of the denominator but keep ``+inf``: a caller can pass ``inf`` for a person
  who has a usable photo but cannot be found at all (e.g. no face in any of
  their own MRI renders), so that they count as *not identified*.

Examples
--------
>>> import numpy as np
>>> gallery = np.eye(3)[[0, 0, 1, 1, 2, 2]]          # 3 identities x 2 renders
>>> probes = np.eye(3)[[0, 1, 2]]                    # one photo per person
>>> sim = cosine_similarity(probes, gallery)
>>> photo = identity_scores_nejm(sim, np.array([0, 0, 1, 1, 2, 2]), 3)
>>> person = aggregate_by_person(photo, np.array([0, 1, 2]), 3)
>>> true_ranks(person, np.array([0, 1, 2])).tolist()
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "aggregate_by_person",
    "chance_rate",
    "cmc_curve",
    "cosine_similarity",
    "identity_scores_nejm",
    "summarise",
    "top_matches",
    "true_ranks",
    "usable_ranks",
    "wilson_interval",
]

TiePolicy = Literal["max", "min", "average"]

#: Number of identities the service in Schwarz et al. (2019) returned per photo.
NEJM_TOP_K = 50


def _as_2d(name: str, arr: ArrayLike) -> NDArray[np.float64]:
    out = np.asarray(arr, dtype=np.float64)
    if out.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {out.shape}")
    return out


def _as_codes(name: str, arr: ArrayLike, length: int, upper: int, allow_missing: bool = False) -> NDArray[np.intp]:
    codes = np.asarray(arr)
    if codes.ndim != 1 or codes.shape[0] != length:
        raise ValueError(f"{name} must be 1-D of length {length}, got shape {codes.shape}")
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise TypeError(f"{name} must hold integer codes, got dtype {codes.dtype}")
    codes = codes.astype(np.intp, copy=False)
    low = -1 if allow_missing else 0
    if codes.size and (codes.min() < low or codes.max() >= upper):
        raise ValueError(f"{name} codes must lie in [{low}, {upper - 1}]")
    return codes


def cosine_similarity(probes: ArrayLike, gallery: ArrayLike) -> NDArray[np.float64]:
    """Cosine similarity between every probe and every gallery embedding.

    Parameters
    ----------
    probes : array_like, shape (P, D)
        Probe embeddings (photos), rows assumed L2-normalised.
    gallery : array_like, shape (G, D)
        Gallery embeddings (renders), rows assumed L2-normalised.

    Returns
    -------
    ndarray, shape (P, G), float64
        ``probes @ gallery.T``. A probe or gallery row containing any NaN
        (no face detected) gives NaN in its whole row or column.

    Notes
    -----
    Rows are not re-normalised: for unit vectors the dot product *is* the
    cosine similarity, and re-normalising would hide an upstream bug.
    """
    p = _as_2d("probes", probes)
    g = _as_2d("gallery", gallery)
    if p.shape[1] != g.shape[1]:
        raise ValueError(f"embedding dimensions differ: probes {p.shape[1]}, gallery {g.shape[1]}")
    p_bad = ~np.isfinite(p).all(axis=1)
    g_bad = ~np.isfinite(g).all(axis=1)
    sim = np.where(p_bad[:, None], 0.0, p) @ np.where(g_bad[:, None], 0.0, g).T
    sim[p_bad, :] = np.nan
    sim[:, g_bad] = np.nan
    return sim


def identity_scores_nejm(
    sim: ArrayLike,
    gallery_identity: ArrayLike,
    n_identities: int,
    top_k: int | None = NEJM_TOP_K,
) -> NDArray[np.float64]:
    """Per-photo identity confidences, as a face-recognition service returns them.

    For each photo (row of ``sim``):

    1. the confidence of an identity is the maximum similarity over that
       identity's renders, ignoring NaN renders (no face);
    2. confidences are clipped at 0 (a service reports confidence >= 0); an
       identity none of whose renders has a face gets 0;
    3. only the ``top_k`` identities with the highest confidence are kept,
       all others are set to 0. Ties at the cut-off are broken towards the
       lower identity code, so the result is deterministic;
    4. a photo whose row is all NaN (no face in the photo) gets 0 everywhere.

    Parameters
    ----------
    sim : array_like, shape (P, G)
        Similarities from :func:`cosine_similarity`.
    gallery_identity : array_like of int, shape (G,)
        Identity code in ``[0, n_identities)`` of every gallery render.
    n_identities : int
        Number of identities; identities without renders get 0.
    top_k : int or None, default 50
        Identities returned per photo; ``None`` keeps all.

    Returns
    -------
    ndarray, shape (P, n_identities), float64
        Non-negative, finite confidences.
    """
    s = _as_2d("sim", sim)
    n_identities = int(n_identities)
    if n_identities < 0:
        raise ValueError("n_identities must be >= 0")
    ident = _as_codes("gallery_identity", gallery_identity, s.shape[1], n_identities)
    if top_k is not None and top_k < 1:
        raise ValueError("top_k must be >= 1 or None")

    scores = np.full((s.shape[0], n_identities), np.nan)
    for i in np.unique(ident):
        # fmax ignores NaN unless every render of the identity is NaN
        scores[:, i] = np.fmax.reduce(s[:, ident == i], axis=1)
    scores = np.clip(np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)

    if top_k is not None and top_k < n_identities:
        # stable sort of the negated scores: equal scores keep identity order
        order = np.argsort(-scores, axis=1, kind="stable")
        np.put_along_axis(scores, order[:, top_k:], 0.0, axis=1)
    return scores


def aggregate_by_person(
    photo_scores: ArrayLike,
    probe_person: ArrayLike,
    n_persons: int,
) -> NDArray[np.float64]:
    """Sum photo-level identity scores over each person's photos.

    Parameters
    ----------
    photo_scores : array_like, shape (P, I)
        Output of :func:`identity_scores_nejm`. Non-finite values count as 0.
    probe_person : array_like of int, shape (P,)
        Person code in ``[0, n_persons)`` of every photo.
    n_persons : int
        Number of persons; a person without photos gets a row of zeros.

    Returns
    -------
    ndarray, shape (n_persons, I), float64
    """
    scores = _as_2d("photo_scores", photo_scores)
    n_persons = int(n_persons)
    person = _as_codes("probe_person", probe_person, scores.shape[0], n_persons)
    out = np.zeros((n_persons, scores.shape[1]))
    np.add.at(out, person, np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0))
    return out


def true_ranks(
    person_scores: ArrayLike,
    true_identity: ArrayLike,
    ties: TiePolicy = "max",
    usable: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """1-based rank of each person's own identity among all identities.

    Identities are ordered by decreasing score. With ``g`` identities scoring
    strictly more than the true one and ``e`` identities (including the true
    one) scoring the same:

    * ``"max"`` (default, pessimistic): ``g + e``, the true identity is placed
      after every identity with an equal score. An identity that tied with
      others cannot be claimed as "found first".
    * ``"min"`` (optimistic): ``g + 1``.
    * ``"average"``: ``g + (e + 1) / 2`` (may be fractional).

    A true identity outside every photo's top-k has score 0 and, under
    ``"max"``, ranks after all other zero-score identities.

    Parameters
    ----------
    person_scores : array_like, shape (N, I)
        Output of :func:`aggregate_by_person`.
    true_identity : array_like of int, shape (N,)
        Identity code of each person's own MRI, ``-1`` when not in the gallery.
    ties : {"max", "min", "average"}
    usable : array_like of bool, shape (N,), optional
        Which persons have at least one usable photo. By default a person is
        usable when their score row is not all zero. When given, a usable
        person's all-zero row (every photo returned nothing) is ranked
        normally: all identities tie at 0, so ``"max"`` gives rank ``I``; a
        person marked unusable gets ``NaN`` whatever the scores.

    Returns
    -------
    ndarray, shape (N,), float64
        Ranks in ``[1, I]``; ``NaN`` for unusable persons: identity ``-1``, a
        score row with non-finite values, or no usable photo (see
        ``usable``). Use :func:`usable_ranks` to drop them.
    """
    scores = _as_2d("person_scores", person_scores)
    n, n_id = scores.shape
    truth = _as_codes("true_identity", true_identity, n, n_id, allow_missing=True)
    if ties not in ("max", "min", "average"):
        raise ValueError(f"ties must be 'max', 'min' or 'average', got {ties!r}")

    ranks = np.full(n, np.nan)
    if usable is None:
        has_photo = (scores != 0).any(axis=1)
    else:
        has_photo = np.asarray(usable, dtype=bool).ravel()
        if has_photo.shape != (n,):
            raise ValueError(f"usable must have shape ({n},), got {has_photo.shape}")
    rows = np.flatnonzero((truth >= 0) & np.isfinite(scores).all(axis=1) & has_photo)
    if rows.size:
        s = scores[rows]
        own = s[np.arange(rows.size), truth[rows]][:, None]
        greater = (s > own).sum(axis=1)
        equal = (s == own).sum(axis=1)
        if ties == "max":
            ranks[rows] = greater + equal
        elif ties == "min":
            ranks[rows] = greater + 1
        else:
            ranks[rows] = greater + (equal + 1) / 2.0
    return ranks


def usable_ranks(ranks: ArrayLike) -> NDArray[np.float64]:
    """The ranks of usable persons, as float64: ``NaN`` dropped, ``+inf`` kept."""
    r = np.asarray(ranks, dtype=np.float64).ravel()
    return r[~np.isnan(r)]


def top_matches(
    person_scores: ArrayLike,
    k: int = 5,
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """The ``k`` best-scoring identities of every person.

    Order is by decreasing score; equal scores keep increasing identity code
    (stable). Non-finite scores sort last. ``k`` larger than the number of
    identities is reduced to it.

    Returns
    -------
    indices : ndarray of intp, shape (N, k)
    scores : ndarray of float64, shape (N, k)
    """
    scores = _as_2d("person_scores", person_scores)
    if k < 0:
        raise ValueError("k must be >= 0")
    k = min(int(k), scores.shape[1])
    key = np.where(np.isfinite(scores), -scores, np.inf)
    idx = np.argsort(key, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(scores, idx, axis=1)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Parameters
    ----------
    successes, n : int
        ``0 <= successes <= n``.
    z : float, default 1.96
        Standard-normal quantile (1.96 for a 95% interval).

    Returns
    -------
    (low, high) : tuple of float
        ``(nan, nan)`` when ``n == 0``. Exactly 0 / 1 at the boundaries.

    Examples
    --------
    >>> [round(v, 3) for v in wilson_interval(8, 10)]
    [0.49, 0.943]
    """
    successes, n = int(successes), int(n)
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def cmc_curve(ranks: ArrayLike, n_gallery: int) -> NDArray[np.float64]:
    """Cumulative match characteristic.

    Parameters
    ----------
    ranks : array_like, shape (N,)
        Output of :func:`true_ranks`; NaN (unusable) entries are ignored,
        ``+inf`` (never found) entries count as misses.
    n_gallery : int
        Number of gallery identities.

    Returns
    -------
    ndarray, shape (n_gallery,)
        Element ``r - 1`` is the fraction of usable persons with rank <= r,
        for r = 1..n_gallery. Non-decreasing and ending at 1 when all usable
        ranks are <= n_gallery. All NaN when no person is usable.
    """
    n_gallery = int(n_gallery)
    r = usable_ranks(ranks)
    if r.size == 0:
        return np.full(n_gallery, np.nan)
    thresholds = np.arange(1, n_gallery + 1, dtype=np.float64)
    return (r[None, :] <= thresholds[:, None]).mean(axis=1)


def chance_rate(k: int, n_gallery: int) -> float:
    """Probability that the true identity is in the top ``k`` by chance.

    ``min(k, n_gallery) / n_gallery``; NaN for an empty gallery.
    """
    if n_gallery <= 0:
        return math.nan
    return min(k, n_gallery) / n_gallery


def _json_float(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def summarise(
    ranks: ArrayLike,
    n_gallery: int,
    ks: Sequence[int] = (1, 5),
    z: float = 1.96,
) -> dict[str, Any]:
    """Summary metrics in a JSON-serialisable form (NaN becomes ``None``).

    ``NaN`` ranks are left out; ``+inf`` ranks count in ``n`` as misses.

    Returns
    -------
    dict
        ``{"n": usable persons, "n_total": all persons, "n_unusable",
        "n_gallery", "ci_method": "wilson", "ci_level": 0.95 (for z=1.96),
        "top1": {"k", "hits", "n", "rate", "ci_low", "ci_high", "chance"},
        "top5": {...}, ... one "top<k>" per k,
        "median_rank", "mean_reciprocal_rank", "cmc": [..n_gallery floats]}``.
        ``rate``/``ci_*``/``median_rank``/``mean_reciprocal_rank`` are
        ``None`` when no person is usable.
    """
    all_r = np.asarray(ranks, dtype=np.float64).ravel()
    r = usable_ranks(all_r)
    n = int(r.size)
    level = math.erf(z / math.sqrt(2.0))
    out: dict[str, Any] = {
        "n": n,
        "n_total": int(all_r.size),
        "n_unusable": int(all_r.size - n),
        "n_gallery": int(n_gallery),
        "ci_method": "wilson",
        "ci_level": round(level, 4),
    }
    for k in ks:
        hits = int((r <= k).sum())
        low, high = wilson_interval(hits, n, z=z)
        out[f"top{k}"] = {
            "k": int(k),
            "hits": hits,
            "n": n,
            "rate": _json_float(hits / n) if n else None,
            "ci_low": _json_float(low),
            "ci_high": _json_float(high),
            "chance": _json_float(chance_rate(k, n_gallery)),
        }
    out["median_rank"] = _json_float(float(np.median(r))) if n else None
    out["mean_reciprocal_rank"] = _json_float(float(np.mean(1.0 / r))) if n else None
    out["cmc"] = [_json_float(v) for v in cmc_curve(all_r, n_gallery)]
    return out
