"""Every number of one output folder: detectability, re-identification, verification, linkage.

:func:`analyse` loads a folder's trusted participant outputs
(:mod:`.load`), fuses several face models (:mod:`.fusion`) and ranks every
participant's photos against every MRI face with
:func:`bids_app.rank.rank_gallery` (blocked: memory stays bounded for cohorts
of any size).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bids_app import __version__, rank
from bids_app import bids as bidsio
from bids_app.config import Settings
from bids_app.progress import Progress

from .fusion import fuse_sets
from .load import (
    Excluded,
    GroupError,
    Participant,
    check_single_model,
    collect_participants,
    finite_rows,
    trusted_subjects,
)

LOGGER = logging.getLogger("facerisk")

__all__ = ["Analysis", "analyse", "risk_order", "status_of"]

#: Best matches kept per participant (ranks TSV and report).
TOP_MATCHES = 5
#: Rates reported besides top-k (``--top-k``).
RATE_KS = (1, 5, 10)
#: Participants listed as flagged in the summary (the report and TSV list all).
MAX_FLAGGED = 1000


@dataclass
class Analysis:
    """Everything computed from one output folder."""

    subjects: list[str]
    info: dict[str, dict]  # per subject
    summary: dict
    linkage_rows: list[dict]
    verification: dict
    model_info: dict
    participants: dict[str, Participant]
    excluded: list[Excluded] = field(default_factory=list)
    audit: list = field(default_factory=list)  # bids_app.audit.ImageVerdict per anat image


def _stack_rows(per_code: list[list[tuple[np.ndarray, np.ndarray | None]]]) -> tuple[np.ndarray, np.ndarray]:
    """One float32 matrix of the rows with a face, and each row's code (the list position),
    filled in place (no per-participant copies: memory for 100k+ participants)."""
    counts = np.array([sum(len(v) if ok is None else int(ok.sum()) for v, ok in sets) for sets in per_code],
                      np.intp)
    dim = next(v.shape[1] for sets in per_code for v, _ in sets)
    out = np.empty((int(counts.sum()), dim), np.float32)
    at = 0
    for sets in per_code:
        for v, ok in sets:
            rows = v if ok is None else v[ok]
            out[at:at + len(rows)] = rows
            at += len(rows)
    return out, np.repeat(np.arange(len(per_code)), counts)


def _load_all(settings: Settings, output_dir: Path):
    records, excluded = trusted_subjects(settings, output_dir)
    per_model = [collect_participants(settings, bidsio.faces_desc(name), output_dir, records, excluded)
                 for name in settings.face_models]
    if len(per_model) > 1:  # a participant excluded for one model is excluded for all
        dropped = {item.subject for item in excluded}
        per_model = [[p for p in group if p.subject not in dropped] for group in per_model]
    model_infos = [check_single_model(participants) for participants in per_model]
    by_subject = [{p.subject: p for p in group} for group in per_model]
    subjects = [p.subject for p in per_model[0]]
    for name, other in zip(settings.face_models[1:], by_subject[1:]):
        for subject in subjects:
            theirs, ours = other.get(subject), by_subject[0][subject]
            if theirs is None or [len(s.vectors) for s in theirs.mri + theirs.photos] != [
                    len(s.vectors) for s in ours.mri + ours.photos]:
                raise GroupError(
                    f"sub-{subject}: embeddings of face model {name} do not match those of "
                    f"{settings.face_models[0]}; rerun its participant level with "
                    f"--face-model {','.join(settings.face_models)}"
                )
    first_reason = {}  # a participant left out for several models is listed once
    for item in excluded:
        first_reason.setdefault(item.subject, item)
    return per_model, model_infos, by_subject, subjects, sorted(first_reason.values(), key=lambda e: e.subject)


def _participant_info(person: Participant, mri_sets, photo_sets) -> dict:
    mri_ok = [finite_rows(v) for v in mri_sets]
    photo_ok = [finite_rows(v) for v in photo_sets]
    n_total = sum(len(v) for v in mri_sets)
    n_detected = sum(int(ok.sum()) for ok in mri_ok)
    det_scores = [
        row.get("Score") for s in person.mri for row in s.sidecar["Rows"]
        if row.get("Detected", True) and row.get("Score") is not None
    ]
    return {
        "renders_total": n_total,
        "renders_detected": n_detected,
        "detect_fraction": (n_detected / n_total) if n_total else None,
        "detect_best_score": max(det_scores) if det_scores and n_detected else None,
        # the participant level decided "no face" but some render found a nose in 3D, or the image's
        # edge cuts off the front of the head
        "face_review": any(s.sidecar.get("FacePresence", {}).get("Review") for s in person.mri),
        "photos_total": sum(len(v) for v in photo_sets),
        "photos_detected": sum(int(ok.sum()) for ok in photo_ok),
        "n_images": len(person.mri),
        "rank": None, "score_true": None, "matches": [], "linkage_rank": None,
    }


def analyse(settings: Settings, output_dir: Path | None = None) -> Analysis:
    """Load one output folder's participant outputs and compute every number."""
    output_dir = output_dir or settings.output_dir
    per_model, model_infos, by_subject, subjects, excluded = _load_all(settings, output_dir)
    n_models = len(per_model)

    # one vector matrix per embedding set (fused when there are several models)
    set_keys: list[tuple[str, str, int]] = []  # (subject, kind, index)
    for subject in subjects:
        person = by_subject[0][subject]
        set_keys += [(subject, "mri", i) for i in range(len(person.mri))]
        set_keys += [(subject, "photo", i) for i in range(len(person.photos))]

    def vectors(model: int, key) -> np.ndarray:
        subject, kind, i = key
        person = by_subject[model][subject]
        return (person.mri if kind == "mri" else person.photos)[i].vectors

    set_vectors, model_info = fuse_sets(vectors, set_keys, n_models, model_infos)

    # detectability, gallery and probes
    info: dict[str, dict] = {}
    gallery, identity_subjects = [], []  # gallery: (vectors, rows with a face or None for all) per set
    probes, probe_subjects = [], []
    for subject in subjects:
        person = by_subject[0][subject]
        mri_sets = [set_vectors[(subject, "mri", i)] for i in range(len(person.mri))]
        photo_sets = [set_vectors[(subject, "photo", i)] for i in range(len(person.photos))]
        info[subject] = _participant_info(person, mri_sets, photo_sets)
        if info[subject]["renders_detected"]:
            gallery.append([(v, None if ok.all() else ok) for v in mri_sets if (ok := finite_rows(v)).any()])
            identity_subjects.append(subject)
        if info[subject]["photos_detected"]:
            probes.append([(v, None if ok.all() else ok) for v in photo_sets if (ok := finite_rows(v)).any()])
            probe_subjects.append(subject)
    identity_index = {s: i for i, s in enumerate(identity_subjects)}
    n_identities = len(identity_subjects)

    # re-identification (photos vs MRI faces)
    verification: dict = {}
    rank_values = np.zeros(0)
    if probe_subjects and n_identities:
        g, gi = _stack_rows(gallery)
        p, pi = _stack_rows(probes)
        del gallery, probes
        truth = np.array([identity_index.get(s, -1) for s in probe_subjects])
        LOGGER.info("ranking %d photos of %d participants against %d renders of %d MRI faces",
                    len(p), len(probe_subjects), len(g), n_identities)
        result = rank.rank_gallery(
            p, pi, len(probe_subjects), g, gi, n_identities, truth,
            scoring=settings.scoring, top_k=settings.top_k, n_matches=TOP_MATCHES,
            progress=Progress("ranking: photos against MRI faces", len(p), "photos"),
        )
        rank_values = result.ranks
        for row, subject in enumerate(probe_subjects):
            r = result.ranks[row]
            info[subject]["rank"] = int(r) if np.isfinite(r) and float(r).is_integer() else (
                float(r) if np.isfinite(r) else None)
            ts = result.true_score[row]
            info[subject]["score_true"] = float(ts) if np.isfinite(ts) else None
            info[subject]["matches"] = [
                {"participant_id": f"sub-{identity_subjects[i]}", "score": float(s),
                 "is_true": identity_subjects[i] == subject}
                for i, s in zip(result.match_index[row], result.match_score[row]) if i >= 0
            ]
        # verification ROC on photo-render pairs; owner codes = identity codes
        owner_of_probe = truth[pi]
        genuine, impostor, sampled = rank.verification_pairs(p, owner_of_probe, g, gi)
        fpr, tpr, _ = rank.roc_curve(genuine, impostor)
        verification = {
            "pairs": "photo vs MRI render (cosine similarity)" if n_models == 1 else "photo vs MRI render (fused z-score)",
            "n_genuine": int(genuine.size),
            "n_impostor": int(impostor.size),
            "impostors_sampled": bool(sampled),
            "auc": rank.json_float(rank.auc_score(genuine, impostor)),
            "roc": {"fpr": [round(float(x), 5) for x in fpr], "tpr": [round(float(x), 5) for x in tpr]},
            "_genuine": genuine,
            "_impostor": impostor,
        }

    ks = tuple(sorted(set(RATE_KS) | {int(settings.top_k)}))
    stats = rank.summarise(rank_values, max(n_identities, 1), ks=ks)
    detection = _detection_summary(info, subjects, n_identities)
    linkage_rows, linkage_summary = _linkage(settings, subjects, by_subject[0], set_vectors)
    for row in linkage_rows:
        current = info[row["subject"]]["linkage_rank"]
        if row["rank"] is not None and (current is None or row["rank"] < current):
            info[row["subject"]]["linkage_rank"] = row["rank"]

    audit = audit_images(subjects, by_subject[0], model_infos[0])
    summary = {
        "n_participants": len(subjects),
        "n_with_photos": len(probe_subjects),
        "n_identities": n_identities,
        "scoring": _scoring_description(settings),
        "reidentification": stats,
        "cmc": stats["cmc"],
        "verification": {k: v for k, v in verification.items() if not k.startswith("_")} or None,
        "detection": detection,
        "linkage": linkage_summary,
        "audit": audit_summary(audit, model_infos[0]),
        "face_model": model_info,
        "modality": settings.modality,
        "facerisk_version": __version__,
        "n_excluded": len(excluded),
        "excluded": [item.to_json() for item in excluded],
    }
    return Analysis(subjects, info, summary, linkage_rows, verification, model_info,
                    {s: by_subject[0][s] for s in subjects}, excluded, audit)


