"""Blocked ranking: every person's true identity ranked without the full similarity matrix.

:func:`rank_gallery` gives the result of the dense functions of
:mod:`bids_app.rank.scoring`, computed by blocks of persons so that memory
is bounded whatever the cohort size.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import threadpool_limits

from ._codes import TiePolicy, as_codes, check_ties, check_top_k, row_segments
from .scoring import NEJM_TOP_K, SCORINGS, person_scores, true_ranks
from .topk import nejm_candidates, top_matches

__all__ = ["DEFAULT_BLOCK_BYTES", "RankResult", "rank_gallery"]

#: Working memory of one block of persons (similarities and selection masks).
DEFAULT_BLOCK_BYTES = 256 << 20  # 256 MiB
#: Bytes per (photo, identity) entry of a block besides the two similarity arrays:
#: ``nejm`` keeps a bool mask and a comparison (2 bytes); the other scorings make
#: float64 copies in :func:`person_scores` (about 4 x 8 bytes).
_NEJM_EXTRA_BYTES = 2
_DENSE_EXTRA_BYTES = 32
#: Tile (photos, identities) of one product when the best render similarity is
#: computed by several threads: a tile's similarities stay in cache while the
#: maximum over its renders is taken (``benchmarks/rank_int8.py`` times both ways).
TILE = (512, 4096)


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


@dataclass(frozen=True)
class _Ranking:
    """What is ranked and how: the same for every block."""

    scoring: str
    top_k: int | None  # as given (None = all)
    k: int  # identities kept per photo (nejm), at most the number of identities
    ties: TiePolicy
    n_matches: int  # best candidates kept per person
    n_cand: int  # candidates ranked: identities, or groups
    cand_present: NDArray[np.bool_]  # (n_cand,) candidates with at least one identity
    group: NDArray[np.intp] | None  # (identities,) group of each identity, sorted; None = no groups


@dataclass(frozen=True)
class _Block:
    """One block of persons with their photos' best-render similarities."""

    conf: NDArray  # (photos, identities); missing = -inf (nejm) or NaN (others)
    local: NDArray[np.intp]  # (photos,) person of each photo, 0..n_persons-1 within the block
    n_persons: int
    truth: NDArray[np.intp]  # (n_persons,) true candidate, -1 when absent


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


def _fold_renders(rows: NDArray, slabs: list[NDArray], out: NDArray, tmp: NDArray) -> None:
    """``out[:] = max over slabs of rows @ slab.T``: the best render of each of the slabs' identities."""
    np.matmul(rows, slabs[0].T, out=out)
    for slab in slabs[1:]:
        np.matmul(rows, slab.T, out=tmp)
        np.maximum(out, tmp, out=out)


def _best_render_similarity(rows: NDArray, slabs: list[NDArray], *, workers: int = 1,
                            chunk: tuple[int, int] | None = None) -> NDArray:
    """``(rows, identities)``: the best similarity over each identity's renders (BLAS products).

    With ``workers > 1``, worker threads fold tiles of ``chunk`` (rows,
    identities; :data:`TILE` by default): one single-threaded product per
    slab, then the maximum, while the tile is in cache; otherwise one
    product per slab over the whole block. Every similarity is the same dot
    product either way (the tiles split only the rows and the identities),
    so the values are the same.
    """
    n_rows, n_id = rows.shape[0], slabs[0].shape[0]
    tile_rows, tile_ids = TILE if chunk is None else chunk
    conf = np.empty((n_rows, n_id), np.result_type(rows, slabs[0]))
    if workers <= 1 or (n_rows <= tile_rows and n_id <= tile_ids):
        _fold_renders(rows, slabs, conf, np.empty_like(conf) if len(slabs) > 1 else conf)
        return conf

    def fold(tile: tuple[int, int]) -> None:
        r, i = tile
        r1, i1 = min(r + tile_rows, n_rows), min(i + tile_ids, n_id)
        _fold_renders(rows[r:r1], [s[i:i1] for s in slabs], conf[r:r1, i:i1],
                      np.empty((r1 - r, i1 - i), conf.dtype))

    tiles = [(r, i) for r in range(0, n_rows, tile_rows) for i in range(0, n_id, tile_ids)]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fold, tiles))  # list(): raise a worker's error here
    return conf


