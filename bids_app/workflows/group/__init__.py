"""Group level: rank every participant's photos against every MRI face, and audit the MRI faces.

Reads only participant outputs (never the raw data), and only those of
participants whose record says they are complete (:mod:`.load`), then
writes at the top of ``output_dir``:

``group_desc-ranks.tsv``
    one row per participant: rank of the own MRI, status, best matches, face
    detectability of the MRI renders, linkage rank (see below).
``group_desc-linkage.tsv``
    (participants with several anat images) one row per image: the rank of
    the participant among all others when that image's renders are matched
    against every *other* image.
``group_desc-compare.tsv``
    (``--compare-to OTHER_OUTPUT_DIR``) detection and re-identification here
    and there, participant by participant.
``group_desc-summary.json``
    every number, and the participants left out as incomplete.
``group_desc-report.json``, ``group_desc-similarity.tsv``
    what the report shows besides the summary (:mod:`.writers`).
``facerisk.html``, ``sub-<label>.html``
    the group report and per-participant pages, built from the files above
    alone (:func:`bids_app.report.write_reports`; ``--reports-only`` rebuilds them).
``logs/CITATION.{md,html,bib}``
    the methods boilerplate.

Modules: :mod:`.load` (read and check participant outputs), :mod:`.fusion`
(several face models), :mod:`.analysis` (detectability, re-identification,
linkage), :mod:`.compare` (``--compare-to``), :mod:`.writers` (the files). Scoring follows Schwarz et
al. (NEJM 2019) by default (see :data:`bids_app.rank.SCORINGS`).
"""

from __future__ import annotations

import logging

from bids_app.config import Settings
from bids_app.report import write_reports

from .analysis import Analysis, analyse, risk_order, status_of
from .compare import compare
from .load import GroupError, collect_participants
from .writers import (
    citation_parameters,
    dataset_name,
    write_citation,
    write_report_inputs,
    write_tables,
)

LOGGER = logging.getLogger("facerisk")

__all__ = ["Analysis", "GroupError", "analyse", "citation_parameters", "collect_participants", "run_group",
           "status_of"]


def run_group(settings: Settings) -> dict:
    """Rank, audit, summarise and report; returns the summary written to JSON.

    With ``settings.reports_only`` only the report is rebuilt, from the group
    outputs already in ``output_dir``.
    """
    from bids_app.boilerplate import software_versions
    from bids_app.io import read_json

    out = settings.output_dir
    if settings.reports_only:
        write_reports(out)
        return read_json(out / "group_desc-summary.json")
    this = analyse(settings)
    for item in this.excluded:
        LOGGER.warning("sub-%s left out: %s", item.subject, item.reason)
    summary = dict(this.summary)
    compare_rows: list[dict] = []
    if settings.compare_to:
        if settings.compare_to.resolve() == out.resolve():
            raise GroupError("--compare-to names the output folder itself")
        other = analyse(settings, settings.compare_to)
        compare_rows, summary["comparison"] = compare(this, other, settings.compare_to)

    order = risk_order(this)
    write_tables(out, this, summary, compare_rows)
    write_citation(settings, this.model_info, summary)
    write_report_inputs(settings, this, order, compare_rows, software_versions(), dataset_name(settings.bids_dir))
    write_reports(out)
    return summary
