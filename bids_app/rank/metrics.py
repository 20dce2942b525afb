"""Summary metrics of ranks: Wilson intervals, the CMC curve, chance rates and a JSON summary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .scoring import usable_ranks

__all__ = ["Z_95", "chance_rate", "cmc_curve", "json_float", "summarise", "wilson_interval"]

#: Standard-normal quantile of a two-sided 95% interval (``scipy.stats.norm.ppf(0.975)``
#: is 1.95996...; 1.96 is the value the reports have always used).
Z_95 = 1.96


def _level(z: float) -> float:
    """Two-sided coverage of +-z standard deviations (1.96 -> 0.9500042)."""
    return math.erf(z / math.sqrt(2.0))


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Computed by :meth:`scipy.stats.binomtest(...).proportion_ci
    <scipy.stats._result_classes.BinomTestResult.proportion_ci>` (``method="wilson"``)
    at the coverage of ``z``.

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
    from scipy.stats import (
        binomtest,  # here: scipy.stats takes a while to import, the CLI needs it rarely
    )

    ci = binomtest(successes, n).proportion_ci(confidence_level=_level(z), method="wilson")
    low = 0.0 if successes == 0 else max(0.0, float(ci.low))
    high = 1.0 if successes == n else min(1.0, float(ci.high))
    return (low, high)


def cmc_curve(ranks: ArrayLike, n_gallery: int) -> NDArray[np.float64]:
    """Cumulative match characteristic.

    Parameters
    ----------
    ranks : array_like, shape (N,)
        Output of :func:`~bids_app.rank.true_ranks`; NaN (unusable) entries
        are ignored, ``+inf`` (never found) entries count as misses.
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


def json_float(x: float | None) -> float | None:
    """``x`` as a float for JSON; ``None`` for None, NaN and infinities."""
    return None if x is None or not math.isfinite(x) else float(x)


def summarise(
    ranks: ArrayLike,
    n_gallery: int,
    ks: Sequence[int] = (1, 5),
    z: float = Z_95,
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
    out: dict[str, Any] = {
        "n": n,
        "n_total": int(all_r.size),
        "n_unusable": int(all_r.size - n),
        "n_gallery": int(n_gallery),
        "ci_method": "wilson",
        "ci_level": round(_level(z), 4),
    }
    for k in ks:
        hits = int((r <= k).sum())
        low, high = wilson_interval(hits, n, z=z)
        out[f"top{k}"] = {
            "k": int(k),
            "hits": hits,
            "n": n,
            "rate": json_float(hits / n) if n else None,
            "ci_low": json_float(low),
            "ci_high": json_float(high),
            "chance": json_float(chance_rate(k, n_gallery)),
        }
    out["median_rank"] = json_float(float(np.median(r))) if n else None
    out["mean_reciprocal_rank"] = json_float(float(np.mean(1.0 / r))) if n else None
    out["cmc"] = [json_float(v) for v in cmc_curve(all_r, n_gallery)]
    return out