def _sum_like_dense(seg, seg_start, who, photo, vals, n_photos):
    """Per segment (a person and an identity), the sum of its photos' values, bit for bit as
    :func:`~bids_app.rank.aggregate_by_person` sums a person's rows (``np.add.reduceat`` over
    the photos with zeros where a photo did not keep the identity): float64, same summation order."""
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


def _ranks_from_counts(greater, equal, ties: TiePolicy):
    if ties == "max":
        return greater + equal
    if ties == "min":
        return greater + 1.0
    return greater + (equal + 1) / 2.0


def _nejm_block(block: _Block, how: _Ranking):
    """Ranks, true scores and best matches of one block of persons (``nejm``), from sparse sums."""
    n_local, truth, m = block.n_persons, block.truth, how.n_matches
    n_cand, cand_present = how.n_cand, how.cand_present
    rows, cols, vals = nejm_candidates(block.conf, how.k)
    who = block.local[rows]
    # by person, then identity, then photo (stable: rows ascending within a pair)
    n_id = block.conf.shape[1]
    key = who.astype(np.int64) * n_id + cols
    order = np.argsort(key, kind="stable")
    key, who, cols, rows, vals = key[order], who[order], cols[order], rows[order], vals[order]
    new = np.ones(who.size, bool)
    new[1:] = key[1:] != key[:-1]
    seg = np.cumsum(new) - 1
    seg_start = np.flatnonzero(new)
    score = _sum_like_dense(seg, seg_start, who, rows - np.searchsorted(block.local, who), vals,
                            np.bincount(block.local, minlength=n_local))
    seg_who, seg_cand = who[seg_start], cols[seg_start]
    if how.group is not None:
        # collapse identities into groups: best identity score of the group
        seg_cand = how.group[seg_cand]
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
    ranks = np.where(known, _ranks_from_counts(greater, equal, how.ties), np.inf)
    true_score = np.where(known, own, np.nan)

    # best matches: positive scores by decreasing score then code, then zeros, then absent
    idx = np.full((n_local, m), -1, np.intp)
    sc = np.full((n_local, m), np.nan)
    if m:
        order = np.lexsort((seg_cand, -score, seg_who))
        sw, scand, sscore = seg_who[order], seg_cand[order], score[order]
        _, pos = row_segments(sw, n_local)
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


