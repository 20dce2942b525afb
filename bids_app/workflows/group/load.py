"""Load and check participant outputs: the files the participant level wrote, and nothing else.

The contract between the levels: a participant is trusted only when its record
``sub-<label>/sub-<label>_facerisk.json`` (written last by the participant
level, removed first when it starts again) exists and says the participant is
complete for what the group level asks for: the modalities, sessions and face
models the group level reads were all processed, and every embedding file it
reads is one of the record's ``Outputs`` (so a file left from an earlier run
is never read) and still exists. Any other participant folder is *excluded*:
listed, with the reason, in the summary and the report, and not ranked.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bids_app import audit
from bids_app import bids as bidsio
from bids_app.config import Settings
from bids_app.progress import Progress

__all__ = [
    "EmbeddingSet", "Excluded", "GroupError", "Participant", "check_single_model", "collect_participants",
    "finite_rows", "record_path",
]


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


@dataclass
class Excluded:
    """A participant folder the group level does not use, and why."""

    subject: str
    reason: str

    def to_json(self) -> dict:
        return {"participant_id": f"sub-{self.subject}", "reason": self.reason}


def finite_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows with a face (every value finite)."""
    return np.isfinite(vectors).all(axis=1) if vectors.size else np.zeros(len(vectors), bool)


_NPY_HEADER = re.compile(
    rb"\{'descr': '(<f4|<f8)', 'fortran_order': False, 'shape': \((\d+), (\d+)\), \}\s*\n")
_NPY_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0: a 2-byte header length follows


def _read_npy(path: str):
    """A 2-D float array from ``path``: the common little-endian C-order layout is parsed
    directly (one read, no header evaluation: 10k+ small files), anything else by ``np.load``."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:8] == _NPY_MAGIC:
        size = int.from_bytes(data[8:10], "little")
        match = _NPY_HEADER.fullmatch(data, 10, 10 + size)
        if match:
            shape = (int(match.group(2)), int(match.group(3)))
            dtype = np.dtype(match.group(1).decode())
            if len(data) - 10 - size == shape[0] * shape[1] * dtype.itemsize:
                return np.frombuffer(data, dtype, offset=10 + size).reshape(shape).copy()
    return np.load(path, allow_pickle=False)


_MODELS: list[dict] = []
#: What the group level uses of a row of an embedding sidecar (memory: 100k+ sidecars of 15 rows).
_ROW_KEYS = ("File", "Detected", "Score")


def _kept(sidecar: dict, kind: str) -> dict:
    """The parts of an embedding sidecar the group level uses: the face model (one shared dict per
    distinct description), each row's file, detection and score, the scan's review flag; of an MRI
    scan also what the audit needs: its face decision, source metadata, and the per-render feature
    evidence reduced to counts (:func:`bids_app.audit.scan_counts`)."""
    kept = {key: sidecar[key] for key in ("Dimension",) if key in sidecar}
    model = sidecar.get("FaceModel")
    if isinstance(model, dict):
        shared = next((known for known in _MODELS if known == model), None)
        if shared is None:
            _MODELS.append(model)
            shared = model
        kept["FaceModel"] = shared
    elif model is not None:
        kept["FaceModel"] = model
    rows = sidecar.get("Rows")
    if isinstance(rows, list):
        kept["Rows"] = [{k: row[k] for k in _ROW_KEYS if k in row} if isinstance(row, dict) else row for row in rows]
    presence = sidecar.get("FacePresence")
    if kind == "mri":
        if isinstance(presence, dict):
            kept["FacePresence"] = presence
        if "SourceMetadata" in sidecar:
            kept["SourceMetadata"] = sidecar["SourceMetadata"]
        kept["AuditCounts"] = audit.scan_counts(rows if isinstance(rows, list) else [],
                                                audit.profile_array(sidecar.get("FaceProfile")),
                                                "SourceMetadata" in sidecar)
    elif isinstance(presence, dict) and "Review" in presence:
        kept["FacePresence"] = {"Review": presence["Review"]}
    return kept


def _load_set(subject: str, kind: str, json_path: Path | str) -> EmbeddingSet:
    json_path = str(json_path)
    try:
        with open(json_path, "rb") as handle:
            sidecar = json.loads(handle.read())
    except json.JSONDecodeError as err:
        raise ValueError(f"{json_path}: invalid JSON ({err.msg} at line {err.lineno})") from err
    sidecar = _kept(sidecar, kind)
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


def record_path(output_dir: Path, subject: str) -> Path:
    """The participant level's completion record (written last)."""
    return output_dir / f"sub-{subject}" / f"sub-{subject}_facerisk.json"


def _walk_order(relative: str) -> tuple:
    """Sort key giving a top-down walk with sorted names: a folder's files before its subfolders."""
    parts = relative.split("/")
    return tuple((1, p) for p in parts[:-1]) + ((0, parts[-1]),)


def _photo_session(parts: list[str]) -> str | None:
    """The session of a file in ``sub-<label>[/ses-<label>]/photo/`` (None without a session
    folder): the photo outputs are named after it (:func:`bids_app.bids.photo_faces_name`)."""
    folder = parts[-3] if len(parts) >= 3 else ""
    return folder[len("ses-"):] if folder.startswith("ses-") else None


