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
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "SCORINGS",
    "RankResult",
    "aggregate_by_person",
    "auc_score",
    "identity_confidence",
    "person_scores",
    "rank_gallery",
    "roc_curve",
    "verification_pairs",
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
    if top_k is not None and top_k < 1:
        raise ValueError("top_k must be >= 1 or None")
    conf = identity_confidence(s, gallery_identity, n_identities)
    return _nejm_select(conf, top_k)


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
    scores = np.asarray(photo_scores)
    if scores.ndim != 2:
        raise ValueError(f"photo_scores must be 2-D, got shape {scores.shape}")
    n_persons = int(n_persons)
    person = _as_codes("probe_person", probe_person, scores.shape[0], n_persons)
    out = np.zeros((n_persons, scores.shape[1]))
    clean = np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)
    if person.size and not np.any(np.diff(person) < 0):
        # sorted codes (the usual layout): one vectorised sum per person
        present, starts = np.unique(person, return_index=True)
        out[present] = np.add.reduceat(clean, starts, axis=0)
    else:
        np.add.at(out, person, clean)
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
    key = np.where(np.isfinite(scores), scores, -np.inf)
    idx = _top_indices(key, k)
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
    # O(N + n_gallery): count ranks per whole-number bin, then accumulate.
    # A rank r counts for every threshold t >= r, i.e. from ceil(r) on.
    first = np.ceil(r[r <= n_gallery]).astype(np.int64)
    first = np.clip(first, 1, None)
    counts = np.bincount(first - 1, minlength=n_gallery)[:n_gallery]
    return np.cumsum(counts) / r.size


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


# -- scoring variants ------------------------------------------------------------

#: ``--scoring`` choices. All start from the photo-level identity confidence
#: (best cosine similarity between the photo and the identity's renders):
#:
#: ``nejm``      clipped at 0, top-k identities per photo, summed over photos
#:               (Schwarz et al., 2019; the default);
#: ``max``       the best confidence over the person's photos;
#: ``mean``      the mean confidence over the person's photos (all identities);
#: ``topk-sum``  the sum of the person's ``k`` best photo confidences for the
#:               identity (``k`` = ``top_k``; 1 is ``max``, the number of
#:               photos or more is the sum over all photos).
SCORINGS = ("nejm", "max", "mean", "topk-sum")

#: Value given to a missing confidence (identity without renders, excluded
#: identity) by the scorings other than ``nejm``: below any cosine similarity.
MISSING_CONFIDENCE = -1.0


def _sorted_starts(codes: NDArray[np.intp], n: int) -> NDArray[np.intp] | None:
    """Start offsets when ``codes`` is sorted and holds every code 0..n-1, else None."""
    if codes.size == 0 or n == 0:
        return None
    if np.any(np.diff(codes) < 0):
        return None
    starts = np.searchsorted(codes, np.arange(n), side="left")
    ends = np.searchsorted(codes, np.arange(n), side="right")
    if np.any(ends <= starts):
        return None
    return starts


def identity_confidence(
    sim: ArrayLike,
    gallery_identity: ArrayLike,
    n_identities: int,
) -> NDArray[np.float64]:
    """Photo-level identity confidence: the best similarity over each identity's renders.

    NaN renders (no face) are ignored; an identity with no finite render (or
    no render at all) gets NaN.

    Returns
    -------
    ndarray, shape (P, n_identities), float64
    """
    s = _as_2d("sim", sim)
    n_identities = int(n_identities)
    if n_identities < 0:
        raise ValueError("n_identities must be >= 0")
    ident = _as_codes("gallery_identity", gallery_identity, s.shape[1], n_identities)
    out = np.full((s.shape[0], n_identities), np.nan)
    if s.shape[0] == 0 or ident.size == 0:
        return out
    starts = _sorted_starts(ident, n_identities)
    if starts is not None:
        # fmax ignores NaN unless every render of the identity is NaN
        return np.fmax.reduceat(s, starts, axis=1)
    for i in np.unique(ident):
        out[:, i] = np.fmax.reduce(s[:, ident == i], axis=1)
    return out