def _dense_block(block: _Block, how: _Ranking):
    """Ranks, true scores and best matches of one block of persons, from dense person scores."""
    n_local, truth = block.n_persons, block.truth
    scores = person_scores(block.conf.astype(np.float64), block.local, n_local, scoring=how.scoring,
                           top_k=how.top_k)
    if how.group is not None:
        gstarts = np.searchsorted(how.group, np.arange(how.n_cand))
        present = np.bincount(how.group, minlength=how.n_cand) > 0
        collapsed = np.full((scores.shape[0], how.n_cand), -np.inf)
        collapsed[:, present] = np.maximum.reduceat(scores, gstarts[present], axis=1)
        scores = collapsed
    known = truth >= 0
    ranks = np.full(n_local, np.inf)
    true_score = np.full(n_local, np.nan)
    if known.any():
        ranks[known] = true_ranks(scores[known], truth[known], ties=how.ties,
                                  usable=np.ones(int(known.sum()), bool))
        true_score[known] = scores[known, truth[known]]
    idx, sc = top_matches(scores, how.n_matches)
    return ranks, true_score, idx, sc


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
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
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
      cheap lower bound of the k-th best confidence
      (:func:`~bids_app.rank.topk.kth_lower_bound`) selects a few candidates,
      the exact top-k (ties to the lower identity code) is taken among them,
      and the kept (person, identity, confidence) triples are summed per
      person in photo order. Identities outside every photo's top-k score 0,
      so the rank of the true identity follows exactly from the sparse sums:
      with a score ``s > 0`` it is compared with the positive sums only; with
      0 it ties with every zero-score identity (``"max"``: after all of them);
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
    workers : int, optional
        Threads for the similarities (default: the CPUs this process may
        use); each runs single-threaded BLAS products on its own tiles of
        photos and identities (:data:`TILE`). The result does not depend on it.
    """
    p = np.asarray(probes)
    g = np.asarray(gallery)
    if p.ndim != 2 or g.ndim != 2 or p.shape[1] != g.shape[1]:
        raise ValueError(f"probes {p.shape} and gallery {g.shape} must be 2-D with equal columns")
    dtype = np.result_type(p.dtype, g.dtype, np.float32)
    n_persons, n_identities = int(n_persons), int(n_identities)
    person = as_codes("probe_person", probe_person, p.shape[0], max(n_persons, 1))
    ident = as_codes("gallery_identity", gallery_identity, g.shape[0], max(n_identities, 1))
    if identity_group is not None:
        if n_groups is None:
            raise ValueError("n_groups is required with identity_group")
        group = as_codes("identity_group", identity_group, n_identities, int(n_groups))
        if np.any(np.diff(group) < 0):
            raise ValueError("identities of one group must be contiguous (identity_group sorted)")
        n_cand = int(n_groups)
        cand_present = np.bincount(group, minlength=n_cand) > 0
    else:
        group = None
        n_cand = n_identities
        cand_present = np.ones(n_cand, bool)
    truth = as_codes("true_identity", true_identity, n_persons, max(n_cand, 1), allow_missing=True)
    exclude = None
    if exclude_identity is not None:
        exclude = as_codes("exclude_identity", exclude_identity, n_persons, max(n_identities, 1),
                           allow_missing=True)
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    check_ties(ties)
    check_top_k(top_k)

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
    how = _Ranking(scoring=scoring, top_k=top_k,
                   k=n_identities if top_k is None else min(int(top_k), n_identities),
                   ties=ties, n_matches=m, n_cand=n_cand, cand_present=cand_present, group=group)
    # per probe row: similarity + one slab product, and the scoring's own working arrays
    row_bytes = n_identities * (2 * np.dtype(dtype).itemsize + (_NEJM_EXTRA_BYTES if nejm else _DENSE_EXTRA_BYTES))
    rows_per_block = max(1, int(block_bytes // row_bytes))

    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, int(workers))
    fill = -np.inf if nejm else np.nan
    cum_all = np.cumsum(counts_p[persons_with])
    # the threads share the CPUs: BLAS itself runs one thread in each
    with threadpool_limits(1, user_api="blas") if workers > 1 else nullcontext():
        a = 0
        while a < persons_with.size:
            # persons [a, b) of those with probes, about rows_per_block probe rows
            base = cum_all[a - 1] if a else 0
            b = a + max(1, int(np.searchsorted(cum_all[a:] - base, rows_per_block, side="right")))
            block_persons = persons_with[a:b]
            r0 = starts_p[block_persons[0]]
            r1 = starts_p[block_persons[-1]] + counts_p[block_persons[-1]]
            conf = _best_render_similarity(p_sorted[r0:r1], slabs, workers=workers)
            if missing.size:
                conf[:, missing] = fill
            local = np.repeat(np.arange(block_persons.size), counts_p[block_persons])
            if exclude is not None:
                ex = exclude[block_persons][local]
                hit = np.flatnonzero(ex >= 0)
                conf[hit, ex[hit]] = fill
            block = _Block(conf=conf, local=local, n_persons=block_persons.size, truth=truth[block_persons])
            ranks, true_score, idx, sc = (_nejm_block if nejm else _dense_block)(block, how)
            result["ranks"][block_persons] = ranks
            result["true_score"][block_persons] = true_score
            result["match_index"][block_persons] = idx
            result["match_score"][block_persons] = sc
            if progress is not None:
                progress(int(r1), int(p_sorted.shape[0]))
            a = b
    return result
