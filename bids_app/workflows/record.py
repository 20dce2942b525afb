"""The participant's completion record: what a finished run wrote, and whether it is current.

``sub-<label>/sub-<label>_facerisk.json`` is the contract between the two
levels: the participant level writes it last (parameters, input
fingerprints, outputs), a rerun skips a participant whose record is current,
and the group level trusts only participants with a current record.
"""

from __future__ import annotations

from pathlib import Path

from bids_app import bids as bidsio
from bids_app.config import Settings

__all__ = ["clear_previous", "fingerprint", "is_complete", "run_parameters", "status_path"]


def fingerprint(paths: list[Path]) -> list[list]:
    """Name, size and modification time of each input: changes trigger a redo."""
    out = []
    for path in paths:
        info = path.stat()
        out.append([path.name, info.st_size, info.st_mtime_ns])
    return out


def run_parameters(settings: Settings) -> dict:
    from bids_app import __version__

    return {
        "FaceriskVersion": __version__,
        "Modality": settings.modality,
        "Sessions": settings.session_label,
        "NRenders": settings.n_renders,
        "Seed": settings.seed,
        "FaceModels": settings.face_models,
        "RenderMinScore": settings.render_min_score,
        "PhotoMinScore": settings.photo_min_score,
        "MinNoseReliefMm": settings.min_nose_relief,
    }


def status_path(settings: Settings, subject: str) -> Path:
    """The record a participant run writes last: present and current = complete."""
    return settings.output_dir / f"sub-{subject}" / f"sub-{subject}_facerisk.json"


def is_complete(settings: Settings, subject: str, inputs: list[Path]) -> bool:
    """True when a previous run with the same parameters and inputs finished."""
    from bids_app.io import read_json

    path = status_path(settings, subject)
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return False
    root = settings.output_dir
    return (
        record.get("Parameters") == run_parameters(settings)
        and record.get("Inputs") == fingerprint(inputs)
        and all((root / name).is_file() for name in record.get("Outputs", []))
    )


def clear_previous(settings: Settings, subject: str, images: list, photo_sessions: list) -> None:
    """Remove what an earlier (possibly killed) run left for these inputs.

    The status record goes first, so an interrupted redo is never taken as
    complete; then temporary files and the outputs of the images and photo
    folders about to be rewritten (so no stale render or embedding remains).
    """
    status_path(settings, subject).unlink(missing_ok=True)
    folder = settings.output_dir / f"sub-{subject}"
    if not folder.is_dir():
        return
    for leftover in folder.rglob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    for image in images:
        anat = bidsio.subject_dir(settings.output_dir, subject, image.session) / "anat"
        for old in anat.glob(f"{image.stem}_desc-*_{image.suffix}.*"):
            old.unlink(missing_ok=True)
    for session in photo_sessions:
        photo_dir = bidsio.subject_dir(settings.output_dir, subject, session) / "photo"
        for old in photo_dir.glob(f"{bidsio.photo_prefix(subject, session)}_desc-*"):
            old.unlink(missing_ok=True)
