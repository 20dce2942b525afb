"""Choosing participants and images: --bids-filter-file, --participant-label-exclude, unknown labels."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_app import bids as bidsio
from bids_app.cli.parser import parse_args
from bids_app.cli.run import main
from bids_app.config import SUPPORTED_MODALITIES

#: sub-01 has several T1w acquisitions and reconstructions and two FLAIR runs.
FILES = [
    "sub-01/anat/sub-01_acq-mprage_T1w.nii.gz",
    "sub-01/anat/sub-01_acq-mprage_rec-norm_T1w.nii.gz",
    "sub-01/anat/sub-01_acq-fast_T1w.nii.gz",
    "sub-01/anat/sub-01_run-01_FLAIR.nii.gz",
    "sub-01/anat/sub-01_run-02_FLAIR.nii.gz",
    "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz",
    "sub-02/ses-2/anat/sub-02_ses-2_acq-mprage_T1w.nii.gz",
    "sub-03/anat/sub-03_acq-mprage_T1w.nii.gz",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A BIDS dataset of real (tiny) NIfTI images."""
    root = tmp_path_factory.mktemp("selection") / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "selection", "BIDSVersion": "1.9.0"}))
    image = nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4))
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        nib.save(image, root / name)
    return root


@pytest.fixture(scope="module")
def layout(dataset):
    return bidsio.load_layout(dataset)


def _filters(tmp_path: Path, content) -> dict:
    path = tmp_path / "filter.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return bidsio.load_bids_filters(path, SUPPORTED_MODALITIES)


def _names(layout, subject, modalities, filters, sessions=None) -> list[str]:
    found = bidsio.find_anat_images(layout, subject, modalities, sessions, filters)
    return [image.path.name for image in found]


def test_filter_picks_images_by_any_entity(layout, tmp_path):
    # fMRIPrep's example: one acquisition, without a reconstruction entity
    filters = _filters(tmp_path, {"t1w": {"acquisition": "mprage", "reconstruction": None}})
    assert filters == {"T1w": {"acquisition": "mprage", "reconstruction": None}}
    assert _names(layout, "01", ["T1w"], filters) == ["sub-01_acq-mprage_T1w.nii.gz"]
    assert _names(layout, "01", ["T1w"], None) == [
        "sub-01_acq-fast_T1w.nii.gz", "sub-01_acq-mprage_T1w.nii.gz",
        "sub-01_acq-mprage_rec-norm_T1w.nii.gz"]
    # BIDS keys, lists, runs as numbers; a kind without a filter keeps all its images
    filters = _filters(tmp_path, {"T1W": {"rec": "norm"}, "flair": {"run": 2}})
    assert _names(layout, "01", ["T1w", "FLAIR"], filters) == [
        "sub-01_acq-mprage_rec-norm_T1w.nii.gz", "sub-01_run-02_FLAIR.nii.gz"]
    filters = _filters(tmp_path, {"t1w": {"acquisition": ["fast", "mprage"], "rec": None}})
    assert _names(layout, "01", ["T1w", "FLAIR"], filters) == [
        "sub-01_acq-fast_T1w.nii.gz", "sub-01_acq-mprage_T1w.nii.gz",
        "sub-01_run-01_FLAIR.nii.gz", "sub-01_run-02_FLAIR.nii.gz"]
    # "*": the entity present, any value; sessions as a filter and as --session-label
    filters = _filters(tmp_path, {"t1w": {"acquisition": "*"}})
    assert _names(layout, "02", ["T1w"], filters) == ["sub-02_ses-2_acq-mprage_T1w.nii.gz"]
    filters = _filters(tmp_path, {"t1w": {"session": "1"}})
    assert _names(layout, "02", ["T1w"], filters) == ["sub-02_ses-1_T1w.nii.gz"]
    assert _names(layout, "02", ["T1w"], filters, sessions=["2"]) == []


