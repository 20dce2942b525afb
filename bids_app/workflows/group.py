"""Group level: rank every participant's photos against every MRI face, and audit the MRI faces.

Reads only participant outputs (never the raw data), then writes at the top of
``output_dir``:

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
``group_desc-summary.json``, ``facerisk.html``, ``sub-<label>.html``
    numbers, the group report, and per-participant pages.
``logs/CITATION.{md,html,bib}``
    the methods boilerplate.

Scoring follows Schwarz et al. (NEJM 2019) by default (see
:data:`bids_app.rank.SCORINGS` for the alternatives). Similarities are
computed in blocks (:func:`bids_app.rank.rank_gallery`): memory stays bounded
for cohorts of any size. Several face models are fused exactly like
:func:`bids_app.face.fuse_scores` (mean of z-scored cosine similarities) by
concatenating the models' scaled embeddings, so fusion scales the same way.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
import os
import re
import time
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
#: Rates reported besides top-k (``--top-k``).
RATE_KS = (1, 5, 10)
#: Rows of the participant table in the HTML report (the TSV has all).
MAX_TABLE_ROWS = 1000
#: Rows of that table that show thumbnails (the highest-risk ones).
MAX_THUMBNAILS = 200
#: Per-participant pages are written for the highest-risk participants only.
MAX_PAGES = 200
#: Impostor photo-render pairs sampled for the verification ROC and the score histograms.
MAX_IMPOSTORS = 200_000


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

    @property
    def label(self) -> str:
        """The source image's name: the sidecar name without ``_desc-faces*``."""
        return re.sub(r"_desc-faces[A-Za-z0-9]*", "", self.json_path.name[: -len(".json")])


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


_NPY_HEADER = re.compile(
    rb"\{'descr': '(<f4|<f8)', 'fortran_order': False, 'shape': \((\d+), (\d+)\), \}\s*\n")


