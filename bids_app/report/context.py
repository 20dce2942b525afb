"""From the group level's files to the report: contexts, the group report and the participant pages.

Everything here reads files that the group level wrote
(:mod:`bids_app.workflows.group.writers`): ``group_desc-summary.json``,
``group_desc-report.json``, ``group_desc-similarity.tsv``,
``logs/CITATION.html``, and the participant images those files name. Nothing
is passed in memory, so :func:`write_reports` after a group run and
``--reports-only`` later give the same report.

:func:`build_group_context` gives the context of ``group.html.j2``;
:func:`write_participant_pages` writes ``output_dir/sub-<label>.html``
(the audit of each of the participant's anat images, renders with their
detections, photos, best matches). Images follow the
run's ``--report-images`` (``full``, ``blurred`` or ``none``): the thumbnails
the participant level made (:mod:`bids_app.report.thumbs`) are inlined as
they are, and a detection is drawn over its render as inline SVG.

Large cohorts stay bounded: the group table lists the ``max_rows``
highest-risk participants (the TSV lists all), thumbnails are shown for the
first ``max_thumbnails`` rows, and pages are written for the ``max_pages``
highest-risk participants; the report says so when it truncates.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from bids_app.io import atomic_write_text, read_json
from bids_app.progress import Progress

from .audit import VERDICT_TEXT, audit_context
from .figures import cmc_svg, histogram_svg, roc_svg
from .html import get_environment, render_group_report
from .thumbs import thumbnail_uri

LOGGER = logging.getLogger("facerisk")

__all__ = ["ReportInputError", "build_group_context", "read_report_inputs", "write_participant_pages",
           "write_reports"]

_IMAGES_NOTE = {
    "full": "Images are shown as they are (--report-images full).",
    "blurred": "Images are pixelated and blurred so that faces cannot be recognised (--report-images blurred).",
    "none": "Images are left out (--report-images none).",
}
_PAGE_NAME = re.compile(r"sub-[A-Za-z0-9]+\.html")


class ReportInputError(RuntimeError):
    """The group outputs the report is built from are missing or unreadable."""


def _read_histogram(path: Path):
    """``(edges, genuine_counts, impostor_counts)`` from ``group_desc-similarity.tsv`` (None if absent)."""
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()[1:]
    cells = [line.split("\t") for line in lines if line]
    if not cells:
        return None
    edges = np.array([float(c[0]) for c in cells] + [float(cells[-1][1])])
    return edges, np.array([int(c[2]) for c in cells]), np.array([int(c[3]) for c in cells])


def read_report_inputs(output_dir: Path) -> dict[str, Any]:
    """The group outputs the report is built from (``ReportInputError`` when missing)."""
    output_dir = Path(output_dir)
    try:
        summary = read_json(output_dir / "group_desc-summary.json")
        data = read_json(output_dir / "group_desc-report.json")
    except (OSError, ValueError) as err:
        raise ReportInputError(f"{output_dir}: cannot read the group outputs ({err}); run the group level "
                               "without --reports-only first") from err
    citation = output_dir / "logs" / "CITATION.html"
    return {
        "output_dir": output_dir,
        "summary": summary,
        "data": data,
        "histogram": _read_histogram(output_dir / "group_desc-similarity.tsv"),
        "citation_html": citation.read_text() if citation.is_file() else "",
    }


def _thumb(path: Path | None, mode: str, made: list[int] | None = None) -> str | None:
    try:
        return thumbnail_uri(path, mode, made)
    except (OSError, ValueError) as err:
        LOGGER.warning("cannot make a thumbnail of %s: %s", path, err)
        return None


def _file(inputs: dict, relative: str | None) -> Path | None:
    return None if relative is None else inputs["output_dir"] / relative


def build_group_context(inputs: dict[str, Any], page_names: dict[str, str] | None = None) -> dict[str, Any]:
    """The context of ``group.html.j2`` (see :mod:`bids_app.report.html`) from :func:`read_report_inputs`."""
    summary, data = inputs["summary"], inputs["data"]
    limits = data["limits"]
    max_rows, max_thumbnails, max_pages = limits["max_rows"], limits["max_thumbnails"], limits["max_pages"]
    mode = data["report_images"]
    page_names = page_names or {}
    order = data["order"]
    made = [0]
    rows = []
    for position, pid in enumerate(order[:max_rows]):
        info = data["participants"][pid]
        images = data["images"].get(pid, {}) if position < max_thumbnails else {}
        rows.append({
            "participant_id": pid,
            "rank": info["rank"],
            "status": info["status"],
            "score_true": info["score_true"],
            "render_uri": _thumb(_file(inputs, images.get("best_render")), mode, made),
            "photo_uri": _thumb(_file(inputs, images.get("best_photo")), mode, made),
            "matches": info["matches"],
            "renders_detected": info["renders_detected"],
            "renders_total": info["renders_total"],
            "detect_fraction": info["detect_fraction"],
            "detect_best_score": info["detect_best_score"],
            "linkage_rank": info["linkage_rank"],
            "page": page_names.get(pid),
        })
    _log_made(made[0])
    notes = []
    n = len(order)
    if n > max_rows:
        notes.append(f"The table lists the {max_rows} highest-risk of {n} participants; "
                     "group_desc-ranks.tsv lists all.")
    if mode != "none" and n > max_thumbnails:
        notes.append(f"Thumbnails are shown for the {max_thumbnails} highest-risk participants only.")
    if n > max_pages:
        notes.append(f"Individual pages were written for the {max_pages} highest-risk participants only.")

    stats = summary["reidentification"]
    verification = summary.get("verification")
    cmc = np.asarray([np.nan if v is None else v for v in summary["cmc"]], float)
    rate_keys = sorted((k for k in stats if k.startswith("top") and k[3:].isdigit()), key=lambda k: int(k[3:]))
    linkage_rows = sorted(data["linkage_rows"],
                          key=lambda r: (r["rank"] if r["rank"] is not None else math.inf, r["subject"]))
    compare_rows = sorted(data["compare_rows"],
                          key=lambda r: (not r["still_detected"], -(r["detect_fraction"] or 0), r["subject"]))
    scoring = summary["scoring"]
    hist = inputs["histogram"]
    dataset_name = data["dataset_name"]
    return {
        "title": "facerisk report" + (f": {dataset_name}" if dataset_name else ""),
        "generated": data["generated"],
        "version": data["facerisk_version"],
        "dataset_name": dataset_name,
        "n_participants": summary["n_participants"],
        "n_with_photos": summary["n_with_photos"],
        "n_identities": summary["n_identities"],
        "summary": stats,
        "rate_keys": rate_keys,
        "detection": summary["detection"],
        "cmc_svg": cmc_svg(cmc) if cmc.size and summary["n_with_photos"] else "",
        "verification": verification,
        "roc_svg": roc_svg(verification["roc"]["fpr"], verification["roc"]["tpr"], verification.get("auc"))
        if verification else "",
        "dist_svg": histogram_svg(*hist) if verification and hist is not None else "",
        "participants": rows,
        "excluded": summary.get("excluded") or [],
        "table_notes": notes,
        "images_note": _IMAGES_NOTE[mode],
        "report_images": mode,
        "linkage": summary.get("linkage"),
        "linkage_rows": linkage_rows[:max_rows],
        "comparison": summary.get("comparison"),
        "compare_rows": compare_rows[:max_rows],
        "scoring_text": scoring["description"],
        "parameters": {
            "Modality": ", ".join(data["modality"]),
            "Face model": summary["face_model"].get("Name"),
            "Scoring": scoring["description"],
            "Ties": "pessimistic (true identity ranked after equal scores)",
            "Report images": mode,
            **({"Compared with": data["compare_to"]} if data["compare_to"] else {}),
        },
        "versions": dict(data["versions"] or {}),
        "methods_html": inputs["citation_html"],
        "audit": audit_context(summary, data),
    }


def _log_made(made: int) -> None:
    if made:
        LOGGER.info("report: %d thumbnail(s) made now from the images (participant outputs without "
                    "figures/; a participant level of this version makes them once)", made)


def _render_detection(path: Path) -> dict | None:
    """The render's size, and the box and landmarks of its detected face, from its sidecar (None if none)."""
    try:
        sidecar = read_json(path.with_suffix(".json"))
    except (OSError, ValueError):
        return None
    face, size = sidecar.get("Face") or {}, sidecar.get("ImageSize")
    if not face.get("Detected") or not face.get("Box") or not size:
        return None
    return {"width": size[0], "height": size[1], "box": face["Box"], "landmarks": face.get("Landmarks") or [],
            "line": max(2, round(max(size) / 160))}


