"""Container recipes and the HPC array script: linted, parsed, in sync, and run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bids_app

REPO = Path(__file__).resolve().parents[1]
GOOD_HEAD = REPO / "data" / "demo" / "bids" / "sub-03" / "anat" / "sub-03_T1w.nii.gz"


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, "--failure-threshold", "warning", str(REPO / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_uses_the_install_script_ci_proves():
    text = (REPO / "Dockerfile").read_text()
    assert "RUN bash scripts/install.sh" in text
    assert re.search(r'^ENTRYPOINT \["facerisk"\]$', text, re.M)
    assert re.search(r"^USER 1000", text, re.M)  # not root
    assert f"ARG VERSION={bids_app.__version__}" in text
    pack = re.search(r"^ARG MODEL_PACK=(\S+)$", text, re.M)
    assert pack and (REPO / pack.group(1)).is_dir()
    for source in re.findall(r"^COPY (?!\$)(\S+)", text, re.M):
        assert (REPO / source).exists(), source


def test_singularity_recipe_parses_and_matches_the_dockerfile():
    from spython.main.parse.parsers import SingularityParser

    recipe = next(iter(SingularityParser(str(REPO / "Singularity.def")).recipe.values()))
    docker_base = re.search(r"^FROM (\S+)", (REPO / "Dockerfile").read_text(), re.M).group(1)
    assert recipe.fromHeader == docker_base
    assert any("bash scripts/install.sh" in line for line in recipe.install)
    assert f"Version {bids_app.__version__}" in recipe.labels
    assert "facerisk" in recipe.cmd
    copied = {line.split()[0] for line in recipe.files}
    docker_sources = {
        source
        for line in re.findall(r"^COPY (?!\$)(.+)$", (REPO / "Dockerfile").read_text(), re.M)
        for source in line.split()[:-1]
    }
    assert copied == docker_sources  # the same files go into both images
    for source in copied:
        assert (REPO / source).exists(), source


@pytest.mark.slow
def test_slurm_array_script_runs_three_tasks_in_parallel(tmp_path):
    """The per-task command lines of docs/hpc.md, run locally as 3 array tasks at once."""
    bids_dir = tmp_path / "bids"
    for label in ("01", "02", "03"):
        anat = bids_dir / f"sub-{label}" / "anat"
        anat.mkdir(parents=True)
        shutil.copy(GOOD_HEAD, anat / f"sub-{label}_T1w.nii.gz")
    (bids_dir / "dataset_description.json").write_text('{"Name": "hpc", "BIDSVersion": "1.9.0"}')
    (tmp_path / "participants.txt").write_text("01\n02\n03\n")
    out = tmp_path / "derivatives" / "facerisk"
    env_base = dict(
        os.environ, BIDS_DIR=str(bids_dir), OUTPUT_DIR=str(out),
        PARTICIPANTS=str(tmp_path / "participants.txt"), DATABASE_DIR=str(tmp_path / "pybids_db"),
        FACERISK=f"{sys.executable} -m bids_app", FACERISK_ARGS="--modality T1w --n-renders 2",
        SCRATCH_DIR=str(tmp_path / "scratch"), SLURM_ARRAY_JOB_ID="77",
    )
    script = REPO / "scripts" / "hpc" / "facerisk_array.sbatch"
    procs = [subprocess.Popen(["bash", str(script)], cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=dict(env_base, SLURM_ARRAY_TASK_ID=str(task)))
             for task in (1, 2, 3)]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    for label in ("01", "02", "03"):
        assert json.loads((out / f"sub-{label}" / f"sub-{label}_facerisk.json").read_text())["Renders"] == 2
    assert (tmp_path / "pybids_db" / "layout_index.sqlite").is_file()  # indexed once, shared
    assert not any((tmp_path / "scratch").glob("*")) if (tmp_path / "scratch").exists() else True
    group = subprocess.run([sys.executable, "-m", "bids_app", str(bids_dir), str(out), "group",
                            "--modality", "T1w"], capture_output=True, text=True)
    assert group.returncode == 0, group.stderr[-2000:]


def test_hpc_doc_names_the_script_and_the_group_step():
    doc = (REPO / "docs" / "hpc.md").read_text()
    assert "scripts/hpc/facerisk_array.sbatch" in doc
    assert "--bids-database-dir" in doc and " group" in doc