def audit_images(subjects: list[str], people: dict[str, Participant], model_info: dict) -> list:
    """Per anat image, the MRI-only audit (:mod:`bids_app.audit`) from the participant outputs:
    the embedding sidecar's per-render evidence, ``FacePresence`` and ``SourceMetadata`` (absent in
    outputs of an older facerisk: unknown claim, no per-feature measures) and the first face
    model's embeddings, compared with the known template faces of that model."""
    from bids_app import audit

    records, means = [], []
    for subject in subjects:
        for item in people[subject].mri:
            session = next((part[len("ses-"):] for part in item.json_path.parts if part.startswith("ses-")), None)
            sidecar = item.sidecar
            records.append(audit.ImageRecord(
                participant=subject, image=item.label, suffix=item.label.rsplit("_", 1)[-1], session=session,
                presence=sidecar.get("FacePresence"), metadata=sidecar.get("SourceMetadata"),
                counts=sidecar.get("AuditCounts")))
            means.append(audit.mean_embedding(item.vectors))
    return audit.audit_images(records, means, audit.load_templates(model_info))


def audit_summary(verdicts: list, model_info: dict) -> dict:
    """Counts per verdict and action, the flags, and the steward's sentence (summary JSON)."""
    from datetime import date

    from bids_app import audit

    counts = audit.action_counts(verdicts)
    first = sorted(verdicts, key=audit.priority)
    return {
        **counts,
        "sentence": audit.steward_sentence(counts, __version__, date.today().isoformat()),
        "claimed_but_face_images": [v.image for v in first if v.claimed_but_face][:MAX_FLAGGED],
        "other_sequence_face_images": [v.image for v in first if v.other_sequence_face][:MAX_FLAGGED],
        "template_similarity": audit.TEMPLATE_SIMILARITY,
        "cluster_similarity": audit.CLUSTER_SIMILARITY,
        "templates": [name for name, _ in audit.load_templates(model_info)],
        "similarity_model": model_info.get("Name"),
    }