def write_participant_pages(inputs: dict[str, Any]) -> dict[str, str]:
    """Write ``sub-<label>.html`` for the participants ``group_desc-report.json`` has pages for,
    and remove the pages of an earlier run for any other; returns ``{participant_id: file name}``."""
    summary, data = inputs["summary"], inputs["data"]
    template = get_environment().get_template("participant.html.j2")
    mode = data["report_images"]
    names = {}
    made = [0]
    progress = Progress("report: participant pages", len(data["pages"]), "pages")
    linkage: dict[str, list] = {}
    for row in data["linkage_rows"]:
        linkage.setdefault(row["participant_id"], []).append(row)
    best_render: dict[str, str | None] = {}
    for pid in data["order"]:
        page = data["pages"].get(pid)
        if page is None:
            continue
        renders = []
        for row in page["renders"]:
            path = _file(inputs, row["file"])
            uri = _thumb(path, mode, made) if path and path.is_file() else None
            renders.append({
                "name": row["name"], "image": row["image"], "detected": row["detected"], "score": row["score"],
                "uri": uri, "overlay": _render_detection(path) if uri else None,
            })
        photos = []
        for row in page["photos"]:
            path = _file(inputs, row["file"])
            photos.append({"name": row["name"], "detected": row["detected"], "score": row["score"],
                           "uri": _thumb(path, mode, made) if path and path.is_file() else None})
        matches = []
        for m in data["participants"][pid]["matches"]:
            other = m["participant_id"]
            if other not in best_render:
                best_render[other] = (data["images"].get(other) or {}).get("best_render")
            matches.append({**m, "uri": _thumb(_file(inputs, best_render[other]), mode, made)})
        html = template.render(
            version=data["facerisk_version"], participant_id=pid, info=data["participants"][pid],
            renders=renders, photos=photos, matches=matches, linkage=linkage.get(pid, []),
            images_note=_IMAGES_NOTE[mode], n_identities=summary["n_identities"],
            scoring_text=summary["scoring"]["description"],
            audit=page.get("audit"), verdict_text=VERDICT_TEXT,  # None: group outputs without the audit
        )
        name = f"{pid}.html"
        atomic_write_text(inputs["output_dir"] / name, html)
        names[pid] = name
        progress(len(names))
    _log_made(made[0])
    # pages of an earlier run for participants without a page now (left out, or below max_pages)
    for old in inputs["output_dir"].glob("sub-*.html"):
        if old.name not in names.values() and _PAGE_NAME.fullmatch(old.name):
            old.unlink()
    return names


def write_reports(output_dir: Path) -> Path:
    """Rebuild ``facerisk.html`` and the participant pages from the group outputs in ``output_dir``."""
    inputs = read_report_inputs(output_dir)
    page_names = write_participant_pages(inputs)
    path = Path(output_dir) / "facerisk.html"
    atomic_write_text(path, render_group_report(build_group_context(inputs, page_names)))
    return path
