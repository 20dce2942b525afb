"""Plots for the self-contained HTML reports, as inline SVG text.

The CMC curve, the verification ROC and the similarity histograms are
written as SVG by hand (no plotting library, nothing that varies between
runs), so a report opens offline, references nothing outside itself, and
is the same byte for byte when rebuilt. Thumbnails are in
:mod:`bids_app.report.images` (re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np
from numpy.typing import ArrayLike

from .images import image_data_uri

__all__ = [
    "SIMILARITY_BINS", "cmc_svg", "distribution_svg", "histogram_svg", "image_data_uri", "roc_svg",
    "similarity_histogram",
]


def _nice_ticks(n: int, max_ticks: int = 8) -> list[int]:
    """Integer ticks 1, s, 2s, ... <= n with a 1-2-5 step."""
    step = 1
    while math.ceil(n / step) > max_ticks:
        step = _next_125(step)
    ticks = [1] + list(range(step, n + 1, step))
    return sorted(set(t for t in ticks if 1 <= t <= n))


def _next_125(step: int) -> int:
    exp = 10 ** int(math.floor(math.log10(step)))
    lead = step // exp
    return {1: 2, 2: 5, 5: 10}.get(lead, 10) * exp


#: The thinned CMC curve stays within this many pixels of the full one (its stroke is 2 px wide).
CMC_TOLERANCE_PX = 1.0
#: Ranks whose exact CMC value is always a vertex of the curve (the rates the report quotes; the last rank is too).
CMC_KEPT_RANKS = (1, 5, 10)


def _cmc_step_ranks(y: np.ndarray, tol: float, keep: Sequence[int] = ()) -> np.ndarray:
    """The ranks at which a thinned CMC step curve is drawn (1-based, sorted).

    A cohort of 100 000 participants has 100 000 ranks, but the plot is a few
    hundred pixels wide and high: a vertex per rank makes megabytes of SVG
    that look like a few hundred vertices. A rank is kept where the curve
    enters a new band of height ``tol`` (so every jump larger than ``tol`` is
    kept), and so are rank 1, the last rank and ``keep``. Drawn flat at a kept
    rank's value up to the next kept rank, where it steps, the curve is exact
    at every kept rank and less than ``tol`` away anywhere else; a
    non-decreasing curve in [0, 1] keeps at most ``1 / tol + len(keep) + 2``
    ranks, whatever the cohort size.
    """
    n = y.size
    band = np.floor(y / tol)
    changes = np.flatnonzero(band[1:] != band[:-1]) + 2
    fixed = [r for r in (1, n, *keep) if 1 <= r <= n]
    return np.union1d(changes, np.asarray(fixed, dtype=np.int64)).astype(np.int64)


def _drop_straight(points: list[tuple[float, float]], fixed: set[int]) -> list[tuple[float, float]]:
    """Drop vertices in the middle of a horizontal or vertical run (the line drawn stays the
    same), except those at indices in ``fixed``: several ranks share a pixel column in a
    large cohort, and the flat corner of a step without a change repeats its neighbour."""
    out = points[:1]
    for i in range(1, len(points) - 1):
        (x0, y0), (x1, y1), (x2, y2) = out[-1], points[i], points[i + 1]
        on_run = (x0 == x1 == x2 and min(y0, y2) <= y1 <= max(y0, y2)) or (
            y0 == y1 == y2 and min(x0, x2) <= x1 <= max(x0, x2))
        if i in fixed or not on_run:
            out.append(points[i])
    return out + points[-1:] if len(points) > 1 else out


def cmc_svg(
    cmc: ArrayLike,
    width: int = 460,
    height: int = 300,
    chance: bool = True,
    marks: Sequence[int] = (1, 5),
    title: str = "Cumulative match characteristic",
) -> str:
    """Cumulative match characteristic as an inline SVG element.

    Built by hand (no matplotlib) so the text stays selectable, the file
    small and the output byte-for-byte reproducible. No XML header, no
    external references: paste it straight into HTML. The step curve is
    thinned to the ranks where it moves by a pixel or more (at most a few
    hundred vertices, a few kB, for any cohort size; see
    :func:`_cmc_step_ranks`); ranks 1, 5, 10, ``marks`` and the last rank are
    always drawn at their exact value.

    Parameters
    ----------
    cmc : array_like, shape (n_gallery,)
        ``cmc[r - 1]`` = fraction of participants whose own MRI ranked <= r
        (see :func:`bids_app.rank.cmc_curve`).
    width, height : int
        Size in CSS pixels (the SVG scales with its container).
    chance : bool
        Draw the chance line ``r / n_gallery``.
    marks : sequence of int
        Ranks to mark with a dot and their value.
    title : str
        Accessible title.

    Returns
    -------
    str
        ``"<svg ...>...</svg>"``, or ``""`` when ``cmc`` is empty or all NaN.
    """
    y = np.asarray(cmc, dtype=np.float64).ravel()
    n = y.size
    if n == 0 or not np.isfinite(y).any():
        return ""
    y = np.nan_to_num(y, nan=0.0)
    left, right, top, bottom = 52, 16, 14, 42
    pw, ph = width - left - right, height - top - bottom

    def px(r: float) -> float:
        return left + (0.5 if n == 1 else (r - 1) / (n - 1)) * pw

    def py(v: float) -> float:
        return top + (1.0 - v) * ph

    out: list[str] = [
        f'<svg class="cmc" role="img" aria-labelledby="cmc-title" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="system-ui, sans-serif" font-size="11">',
        f'<title id="cmc-title">{escape(title)}</title>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>',
    ]
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        yy = py(v)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e3e3e3"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{v:.0%}</text>')
    for t in _nice_ticks(n):
        xx = px(t)
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#666"/>')
        out.append(f'<text x="{xx:.1f}" y="{top + ph + 16}" text-anchor="middle">{t}</text>')
    out.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">'
        f"Rank of own MRI (of {n})</text>"
    )
    out.append(
        f'<text transform="translate(13 {top + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
        "Participants identified</text>"
    )
    if chance:
        out.append(
            f'<line x1="{px(1):.1f}" y1="{py(1 / n):.1f}" x2="{px(n):.1f}" y2="{py(1.0):.1f}" '
            'stroke="#888" stroke-dasharray="4 3"><title>chance</title></line>'
        )
    # step curve: value y[r-1] holds from rank r to the next drawn rank (see _cmc_step_ranks)
    exact = (*CMC_KEPT_RANKS, *marks)
    ranks = _cmc_step_ranks(y, CMC_TOLERANCE_PX / ph, keep=exact)
    points = [(px(ranks[0]), py(y[ranks[0] - 1]))]
    for before, r in zip(ranks[:-1], ranks[1:]):
        points += [(px(r), py(y[before - 1])), (px(r), py(y[r - 1]))]
    fixed = {2 * i for i, r in enumerate(ranks) if r in exact}
    points = _drop_straight([(round(a, 1), round(b, 1)) for a, b in points], fixed)
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in points)
    out.append(f'<polyline points="{pts}" fill="none" stroke="#b3261e" stroke-width="2"/>')
    for k in marks:
        if 1 <= k <= n:
            xx, yy = px(k), py(y[k - 1])
            out.append(f'<circle cx="{xx:.1f}" cy="{yy:.1f}" r="3.5" fill="#b3261e"/>')
            anchor_y = yy + 14 if yy < top + 14 else yy - 7
            out.append(
                f'<text x="{xx + 6:.1f}" y="{anchor_y:.1f}" fill="#b3261e">top-{k}: {y[k - 1]:.0%}</text>'
            )
    out.append("</svg>")
    return "\n".join(out)


def _axes(out: list[str], left: float, top: float, pw: float, ph: float, xlabel: str, ylabel: str,
          height: float, xticks: Sequence[tuple[float, str]], yticks: Sequence[tuple[float, str]]) -> None:
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>')
    for yy, label in yticks:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e3e3e3"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    for xx, label in xticks:
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#666"/>')
        out.append(f'<text x="{xx:.1f}" y="{top + ph + 16}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(f'<text transform="translate(13 {top + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
               f"{escape(ylabel)}</text>")


#: Bins of the similarity histograms (the report's figure and ``group_desc-similarity.tsv``).
SIMILARITY_BINS = 40


def similarity_histogram(genuine: ArrayLike, impostor: ArrayLike, bins: int = SIMILARITY_BINS):
    """Shared bin edges and counts of the finite genuine and impostor scores.

    Returns ``(edges, genuine_counts, impostor_counts)``; ``None`` when both
    are empty. The edges span the smallest to the largest score (one unit
    around a single value).
    """
    gen = np.asarray(genuine, np.float64).ravel()
    imp = np.asarray(impostor, np.float64).ravel()
    gen, imp = gen[np.isfinite(gen)], imp[np.isfinite(imp)]
    if gen.size == 0 and imp.size == 0:
        return None
    both = np.concatenate([gen, imp])
    lo, hi = float(both.min()), float(both.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    counts = [np.histogram(x, edges)[0] if x.size else np.zeros(bins, np.intp) for x in (gen, imp)]
    return edges, counts[0], counts[1]


def _density(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """As ``np.histogram(..., density=True)`` computes it from the counts."""
    counts = np.asarray(counts)
    if not counts.sum():
        return np.zeros(counts.size)
    return counts / np.diff(edges) / counts.sum()


def distribution_svg(
    genuine: ArrayLike,
    impostor: ArrayLike,
    width: int = 460,
    height: int = 300,
    bins: int = SIMILARITY_BINS,
    title: str = "Similarity of true and impostor photo-render pairs",
) -> str:
    """Histograms (as densities) of genuine and impostor scores, inline SVG; "" when empty."""
    hist = similarity_histogram(genuine, impostor, bins)
    if hist is None:
        return ""
    return histogram_svg(*hist, width=width, height=height, title=title)


def histogram_svg(
    edges: ArrayLike,
    genuine_counts: ArrayLike,
    impostor_counts: ArrayLike,
    width: int = 460,
    height: int = 300,
    title: str = "Similarity of true and impostor photo-render pairs",
) -> str:
    """:func:`distribution_svg` from the histogram (:func:`similarity_histogram`, or the
    ``group_desc-similarity.tsv`` file); "" when both counts are empty."""
    edges = np.asarray(edges, np.float64)
    gen_counts, imp_counts = np.asarray(genuine_counts), np.asarray(impostor_counts)
    n_gen, n_imp = int(gen_counts.sum()), int(imp_counts.sum())
    if not n_gen and not n_imp:
        return ""
    bins = edges.size - 1
    lo, hi = float(edges[0]), float(edges[-1])
    dens = [_density(gen_counts, edges), _density(imp_counts, edges)]
    top_val = max(float(d.max()) for d in dens) or 1.0
    left, right, top, bottom = 52, 16, 14, 42
    pw, ph = width - left - right, height - top - bottom

    def px(v):
        return left + (v - lo) / (hi - lo) * pw

    def py(v):
        return top + (1 - v / top_val) * ph

    out = [f'<svg class="plot" role="img" aria-labelledby="dist-title" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" font-family="system-ui, sans-serif" font-size="11">',
           f'<title id="dist-title">{escape(title)}</title>']
    xt = np.linspace(lo, hi, 5)
    _axes(out, left, top, pw, ph, "Similarity", "Density", height,
          [(px(v), f"{v:.2f}") for v in xt], [(py(v), f"{v:.1f}") for v in np.linspace(0, top_val, 5)])
    for d, colour, name, n in ((dens[1], "#5f6368", "impostor", n_imp), (dens[0], "#b3261e", "true", n_gen)):
        if not n:
            continue
        pts = [f"{px(edges[0]):.1f},{py(0):.1f}"]
        for i in range(bins):
            pts += [f"{px(edges[i]):.1f},{py(d[i]):.1f}", f"{px(edges[i + 1]):.1f},{py(d[i]):.1f}"]
        pts.append(f"{px(edges[-1]):.1f},{py(0):.1f}")
        out.append(f'<polygon points="{" ".join(pts)}" fill="{colour}" fill-opacity="0.25" stroke="{colour}" '
                   f'stroke-width="1.5"><title>{name} pairs (n={n})</title></polygon>')
    out.append(f'<text x="{left + 8}" y="{top + 16}" fill="#b3261e">true pairs (n={n_gen})</text>')
    out.append(f'<text x="{left + 8}" y="{top + 30}" fill="#5f6368">impostor pairs (n={n_imp})</text>')
    out.append("</svg>")
    return "\n".join(out)


def roc_svg(
    fpr: ArrayLike,
    tpr: ArrayLike,
    auc: float | None = None,
    width: int = 360,
    height: int = 300,
    title: str = "Verification ROC (photo vs MRI render)",
) -> str:
    """ROC curve, inline SVG with the chance diagonal; "" when empty."""
    x = np.asarray(fpr, np.float64).ravel()
    y = np.asarray(tpr, np.float64).ravel()
    if x.size == 0:
        return ""
    left, right, top, bottom = 52, 16, 14, 42
    pw, ph = width - left - right, height - top - bottom

    def px(v):
        return left + v * pw

    def py(v):
        return top + (1 - v) * ph

    ticks = (0.0, 0.25, 0.5, 0.75, 1.0)
    out = [f'<svg class="plot" role="img" aria-labelledby="roc-title" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" font-family="system-ui, sans-serif" font-size="11">',
           f'<title id="roc-title">{escape(title)}</title>']
    _axes(out, left, top, pw, ph, "False positive rate", "True positive rate", height,
          [(px(v), f"{v:.2f}") for v in ticks], [(py(v), f"{v:.0%}") for v in ticks])
    out.append(f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#888" '
               'stroke-dasharray="4 3"><title>chance</title></line>')
    pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, y))
    out.append(f'<polyline points="{pts}" fill="none" stroke="#b3261e" stroke-width="2"/>')
    if auc is not None and math.isfinite(auc):
        out.append(f'<text x="{px(0.55):.1f}" y="{py(0.1):.1f}" fill="#b3261e">AUC {auc:.3f}</text>')
    out.append("</svg>")
    return "\n".join(out)
