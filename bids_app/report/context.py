"""From a group analysis to report contexts, and the per-participant pages.

:func:`build_group_context` turns :class:`bids_app.workflows.group.Analysis`
into the context of ``group.html.j2``; :func:`write_participant_pages` writes
``output_dir/sub-<label>.html`` (renders with their detections, photos, best
matches) for the participants it is given. Images follow
``settings.report_images`` (``full``, ``blurred`` or ``none``).

Large cohorts stay bounded: the group table lists the ``max_rows``
highest-risk participants (the TSV lists all), thumbnails are shown for the
first ``max_thumbnails`` rows, and pages are written for the ``max_pages``
highest-risk participants; the report says so when it truncates.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from bids_app.io import atomic_write_text, read_json

from .figures import cmc_svg, distribution_svg, privacy_image, roc_svg

LOGGER = logging.getLogger("facerisk")

__all__ = ["build_group_context", "write_participant_pages"]

_IMAGES_NOTE = {
    "full": "Images are shown as they are (--report-images full).",
    "blurred": "Images are pixelated and blurred so that faces cannot be recognised (--report-images blurred).",
    "none": "Images are left out (--report-images none).",
}


def _best_row(sets, usable_only: bool = True) -> tuple[Path | None, float | None]:
    best, best_score = None, -math.inf
    for item in sets:
        rows = item.sidecar.get("Rows", [])
        finite = np.isfinite(item.vectors).all(axis=1) if item.vectors.size else np.zeros(len(rows), bool)
        for row, ok in zip(rows, finite):
            score = row.get("Score")
            if (ok or not usable_only) and row.get("File") and score is not None and score > best_score:
                best, best_score = item.json_path.parent / row["File"], score
    return best, (best_score if best is not None else None)


def _thumb(path: Path | None, mode: str, max_side: int = 120, **draw) -> str | None:
    if path is None or mode == "none":
        return None
    try:
        return privacy_image(path, mode=mode, max_side=max_side, **draw)
    except (OSError, ValueError) as err:
        LOGGER.warning("cannot make a thumbnail of %s: %s", path, err)
        return None


def build_group_context(settings, analysis, summary: dict, order: list[str], *, compare_rows=(),
                        citation_html: str = "", versions: dict | None = None, page_names=None,
                        dataset_name: str = "", generated: str = "", max_rows: int = 1000,
                        max_thumbnails: int = 200, max_pages: int = 200) -> dict[str, Any]:
    """The context of ``group.html.j2`` (see :mod:`bids_app.report`)."""
    from bids_app import __version__
    from bids_app.workflows.group import status_of

    mode = settings.report_images
    page_names = page_names or {}
    rows = []
    for position, subject in enumerate(order[:max_rows]):
        info = analysis.info[subject]
        person = analysis.participants[subject]
        thumbs = position < max_thumbnails
        rows.append({
            "participant_id": f"sub-{subject}",
            "rank": info["rank"],
            "status": status_of(info),
            "score_true": info["score_true"],
            "render_uri": _thumb(_best_row(person.mri)[0], mode) if thumbs else None,
            "photo_uri": _thumb(_best_row(person.photos)[0], mode) if thumbs else None,
            "matches": info["matches"],
            "renders_detected": info["renders_detected"],
            "renders_total": info["renders_total"],
            "detect_fraction": info["detect_fraction"],
            "detect_best_score": info["detect_best_score"],
            "linkage_rank": info["linkage_rank"],
            "page": page_names.get(subject),
        })
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
    verification = analysis.verification or {}
    cmc = np.asarray([np.nan if v is None else v for v in summary["cmc"]], float)
    rate_keys = sorted((k for k in stats if k.startswith("top") and k[3:].isdigit()), key=lambda k: int(k[3:]))
    linkage = summary.get("linkage")
    linkage_rows = sorted(analysis.linkage_rows,
                          key=lambda r: (r["rank"] if r["rank"] is not None else math.inf, r["subject"]))
    comparison = summary.get("comparison")
    compare_rows = sorted(compare_rows, key=lambda r: (not r["still_detected"], -(r["detect_fraction"] or 0),
                                                       r["subject"]))
    scoring = summary["scoring"]
    return {
        "title": "facerisk report" + (f": {dataset_name}" if dataset_name else ""),
        "generated": generated,
        "version": __version__,
        "dataset_name": dataset_name,
        "n_participants": len(analysis.subjects),
        "n_with_photos": summary["n_with_photos"],
        "n_identities": summary["n_identities"],
        "summary": stats,
        "rate_keys": rate_keys,
        "detection": summary["detection"],
        "cmc_svg": cmc_svg(cmc) if cmc.size and summary["n_with_photos"] else "",
        "verification": summary.get("verification"),
        "roc_svg": roc_svg(verification["roc"]["fpr"], verification["roc"]["tpr"], verification.get("auc"))
        if verification else "",
        "dist_svg": distribution_svg(verification["_genuine"], verification["_impostor"]) if verification else "",
        "participants": rows,
        "table_notes": notes,
        "images_note": _IMAGES_NOTE[mode],
        "report_images": mode,
        "linkage": linkage,
        "linkage_rows": [{**r, "participant_id": f"sub-{r['subject']}"} for r in linkage_rows[:max_rows]],
        "comparison": comparison,
        "compare_rows": [{**r, "participant_id": f"sub-{r['subject']}"} for r in compare_rows[:max_rows]],
        "scoring_text": scoring["description"],
        "parameters": {
            "Modality": ", ".join(settings.modality),
            "Face model": summary["face_model"].get("Name"),
            "Scoring": scoring["description"],
            "Ties": "pessimistic (true identity ranked after equal scores)",
            "Report images": mode,
            **({"Compared with": str(settings.compare_to)} if settings.compare_to else {}),
        },
        "versions": dict(versions or {}),
        "methods_html": citation_html,
    }


def _render_detection(path: Path) -> dict:
    """Box and landmarks of the render's detected face, from its sidecar (empty if none)."""
    try:
        face = read_json(path.with_suffix(".json")).get("Face") or {}
    except (OSError, ValueError):
        return {}
    if not face.get("Detected") or not face.get("Box"):
        return {}
    return {"boxes": [face["Box"]], "landmarks": face.get("Landmarks") or []}