@pytest.mark.parametrize("content, reason", [
    ("{not json", "not valid JSON"),
    ('["t1w"]', "must hold a JSON object"),
    ({"bold": {"task": "rest"}}, "unknown image kind 'bold'"),
    ({"t1w": "mprage"}, "'t1w' must map entities to values"),
    ({"t1w": {"acqusition": "mprage"}}, "unknown BIDS entity 'acqusition'"),
    ({"t1w": {"subject": "01"}}, "entity 'subject' cannot be filtered"),
    ({"t1w": {"run": {"gt": 1}}}, "must be a value, a list of values or null"),
    ({"t1w": {"run": []}}, "must be a value, a list of values or null"),
])
def test_bad_filter_file_is_a_clear_error(dataset, tmp_path, capsys, content, reason):
    path = tmp_path / "filter.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(SystemExit) as exit_info:
        main([str(dataset), str(tmp_path / "out"), "participant", "--bids-filter-file", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"--bids-filter-file {path}" in err and reason in err, err
    assert not (tmp_path / "out").exists()


def test_missing_filter_file_is_a_clear_error(dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(dataset), str(tmp_path / "out"), "participant",
              "--bids-filter-file", str(tmp_path / "none.json")])
    assert exit_info.value.code == 2
    assert "none.json: cannot be read" in capsys.readouterr().err


def test_filter_and_exclusion_are_settings(dataset, tmp_path):
    path = tmp_path / "filter.json"
    path.write_text(json.dumps({"t1w": {"acquisition": "mprage"}}))
    settings = parse_args([str(dataset), str(tmp_path / "out"), "participant", "--bids-filter-file",
                           str(path), "--participant-label-exclude", "sub-02", "03", "02"])
    assert settings.bids_filter_file == path.resolve()
    assert settings.bids_filters == {"T1w": {"acquisition": "mprage"}}
    assert settings.participant_label_exclude == ["02", "03"]
    recorded = settings.to_json()
    assert recorded["bids_filters"] == settings.bids_filters
    assert recorded["bids_filter_file"] == str(path.resolve())


def test_exclude_and_unknown_labels(layout):
    assert bidsio.select_subjects(layout, [], ["02"]) == ["01", "03"]
    assert bidsio.select_subjects(layout, ["01", "02"], ["02", "09"]) == ["01"]
    with pytest.raises(bidsio.BIDSError, match="leaves no participant"):
        bidsio.select_subjects(layout, ["02"], ["02"])
    with pytest.raises(bidsio.BIDSError) as info:
        bidsio.select_subjects(layout, ["01", "07", "x9"], [])
    message = str(info.value)
    assert "sub-07, sub-x9" in message and str(layout.root) in message
    assert "it has 3: sub-01, sub-02, sub-03" in message


def test_unknown_participant_label_fails_the_run(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([str(dataset), str(out), "participant", "--participant-label", "01", "sub-07",
                 "--skip-bids-validator"])
    assert code == 2
    err = capsys.readouterr().err
    assert "participant(s) not found in the dataset: sub-07" in err and str(dataset) in err
    assert not list(out.glob("sub-*"))  # nothing processed


def test_excluding_everyone_fails_the_run(dataset, tmp_path, capsys):
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--participant-label-exclude",
                 "01", "02", "03", "--skip-bids-validator"])
    assert code == 2
    assert "leaves no participant" in capsys.readouterr().err


def test_participant_level_reads_only_the_filtered_images(dataset, tmp_path, capsys):
    """The filter reaches the participant workflow: the image it leaves is the one processed
    (these tiny images are empty, so its error names it), and a filter that leaves none says so."""
    filter_file = tmp_path / "filter.json"
    filter_file.write_text(json.dumps({"t1w": {"acquisition": "fast"}}))
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--participant-label", "01",
                 "--modality", "T1w", "--bids-filter-file", str(filter_file), "--skip-bids-validator"])
    err = capsys.readouterr().err
    assert code == 1 and "sub-01_acq-fast_T1w.nii.gz" in err
    assert "acq-mprage" not in err
    filter_file.write_text(json.dumps({"t1w": {"acquisition": "none-such"}}))
    code = main([str(dataset), str(tmp_path / "out2"), "participant", "--participant-label", "01",
                 "--modality", "T1w", "--bids-filter-file", str(filter_file), "--skip-bids-validator"])
    assert code == 1
    assert "no anat image with suffix T1w matching --bids-filter-file" in capsys.readouterr().err