def _top_mask(scores: NDArray, k: int) -> NDArray[np.bool_]:
    """Per row, True for the ``k`` largest entries; ties at the cut-off go to the lower column.

    ``scores`` must be free of NaN. Same selection as a stable sort of the
    negated scores, in O(columns) per row.
    """
    n_rows, n_cols = scores.shape
    if k >= n_cols:
        return np.ones(scores.shape, bool)
    if k <= 0 or n_rows == 0:
        return np.zeros(scores.shape, bool)
    kth = _kth_largest(scores, k)
    mask = scores > kth[:, None]
    need = k - mask.sum(axis=1)
    equal = scores == kth[:, None]
    is_tied = equal.sum(axis=1) > need
    mask[~is_tied] |= equal[~is_tied]
    for row in np.flatnonzero(is_tied):  # rare: more entries equal to the k-th value than places left
        cols = np.flatnonzero(equal[row])[: need[row]]
        mask[row, cols] = True
    return mask


def _kth_largest(scores: NDArray, k: int) -> NDArray:
    """Each row's k-th largest value (1 <= k <= columns), without partitioning whole rows.

    The columns are split into ``m >= k`` disjoint strided sets; the k-th
    largest of the sets' maxima is a lower bound of the k-th largest value
    (those k maxima are k distinct entries). Only entries at or above that
    bound are gathered and partitioned. Exact; falls back to a plain
    partition for narrow rows.
    """
    n_rows, n_cols = scores.shape
    m = 4 * k
    width = n_cols // m
    if width < 4:
        return -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    used = width * m
    set_max = scores[:, :used].reshape(n_rows, width, m).max(axis=1)  # set j = columns j, j+m, ...
    bound = -np.partition(-set_max, k - 1, axis=1)[:, k - 1]
    rows, cols = np.nonzero(scores >= bound[:, None])
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    packed = np.full((n_rows, int(counts.max())), -np.inf, dtype=np.result_type(scores.dtype, np.float32))
    packed[rows, np.arange(rows.size) - starts[rows]] = scores[rows, cols]
    return -np.partition(-packed, k - 1, axis=1)[:, k - 1]


def _top_indices(scores: NDArray, k: int) -> NDArray[np.intp]:
    """Column indices of each row's ``k`` largest entries, best first, ties by lower column."""
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    if k == 0 or n_rows == 0:
        return np.zeros((n_rows, k), np.intp)
    mask = _top_mask(scores, k)
    cols = np.nonzero(mask)[1].reshape(n_rows, k)  # row-major: ascending column per row
    vals = np.take_along_axis(scores, cols, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1)


def _nejm_select(conf: NDArray, top_k: int | None) -> NDArray[np.floating]:
    """Clip at 0 (NaN -> 0) and keep each row's top-k; float32 input stays float32 (memory)."""
    conf = np.asarray(conf)
    scores = np.array(conf, dtype=np.float32 if conf.dtype == np.float32 else np.float64)
    scores[~(scores > 0)] = 0.0  # NaN and negatives
    scores[np.isinf(scores)] = 0.0
    if top_k is not None and top_k < scores.shape[1]:
        scores[~_top_mask(scores, int(top_k))] = 0.0
    return scores


def person_scores(
    confidence: ArrayLike,
    probe_person: ArrayLike,
    n_persons: int,
    scoring: str = "nejm",
    top_k: int | None = NEJM_TOP_K,
) -> NDArray[np.float64]:
    """Person-by-identity scores from photo-level confidences (see :data:`SCORINGS`).

    Parameters
    ----------
    confidence : array_like, shape (P, I)
        From :func:`identity_confidence`; NaN = no confidence.
    probe_person : array_like of int, shape (P,)
    n_persons : int
    scoring : {"nejm", "max", "mean", "topk-sum"}
    top_k : int or None
        ``nejm``: identities kept per photo; ``topk-sum``: photo confidences
        summed per identity; ignored by ``max`` and ``mean``.

    Returns
    -------
    ndarray, shape (n_persons, I), float64
        A person without photos gets a row of zeros (``nejm``) or of
        :data:`MISSING_CONFIDENCE` (the others).
    """
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    conf = np.asarray(confidence)
    if conf.ndim != 2:
        raise ValueError(f"confidence must be 2-D, got shape {conf.shape}")
    n_persons = int(n_persons)
    person = _as_codes("probe_person", probe_person, conf.shape[0], n_persons)
    if scoring == "nejm":
        return aggregate_by_person(_nejm_select(conf, top_k), person, n_persons)
    if top_k is not None and top_k < 1:
        raise ValueError("top_k must be >= 1 or None")
    c = np.where(np.isfinite(conf), conf, MISSING_CONFIDENCE)
    out = np.full((n_persons, conf.shape[1]), MISSING_CONFIDENCE)
    counts = np.bincount(person, minlength=n_persons)
    order = np.argsort(person, kind="stable")
    c, person = c[order], person[order]
    present = np.flatnonzero(counts)
    starts = np.searchsorted(person, present)
    if present.size == 0:
        return out
    if scoring == "max":
        out[present] = np.maximum.reduceat(c, starts, axis=0)
    elif scoring == "mean":
        out[present] = np.add.reduceat(c, starts, axis=0) / counts[present, None]
    else:  # topk-sum
        k = conf.shape[0] if top_k is None else int(top_k)
        if k >= counts.max():
            out[present] = np.add.reduceat(c, starts, axis=0)
        else:
            for p, start in zip(present, starts):
                rows = c[start:start + counts[p]]
                if counts[p] <= k:
                    out[p] = rows.sum(axis=0)
                else:
                    out[p] = -np.partition(-rows, k - 1, axis=0)[:k].sum(axis=0)
    return out


