"""The report templates: the jinja2 environment and the group report's context.

The functions here are pure: they take a context dictionary and return HTML
text; the caller writes the file (``output_dir/facerisk.html``). Images are
inlined as ``data:`` URIs (:func:`~bids_app.report.images.image_data_uri`)
and plots as inline SVG (:func:`~bids_app.report.figures.cmc_svg`); the page
has inline CSS only, no scripts and no external resources, and a
Content-Security-Policy that forbids loading anything from elsewhere.

Group report context
--------------------
``render_group_report(context)`` expects a dict with these keys
(``*`` = required, others have the defaults shown)::

    title*            str     page title, e.g. "facerisk: ds000001"
    generated         str     ISO 8601 time of the run                ("")
    version           str     facerisk version                         (bids_app.__version__)
    dataset_name      str     BIDS dataset Name                        ("")
    n_participants    int     participants with an MRI identity        (len(participants))
    n_with_photos     int     participants with at least one usable photo (0)
    n_identities      int     MRI identities in the gallery            (n_participants)
    summary           dict | None
                              bids_app.rank.summarise(ranks, n_identities);
                              None, or summary["n"] == 0, or n_with_photos == 0
                              gives the no-photo variant                (None)
    detection         dict    {"renders_total": int, "renders_detected": int,
                               "rate": float in [0, 1] or None}      ({})
    cmc_svg           str     inline SVG from figures.cmc_svg, trusted ("")
    participants*     list of dict, one per participant, in table order:
        participant_id    str          "sub-01"
        rank              int | float | None
                                       rank of own MRI; None -> "n/a"
        render_uri        str | None   data: URI of one render thumbnail
        photo_uri         str | None   data: URI of one photo thumbnail
        matches           list of {"participant_id": str, "score": float,
                                       "is_true": bool (optional)}
                                       best first (up to 5); without is_true,
                                       the entry whose participant_id equals
                                       the row's is marked as the true match
        renders_detected  int | None   renders with a face
        renders_total     int | None   renders made
    parameters        dict    run parameters, shown as a key/value table ({})
    methods_html      str     trusted HTML (boilerplate.render_citation()["html"]),
                              inserted unescaped; may be empty        ("")
    rate_keys         list    summary keys shown as cards, e.g. ["top1", "top5", "top10"]
                              (default: every "top<k>" key of summary)
    verification      dict | None  {"auc", "n_genuine", "n_impostor", "impostors_sampled"}
    roc_svg, dist_svg str     inline SVG (figures.roc_svg / distribution_svg), trusted ("")
    table_notes       list of str  notes under the table (truncation)   ([])
    images_note       str     how images are shown (--report-images)   ("")
    linkage           dict | None  linkage summary (top1/top5 like summary, n)
    linkage_rows      list of {"participant_id", "image", "rank", "best_match", "best_score"}
    comparison        dict | None  --compare-to summary (rates here/there, drops)
    compare_rows      list of {"participant_id", "detect_fraction", "detect_fraction_compare",
                                "rank", "rank_compare"}
    excluded          list of {"participant_id", "reason"}: participants left out as
                              incomplete (no or stale completion record)  ([])
    max_excluded      int     of those, the number listed             (MAX_EXCLUDED)
    versions          dict    software versions                         ({})
  participant rows may also hold: status, score_true, detect_fraction,
  detect_best_score, linkage_rank, page (file name of the participant page).

All other strings are HTML-escaped (autoescape is on). Image URIs must be
``data:`` URIs; anything else is refused with ``ValueError`` so that the
report can never make a request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bids_app import __version__

__all__ = ["get_environment", "render_group_report"]

GROUP_TEMPLATE = "group.html.j2"
#: Participants left out that the group page lists (the summary JSON lists all).
MAX_EXCLUDED = 1000


def _fmt_pct(value: Any, digits: int = 1) -> str:
    """0.8333 -> '83.3%'; None/NaN -> 'n/a'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{100.0 * float(value):.{digits}f}%"


