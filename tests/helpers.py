"""Test helpers: synthetic participant outputs in the documented layout.

``write_synthetic`` writes what the participant level writes for each
participant (embeddings, sidecars and, last, the completion record
``sub-<label>/sub-<label>_facerisk.json``), without rendering anything.
(``benchmarks/group_scale.py`` builds its cohorts from real participant outputs instead.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DIM, RENDERS, PHOTOS = 128, 10, 5

#: The participant level's record parameters for the default settings
#: (``bids_app.workflows.record.run_parameters``).
DEFAULT_PARAMETERS = {
    "Modality": ["FLAIR"], "Sessions": [], "NRenders": RENDERS, "Seed": 20191024, "FaceModels": ["sface"],
    "RenderMinScore": 0.5, "PhotoMinScore": 0.6, "MinNoseReliefMm": 13.0,
}


def write_record(out: Path, label: str, **parameters) -> Path:
    """The completion record of ``sub-<label>``, listing every file now in its folder."""
    from bids_app import __version__

    folder = out / f"sub-{label}"
    record = folder / f"sub-{label}_facerisk.json"
    outputs = sorted(p.relative_to(out).as_posix() for p in folder.rglob("*")
                     if p.is_file() and p != record and not p.name.startswith("."))
    record.write_text(json.dumps({
        "Participant": f"sub-{label}",
        "Parameters": {"FaceriskVersion": __version__, **DEFAULT_PARAMETERS, **parameters},
        "Inputs": [], "Outputs": outputs,
    }))
    return record


def write_synthetic(out: Path, n: int, seed: int = 0, noise: float = 2.5, records: bool = True) -> None:
    """N synthetic participants (10 renders, 5 photos, unit vectors) under ``out``.

    Each participant is a random identity plus ``noise`` times Gaussian noise
    per row, so ranks are realistic. ``records=False`` leaves out the
    completion records (participants the group level must not trust).
    """
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset_description.json").write_text(json.dumps(
        {"Name": "synthetic", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
         "GeneratedBy": [{"Name": "facerisk"}]}))
    (out / "logs").mkdir(exist_ok=True)
    model = {"Name": "sface", "Files": {"recognizer": {"SHA256": "0" * 64}}, "Dimension": DIM}
    width = len(str(n))
    for i in range(n):
        label = f"{i + 1:0{width}d}"
        base = rng.normal(size=DIM)
        for kind, rows, folder, suffix in (("render", RENDERS, "anat", "FLAIR"), ("photo", PHOTOS, "photo", "photo")):
            v = (base + noise * rng.normal(size=(rows, DIM))).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            d = out / f"sub-{label}" / folder
            d.mkdir(parents=True, exist_ok=True)
            stem = f"sub-{label}_desc-faces_{suffix}"
            np.save(d / f"{stem}.npy", v)
            (d / f"{stem}.json").write_text(json.dumps(
                {"FaceModel": model, "Dimension": DIM,
                 "Rows": [{"Detected": True, "Score": 0.9} for _ in range(rows)]}))
        if records:
            write_record(out, label)
