"""Real BIDS layouts (from bids-examples, rebuilt with empty images): clear errors, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LAYOUTS = Path(__file__).parent / "data" / "layouts"


def rebuild(name: str, root: Path) -> Path:
    for relative in (LAYOUTS / f"{name}.txt").read_text().split():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    shutil.copy(LAYOUTS / f"{name}.dataset_description.json", root / "dataset_description.json")
    return root


def facerisk(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bids_app", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["genetics_ukbb", "ds004332", "7t_trt", "synthetic"])
def test_example_layout_gives_per_participant_errors(name, tmp_path):
    root = rebuild(name, tmp_path / name)
    labels = sorted(p.name[4:] for p in root.glob("sub-*") if p.is_dir())[:2]
    out = tmp_path / "out"
    # the validator refuses the dataset (its images are empty) in one line
    refused = facerisk(root, out, "participant", "--participant-label", *labels)
    assert refused.returncode == 2
    assert "EMPTY_FILE" in refused.stderr and "--skip-bids-validator" in refused.stderr
    # without it, each participant fails on its own, naming the file and the reason
    result = facerisk(root, out, "participant", "--skip-bids-validator", "--participant-label", *labels,
                      "--modality", "FLAIR", "T1w", "--n-renders", "1")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    failed = [line for line in result.stderr.splitlines() if "FAILED sub-" in line]
    assert len(failed) == len(labels)
    for line in failed:
        # the rebuilt files are empty: images cannot be read, JSON sidecars are not JSON
        assert ("no anat image" in line or ("cannot be read as an image" in line and ".nii" in line)
                or ("invalid JSON" in line and ".json" in line)), line
    group = facerisk(root, out, "group", "--modality", "FLAIR", "T1w")
    assert group.returncode == 2 and "run the participant level first" in group.stderr