def _fmt_score(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def _fmt_rank(value: Any) -> str:
    """Whole ranks as integers, averaged (tied) ranks with one decimal."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    v = float(value)
    return str(int(v)) if v.is_integer() else f"{v:.1f}"


def _rank_class(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "rank-na"
    v = float(value)
    return "rank-1" if v <= 1 else "rank-5" if v <= 5 else "rank-other"


def get_environment() -> Environment:
    """The jinja2 environment for facerisk report templates.

    Autoescaping is on for ``.html.j2`` templates; undefined variables raise
    (:class:`jinja2.StrictUndefined`) so template typos fail loudly.
    """
    env = Environment(
        loader=PackageLoader("bids_app.report", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2", "j2"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(pct=_fmt_pct, score=_fmt_score, rank=_fmt_rank, rank_class=_rank_class)
    return env


def _check_uri(uri: Any, where: str) -> str | None:
    if uri in (None, ""):
        return None
    if not isinstance(uri, str) or not uri.startswith("data:image/"):
        raise ValueError(f"{where}: images must be data:image/... URIs, got {str(uri)[:40]!r}")
    return uri


def _normalise_group_context(context: Mapping[str, Any]) -> dict[str, Any]:
    missing = [k for k in ("title", "participants") if k not in context]
    if missing:
        raise KeyError(f"group report context lacks {missing}")
    ctx: dict[str, Any] = {
        "generated": "",
        "version": __version__,
        "dataset_name": "",
        "n_with_photos": 0,
        "summary": None,
        "detection": {},
        "cmc_svg": "",
        "parameters": {},
        "methods_html": "",
        "verification": None,
        "roc_svg": "",
        "dist_svg": "",
        "table_notes": [],
        "images_note": "",
        "linkage": None,
        "linkage_rows": [],
        "comparison": None,
        "compare_rows": [],
        "excluded": [],
        "max_excluded": MAX_EXCLUDED,
        "scoring_text": "",
        "versions": {},
    }
    ctx.update(context)
    ctx.setdefault("n_participants", len(ctx["participants"]))
    ctx.setdefault("n_identities", ctx["n_participants"])

    det = dict(ctx["detection"] or {})
    det.setdefault("renders_total", None)
    det.setdefault("renders_detected", None)
    if det.get("rate") is None and det["renders_total"]:
        det["rate"] = (det["renders_detected"] or 0) / det["renders_total"]
    det.setdefault("rate", None)
    for key in ("participant_rate", "participant_ci_low", "participant_ci_high", "participants_with_mri"):
        det.setdefault(key, None)
    ctx["detection"] = det

    rows = []
    for i, p in enumerate(ctx["participants"]):
        row = {"rank": None, "render_uri": None, "photo_uri": None, "matches": [],
               "renders_detected": None, "renders_total": None, "status": None, "score_true": None,
               "detect_fraction": None, "detect_best_score": None, "linkage_rank": None, "page": None}
        row.update(p)
        row["render_uri"] = _check_uri(row["render_uri"], f"participants[{i}].render_uri")
        row["photo_uri"] = _check_uri(row["photo_uri"], f"participants[{i}].photo_uri")
        row["matches"] = [
            {**m, "is_true": bool(m.get("is_true", m.get("participant_id") == row["participant_id"]))}
            for m in row["matches"] or []
        ]
        rows.append(row)
    ctx["participants"] = rows

    summary = ctx["summary"]
    ctx["has_rates"] = bool(summary) and bool(summary.get("n")) and bool(ctx["n_with_photos"])
    keys = ctx.get("rate_keys") or [k for k in summary or {} if k.startswith("top") and k[3:].isdigit()]
    ctx["rate_keys"] = [k for k in keys if ctx["has_rates"] and k in summary]
    return ctx


def render_group_report(context: Mapping[str, Any]) -> str:
    """Render the group report to HTML text (see the module docstring for ``context``)."""
    ctx = _normalise_group_context(context)
    return get_environment().get_template(GROUP_TEMPLATE).render(**ctx)