def write_participant_pages(settings, analysis, subjects: list[str]) -> dict[str, str]:
    """Write ``sub-<label>.html`` for ``subjects``; returns ``{subject: file name}``."""
    from bids_app import __version__

    from . import get_environment

    template = get_environment().get_template("participant.html.j2")
    mode = settings.report_images
    best_render = {}
    names = {}
    linkage = {}
    for row in analysis.linkage_rows:
        linkage.setdefault(row["subject"], []).append(row)
    for subject in subjects:
        info = analysis.info[subject]
        person = analysis.participants[subject]
        renders = []
        for item in person.mri:
            finite = np.isfinite(item.vectors).all(axis=1) if item.vectors.size else []
            for row, path, ok in zip(item.sidecar["Rows"], item.image_paths(), finite):
                renders.append({
                    "name": row.get("File") or "",
                    "image": item.label,
                    "detected": bool(ok),
                    "score": row.get("Score"),
                    "uri": _thumb(path, mode, 200, **_render_detection(path)) if path and path.is_file() else None,
                })
        photos = []
        for item in person.photos:
            finite = np.isfinite(item.vectors).all(axis=1) if item.vectors.size else []
            for row, path, ok in zip(item.sidecar["Rows"], item.image_paths(), finite):
                photos.append({"name": row.get("File") or "", "detected": bool(ok), "score": row.get("Score"),
                               "uri": _thumb(path, mode, 200) if path and path.is_file() else None})
        matches = []
        for m in info["matches"]:
            other = m["participant_id"][4:]
            if other not in best_render:
                best_render[other] = _best_row(analysis.participants[other].mri)[0]
            matches.append({**m, "uri": _thumb(best_render[other], mode, 120)})
        html = template.render(
            version=__version__, participant_id=f"sub-{subject}", info=info, renders=renders,
            photos=photos, matches=matches, linkage=linkage.get(subject, []),
            images_note=_IMAGES_NOTE[mode], n_identities=analysis.summary["n_identities"],
            scoring_text=analysis.summary["scoring"]["description"],
        )
        name = f"sub-{subject}.html"
        atomic_write_text(settings.output_dir / name, html)
        names[subject] = name
    return names