# -- blocked ranking for large cohorts ----------------------------------------

class RankResult(dict):
    """Result of :func:`rank_gallery` (a dict with attribute access).

    ``ranks`` (N,) float64: 1-based rank of the true identity (or group);
    NaN for a person without probes, ``+inf`` for a person with probes whose
    true identity is not in the gallery (``-1``): counted, never found.
    ``true_score`` (N,): the person's score for the true identity (NaN when
    none). ``match_index`` / ``match_score`` (N, m): the ``m`` best
    identities (or groups), best first, ``-1`` / NaN for persons without probes.
    ``n_candidates``: identities (or groups) ranked.
    """

    __getattr__ = dict.__getitem__


def rank_gallery(
    probes: ArrayLike,
    probe_person: ArrayLike,
    n_persons: int,
    gallery: ArrayLike,
    gallery_identity: ArrayLike,
    n_identities: int,
    true_identity: ArrayLike,
    *,
    scoring: str = "nejm",
    top_k: int | None = NEJM_TOP_K,
    ties: TiePolicy = "max",
    n_matches: int = 5,
    exclude_identity: ArrayLike | None = None,
    identity_group: ArrayLike | None = None,
    n_groups: int | None = None,
    block_bytes: int = 256 << 20,
    progress: Callable[[int, int], None] | None = None,
) -> RankResult:
    """Rank every person's true identity without holding the full similarity matrix.

    Same result as the dense computation ``true_ranks(person_scores(
    identity_confidence(probes @ gallery.T, ...), ...), ..., usable=<has a
    photo>)`` (then :func:`top_matches`), but computed by blocks of persons,
    so memory is bounded by ``block_bytes`` plus the embeddings, whatever
    the cohort size. Similarities are computed in the embeddings' precision
    (float32 embeddings give float32 similarities, by multithreaded BLAS);
    scores are summed in float64, exactly as the dense computation does.

    How it is fast:

    * the gallery is laid out *render-major*: slab ``s`` holds render ``s``
      of every identity (an identity with fewer renders repeats its own,
      which does not change a maximum), so the best render per identity is
      one matrix product per slab folded with ``np.maximum``, with no
      scatter. A gallery already sorted by identity with equal render counts
      is used in place (strided views, no copy);
    * ``nejm`` never materialises person-by-identity scores: per photo, a
      cheap lower bound of the k-th best confidence (the k-th largest of
      ``4k`` strided column maxima) selects a few candidates, the exact
      top-k (ties to the lower identity code) is taken among them, and the
      kept (person, identity, confidence) triples are summed per person in
      photo order. Identities outside every photo's top-k score 0, so the
      rank of the true identity follows exactly from the sparse sums: with a
      score ``s > 0`` it is compared with the positive sums only; with 0 it
      ties with every zero-score identity (``"max"``: after all of them);
    * the other scorings reduce each block densely with :func:`person_scores`.

    Rows with a non-finite value (no face) are ignored: a person whose photos
    all lack a face gets NaN; an identity none of whose renders has a face
    gets the missing confidence (0 for ``nejm``).

    Parameters
    ----------
    probes, probe_person, n_persons
        Photo embeddings and their person codes.
    gallery, gallery_identity, n_identities
        Render embeddings and their identity codes.
    true_identity : array_like of int, shape (n_persons,)
        Each person's own identity (or group, when ``identity_group`` is
        given); ``-1`` when absent.
    scoring, top_k, ties
        See :func:`person_scores` and :func:`true_ranks`.
    n_matches : int
        Best identities kept per person.
    exclude_identity : array_like of int, shape (n_persons,), optional
        An identity each person is *not* compared with (``-1`` for none):
        its confidence is treated as missing before scoring. Used for
        linkage, where a scan must not be matched with itself.
    identity_group, n_groups : optional
        Collapse identities into groups (e.g. scans into participants) by
        the best score over the group's identities, after scoring; ranks and
        matches are then over groups. Identities of one group must be
        contiguous in code order.
    block_bytes : int
        Budget for the per-block working arrays.
    progress : callable, optional
        Called after every block as ``progress(photos_done, photos_total)``.
    """
    p = np.asarray(probes)
    g = np.asarray(gallery)
    if p.ndim != 2 or g.ndim != 2 or p.shape[1] != g.shape[1]:
        raise ValueError(f"probes {p.shape} and gallery {g.shape} must be 2-D with equal columns")
    dtype = np.result_type(p.dtype, g.dtype, np.float32)
    n_persons, n_identities = int(n_persons), int(n_identities)
    person = _as_codes("probe_person", probe_person, p.shape[0], max(n_persons, 1))
    ident = _as_codes("gallery_identity", gallery_identity, g.shape[0], max(n_identities, 1))
    if identity_group is not None:
        if n_groups is None:
            raise ValueError("n_groups is required with identity_group")
        group = _as_codes("identity_group", identity_group, n_identities, int(n_groups))
        if np.any(np.diff(group) < 0):
            raise ValueError("identities of one group must be contiguous (identity_group sorted)")
        n_cand = int(n_groups)
        cand_present = np.bincount(group, minlength=n_cand) > 0
    else:
        group = None
        n_cand = n_identities
        cand_present = np.ones(n_cand, bool)
    truth = _as_codes("true_identity", true_identity, n_persons, max(n_cand, 1), allow_missing=True)
    exclude = None
    if exclude_identity is not None:
        exclude = _as_codes("exclude_identity", exclude_identity, n_persons, max(n_identities, 1),
                            allow_missing=True)
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    if ties not in ("max", "min", "average"):
        raise ValueError(f"ties must be 'max', 'min' or 'average', got {ties!r}")
    if top_k is not None and top_k < 1:
        raise ValueError("top_k must be >= 1 or None")

    m = min(int(n_matches), n_cand)
    result = RankResult(
        ranks=np.full(n_persons, np.nan),
        true_score=np.full(n_persons, np.nan),
        match_index=np.full((n_persons, m), -1, np.intp),
        match_score=np.full((n_persons, m), np.nan),
        n_candidates=n_cand,
    )
    # rows without a face take no part
    p_ok = np.isfinite(p).all(axis=1) if p.size else np.ones(p.shape[0], bool)
    g_ok = np.isfinite(g).all(axis=1) if g.size else np.ones(g.shape[0], bool)
    if not g_ok.all():
        g, ident = g[g_ok], ident[g_ok]
    if n_persons == 0 or n_identities == 0 or not p_ok.any():
        return result
    slabs, missing = _render_slabs(g.astype(dtype, copy=False), ident, n_identities)

    # probes grouped by person (stable: photo order kept within a person)
    if np.all(p_ok) and not np.any(np.diff(person) < 0):
        p_sorted, person_sorted = p.astype(dtype, copy=False), person
    else:
        order_p = np.argsort(np.where(p_ok, person, n_persons), kind="stable")[: int(p_ok.sum())]
        p_sorted, person_sorted = p[order_p].astype(dtype, copy=False), person[order_p]
    counts_p = np.bincount(person_sorted, minlength=n_persons)
    starts_p = np.concatenate([[0], np.cumsum(counts_p)[:-1]])
    persons_with = np.flatnonzero(counts_p)
    nejm = scoring == "nejm"
    k = n_identities if top_k is None else min(int(top_k), n_identities)
    # per probe row: similarity + one slab product (float32) and a mask (nejm),
    # or float64 copies in person_scores (other scorings)
    row_bytes = n_identities * (2 * np.dtype(dtype).itemsize + (2 if nejm else 32))
    rows_per_block = max(1, int(block_bytes // row_bytes))
    fill = -np.inf if nejm else np.nan
    cum_all = np.cumsum(counts_p[persons_with])

    a = 0
    while a < persons_with.size:
        # persons [a, b) of those with probes, about rows_per_block probe rows
        base = cum_all[a - 1] if a else 0
        b = a + max(1, int(np.searchsorted(cum_all[a:] - base, rows_per_block, side="right")))
        block_persons = persons_with[a:b]
        r0 = starts_p[block_persons[0]]
        r1 = starts_p[block_persons[-1]] + counts_p[block_persons[-1]]
        conf = _best_render_similarity(p_sorted[r0:r1], slabs)
        if missing.size:
            conf[:, missing] = fill
        local = np.repeat(np.arange(block_persons.size), counts_p[block_persons])
        if exclude is not None:
            ex = exclude[block_persons][local]
            hit = np.flatnonzero(ex >= 0)
            conf[hit, ex[hit]] = fill
        t = truth[block_persons]
        if nejm:
            out = _nejm_block(conf, local, block_persons.size, k, group, n_cand, cand_present, t, ties, m)
        else:
            out = _dense_block(conf, local, block_persons.size, scoring, top_k, group, n_cand, t, ties, m)
        ranks, true_score, idx, sc = out
        result["ranks"][block_persons] = ranks
        result["true_score"][block_persons] = true_score
        result["match_index"][block_persons] = idx
        result["match_score"][block_persons] = sc
        if progress is not None:
            progress(int(r1), int(p_sorted.shape[0]))
        a = b
    return result


def _render_slabs(g: NDArray, ident: NDArray[np.intp], n_identities: int) -> tuple[list[NDArray], NDArray[np.intp]]:
    """Render-major gallery: ``slabs[s][i]`` is a render of identity ``i``; identities without renders.

    Identity ``i`` with ``c_i`` renders has its ``s``-th render in slab ``s``
    for ``s < c_i`` and repeats its own renders (``s mod c_i``) above; an
    identity without a render gets a zero row (its column is overwritten by
    the caller). A gallery sorted by identity with equal counts gives views.
    """
    counts = np.bincount(ident, minlength=n_identities)
    missing = np.flatnonzero(counts == 0)
    width = int(counts.max()) if counts.size else 0
    if width == 0:
        return [np.zeros((n_identities, g.shape[1]), g.dtype)], missing
    if missing.size == 0 and (counts == width).all() and not np.any(np.diff(ident) < 0):
        cube = g.reshape(n_identities, width, g.shape[1])  # views, no copy
        return [cube[:, s, :] for s in range(width)], missing
    order = np.argsort(ident, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    safe = np.maximum(counts, 1)
    slabs = []
    for s in range(width):
        slab = g[order[np.minimum(starts + s % safe, max(g.shape[0] - 1, 0))]]
        slab[missing] = 0.0
        slabs.append(slab)
    return slabs, missing


def _best_render_similarity(rows: NDArray, slabs: list[NDArray]) -> NDArray:
    """``(rows, identities)``: the best similarity over each identity's renders (BLAS products)."""
    conf = np.matmul(rows, slabs[0].T)
    if len(slabs) > 1:
        tmp = np.empty_like(conf)
        for slab in slabs[1:]:
            np.matmul(rows, slab.T, out=tmp)
            np.maximum(conf, tmp, out=conf)
    return conf


def _row_segments(rows: NDArray[np.intp], n_rows: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """For row-sorted entries: start offset of each row's run and each entry's position in it."""
    starts = np.searchsorted(rows, np.arange(n_rows))
    return starts, np.arange(rows.size) - starts[rows]


def _nejm_candidates(conf: NDArray, k: int) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray]:
    """Each row's top-``k`` positive entries (ties to the lower column): rows, columns, values.

    Same selection as ``_nejm_select`` (entries it sets to 0 add nothing to a
    sum and are left out). ``conf`` must be C-contiguous and free of NaN
    (missing = ``-inf``). Entries come out sorted by row, then column.
    """
    n_rows, n_cols = conf.shape
    tiny = np.nextafter(conf.dtype.type(0), conf.dtype.type(1))
    if k >= n_cols:
        thr = np.full(n_rows, tiny, conf.dtype)
    else:
        # a lower bound of each row's k-th largest value: the k-th largest of the
        # maxima of m >= k disjoint strided column sets (k distinct entries)
        m = 4 * k
        width = n_cols // m
        if width >= 2:
            set_max = conf[:, : width * m].reshape(n_rows, width, m).max(axis=1)
            bound = -np.partition(-set_max, k - 1, axis=1)[:, k - 1]
        else:
            bound = -np.partition(-conf, k - 1, axis=1)[:, k - 1]
        thr = np.maximum(bound, tiny)
    flat = np.flatnonzero(conf >= thr[:, None])  # 1-D: much faster than a 2-D nonzero
    rows, cols = np.divmod(flat, n_cols)
    vals = conf.reshape(-1)[flat]
    if k >= n_cols:
        return rows, cols, vals
    # exact k-th largest per row among the candidates, then the same cut as _top_mask
    starts, pos = _row_segments(rows, n_rows)
    counts = np.bincount(rows, minlength=n_rows)
    over = np.flatnonzero(counts > k)  # rows with more candidates than places
    if over.size == 0:
        return rows, cols, vals
    packed = np.full((over.size, int(counts[over].max())), -np.inf, conf.dtype)
    slot = np.full(n_rows, -1, np.intp)
    slot[over] = np.arange(over.size)
    sel = slot[rows] >= 0
    packed[slot[rows[sel]], pos[sel]] = vals[sel]
    kth = np.full(n_rows, -np.inf, conf.dtype)
    kth[over] = -np.partition(-packed, k - 1, axis=1)[:, k - 1]
    kth_r = kth[rows]
    greater = vals > kth_r
    equal = vals == kth_r
    need = k - np.bincount(rows, weights=greater, minlength=n_rows).astype(np.intp)
    eq_before = np.cumsum(equal) - equal  # equal entries before this one, in row order ...
    eq_before -= (np.cumsum(equal) - equal)[starts[rows]]  # ... within its row
    keep = greater | (equal & (eq_before < need[rows]))
    return rows[keep], cols[keep], vals[keep]


def _sum_like_dense(seg, seg_start, who, photo, vals, n_photos):
    """Per segment (a person and an identity), the sum of its photos' values, bit for bit as
    :func:`aggregate_by_person` sums a person's rows (``np.add.reduceat`` over the photos with
    zeros where a photo did not keep the identity): float64, same summation order."""
    score = np.zeros(seg_start.size)
    if not seg_start.size:
        return score
    count = n_photos[who[seg_start]]
    for c in np.unique(count):
        chosen = np.flatnonzero(count == c)
        if c == 1:
            score[chosen] = vals[seg_start[chosen]]
            continue
        column = np.full(seg_start.size, -1, np.intp)
        column[chosen] = np.arange(chosen.size)
        col = column[seg]
        mine = col >= 0
        z = np.zeros((int(c), chosen.size))
        z[photo[mine], col[mine]] = vals[mine]
        score[chosen] = np.add.reduceat(z, [0], axis=0)[0]
    return score


def _nejm_block(conf, local, n_local, k, group, n_cand, cand_present, truth, ties, m):
    """Ranks, true scores and best matches of one block of persons (``nejm``), from sparse sums."""
    rows, cols, vals = _nejm_candidates(conf, k)
    who = local[rows]
    # by person, then identity, then photo (stable: rows ascending within a pair)
    n_id = conf.shape[1]
    key = who.astype(np.int64) * n_id + cols
    order = np.argsort(key, kind="stable")
    key, who, cols, rows, vals = key[order], who[order], cols[order], rows[order], vals[order]
    new = np.ones(who.size, bool)
    new[1:] = key[1:] != key[:-1]
    seg = np.cumsum(new) - 1
    seg_start = np.flatnonzero(new)
    score = _sum_like_dense(seg, seg_start, who, rows - np.searchsorted(local, who), vals,
                            np.bincount(local, minlength=n_local))
    seg_who, seg_cand = who[seg_start], cols[seg_start]
    if group is not None:
        # collapse identities into groups: best identity score of the group
        seg_cand = group[seg_cand]
        new = np.ones(seg_who.size, bool)
        new[1:] = (seg_who[1:] != seg_who[:-1]) | (seg_cand[1:] != seg_cand[:-1])
        starts = np.flatnonzero(new)
        score = np.maximum.reduceat(score, starts) if starts.size else score
        seg_who, seg_cand = seg_who[starts], seg_cand[starts]
    # scores > 0 for these (person, candidate) pairs; 0 for other present candidates, -inf for absent
    n_present = int(cand_present.sum())
    key = seg_who.astype(np.int64) * max(n_cand, 1) + seg_cand
    known = truth >= 0
    own = np.zeros(n_local)
    t = np.where(known, truth, 0)
    own[~cand_present[t]] = -np.inf
    target = np.arange(n_local, dtype=np.int64) * max(n_cand, 1) + t
    at = np.minimum(np.searchsorted(key, target), max(key.size - 1, 0))
    found = key[at] == target if key.size else np.zeros(n_local, bool)
    own[found] = score[at[found]]
    mine = own[seg_who]
    greater = np.bincount(seg_who, weights=score > mine, minlength=n_local)
    equal = np.bincount(seg_who, weights=score == mine, minlength=n_local)
    zero_own = own == 0
    greater = np.where(own < 0, greater + n_present - np.bincount(seg_who, minlength=n_local), greater)
    equal = np.where(zero_own, n_present - greater, equal)
    equal = np.where(own < 0, n_cand - n_present, equal)
    if ties == "max":
        ranks = greater + equal
    elif ties == "min":
        ranks = greater + 1.0
    else:
        ranks = greater + (equal + 1) / 2.0
    ranks = np.where(known, ranks, np.inf)
    true_score = np.where(known, own, np.nan)

    # best matches: positive scores by decreasing score then code, then zeros, then absent
    idx = np.full((n_local, m), -1, np.intp)
    sc = np.full((n_local, m), np.nan)
    if m:
        order = np.lexsort((seg_cand, -score, seg_who))
        sw, scand, sscore = seg_who[order], seg_cand[order], score[order]
        _, pos = _row_segments(sw, n_local)
        top = pos < m
        idx[sw[top], pos[top]] = scand[top]
        sc[sw[top], pos[top]] = sscore[top]
        n_pos = np.bincount(sw, minlength=n_local)
        short = np.flatnonzero(n_pos < m)
        if short.size:
            filler = np.concatenate([np.flatnonzero(cand_present), np.flatnonzero(~cand_present)])
            fill_score = np.where(cand_present[filler], 0.0, -np.inf)
            for i in short:
                have = set(idx[i, : n_pos[i]].tolist())
                take = [j for j in range(min(filler.size, m + len(have))) if filler[j] not in have]
                take = take[: m - n_pos[i]]
                idx[i, n_pos[i]: n_pos[i] + len(take)] = filler[take]
                sc[i, n_pos[i]: n_pos[i] + len(take)] = fill_score[take]
    return ranks, true_score, idx, sc


def _dense_block(conf, local, n_local, scoring, top_k, group, n_cand, truth, ties, m):
    """Ranks, true scores and best matches of one block of persons, from dense person scores."""
    scores = person_scores(conf.astype(np.float64), local, n_local, scoring=scoring, top_k=top_k)
    if group is not None:
        gstarts = np.searchsorted(group, np.arange(n_cand))
        present = np.bincount(group, minlength=n_cand) > 0
        collapsed = np.full((scores.shape[0], n_cand), -np.inf)
        collapsed[:, present] = np.maximum.reduceat(scores, gstarts[present], axis=1)
        scores = collapsed
    known = truth >= 0
    ranks = np.full(n_local, np.inf)
    true_score = np.full(n_local, np.nan)
    if known.any():
        ranks[known] = true_ranks(scores[known], truth[known], ties=ties, usable=np.ones(int(known.sum()), bool))
        true_score[known] = scores[known, truth[known]]
    idx, sc = top_matches(scores, m)
    return ranks, true_score, idx, sc


# -- verification (photo vs render pairs) ------------------------------------

def verification_pairs(
    probes: ArrayLike,
    probe_person: ArrayLike,
    gallery: ArrayLike,
    gallery_owner: ArrayLike,
    max_impostors: int = 200_000,
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
    i = rng.integers(0, p.shape[0], size=int(max_impostors * 1.2) + 16)
    j = rng.integers(0, g.shape[0], size=i.size)
    keep = pp[i] != go[j]
    i, j = i[keep][:max_impostors], j[keep][:max_impostors]
    impostor = np.empty(i.size)
    for c in range(0, i.size, 16384):  # chunks: no (pairs x dim) float64 copies of the sample
        ii, jj = i[c:c + 16384], j[c:c + 16384]
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
    genuine: ArrayLike, impostor: ArrayLike, max_points: int = 200
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
