"""Dense reference scoring: similarities, identity confidences, person scores and true ranks.

These functions hold whole (photos x renders) and (persons x identities)
matrices: they define the results, which :func:`bids_app.rank.blocked.rank_gallery`
reproduces by blocks for large cohorts.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._codes import TiePolicy, as_2d, as_codes, check_ties, check_top_k
from .topk import nejm_select

__all__ = [
    "MISSING_CONFIDENCE", "NEJM_TOP_K", "SCORINGS", "aggregate_by_person", "cosine_similarity",
    "identity_confidence", "identity_scores_nejm", "person_scores", "true_ranks", "usable_ranks",
]

#: Number of identities the service in Schwarz et al. (2019) returned per photo.
NEJM_TOP_K = 50

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
    p = as_2d("probes", probes)
    g = as_2d("gallery", gallery)
    if p.shape[1] != g.shape[1]:
        raise ValueError(f"embedding dimensions differ: probes {p.shape[1]}, gallery {g.shape[1]}")
    p_bad = ~np.isfinite(p).all(axis=1)
    g_bad = ~np.isfinite(g).all(axis=1)
    sim = np.where(p_bad[:, None], 0.0, p) @ np.where(g_bad[:, None], 0.0, g).T
    sim[p_bad, :] = np.nan
    sim[:, g_bad] = np.nan
    return sim


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
    s = as_2d("sim", sim)
    n_identities = int(n_identities)
    if n_identities < 0:
        raise ValueError("n_identities must be >= 0")
    ident = as_codes("gallery_identity", gallery_identity, s.shape[1], n_identities)
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
    s = as_2d("sim", sim)
    check_top_k(top_k)
    conf = identity_confidence(s, gallery_identity, n_identities)
    return nejm_select(conf, top_k)


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
    person = as_codes("probe_person", probe_person, scores.shape[0], n_persons)
    out = np.zeros((n_persons, scores.shape[1]))
    clean = np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)
    if person.size and not np.any(np.diff(person) < 0):
        # sorted codes (the usual layout): one vectorised sum per person
        present, starts = np.unique(person, return_index=True)
        out[present] = np.add.reduceat(clean, starts, axis=0)
    else:
        np.add.at(out, person, clean)
    return out


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
    person = as_codes("probe_person", probe_person, conf.shape[0], n_persons)
    if scoring == "nejm":
        return aggregate_by_person(nejm_select(conf, top_k), person, n_persons)
    check_top_k(top_k)
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
    scores = as_2d("person_scores", person_scores)
    n, n_id = scores.shape
    truth = as_codes("true_identity", true_identity, n, n_id, allow_missing=True)
    check_ties(ties)

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