def _missing_from_record(record: dict, subject: str, settings: Settings) -> str | None:
    """Why the record does not cover what the group level reads (None when it does)."""
    if record.get("Participant") != f"sub-{subject}" or not isinstance(record.get("Outputs"), list):
        return "its record is not a facerisk participant record; rerun its participant level"
    parameters = record.get("Parameters") or {}
    for key, wanted, option in (("Modality", settings.modality, "--modality"),
                                ("FaceModels", settings.face_models, "--face-model")):
        done = parameters.get(key) or []
        lacking = [value for value in wanted if value not in done]
        if lacking:
            return (f"the participant level ran with {option} {' '.join(map(str, done)) or '(none)'}, "
                    f"not {' '.join(map(str, lacking))}; rerun it with {option} "
                    f"{' '.join(map(str, wanted))}")
    sessions = parameters.get("Sessions") or []
    if sessions and settings.session_label:
        lacking = [s for s in settings.session_label if s not in sessions]
        if lacking:
            return f"session(s) {' '.join(lacking)} were not processed at the participant level"
    return None


def _embedding_files(outputs: list[str], subject: str, settings: Settings, desc: str) -> list[tuple[str, str]]:
    """``(kind, relative path)`` of the embedding sidecars the group level reads, among ``outputs``."""
    anat = re.compile(rf"_desc-{re.escape(desc)}_({'|'.join(map(re.escape, settings.modality))})\.json$")
    sessions = {f"ses-{s}" for s in settings.session_label}
    found = []
    for relative in sorted(outputs, key=_walk_order):
        parts = relative.split("/")
        if len(parts) < 3 or parts[0] != f"sub-{subject}" or not relative.endswith(".json"):
            continue
        if sessions and not sessions & set(parts):
            continue
        if parts[-2] == "anat" and anat.search(parts[-1]):
            found.append(("mri", relative))
        elif parts[-2] == "photo" and parts[-1] == bidsio.photo_faces_name(
                subject, _photo_session(parts), ".json", desc):
            found.append(("photo", relative))
    return found


def trusted_subjects(settings: Settings, output_dir: Path) -> tuple[dict[str, dict], list[Excluded]]:
    """The participants whose record covers this group run, and the others.

    Returns ``{label: {"Outputs": the embedding files its record lists}}`` (all the group level
    reads of a record) and the :class:`Excluded`.
    """
    if not output_dir.is_dir():
        raise GroupError(f"{output_dir}: no such folder; run the participant level first")
    subjects = bidsio.output_subjects(output_dir)
    if settings.participant_label:
        wanted = set(settings.participant_label)
        subjects = [s for s in subjects if s in wanted]
    if settings.participant_label_exclude:
        left_out = set(settings.participant_label_exclude)
        subjects = [s for s in subjects if s not in left_out]
    trusted, excluded = {}, []
    progress = Progress("loading: completion records", len(subjects), "participants")
    for done, subject in enumerate(subjects, start=1):
        progress(done - 1)
        path = record_path(output_dir, subject)
        try:
            with open(path, "rb") as handle:
                record = json.loads(handle.read())
        except FileNotFoundError:
            excluded.append(Excluded(subject, f"no sub-{subject}_facerisk.json: its participant level "
                                              "did not finish (stopped, or failed: see its log)"))
            continue
        except (OSError, ValueError) as err:
            excluded.append(Excluded(subject, f"sub-{subject}_facerisk.json cannot be read ({err})"))
            continue
        why = _missing_from_record(record, subject, settings) if isinstance(record, dict) else (
            "its record is not a facerisk participant record; rerun its participant level")
        if why:
            excluded.append(Excluded(subject, why))
        else:  # the embedding files are all the group level reads of it (memory: 100k+ records)
            trusted[subject] = {"Outputs": [rel for rel in record["Outputs"] if "_desc-faces" in rel]}
    progress(len(subjects))
    return trusted, excluded


def collect_participants(settings: Settings, desc: str = "faces", output_dir: Path | None = None,
                         records: dict[str, dict] | None = None,
                         excluded: list[Excluded] | None = None) -> list[Participant]:
    """The outputs of every trusted participant in ``output_dir`` that match the settings.

    ``desc`` selects one face model's embeddings (see :func:`bids_app.bids.faces_desc`).
    ``records`` are the trusted participants' records (:func:`trusted_subjects`);
    a participant whose record lists an embedding file that is gone is moved
    to ``excluded``.
    """
    output_dir = output_dir or settings.output_dir
    if records is None:
        records, excluded_here = trusted_subjects(settings, output_dir)
        if excluded is not None:
            excluded.extend(excluded_here)
    participants = []
    progress = Progress(f"loading: embeddings (desc-{desc})", len(records), "participants")
    for done, (subject, record) in enumerate(records.items()):
        progress(done)
        person = Participant(subject)
        files = _embedding_files(record["Outputs"], subject, settings, desc)
        listed = set(record["Outputs"])
        root = os.fspath(output_dir)  # plain strings: 100k+ participants
        gone = [rel for _, rel in files
                if not os.path.isfile(os.path.join(root, rel)) or rel[:-len(".json")] + ".npy" not in listed
                or not os.path.isfile(os.path.join(root, rel[:-len(".json")] + ".npy"))]
        if gone:
            if excluded is not None:
                excluded.append(Excluded(subject, f"{gone[0]} (or its .npy), listed in its record, is "
                                                  "missing; rerun its participant level"))
            continue
        for kind, rel in files:
            (person.mri if kind == "mri" else person.photos).append(_load_set(subject, kind,
                                                                             os.path.join(root, rel)))
        if person.mri or person.photos:
            participants.append(person)
    progress(len(records))
    if not any(p.mri for p in participants):
        raise GroupError(
            f"{output_dir}: no participant outputs (desc-{desc}) for "
            f"{' or '.join(settings.modality)}; run the participant level first"
            + (f" with --face-model {','.join(settings.face_models)}" if desc != "faces" else "")
            + (f" ({len(excluded)} participant(s) incomplete, e.g. sub-{excluded[0].subject}: "
               f"{excluded[0].reason})" if excluded else "")
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
