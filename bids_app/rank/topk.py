"""Top-k selection: each row's ``k`` largest entries, ties at the cut-off to the lower column.

Three users: :func:`top_matches` (a person's best identities),
:func:`nejm_select` (dense: keep each photo's top-k identity confidences) and
:func:`nejm_candidates` (sparse, for blocked ranking: the kept entries only).
All share one cheap bound, :func:`kth_lower_bound`, so that whole rows are
rarely partitioned.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._codes import as_2d, row_segments

__all__ = ["kth_lower_bound", "nejm_candidates", "nejm_select", "top_matches"]

#: The columns are split into ``SETS_PER_K * k`` disjoint strided sets. Any
#: number of sets >= k gives a valid bound; more sets give a tighter bound (fewer
#: entries above it to gather) but cost a wider partition. 4 is the value both
#: former copies of this bound used; the results do not depend on it.
SETS_PER_K = 4
#: Fewer columns per set than this and the whole row is partitioned instead
#: (the set maxima would save little). The two former copies used 4 and 2; the
#: results do not depend on it (the bound is exact or followed by an exact step).
MIN_SET_WIDTH = 4


def kth_lower_bound(scores: NDArray, k: int) -> tuple[NDArray, bool]:
    """A lower bound of each row's k-th largest value (1 <= k <= columns), and whether it is exact.

    The columns are split into ``m = SETS_PER_K * k >= k`` disjoint strided
    sets (set ``j`` holds columns ``j, j + m, ...``); the k-th largest of the
    sets' maxima is a lower bound of the row's k-th largest value, because
    those k maxima are k distinct entries. Rows too narrow for that
    (fewer than ``MIN_SET_WIDTH`` columns per set) are partitioned whole,
    which gives the k-th largest value itself (``exact`` is then True).
    """
    n_rows, n_cols = scores.shape
    m = SETS_PER_K * k
    width = n_cols // m
    if width < MIN_SET_WIDTH:
        return -np.partition(-scores, k - 1, axis=1)[:, k - 1], True
    set_max = scores[:, : width * m].reshape(n_rows, width, m).max(axis=1)
    return -np.partition(-set_max, k - 1, axis=1)[:, k - 1], False


def _kth_largest(scores: NDArray, k: int) -> NDArray:
    """Each row's k-th largest value (1 <= k <= columns), without partitioning whole rows.

    Only the entries at or above :func:`kth_lower_bound` are gathered and
    partitioned. Exact.
    """
    n_rows = scores.shape[0]
    bound, exact = kth_lower_bound(scores, k)
    if exact:
        return bound
    rows, cols = np.nonzero(scores >= bound[:, None])
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    packed = np.full((n_rows, int(counts.max())), -np.inf, dtype=np.result_type(scores.dtype, np.float32))
    packed[rows, np.arange(rows.size) - starts[rows]] = scores[rows, cols]
    return -np.partition(-packed, k - 1, axis=1)[:, k - 1]


def top_mask(scores: NDArray, k: int) -> NDArray[np.bool_]:
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


def top_indices(scores: NDArray, k: int) -> NDArray[np.intp]:
    """Column indices of each row's ``k`` largest entries, best first, ties by lower column."""
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    if k == 0 or n_rows == 0:
        return np.zeros((n_rows, k), np.intp)
    mask = top_mask(scores, k)
    cols = np.nonzero(mask)[1].reshape(n_rows, k)  # row-major: ascending column per row
    vals = np.take_along_axis(scores, cols, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1)


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
    scores = as_2d("person_scores", person_scores)
    if k < 0:
        raise ValueError("k must be >= 0")
    k = min(int(k), scores.shape[1])
    key = np.where(np.isfinite(scores), scores, -np.inf)
    idx = top_indices(key, k)
    return idx, np.take_along_axis(scores, idx, axis=1)


def nejm_select(conf: NDArray, top_k: int | None) -> NDArray[np.floating]:
    """Clip at 0 (NaN -> 0) and keep each row's top-k; float32 input stays float32 (memory)."""
    conf = np.asarray(conf)
    scores = np.array(conf, dtype=np.float32 if conf.dtype == np.float32 else np.float64)
    scores[~(scores > 0)] = 0.0  # NaN and negatives
    scores[np.isinf(scores)] = 0.0
    if top_k is not None and top_k < scores.shape[1]:
        scores[~top_mask(scores, int(top_k))] = 0.0
    return scores


def nejm_candidates(conf: NDArray, k: int) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray]:
    """Each row's top-``k`` positive entries (ties to the lower column): rows, columns, values.

    Same selection as :func:`nejm_select` (entries it sets to 0 add nothing
    to a sum and are left out). ``conf`` must be C-contiguous and free of NaN
    (missing = ``-inf``). Entries come out sorted by row, then column.
    """
    n_rows, n_cols = conf.shape
    tiny = np.nextafter(conf.dtype.type(0), conf.dtype.type(1))  # the smallest positive value: "> 0"
    if k >= n_cols:
        thr = np.full(n_rows, tiny, conf.dtype)
    else:
        thr = np.maximum(kth_lower_bound(conf, k)[0], tiny)
    flat = np.flatnonzero(conf >= thr[:, None])  # 1-D: much faster than a 2-D nonzero
    rows, cols = np.divmod(flat, n_cols)
    vals = conf.reshape(-1)[flat]
    if k >= n_cols:
        return rows, cols, vals
    # exact k-th largest per row among the candidates, then the same cut as top_mask
    starts, pos = row_segments(rows, n_rows)
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