def _read_npy(path: str):
    """A 2-D float array from ``path``: the common little-endian C-order layout is parsed
    directly (one read, no header evaluation: 10k+ small files), anything else by ``np.load``."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:8] == b"\x93NUMPY\x01\x00":
        size = int.from_bytes(data[8:10], "little")
        match = _NPY_HEADER.fullmatch(data, 10, 10 + size)
        if match:
            shape = (int(match.group(2)), int(match.group(3)))
            dtype = np.dtype(match.group(1).decode())
            if len(data) - 10 - size == shape[0] * shape[1] * dtype.itemsize:
                return np.frombuffer(data, dtype, offset=10 + size).reshape(shape).copy()
    return np.load(path, allow_pickle=False)


_MODELS: dict[str, dict] = {}


def _load_set(subject: str, kind: str, json_path: Path | str) -> EmbeddingSet:
    json_path = str(json_path)
    try:
        with open(json_path, "rb") as handle:
            sidecar = json.loads(handle.read())
    except json.JSONDecodeError as err:
        raise ValueError(f"{json_path}: invalid JSON ({err.msg} at line {err.lineno})") from err
    # one shared dict per distinct face model description (memory: 100k+ sidecars)
    model = sidecar.get("FaceModel")
    if isinstance(model, dict):
        sidecar["FaceModel"] = _MODELS.setdefault(json.dumps(model, sort_keys=True), model)
    npy = json_path[: -len(".json")] + ".npy"
    try:
        vectors = _read_npy(npy)
    except (OSError, ValueError) as err:
        raise GroupError(f"sub-{subject}: cannot read {os.path.basename(npy)} ({err}); "
                         "rerun its participant level") from err
    if vectors.ndim != 2 or vectors.shape[0] != len(sidecar.get("Rows", [])):
        raise GroupError(
            f"sub-{subject}: {os.path.basename(npy)} has shape {vectors.shape}, its sidecar lists "
            f"{len(sidecar.get('Rows', []))} rows; rerun its participant level"
        )
    return EmbeddingSet(subject, kind, Path(json_path), vectors.astype(np.float32, copy=False), sidecar)


def _walk_json(folder: Path | str) -> list[tuple[str, str]]:
    """``(parent folder name, path)`` of every JSON file under ``folder``, sorted as a
    top-down walk with sorted names would give them (one ``scandir`` per folder)."""
    found = []
    stack = [str(folder)]
    while stack:
        root = stack.pop()
        try:
            with os.scandir(root) as entries:
                # like os.walk: a symbolic link to a folder is not entered
                items = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in entries)
        except OSError:
            continue
        parent = os.path.basename(root)
        found.extend((parent, os.path.join(root, name)) for name, is_dir in items
                     if not is_dir and name.endswith(".json"))
        stack.extend(os.path.join(root, name) for name, is_dir in reversed(items) if is_dir)
    return found


def _photo_session(path: str) -> str | None:
    """The session of a file in ``sub-<label>[/ses-<label>]/photo/`` (None without a session
    folder): the photo outputs are named after it (:func:`bids_app.bids.photo_faces_name`)."""
    folder = os.path.basename(os.path.dirname(os.path.dirname(path)))
    return folder[len("ses-"):] if folder.startswith("ses-") else None


def collect_participants(settings: Settings, desc: str = "faces", output_dir: Path | None = None) -> list[Participant]:
    """Every participant output in ``output_dir`` that matches the settings.

    ``desc`` selects one face model's embeddings (see :func:`bids_app.bids.faces_desc`).
    """
    output_dir = output_dir or settings.output_dir
    if not output_dir.is_dir():
        raise GroupError(f"{output_dir}: no such folder; run the participant level first")
    subjects = bidsio.output_subjects(output_dir)
    if settings.participant_label:
        subjects = [s for s in subjects if s in settings.participant_label]
    anat = re.compile(rf"_desc-{re.escape(desc)}_({'|'.join(map(re.escape, settings.modality))})\.json$")
    sessions = {f"ses-{s}" for s in settings.session_label}

    def load(subject: str) -> Participant:
        person = Participant(subject)
        folder = os.path.join(output_dir, f"sub-{subject}")
        for parent, path in _walk_json(folder):
            if sessions and not (sessions & set(Path(os.path.relpath(path, output_dir)).parts)):
                continue
            name = os.path.basename(path)
            if parent == "anat" and anat.search(name):
                person.mri.append(_load_set(subject, "mri", path))
            elif parent == "photo" and name == bidsio.photo_faces_name(
                    subject, _photo_session(path), ".json", desc):
                person.photos.append(_load_set(subject, "photo", path))
        return person

    loaded = [load(subject) for subject in subjects]
    participants = [person for person in loaded if person.mri or person.photos]
    if not any(p.mri for p in participants):
        raise GroupError(
            f"{output_dir}: no participant outputs (desc-{desc}) for "
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


# -- fusion of several models ----------------------------------------------------

def _fusion_embeddings(per_model_rows: list[list[np.ndarray]], probe_side: list[bool], stats) -> list[np.ndarray]:
    """Concatenate models' embeddings so that one dot product is the fused score.

    For models m = 1..M with similarity mean mu_m and deviation sd_m, the fused
    score of a pair is ``sum_m [both have a face] (cos_m - mu_m) / (M sd_m)``,
    i.e. the mean z-score with a missing model counting as its mean (z = 0).
    Probe rows hold ``x_m / (M sd_m)`` and ``-mu_m / (M sd_m)``; gallery rows
    hold ``y_m`` and ``1``; zeros where the model found no face. A row with no
    face in any model stays NaN.
    """
    n_models = len(stats)
    out = []
    for rows_by_model, is_probe in zip(zip(*per_model_rows), probe_side):
        parts, any_face = [], np.zeros(len(rows_by_model[0]), bool)
        for (mu, sd), x in zip(stats, rows_by_model):
            ok = _finite_rows(x)
            any_face |= ok
            x = np.where(ok[:, None], x, 0.0)
            if is_probe:
                parts += [x / (n_models * sd), np.where(ok, -mu / (n_models * sd), 0.0)[:, None]]
            else:
                parts += [x, ok.astype(np.float64)[:, None]]
        fused = np.concatenate(parts, axis=1).astype(np.float32)
        fused[~any_face] = np.nan
        out.append(fused)
    return out


def _model_stats(probes: np.ndarray, gallery: np.ndarray) -> tuple[float, float]:
    """Mean and deviation of the cosine similarities (all pairs, or a sample for big cohorts)."""
    p = probes[_finite_rows(probes)]
    g = gallery[_finite_rows(gallery)]
    if not len(p) or not len(g):
        return 0.0, 1.0
    if len(p) * len(g) <= MAX_IMPOSTORS:
        sims = (p.astype(np.float64) @ g.astype(np.float64).T).ravel()
    else:
        rng = np.random.default_rng(0)
        i, j = rng.integers(0, len(p), MAX_IMPOSTORS), rng.integers(0, len(g), MAX_IMPOSTORS)
        sims = np.einsum("ij,ij->i", p[i].astype(np.float64), g[j].astype(np.float64))
    sd = float(sims.std()) if sims.size > 1 else 0.0
    return float(sims.mean()), (sd if sd > 0 else 1.0)


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


def _progress_logger(what: str, every_s: float = 30.0):
    """A ``progress(done, total)`` callback that logs at most every ``every_s`` seconds."""
    start = time.monotonic()
    last = [start]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < every_s:
            return
        last[0] = now
        elapsed = now - start
        left = elapsed * (total - done) / done if done else math.nan
        LOGGER.info("%s: %d of %d photos (%.0f%%) in %.0f s, about %.0f s left",
                    what, done, total, 100.0 * done / max(total, 1), elapsed, left)

    return report


# -- the analysis of one output folder -----------------------------------------

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


def _load_all(settings: Settings, output_dir: Path):
    per_model = [collect_participants(settings, bidsio.faces_desc(name), output_dir) for name in settings.face_models]
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
    return per_model, model_infos, by_subject, subjects


def analyse(settings: Settings, output_dir: Path | None = None) -> Analysis:
    """Load one output folder's participant outputs and compute every number."""
    output_dir = output_dir or settings.output_dir
    per_model, model_infos, by_subject, subjects = _load_all(settings, output_dir)
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

    if n_models == 1:
        set_vectors = {key: vectors(0, key) for key in set_keys}
        model_info = model_infos[0]
    else:
        stats = []
        for m in range(n_models):
            mri = [vectors(m, k) for k in set_keys if k[1] == "mri"]
            photo = [vectors(m, k) for k in set_keys if k[1] == "photo"]
            g = np.concatenate(mri)
            stats.append(_model_stats(np.concatenate(photo) if photo else g, g))
        fused = _fusion_embeddings([[vectors(m, k) for k in set_keys] for m in range(n_models)],
                                   [k[1] == "photo" for k in set_keys], stats)
        set_vectors = dict(zip(set_keys, fused))
        model_info = {
            "Name": "+".join(str(info.get("Name")) for info in model_infos),
            "Fusion": "mean of per-model z-scored cosine similarities",
            "FusionStatistics": [{"Mean": mu, "SD": sd} for mu, sd in stats],
            "Models": model_infos,
            "Dimension": model_infos[0].get("Dimension"),
        }

    # detectability, gallery and probes
    info: dict[str, dict] = {}
    gallery, identity_subjects = [], []  # gallery: (vectors, rows with a face or None for all) per set
    probes, probe_subjects = [], []
    for subject in subjects:
        person = by_subject[0][subject]
        mri_sets = [set_vectors[(subject, "mri", i)] for i in range(len(person.mri))]
        photo_sets = [set_vectors[(subject, "photo", i)] for i in range(len(person.photos))]
        mri_ok = [_finite_rows(v) for v in mri_sets]
        photo_ok = [_finite_rows(v) for v in photo_sets]
        n_total = sum(len(v) for v in mri_sets)
        n_detected = sum(int(ok.sum()) for ok in mri_ok)
        n_photos = sum(int(ok.sum()) for ok in photo_ok)
        det_scores = [
            row.get("Score") for s in person.mri for row in s.sidecar["Rows"]
            if row.get("Detected", True) and row.get("Score") is not None
        ]
        info[subject] = {
            "renders_total": n_total,
            "renders_detected": n_detected,
            "detect_fraction": (n_detected / n_total) if n_total else None,
            "detect_best_score": max(det_scores) if det_scores and n_detected else None,
            "photos_total": sum(len(v) for v in photo_sets),
            "photos_detected": n_photos,
            "n_images": len(person.mri),
            "rank": None, "score_true": None, "matches": [], "linkage_rank": None,
        }
        if n_detected:
            gallery.append([(v, None if ok.all() else ok) for v, ok in zip(mri_sets, mri_ok) if ok.any()])
            identity_subjects.append(subject)
        if n_photos:
            probes.append([(v, None if ok.all() else ok) for v, ok in zip(photo_sets, photo_ok) if ok.any()])
            info[subject]["_probe_code"] = len(probe_subjects)
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
            progress=_progress_logger("ranking"),
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
        genuine, impostor, sampled = rank.verification_pairs(p, owner_of_probe, g, gi,
                                                             max_impostors=MAX_IMPOSTORS)
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
        "face_model": model_info,
        "modality": settings.modality,
        "facerisk_version": __version__,
    }
    return Analysis(subjects, info, summary, linkage_rows, verification, model_info,
                    {s: by_subject[0][s] for s in subjects})


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
        "flagged": [f"sub-{s}" for s in visible][:1000],
        "flag_rule": "a face was detected in at least one MRI render",
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
            images.append((subject, item.label, v[_finite_rows(v)]))
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


