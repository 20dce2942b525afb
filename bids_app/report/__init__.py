"""HTML reports: the group report ``facerisk.html`` and the pages ``sub-<label>.html``.

The report is built from the group level's files alone
(:func:`write_reports`), never from objects in memory, so that
``facerisk ... group --reports-only`` rebuilds the same report:

:mod:`~bids_app.report.html`
    the jinja2 environment and :func:`render_group_report` (a context
    dictionary in, HTML text out; the context is documented there);
:mod:`~bids_app.report.context`
    reads ``group_desc-summary.json``, ``group_desc-report.json``,
    ``group_desc-similarity.tsv`` and ``logs/CITATION.html`` and builds the
    contexts, then writes the pages;
:mod:`~bids_app.report.figures`
    plots as inline SVG;
:mod:`~bids_app.report.images`
    thumbnails as ``data:`` URIs.
"""

from __future__ import annotations

from .context import (
    ReportInputError,
    build_group_context,
    read_report_inputs,
    write_participant_pages,
    write_reports,
)
from .figures import cmc_svg, distribution_svg, histogram_svg, roc_svg
from .html import get_environment, render_group_report
from .images import image_data_uri

__all__ = [
    "ReportInputError", "build_group_context", "cmc_svg", "distribution_svg", "get_environment",
    "histogram_svg", "image_data_uri", "read_report_inputs", "render_group_report", "roc_svg",
    "write_participant_pages", "write_reports",
]
