"""BIDS queries, derivative names, settings and atomic writes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_app import bids as bidsio
from bids_app.config import Settings
from bids_app.io import atomic_write_json, atomic_write_npy, read_json


def make_dataset(root: Path) -> Path:
    """A small BIDS dataset with real (tiny) NIfTI files and sessions."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "tiny", "BIDSVersion": "1.9.0"}))
    image = nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4))
    for subject, session, suffix in [("01", "1", "FLAIR"), ("01", "2", "FLAIR"), ("01", "1", "T1w"),
                                     ("02", None, "T1w")]:
        folder = root / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"sub-{subject}" + (f"_ses-{session}" if session else "") + f"_acq-x_{suffix}.nii.gz"
        nib.save(image, folder / name)
    return root


def test_find_anat_images_by_modality_and_session(tmp_path):
    layout = bidsio.load_layout(make_dataset(tmp_path))
    assert bidsio.select_subjects(layout, []) == ["01", "02"]
    flair = bidsio.find_anat_images(layout, "01", ["FLAIR"])
    assert [(i.session, i.suffix) for i in flair] == [("1", "FLAIR"), ("2", "FLAIR")]
    assert flair[0].stem == "sub-01_ses-1_acq-x"
    assert bidsio.render_name(flair[0], 3, ".png") == "sub-01_ses-1_acq-x_desc-render03_FLAIR.png"
    assert bidsio.faces_name(flair[0], ".npy") == "sub-01_ses-1_acq-x_desc-faces_FLAIR.npy"
    both = bidsio.find_anat_images(layout, "01", ["FLAIR", "T1w"], sessions=["1"])
    assert sorted(i.suffix for i in both) == ["FLAIR", "T1w"]
    assert bidsio.find_anat_images(layout, "02", ["FLAIR"]) == []


def test_photo_output_names():
    assert bidsio.photo_faces_name("01", None, ".npy") == "sub-01_desc-faces_photo.npy"
    assert bidsio.photo_faces_name("01", "2", ".json", "facesDlib") == "sub-01_ses-2_desc-facesDlib_photo.json"
    assert bidsio.photo_crop_name("01", None, 3) == "sub-01_desc-photo03_photo.png"
    assert bidsio.photo_crop_name("01", "2", 12) == "sub-01_ses-2_desc-photo12_photo.png"


def test_unknown_participant_is_named(tmp_path):
    layout = bidsio.load_layout(make_dataset(tmp_path))
    with pytest.raises(bidsio.BIDSError, match="sub-07"):
        bidsio.select_subjects(layout, ["01", "07"])


def test_database_dir_is_reused(tmp_path):
    root = make_dataset(tmp_path / "ds")
    database = tmp_path / "db"
    bidsio.load_layout(root, database)
    assert any(database.iterdir())
    layout = bidsio.load_layout(root, database)
    assert bidsio.select_subjects(layout, []) == ["01", "02"]


def test_init_derivatives_is_idempotent(tmp_path):
    root = make_dataset(tmp_path / "ds")
    out = tmp_path / "out"
    bidsio.init_derivatives(out, root)
    description = out / "dataset_description.json"
    first = description.stat().st_mtime_ns
    bidsio.init_derivatives(out, root)
    assert description.stat().st_mtime_ns == first  # not rewritten when unchanged
    content = json.loads(description.read_text())
    assert content["DatasetType"] == "derivative"
    assert content["GeneratedBy"][0]["Name"] == "facerisk"
    assert "logs/" in (out / ".bidsignore").read_text()


def test_participant_seed_is_stable_and_distinct(tmp_path):
    settings = Settings(bids_dir=tmp_path, output_dir=tmp_path / "o", analysis_level="participant")
    assert settings.participant_seed("01") == settings.participant_seed("01")
    assert settings.participant_seed("01") != settings.participant_seed("02")
    other = Settings(bids_dir=tmp_path, output_dir=tmp_path / "o", analysis_level="participant", seed=1)
    assert other.participant_seed("01") != settings.participant_seed("01")


def test_atomic_writes_leave_no_temporary_files_and_honour_umask(tmp_path):
    old = os.umask(0o077)
    try:
        path = atomic_write_json(tmp_path / "a" / "x.json", {"v": np.float32(1.5), "n": float("nan")})
        atomic_write_npy(tmp_path / "a" / "x.npy", np.arange(3))
    finally:
        os.umask(old)
    assert read_json(path) == {"v": 1.5, "n": None}
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json", "x.npy"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_read_json_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: invalid JSON"):
        read_json(bad)