# -- comparison with another output folder (e.g. before defacing) ---------------

def _compare(this: Analysis, other: Analysis, other_dir: Path) -> tuple[list[dict], dict]:
    rows = []
    for subject in this.subjects:
        a = this.info[subject]
        b = other.info.get(subject)
        if b is None:
            continue
        drop = (b["detect_fraction"] - a["detect_fraction"]
                if a["detect_fraction"] is not None and b["detect_fraction"] is not None else None)
        rows.append({
            "subject": subject,
            "detect_fraction": a["detect_fraction"], "detect_fraction_compare": b["detect_fraction"],
            "detect_drop": drop,
            "rank": a["rank"], "rank_compare": b["rank"],
            "score_true": a["score_true"], "score_true_compare": b["score_true"],
            "still_detected": bool(a["renders_detected"]),
            "still_identified": a["rank"] == 1,
        })
    sa, sb = this.summary, other.summary

    def rate(summary, key):
        item = summary["reidentification"].get(key) or {}
        return item.get("rate")

    summary = {
        "compare_to": str(other_dir),
        "n_common": len(rows),
        "detection_rate": sa["detection"]["rate"], "detection_rate_compare": sb["detection"]["rate"],
        "participant_detection_rate": sa["detection"]["participant_rate"],
        "participant_detection_rate_compare": sb["detection"]["participant_rate"],
        "top1_rate": rate(sa, "top1"), "top1_rate_compare": rate(sb, "top1"),
        "top5_rate": rate(sa, "top5"), "top5_rate_compare": rate(sb, "top5"),
        "n_still_detected": sum(r["still_detected"] for r in rows),
        "n_still_identified": sum(r["still_identified"] for r in rows),
    }
    for key in ("detection_rate", "participant_detection_rate", "top1_rate", "top5_rate"):
        a, b = summary[key], summary[key + "_compare"]
        summary[key + "_drop"] = (b - a) if a is not None and b is not None else None
    return rows, summary


