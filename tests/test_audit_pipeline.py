"""The MRI-only audit end to end: real heads, the participant level's evidence, the group's verdicts."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "bids"


def _tsv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.slow
def test_a_claimed_defacing_that_left_the_face_comes_first(tmp_path):
    """sub-01: an intact real head whose sidecar claims pydeface; sub-02: a real head defaced
    (every face voxel zeroed) with the same claim. The first must head the action list."""
    from bids_app.cli.run import main
    from bids_app.mri import augment, load_head, reconstruct_head

    bids = tmp_path / "bids"
    claim = {"DeidentificationMethod": ["pydeface 2.0.2"],
             "DeidentificationMethodCodeSequence": [{"CodeValue": "113102", "CodingSchemeDesignator": "DCM",
                                                     "CodeMeaning": "Clean Recognizable Visual Features Option"}]}
    for label in ("01", "02"):
        anat = bids / f"sub-{label}" / "anat"
        anat.mkdir(parents=True)
        source = DEMO / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz"
        if label == "01":
            shutil.copy(source, anat / f"sub-{label}_T1w.nii.gz")
        else:
            data, affine, zooms = load_head(source)
            frame = reconstruct_head(data, affine, zooms).frame
            defaced, affine = augment.deface(data, affine, frame.nose_tip, frame.anterior, frame.superior)
            nib.save(nib.Nifti1Image(defaced, affine), anat / f"sub-{label}_T1w.nii.gz")
        (anat / f"sub-{label}_T1w.json").write_text(json.dumps(claim))
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "audit", "BIDSVersion": "1.9.0"}))
    out = tmp_path / "out"
    for level in ("participant", "group"):
        assert main([str(bids), str(out), level, "--modality", "T1w", "--skip-bids-validator"]) == 0

    # the participant level's evidence, in its outputs
    side = json.loads((out / "sub-01" / "anat" / "sub-01_desc-faces_T1w.json").read_text())
    assert side["SourceMetadata"]["DeidentificationMethod"] == ["pydeface 2.0.2"]
    assert len(side["FaceProfile"]["AnteriorMm"]) > 10
    counted = [row for row in side["Rows"] if row["Detected"]]
    assert counted and all(row["Features"]["Detection"] == "counted" for row in counted)
    render = json.loads((out / "sub-01" / "anat" / "sub-01_desc-render01_T1w.json").read_text())
    assert set(render["Face"]["Features"]["Flat"]) == {"EyeLeft", "EyeRight", "Nose", "Mouth"}

    # the group level's verdicts and actions, from those outputs only
    images = {row["participant_id"]: row for row in _tsv(out / "group_desc-images.tsv")}
    assert images["sub-01"]["verdict"] == "face" and images["sub-01"]["claimed"] == "yes"
    assert images["sub-02"]["verdict"] == "removed"
    actions = _tsv(out / "group_desc-actions.tsv")
    assert [a["participant_id"] for a in actions] == ["sub-01", "sub-02"]
    assert actions[0]["action"] == "deface again" and "pydeface 2.0.2" in actions[0]["reason"]
    summary = json.loads((out / "group_desc-summary.json").read_text())["audit"]
    assert summary["claimed_but_face_images"] == ["sub-01_T1w"]
    html = (out / "facerisk.html").read_text()
    assert html.index(summary["sentence"]) < html.index('id="claimed-but-face"') < html.index('id="summary"')
    assert np.isfinite(np.load(out / "sub-01" / "anat" / "sub-01_desc-faces_T1w.npy")).any()


def test_a_face_in_the_flair_of_a_defaced_t1w_is_flagged_from_real_images(tmp_path):
    """One participant, real images through both levels (16 s): the T1w defaced (every face voxel zeroed)
    and its sidecar claiming pydeface; the FLAIR of the same session intact, its sidecar silent.
    The FLAIR is flagged: the images TSV, the actions (first), the summary and the page."""
    from bids_app.cli.run import main
    from bids_app.mri import augment, load_head, reconstruct_head

    bids = tmp_path / "bids"
    anat = bids / "sub-01" / "anat"
    anat.mkdir(parents=True)
    source = DEMO / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    data, affine, zooms = load_head(source)
    frame = reconstruct_head(data, affine, zooms).frame
    defaced, affine = augment.deface(data, affine, frame.nose_tip, frame.anterior, frame.superior)
    nib.save(nib.Nifti1Image(defaced, affine), anat / "sub-01_T1w.nii.gz")
    (anat / "sub-01_T1w.json").write_text(json.dumps({"DeidentificationMethod": ["pydeface 2.0.2"]}))
    shutil.copy(source, anat / "sub-01_FLAIR.nii.gz")
    (anat / "sub-01_FLAIR.json").write_text(json.dumps({"SeriesDescription": "t2_flair_sag"}))
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "audit", "BIDSVersion": "1.9.0"}))
    out = tmp_path / "out"
    for level in ("participant", "group"):
        assert main([str(bids), str(out), level, "--modality", "T1w", "FLAIR", "--skip-bids-validator"]) == 0

    images = {row["image"]: row for row in _tsv(out / "group_desc-images.tsv")}
    assert images["sub-01_T1w"]["verdict"] == "removed" and images["sub-01_T1w"]["claimed"] == "yes"
    assert images["sub-01_FLAIR"]["verdict"] == "face" and images["sub-01_FLAIR"]["claimed"] == "no"
    assert images["sub-01_FLAIR"]["flags"] == "shows a face while the T1w was de-identified"
    assert images["sub-01_T1w"]["flags"] == "n/a"
    actions = _tsv(out / "group_desc-actions.tsv")
    assert actions[0]["image"] == "sub-01_FLAIR" and "T1w was de-identified" in actions[0]["reason"]
    summary = json.loads((out / "group_desc-summary.json").read_text())["audit"]
    assert summary["other_sequence_face"] == 1 and summary["other_sequence_face_images"] == ["sub-01_FLAIR"]
    page = (out / "sub-01.html").read_text()
    assert "shows a face while the T1w was de-identified" in page[page.index('<section id="audit">'):]
