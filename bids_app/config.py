"""One settings object for a facerisk run.

The CLI parses arguments into :class:`Settings`; the workflows read only this
object, and every run writes it to ``output_dir/logs/`` as JSON so the outputs
say how they were made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bids_app import __version__

#: anat suffixes facerisk can reconstruct a face from.
SUPPORTED_MODALITIES = ("FLAIR", "T1w", "T2w", "PDw")
#: BIDS-Apps analysis levels.
ANALYSIS_LEVELS = ("participant", "group")
#: ``--report-images`` choices: as they are, pixelated and blurred, or left out.
REPORT_IMAGES = ("full", "blurred", "none")


@dataclass
class Settings:
    """Everything that decides what a run does and writes."""

    bids_dir: Path
    output_dir: Path
    analysis_level: str
    participant_label: list[str] = field(default_factory=list)
    session_label: list[str] = field(default_factory=list)
    participant_label_exclude: list[str] = field(default_factory=list)
    bids_filter_file: Path | None = None
    #: the checked content of ``bids_filter_file``: {suffix: {pybids entity: value}}
    bids_filters: dict[str, dict] | None = None
    modality: list[str] = field(default_factory=lambda: ["FLAIR"])
    photos_dir: Path | None = None
    n_renders: int = 10
    seed: int = 20191024  # the NEJM letter's publication date
    nprocs: int = 1
    face_models: list[str] = field(default_factory=lambda: ["sface"])
    render_min_score: float = 0.5
    photo_min_score: float = 0.6
    min_nose_relief: float = 8.0  # mm: bids_app.presence.MIN_RELIEF_MM (a test checks they agree)
    top_k: int = 50
    scoring: str = "nejm"
    compare_to: Path | None = None
    report_images: str = "full"
    reports_only: bool = False
    force: bool = False
    skip_bids_validator: bool = False
    bids_database_dir: Path | None = None
    work_dir: Path | None = None
    umask: int = 0o077
    verbose: int = 0

    @classmethod
    def default(cls, name: str) -> Any:
        """The default value of field ``name`` (a fresh copy for lists)."""
        item = {f.name: f for f in dataclasses.fields(cls)}[name]
        if item.default is not dataclasses.MISSING:
            return item.default
        return item.default_factory()  # type: ignore[misc]

    def participant_seed(self, subject: str) -> int:
        """Seed for one participant: reproducible, independent of run order."""
        digest = hashlib.sha256(f"{self.seed}:{subject}".encode()).digest()
        return int.from_bytes(digest[:4], "little")

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON view, with the software environment."""
        out: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            out[item.name] = str(value) if isinstance(value, Path) else value
        out["umask"] = f"{self.umask:04o}"
        out["facerisk_version"] = __version__
        out["python"] = platform.python_version()
        return out