# -- entry point -------------------------------------------------------------------

def run_group(settings: Settings) -> dict:
    """Rank, audit, summarise and report; returns the summary written to JSON."""
    this = analyse(settings)
    summary = dict(this.summary)
    compare_rows: list[dict] = []
    if settings.compare_to:
        if settings.compare_to.resolve() == settings.output_dir.resolve():
            raise GroupError("--compare-to names the output folder itself")
        other = analyse(settings, settings.compare_to)
        compare_rows, summary["comparison"] = _compare(this, other, settings.compare_to)

    order = _risk_order(this)
    out = settings.output_dir
    _write_ranks_tsv(out / "group_desc-ranks.tsv", this)
    if this.linkage_rows:
        _write_tsv(out / "group_desc-linkage.tsv",
                   ["participant_id", "image", "rank", "score_true", "best_match", "best_score"],
                   [[f"sub-{r['subject']}", r["image"], r["rank"], r["score_true"], r["best_match"],
                     r["best_score"]] for r in this.linkage_rows])
    if compare_rows:
        _write_tsv(out / "group_desc-compare.tsv",
                   ["participant_id", "detect_fraction", "detect_fraction_compare", "detect_drop",
                    "rank", "rank_compare", "score_true", "score_true_compare"],
                   [[f"sub-{r['subject']}", r["detect_fraction"], r["detect_fraction_compare"],
                     r["detect_drop"], r["rank"], r["rank_compare"], r["score_true"],
                     r["score_true_compare"]] for r in compare_rows])
    atomic_write_json(out / "group_desc-summary.json", summary)

    from bids_app.boilerplate import render_citation, software_versions
    citation = render_citation(citation_parameters(settings, this.model_info, summary))
    for extension, text in citation.items():
        atomic_write_text(out / "logs" / f"CITATION.{extension}", text)

    from bids_app.report import build_group_context, write_participant_pages, render_group_report
    pages = order[:MAX_PAGES] if len(order) > MAX_PAGES else order
    page_names = write_participant_pages(settings, this, pages)
    context = build_group_context(
        settings, this, summary, order, compare_rows=compare_rows, citation_html=citation.get("html", ""),
        versions=software_versions(), page_names=page_names, dataset_name=_dataset_name(settings.bids_dir),
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        max_rows=MAX_TABLE_ROWS, max_thumbnails=MAX_THUMBNAILS, max_pages=MAX_PAGES,
    )
    atomic_write_text(out / "facerisk.html", render_group_report(context))
    return summary


def _risk_order(analysis: Analysis) -> list[str]:
    """Participants from the highest risk: rank (1 first), own score, face detectability."""

    def key(subject):
        i = analysis.info[subject]
        r = i["rank"] if i["rank"] is not None else math.inf
        return (r, -(i["score_true"] if i["score_true"] is not None else -math.inf),
                i["linkage_rank"] if i["linkage_rank"] is not None else math.inf,
                -(i["detect_fraction"] or 0.0), -(i["detect_best_score"] or 0.0), subject)

    return sorted(analysis.subjects, key=key)


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


def _dataset_name(bids_dir: Path) -> str:
    try:
        return read_json(bids_dir / "dataset_description.json").get("Name", bids_dir.name)
    except (OSError, ValueError):
        return bids_dir.name


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


def status_of(info: dict) -> str:
    if info["photos_detected"] == 0:
        return "no usable photo"
    if info["renders_detected"] == 0:
        return "no face in MRI renders"
    return "identified" if info["rank"] == 1 else "not identified"


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


__all__ = ["Analysis", "GroupError", "analyse", "citation_parameters", "collect_participants", "run_group"]
