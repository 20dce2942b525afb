"""Group level: rank every participant's photos against every MRI face.

Reads only participant outputs (never the raw data), then writes
``group_desc-ranks.tsv``, ``group_desc-summary.json`` and ``facerisk.html``
at the top of ``output_dir``.

Scoring follows Schwarz et al. (NEJM 2019): the gallery holds one identity per
participant (all renders of their MRI face); each photo returns its top-k
identities with a confidence (the best cosine similarity to that identity's
renders, floored at 0); confidences are summed over a participant's photos and
the identities are ranked by that sum.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bids_app import __version__
from bids_app import bids as bidsio
from bids_app import rank
from bids_app.config import Settings
from bids_app.io import atomic_write_json, atomic_write_text, read_json

LOGGER = logging.getLogger("facerisk")

TOP_MATCHES = 5


class GroupError(RuntimeError):
    """Participant outputs cannot be combined (message says which and why)."""


@dataclass
class EmbeddingSet:
    """One ``_desc-faces_*.npy`` with its sidecar."""

    subject: str
    kind: str  # "mri" or "photo"
    json_path: Path
    vectors: np.ndarray
    sidecar: dict

    def image_paths(self) -> list[Path | None]:
        """Per row, the render or aligned photo crop (None where there is none)."""
        folder = self.json_path.parent
        return [folder / row["File"] if row.get("File") else None for row in self.sidecar["Rows"]]


@dataclass
class Participant:
    subject: str
    mri: list[EmbeddingSet] = field(default_factory=list)
    photos: list[EmbeddingSet] = field(default_factory=list)

    def stacked(self, kind: str) -> tuple[np.ndarray, list[Path | None], list[float | None]]:
        sets = self.mri if kind == "mri" else self.photos
        if not sets:
            return np.zeros((0, 0), np.float32), [], []
        vectors = np.concatenate([s.vectors for s in sets])
        paths = [p for s in sets for p in s.image_paths()]
        scores = [row.get("Score") for s in sets for row in s.sidecar["Rows"]]
        return vectors, paths, scores


def _load_set(subject: str, kind: str, json_path: Path) -> EmbeddingSet:
    sidecar = read_json(json_path)
    npy = json_path.with_suffix(".npy")
    try:
        vectors = np.load(npy, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise GroupError(f"sub-{subject}: cannot read {npy.name} ({err}); rerun its participant level") from err
    if vectors.ndim != 2 or vectors.shape[0] != len(sidecar.get("Rows", [])):
        raise GroupError(
            f"sub-{subject}: {npy.name} has shape {vectors.shape}, its sidecar lists "
            f"{len(sidecar.get('Rows', []))} rows; rerun its participant level"
        )
    return EmbeddingSet(subject, kind, json_path, vectors.astype(np.float32), sidecar)


def collect_participants(settings: Settings, desc: str = "faces") -> list[Participant]:
    """Every participant output in ``output_dir`` that matches the settings.

    ``desc`` selects one face model's embeddings (see :func:`bids_app.bids.faces_desc`).
    """
    subjects = bidsio.output_subjects(settings.output_dir)
    if settings.participant_label:
        subjects = [s for s in subjects if s in settings.participant_label]
    participants = []
    for subject in subjects:
        folder = settings.output_dir / f"sub-{subject}"
        person = Participant(subject)
        for suffix in settings.modality:
            for json_path in sorted(folder.glob(f"**/anat/*_desc-{desc}_{suffix}.json")):
                person.mri.append(_load_set(subject, "mri", json_path))
        for json_path in sorted(folder.glob(f"**/photo/*_desc-{desc}_photo.json")):
            person.photos.append(_load_set(subject, "photo", json_path))
        if person.mri or person.photos:
            participants.append(person)
    if not any(p.mri for p in participants):
        raise GroupError(
            f"{settings.output_dir}: no participant outputs (desc-{desc}) for "
            f"{' or '.join(settings.modality)}; run the participant level first"
            + (f" with --face-model {','.join(settings.face_models)}" if desc != "faces" else "")
        )
    return participants


def check_single_model(participants: list[Participant]) -> dict:
    """All embeddings must come from one model: return its description."""
    models: dict[str, tuple[dict, str]] = {}
    for person in participants:
        for item in person.mri + person.photos:
            info = item.sidecar.get("FaceModel", {})
            key = repr((info.get("Name"), info.get("Files"), info.get("Dimension")))
            models.setdefault(key, (info, f"sub-{person.subject}/{item.json_path.name}"))
    if len(models) > 1:
        described = "; ".join(f"{info.get('Name')} (e.g. {where})" for info, where in models.values())
        raise GroupError(f"embeddings come from different face models and cannot be compared: {described}")
    return next(iter(models.values()))[0]


def _finite_rows(vectors: np.ndarray) -> np.ndarray:
    return np.isfinite(vectors).all(axis=1) if vectors.size else np.zeros(len(vectors), bool)


def _best_image(paths: list[Path | None], scores: list[float | None], usable: np.ndarray) -> Path | None:
    best, best_score = None, -np.inf
    for path, score, ok in zip(paths, scores, usable):
        if ok and path is not None and score is not None and score > best_score:
            best, best_score = path, score
    return best


def run_group(settings: Settings) -> dict:
    """Rank, summarise and report; returns the summary written to JSON."""
    from bids_app.face import fuse_scores
    from bids_app.report import cmc_svg, image_data_uri, render_group_report

    # One set of participant outputs per face model; several models are fused.
    per_model = [collect_participants(settings, bidsio.faces_desc(name)) for name in settings.face_models]
    model_infos = [check_single_model(participants) for participants in per_model]
    participants = per_model[0]
    subjects = [p.subject for p in participants]
    stacked = [{p.subject: (p.stacked("mri"), p.stacked("photo")) for p in group} for group in per_model]
    for name, by_subject in zip(settings.face_models[1:], stacked[1:]):
        for subject in subjects:
            other = by_subject.get(subject)
            if other is None or [len(x[1]) for x in other] != [len(x[1]) for x in stacked[0][subject]]:
                raise GroupError(
                    f"sub-{subject}: embeddings of face model {name} do not match those of "
                    f"{settings.face_models[0]}; rerun its participant level with "
                    f"--face-model {','.join(settings.face_models)}"
                )

    # Gallery: every render with a face (by any model); identity = participant.
    # Probes: every photo with a face; person = participant.
    gallery = [[] for _ in per_model]
    probes = [[] for _ in per_model]
    gallery_identity, identity_subjects = [], []
    probe_person, probe_subjects = [], []
    per_subject: dict[str, dict] = {}
    for subject in subjects:
        (vectors, paths, scores), (photo_vectors, photo_paths, photo_scores) = stacked[0][subject]
        usable = np.logical_or.reduce([_finite_rows(m[subject][0][0]) for m in stacked])
        photo_usable = np.logical_or.reduce([_finite_rows(m[subject][1][0]) for m in stacked])
        per_subject[subject] = {
            "renders_total": len(paths),
            "renders_detected": int(usable.sum()),
            "render_path": _best_image(paths, scores, usable),
            "photos_total": len(photo_paths),
            "photos_detected": int(photo_usable.sum()),
            "photo_path": _best_image(photo_paths, photo_scores, photo_usable),
        }
        if usable.any():
            gallery_identity.extend([len(identity_subjects)] * int(usable.sum()))
            identity_subjects.append(subject)
            for index, model_sets in enumerate(stacked):
                gallery[index].append(model_sets[subject][0][0][usable])
        if photo_usable.any():
            probe_person.extend([len(probe_subjects)] * int(photo_usable.sum()))
            probe_subjects.append(subject)
            for index, model_sets in enumerate(stacked):
                probes[index].append(model_sets[subject][1][0][photo_usable])
    model_info = model_infos[0] if len(model_infos) == 1 else {
        "Name": "+".join(str(info.get("Name")) for info in model_infos),
        "Fusion": "mean of per-model z-scored cosine similarities",
        "Models": model_infos,
    }

    n_identities = len(identity_subjects)
    ranks_by_subject: dict[str, int | None] = {}
    matches_by_subject: dict[str, list[dict]] = {}
    true_score: dict[str, float | None] = {}
    if probe_subjects and n_identities:
        sims = [rank.cosine_similarity(np.concatenate(p), np.concatenate(g)) for p, g in zip(probes, gallery)]
        sim = sims[0] if len(sims) == 1 else fuse_scores(sims)
        photo_scores = rank.identity_scores_nejm(
            sim, np.asarray(gallery_identity), n_identities, top_k=settings.top_k
        )
        person_scores = rank.aggregate_by_person(photo_scores, np.asarray(probe_person), len(probe_subjects))
        truth = np.array(
            [identity_subjects.index(s) if s in identity_subjects else -1 for s in probe_subjects]
        )
        # every probe person has a usable photo; a true identity missing from the
        # gallery (no face in any render) gives +inf: counted, never identified
        ranks = rank.true_ranks(person_scores, truth, usable=np.ones(len(probe_subjects), bool))
        top_idx, top_scores = rank.top_matches(person_scores, k=min(TOP_MATCHES, n_identities))
        for row, subject in enumerate(probe_subjects):
            ranks_by_subject[subject] = int(ranks[row]) if np.isfinite(ranks[row]) else None
            true_score[subject] = float(person_scores[row, truth[row]]) if truth[row] >= 0 else None
            matches_by_subject[subject] = [
                {"participant_id": f"sub-{identity_subjects[i]}", "score": float(s),
                 "is_true": identity_subjects[i] == subject}
                for i, s in zip(top_idx[row], top_scores[row])
            ]

    # Persons whose MRI shows no face cannot be found: they count as not identified.
    rank_values = np.array(
        [ranks_by_subject[s] if ranks_by_subject.get(s) else np.inf for s in probe_subjects], float
    )
    summary_stats = rank.summarise(rank_values, max(n_identities, 1), ks=(1, 5))
    cmc = rank.cmc_curve(rank_values, max(n_identities, 1)) if probe_subjects else np.zeros(0)
    renders_total = sum(v["renders_total"] for v in per_subject.values())
    renders_detected = sum(v["renders_detected"] for v in per_subject.values())
    detection = {
        "renders_total": renders_total,
        "renders_detected": renders_detected,
        "rate": renders_detected / renders_total if renders_total else None,
        "participants_with_face": n_identities,
    }
    summary = {
        "n_participants": len(subjects),
        "n_with_photos": len(probe_subjects),
        "n_identities": n_identities,
        "scoring": {"method": "nejm2019", "top_k": settings.top_k, "ties": "max",
                    "confidence": "max cosine similarity to the identity's renders, floored at 0"},
        "reidentification": summary_stats,
        "cmc": [float(x) for x in cmc],
        "detection": detection,
        "face_model": model_info,
        "modality": settings.modality,
        "facerisk_version": __version__,
    }

    _write_ranks_tsv(settings.output_dir / "group_desc-ranks.tsv", subjects, per_subject,
                     ranks_by_subject, true_score, matches_by_subject)
    atomic_write_json(settings.output_dir / "group_desc-summary.json", summary)

    rows = []
    for subject in subjects:
        info = per_subject[subject]
        rows.append({
            "participant_id": f"sub-{subject}",
            "rank": ranks_by_subject.get(subject),
            "has_photos": subject in probe_subjects,
            "render_uri": image_data_uri(info["render_path"]) if info["render_path"] else None,
            "photo_uri": image_data_uri(info["photo_path"]) if info["photo_path"] else None,
            "matches": matches_by_subject.get(subject, []),
            "renders_detected": info["renders_detected"],
            "renders_total": info["renders_total"],
        })
    from bids_app.boilerplate import render_citation, software_versions
    citation = render_citation(citation_parameters(settings, model_info))
    for extension, text in citation.items():
        atomic_write_text(settings.output_dir / "logs" / f"CITATION.{extension}", text)
    context = {
        "title": "facerisk report",
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
        "dataset_name": _dataset_name(settings.bids_dir),
        "n_participants": len(subjects),
        "n_with_photos": len(probe_subjects),
        "n_identities": n_identities,
        "summary": summary_stats,
        "detection": detection,
        "cmc_svg": cmc_svg(cmc) if len(cmc) else "",
        "participants": rows,
        "parameters": {
            "Modality": ", ".join(settings.modality),
            "Face model": model_info.get("Name"),
            "Scoring": f"NEJM 2019: top-{settings.top_k} identities per photo, summed over photos",
            "Ties": "pessimistic (true identity ranked after equal scores)",
            **{f"{k} version": v for k, v in software_versions().items()},
        },
        "methods_html": citation.get("html", ""),
    }
    atomic_write_text(settings.output_dir / "facerisk.html", render_group_report(context))
    return summary


def citation_parameters(settings: Settings, model_info: dict | None = None) -> dict:
    """Parameters and versions for the boilerplate templates."""
    from bids_app.boilerplate import software_versions

    model_info = model_info or {}
    return {
        "version": __version__,
        "modality": ", ".join(settings.modality),
        "n_renders": settings.n_renders,
        "seed": settings.seed,
        "top_k": settings.top_k,
        "face_model": model_info.get("Name", settings.face_models[0]),
        "dim": model_info.get("Dimension", 128),
        "render_min_score": settings.render_min_score,
        "photo_min_score": settings.photo_min_score,
        "versions": software_versions(),
    }


def _dataset_name(bids_dir: Path) -> str:
    try:
        return read_json(bids_dir / "dataset_description.json").get("Name", bids_dir.name)
    except (OSError, ValueError):
        return bids_dir.name


def _write_ranks_tsv(path, subjects, per_subject, ranks_by_subject, true_score, matches_by_subject):
    header = ["participant_id", "rank", "status", "n_photos", "renders_detected", "score_true"]
    for k in range(1, TOP_MATCHES + 1):
        header += [f"match{k}_id", f"match{k}_score"]
    lines = ["\t".join(header)]
    for subject in subjects:
        info = per_subject[subject]
        ranked = ranks_by_subject.get(subject)
        if info["photos_detected"] == 0:
            status = "no usable photo"
        elif info["renders_detected"] == 0:
            status = "no face in MRI renders"
        else:
            status = "identified" if ranked == 1 else "not identified"
        score = true_score.get(subject)
        cells = [
            f"sub-{subject}",
            str(ranked) if ranked else "n/a",
            status,
            str(info["photos_detected"]),
            f"{info['renders_detected']}/{info['renders_total']}",
            f"{score:.4f}" if score is not None else "n/a",
        ]
        matches = matches_by_subject.get(subject, [])
        for k in range(TOP_MATCHES):
            if k < len(matches):
                cells += [matches[k]["participant_id"], f"{matches[k]['score']:.4f}"]
            else:
                cells += ["n/a", "n/a"]
        lines.append("\t".join(cells))
    atomic_write_text(path, "\n".join(lines) + "\n")