def _scoring_description(settings: Settings) -> dict:
    text = {
        "nejm": f"NEJM 2019: per photo the top-{settings.top_k} identities' confidences "
                "(best cosine similarity to the identity's renders, floored at 0), summed over photos",
        "max": "best confidence over the participant's photos",
        "mean": "mean confidence over the participant's photos",
        "topk-sum": f"sum of the participant's {settings.top_k} best photo confidences per identity",
    }[settings.scoring]
    return {"method": "nejm2019" if settings.scoring == "nejm" else settings.scoring,
            "top_k": settings.top_k, "ties": "max", "description": text,
            "confidence": "max cosine similarity to the identity's renders"
            + (", floored at 0" if settings.scoring == "nejm" else "")}


def _detection_summary(info: dict, subjects: list[str], n_identities: int) -> dict:
    renders_total = sum(info[s]["renders_total"] for s in subjects)
    renders_detected = sum(info[s]["renders_detected"] for s in subjects)
    with_mri = [s for s in subjects if info[s]["renders_total"]]
    visible = [s for s in with_mri if info[s]["renders_detected"]]
    low, high = rank.wilson_interval(len(visible), len(with_mri))
    return {
        "renders_total": renders_total,
        "renders_detected": renders_detected,
        "rate": renders_detected / renders_total if renders_total else None,
        "participants_with_face": n_identities,
        "participants_with_mri": len(with_mri),
        "participant_rate": len(visible) / len(with_mri) if with_mri else None,
        "participant_ci_low": rank.json_float(low),
        "participant_ci_high": rank.json_float(high),
        "flagged": [f"sub-{s}" for s in visible][:MAX_FLAGGED],
        "flag_rule": "a face was detected in at least one MRI render",
        "review": [f"sub-{s}" for s in with_mri if info[s].get("face_review")][:MAX_FLAGGED],
        "review_rule": ("no face decided, but some render found a nose in 3D, or the image's edge cuts "
                        "off the front of the head, or its background is noise (an MP2RAGE UNI image, a "
                        "very noisy scan): look at its renders"),
    }


