"""The group level's files: TSV tables, the summary JSON, the report's inputs and the boilerplate.

Everything the HTML report shows is written here first, so that the report
can be rebuilt from these files alone (``--reports-only``):

``group_desc-ranks.tsv``, ``group_desc-linkage.tsv``, ``group_desc-compare.tsv``
    tables for people and spreadsheets (4 decimals);
``group_desc-summary.json``
    every group number;
``group_desc-report.json``
    what the report lists, in full precision: the participants in risk
    order with their numbers, linkage and comparison rows, and the
    participant files the report shows (thumbnails, pages);
``group_desc-similarity.tsv``
    the histograms of genuine and impostor pair similarities;
``logs/CITATION.{md,html,bib}``
    the methods boilerplate.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

from bids_app import __version__
from bids_app.config import Settings
from bids_app.io import atomic_write_json, atomic_write_text, read_json, to_jsonable
from bids_app.report.figures import similarity_histogram

from .analysis import TOP_MATCHES, Analysis, status_of
from .load import EmbeddingSet, finite_rows

__all__ = [
    "MAX_PAGES", "MAX_TABLE_ROWS", "MAX_THUMBNAILS", "citation_parameters", "write_citation",
    "write_report_inputs", "write_tables",
]

#: Rows of the participant table in the HTML report (the TSV has all).
MAX_TABLE_ROWS = 1000
#: Rows of that table that show thumbnails (the highest-risk ones): the page stays a few MB.
MAX_THUMBNAILS = 100
#: Per-participant pages are written for the highest-risk participants only.
MAX_PAGES = 200


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _write_tsv(path: Path, header: list[str], rows: list[list]) -> None:
    lines = ["\t".join(header)] + ["\t".join(_cell(v) for v in row) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _write_ranks_tsv(path: Path, analysis: Analysis) -> None:
    header = ["participant_id", "rank", "status", "n_photos", "renders_detected", "score_true"]
    for k in range(1, TOP_MATCHES + 1):
        header += [f"match{k}_id", f"match{k}_score"]
    header += ["detect_fraction", "detect_best_score", "face_visible", "linkage_rank"]
    rows = []
    for subject in analysis.subjects:
        info = analysis.info[subject]
        cells = [
            f"sub-{subject}", info["rank"], status_of(info), info["photos_detected"],
            f"{info['renders_detected']}/{info['renders_total']}", info["score_true"],
        ]
        matches = info["matches"]
        for k in range(TOP_MATCHES):
            cells += [matches[k]["participant_id"], matches[k]["score"]] if k < len(matches) else [None, None]
        cells += [info["detect_fraction"], info["detect_best_score"], bool(info["renders_detected"]),
                  info["linkage_rank"]]
        rows.append(cells)
    _write_tsv(path, header, rows)


def write_tables(out: Path, analysis: Analysis, summary: dict, compare_rows: list[dict]) -> None:
    """The TSV tables and ``group_desc-summary.json``."""
    _write_ranks_tsv(out / "group_desc-ranks.tsv", analysis)
    if analysis.linkage_rows:
        _write_tsv(out / "group_desc-linkage.tsv",
                   ["participant_id", "image", "rank", "score_true", "best_match", "best_score"],
                   [[f"sub-{r['subject']}", r["image"], r["rank"], r["score_true"], r["best_match"],
                     r["best_score"]] for r in analysis.linkage_rows])
    if compare_rows:
        _write_tsv(out / "group_desc-compare.tsv",
                   ["participant_id", "detect_fraction", "detect_fraction_compare", "detect_drop",
                    "rank", "rank_compare", "score_true", "score_true_compare"],
                   [[f"sub-{r['subject']}", r["detect_fraction"], r["detect_fraction_compare"],
                     r["detect_drop"], r["rank"], r["rank_compare"], r["score_true"],
                     r["score_true_compare"]] for r in compare_rows])
    if analysis.audit:
        _write_audit_tsvs(out, analysis.audit)
    atomic_write_json(out / "group_desc-summary.json", summary)


#: ``group_desc-images.tsv``: the verdict of each anat image and its evidence.
IMAGES_COLUMNS = ["participant_id", "session", "image", "suffix", "verdict", "confidence", "remaining",
                  "renders", "renders_face", "eyes", "nose", "mouth", "cut", "nearest_similarity",
                  "nearest_participant", "n_alike", "template_similarity", "claimed", "claim_kind", "flags",
                  "evidence"]
#: ``group_desc-actions.tsv``: what to do with each image, the claimed-but-face ones first.
ACTIONS_COLUMNS = ["participant_id", "session", "image", "verdict", "confidence", "claimed_deidentification",
                   "action", "reason"]


def _write_audit_tsvs(out: Path, verdicts: list) -> None:
    from bids_app.audit import priority

    def clean(text) -> str:  # free text from sidecars: one TSV cell
        return " ".join(str(text).split()) if text is not None else None

    rows = []
    for v in verdicts:
        j = v.to_json()
        rows.append([j["participant_id"], v.session, v.image, v.suffix, v.verdict, v.confidence,
                     ",".join(v.remaining) or None, j["renders"], j["renders_face"], j["eyes"], j["nose"],
                     j["mouth"], j["cut"], v.nearest_similarity, j["nearest_participant"], v.n_alike,
                     v.template_similarity,
                     "unknown" if v.claim.claimed is None else ("yes" if v.claim.claimed else "no"),
                     v.claim.kind or None, "; ".join(v.flags) or None, clean(v.evidence)])
    _write_tsv(out / "group_desc-images.tsv", IMAGES_COLUMNS, rows)
    _write_tsv(out / "group_desc-actions.tsv", ACTIONS_COLUMNS,
               [[f"sub-{v.participant}", v.session, v.image, v.verdict, v.confidence, clean(v.claim.text),
                 v.action, clean(v.reason)]
                for v in sorted(verdicts, key=priority)])


def _write_similarity_tsv(path: Path, verification: dict) -> None:
    """Histograms of the genuine and impostor similarities; edges written to round-trip exactly."""
    hist = similarity_histogram(verification["_genuine"], verification["_impostor"]) if verification else None
    if hist is None:
        path.unlink(missing_ok=True)
        return
    edges, genuine, impostor = hist
    lines = ["bin_start\tbin_end\tgenuine_count\timpostor_count"]
    lines += [f"{float(edges[i])!r}\t{float(edges[i + 1])!r}\t{int(genuine[i])}\t{int(impostor[i])}"
              for i in range(edges.size - 1)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _best_row(sets: list[EmbeddingSet]) -> Path | None:
    """The image of the row with a face and the best detection score (None if none)."""
    best, best_score = None, -math.inf
    for item in sets:
        rows = item.sidecar.get("Rows", [])
        for row, ok in zip(rows, finite_rows(item.vectors)):
            score = row.get("Score")
            if ok and row.get("File") and score is not None and score > best_score:
                best, best_score = item.json_path.parent / row["File"], score
    return best


def _relative(path: Path | None, root: Path) -> str | None:
    return None if path is None else Path(path).relative_to(root).as_posix()


def _page_rows(sets: list[EmbeddingSet], root: Path, with_image: bool) -> list[dict]:
    rows = []
    for item in sets:
        for row, path, ok in zip(item.sidecar["Rows"], item.image_paths(), finite_rows(item.vectors)):
            rows.append({"name": row.get("File") or "", **({"image": item.label} if with_image else {}),
                         "detected": bool(ok), "score": row.get("Score"), "file": _relative(path, root)})
    return rows


def _audit_by_participant(first: list, subjects: list[str]) -> dict[str, list[dict]]:
    """Each listed participant's audited images (all of them, in the actions' order: ``first`` is
    sorted by :func:`bids_app.audit.priority`), for their page."""
    out: dict[str, list[dict]] = {s: [] for s in subjects}
    for v in first:
        if v.participant in out:
            out[v.participant].append(v.to_json())
    return out


def write_report_inputs(settings: Settings, analysis: Analysis, order: list[str], compare_rows: list[dict],
                        versions: dict, dataset_name: str, root: Path | None = None) -> None:
    """``group_desc-report.json`` and ``group_desc-similarity.tsv``: the report's inputs.

    ``root`` is the folder the participant outputs were read from (paths in
    the file are relative to it; default: the output folder).
    """
    out = settings.output_dir
    root = root or out
    pages = order[:MAX_PAGES]
    images: dict[str, dict] = {}
    for subject in order[:MAX_THUMBNAILS]:
        person = analysis.participants[subject]
        images[subject] = {"best_render": _relative(_best_row(person.mri), root),
                           "best_photo": _relative(_best_row(person.photos), root)}
    for subject in pages:  # the best render of every participant a page shows as a match
        for m in analysis.info[subject]["matches"]:
            other = m["participant_id"][len("sub-"):]
            images.setdefault(other, {"best_render": _relative(_best_row(analysis.participants[other].mri), root),
                                      "best_photo": None})
    from bids_app.audit import priority

    first = sorted(analysis.audit, key=priority)  # claimed-but-face first, as the actions TSV
    audit_pages = _audit_by_participant(first, pages)
    data = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "facerisk_version": __version__,
        "dataset_name": dataset_name,
        "report_images": settings.report_images,
        "modality": settings.modality,
        "compare_to": str(settings.compare_to) if settings.compare_to else None,
        "versions": versions,
        "limits": {"max_rows": MAX_TABLE_ROWS, "max_thumbnails": MAX_THUMBNAILS, "max_pages": MAX_PAGES},
        "order": [f"sub-{s}" for s in order],
        "participants": {f"sub-{s}": {**{k: v for k, v in analysis.info[s].items() if not k.startswith("_")},
                                      "status": status_of(analysis.info[s])} for s in analysis.subjects},
        "linkage_rows": [{**r, "participant_id": f"sub-{r['subject']}"} for r in analysis.linkage_rows],
        "compare_rows": [{**r, "participant_id": f"sub-{r['subject']}"} for r in compare_rows],
        "audit_rows": [v.to_json() for v in first[:MAX_TABLE_ROWS]],
        "images": {f"sub-{s}": v for s, v in images.items()},
        "pages": {f"sub-{s}": {"renders": _page_rows(analysis.participants[s].mri, root, True),
                               "photos": _page_rows(analysis.participants[s].photos, root, False),
                               "audit": audit_pages[s]}
                  for s in pages},
    }
    # one line, no indentation: 100k participants make a large file, read by programs only
    try:
        text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):  # NumPy numbers or NaN: the slower general conversion
        text = json.dumps(to_jsonable(data), allow_nan=False, separators=(",", ":"))
    atomic_write_text(out / "group_desc-report.json", text + "\n")
    _write_similarity_tsv(out / "group_desc-similarity.tsv", analysis.verification)


def citation_parameters(settings: Settings, model_info: dict | None = None, summary: dict | None = None) -> dict:
    """Parameters and versions for the boilerplate templates."""
    from bids_app.boilerplate import software_versions

    model_info = model_info or {}
    summary = summary or {}
    return {
        "version": __version__,
        "modality": ", ".join(settings.modality),
        "n_renders": settings.n_renders,
        "seed": settings.seed,
        "top_k": settings.top_k,
        "scoring": settings.scoring,
        "face_model": model_info.get("Name", settings.face_models[0]),
        "dim": model_info.get("Dimension", 128),
        "render_min_score": settings.render_min_score,
        "photo_min_score": settings.photo_min_score,
        "min_nose_relief": settings.min_nose_relief,
        "photos": bool(summary.get("n_with_photos", 1)),
        "n_identities": summary.get("n_identities"),
        "linkage": bool((summary.get("linkage") or {}).get("n")),
        "compare": bool(summary.get("comparison")),
        "fusion": "Fusion" in model_info,
        "versions": software_versions(),
    }


def write_citation(settings: Settings, model_info: dict, summary: dict) -> None:
    """``logs/CITATION.{md,html,bib}``."""
    from bids_app.boilerplate import render_citation

    citation = render_citation(citation_parameters(settings, model_info, summary))
    for extension, text in citation.items():
        atomic_write_text(settings.output_dir / "logs" / f"CITATION.{extension}", text)


def dataset_name(bids_dir: Path) -> str:
    try:
        return read_json(bids_dir / "dataset_description.json").get("Name", bids_dir.name)
    except (OSError, ValueError):
        return bids_dir.name