def _linkage(settings, subjects, people, set_vectors) -> tuple[list[dict], dict | None]:
    """Image-to-participant matching for participants with several anat images.

    Every image with a face is an identity; identities of one participant
    form a group. Each image of a participant who has another image with a
    face is a probe (its renders play the photos); its own identity is
    excluded, so only the participant's *other* images can find them.
    """
    images = []  # (subject, label, vectors of rows with a face)
    for subject in subjects:
        for i, item in enumerate(people[subject].mri):
            v = set_vectors[(subject, "mri", i)]
            images.append((subject, item.label, v[finite_rows(v)]))
    with_face = [im for im in images if len(im[2])]
    position = {s: i for i, s in enumerate(subjects)}
    group_subjects = sorted({im[0] for im in with_face}, key=position.__getitem__)
    per_subject = Counter(im[0] for im in with_face)
    if not any(n >= 2 for n in per_subject.values()):
        n_multi = sum(1 for s in subjects if len(people[s].mri) >= 2)
        return [], ({"n": 0, "n_participants_with_several_images": n_multi,
                     "note": "no participant has two anat images with a detected face"} if n_multi else None)
    group_index = {s: i for i, s in enumerate(group_subjects)}
    with_face.sort(key=lambda im: group_index[im[0]])
    gallery = np.concatenate([im[2] for im in with_face])
    gallery_identity = np.concatenate([np.full(len(im[2]), j) for j, im in enumerate(with_face)])
    identity_group = np.array([group_index[im[0]] for im in with_face])
    probe_images = [j for j, im in enumerate(with_face) if per_subject[im[0]] >= 2]
    probes = np.concatenate([with_face[j][2] for j in probe_images])
    probe_person = np.concatenate([np.full(len(with_face[j][2]), n) for n, j in enumerate(probe_images)])
    result = rank.rank_gallery(
        probes, probe_person, len(probe_images), gallery, gallery_identity, len(with_face),
        identity_group[probe_images], scoring=settings.scoring, top_k=settings.top_k,
        exclude_identity=np.array(probe_images), identity_group=identity_group,
        n_groups=len(group_subjects), n_matches=1,
        progress=Progress("linkage: scans against scans", len(probes), "renders"),
    )
    rows = []
    for n, j in enumerate(probe_images):
        subject, label, _ = with_face[j]
        best = result.match_index[n, 0]
        rows.append({
            "subject": subject, "image": label,
            "rank": int(result.ranks[n]) if np.isfinite(result.ranks[n]) else None,
            "score_true": rank.json_float(result.true_score[n]),
            "best_match": f"sub-{group_subjects[best]}" if best >= 0 else None,
            "best_score": rank.json_float(result.match_score[n, 0]),
        })
    stats = rank.summarise(result.ranks, len(group_subjects), ks=(1, 5))
    stats.pop("cmc")
    stats["n_participants_with_several_images"] = sum(1 for n in per_subject.values() if n >= 2)
    stats["question"] = "can two scans of one person be tied together by the face alone?"
    return rows, stats


def status_of(info: dict) -> str:
    """One word (or three) for a participant's outcome, as in the ranks TSV."""
    if info["photos_detected"] == 0:
        return "no usable photo"
    if info["renders_detected"] == 0:
        return "no face in MRI renders"
    return "identified" if info["rank"] == 1 else "not identified"


def risk_order(analysis: Analysis) -> list[str]:
    """Participants from the highest risk: rank (1 first), own score, face detectability."""

    def key(subject):
        i = analysis.info[subject]
        r = i["rank"] if i["rank"] is not None else math.inf
        return (r, -(i["score_true"] if i["score_true"] is not None else -math.inf),
                i["linkage_rank"] if i["linkage_rank"] is not None else math.inf,
                -(i["detect_fraction"] or 0.0), -(i["detect_best_score"] or 0.0), subject)

    return sorted(analysis.subjects, key=key)
