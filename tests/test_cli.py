"""The command line, end to end on the bundled demo dataset (real heads)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bids_app.bids import photo_faces_name
from bids_app.cli.run import main

REPO = Path(__file__).resolve().parents[1]
DEMO_BIDS = REPO / "data" / "demo" / "bids"
DEMO_PHOTOS = REPO / "data" / "demo" / "photos"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bids_app", *map(str, args)],
        capture_output=True, text=True, timeout=600,
    )


# -- bad arguments: non-zero exit with one clear line ---------------------------

@pytest.mark.parametrize(
    "args, expected",
    [
        (["participant", "--n-renders", "0"], "--n-renders: '0' must be 1 or more"),
        (["participant", "--modality", "bold"], "not a supported anat suffix"),
        (["participant", "--participant-label", "../etc"], "not a BIDS sub label"),
        (["participant", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["banana"], "invalid choice: 'banana'"),
        (["participant", "--seed", "-3"], "must be 0 or more"),
        (["participant", "--photos-dir", "/no/such/folder"], "is not a folder"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_line(tmp_path, capsys, args, expected):
    with pytest.raises(SystemExit) as exit_info:
        main([str(DEMO_BIDS), str(tmp_path / "out"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert expected in err
    assert not (tmp_path / "out").exists()


def test_parser_defaults_and_choices_come_from_settings_and_rank(tmp_path):
    import dataclasses

    from bids_app import rank
    from bids_app.cli.parser import build_parser, parse_args
    from bids_app.config import REPORT_IMAGES, Settings

    settings = parse_args([str(DEMO_BIDS), str(tmp_path / "out"), "group"])
    for item in dataclasses.fields(Settings):
        if item.name not in ("bids_dir", "output_dir", "analysis_level"):
            assert getattr(settings, item.name) == Settings.default(item.name), item.name
    actions = {a.dest: a for a in build_parser()._actions}
    assert tuple(actions["scoring"].choices) == rank.SCORINGS
    assert tuple(actions["report_images"].choices) == REPORT_IMAGES


def test_bids_dir_must_be_a_bids_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), str(tmp_path / "out"), "participant"])
    assert exit_info.value.code == 2
    assert "no dataset_description.json" in capsys.readouterr().err


def test_output_dir_inside_bids_dir_needs_derivatives(tmp_path, capsys):
    bids_dir = tmp_path / "ds"
    bids_dir.mkdir()
    (bids_dir / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    with pytest.raises(SystemExit):
        main([str(bids_dir), str(bids_dir / "out"), "participant"])
    assert "inside bids_dir" in capsys.readouterr().err


def test_group_before_participant_is_a_clear_error(tmp_path, capsys):
    assert main([str(DEMO_BIDS), str(tmp_path / "never"), "group"]) == 2
    assert "run the participant level first" in capsys.readouterr().err


def test_version_and_module_entry_point():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("facerisk ")


def test_missing_modality_fails_that_participant_with_its_name(tmp_path, capsys):
    out = tmp_path / "out"
    code = main([str(DEMO_BIDS), str(out), "participant", "--participant-label", "sub-01",
                 "--modality", "FLAIR", "--skip-bids-validator"])
    assert code == 1
    err = capsys.readouterr().err
    assert "sub-01: no anat image with suffix FLAIR" in err
    # the derivatives dataset itself is still valid
    assert json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"


# -- the full pipeline on the bundled dataset --------------------------------------

@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """participant (2 processes) then group on the demo dataset; the real thing."""
    out = tmp_path_factory.mktemp("facerisk") / "out"
    participant = run_cli(DEMO_BIDS, out, "participant", "--modality", "T1w",
                          "--photos-dir", DEMO_PHOTOS, "--nprocs", "2")
    group = run_cli(DEMO_BIDS, out, "group", "--modality", "T1w", "--photos-dir", DEMO_PHOTOS)
    return out, participant, group


@pytest.mark.slow
def test_participant_level_writes_renders_embeddings_and_sidecars(demo_run):
    out, participant, _ = demo_run
    assert participant.returncode == 0, participant.stderr[-3000:]
    subjects = sorted(p.name for p in DEMO_BIDS.glob("sub-*"))
    assert len(subjects) >= 3
    detected_total = 0
    for subject in subjects:
        anat = out / subject / "anat"
        renders = sorted(anat.glob(f"{subject}_desc-render*_T1w.png"))
        assert len(renders) == 10
        for render in renders:
            sidecar = json.loads(render.with_suffix(".json").read_text())
            assert set(sidecar) >= {"Seed", "Camera", "Light", "Face", "Sources"}
            assert sidecar["Sources"] == [f"bids:raw:{subject}/anat/{subject}_T1w.nii.gz"]
            # only the mean head has clutter (a goggle-like frame) to cut
            assert (sidecar["ClutterCutVoxels"] > 0) == (subject == "sub-04")
            if sidecar["Face"]["Detected"]:
                assert 0 < sidecar["Face"]["Score"] <= 1
                assert len(sidecar["Face"]["Box"]) == 4
        vectors = np.load(anat / f"{subject}_desc-faces_T1w.npy")
        meta = json.loads((anat / f"{subject}_desc-faces_T1w.json").read_text())
        assert vectors.shape == (10, meta["Dimension"])
        assert meta["FaceModel"]["Name"] == "sface"
        detected = np.isfinite(vectors).all(axis=1)
        assert detected.tolist() == [row["Detected"] for row in meta["Rows"]]
        np.testing.assert_allclose(np.linalg.norm(vectors[detected], axis=1), 1, atol=1e-4)
        detected_total += int(detected.sum())
        # every head here shows a face, pydeface's mean head too once its goggle-like frame is
        # cut: the scan decision says so and (nearly) every render counts (10/10 on this seed)
        assert meta["FacePresence"]["FacePresent"] and meta["FacePresence"]["Support"] >= 5
        assert detected.sum() >= 9, (subject, int(detected.sum()))
        photos = json.loads((out / subject / "photo" / photo_faces_name(subject[4:], None, ".json")).read_text())
        assert len(photos["Rows"]) == len(list((DEMO_PHOTOS / subject).glob("*.png")))
        # the report's thumbnails, full and blurred, of every render and photo crop, in the record
        crops = sorted((out / subject / "photo").glob(f"{subject}_desc-photo*_photo.png"))
        record = json.loads((out / subject / f"{subject}_facerisk.json").read_text())
        for image in renders + crops:
            for mode in ("full", "blurred"):
                thumb = out / subject / "figures" / f"{image.stem}_thumb-{mode}.jpg"
                assert thumb.is_file() and thumb.relative_to(out).as_posix() in record["Outputs"]
    assert detected_total >= 0.7 * 10 * len(subjects)
    # the same seed gives the same camera and light for a participant
    first = json.loads((out / subjects[0] / "anat" / f"{subjects[0]}_desc-render01_T1w.json").read_text())
    assert first["Seed"] != json.loads(
        (out / subjects[1] / "anat" / f"{subjects[1]}_desc-render01_T1w.json").read_text())["Seed"]


@pytest.mark.slow
def test_outputs_are_owner_only(demo_run):
    out, _, _ = demo_run
    for path in [*out.rglob("*.png"), *out.rglob("*.npy"), *out.rglob("*.jpg"), out / "facerisk.html"]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is readable by others ({mode:o})"


@pytest.mark.slow
def test_group_level_ranks_summary_and_report(demo_run):
    out, _, group = demo_run
    assert group.returncode == 0, group.stderr[-3000:]
    with open(out / "group_desc-ranks.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["participant_id"] for r in rows] == sorted(p.name for p in DEMO_BIDS.glob("sub-*"))
    assert list(rows[0])[:2] == ["participant_id", "rank"]
    n_identities = len(rows)
    for row in rows:
        if row["rank"] != "n/a":
            assert 1 <= int(row["rank"]) <= n_identities
            assert row["match1_id"].startswith("sub-")
    summary = json.loads((out / "group_desc-summary.json").read_text())
    stats = summary["reidentification"]
    assert stats["n"] == summary["n_with_photos"] >= 3
    ranks = [int(r["rank"]) for r in rows if r["rank"] != "n/a"]
    assert stats["top1"]["hits"] == sum(r == 1 for r in ranks)
    assert stats["top1"]["ci_low"] <= stats["top1"]["rate"] <= stats["top1"]["ci_high"]
    assert summary["detection"]["rate"] >= 0.7
    assert summary["cmc"][-1] <= 1.0 and summary["cmc"] == sorted(summary["cmc"])
    html = (out / "facerisk.html").read_text()
    assert "identifying" in html.lower()
    # offline: nothing is loaded from the network (links to papers are fine)
    assert not re.search(r"""(src|srcset|poster)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"""<link[^>]+href\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html
    assert html.count("data:image/") >= len(rows)
    for name in ("CITATION.md", "CITATION.html", "CITATION.bib"):
        assert (out / "logs" / name).stat().st_size > 0
    # the group level prints the numbers
    assert "top1" in group.stderr and "report:" in group.stderr


@pytest.mark.slow
def test_outputs_are_a_bids_derivatives_dataset(demo_run):
    from bids import BIDSLayout

    out, _, _ = demo_run
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "facerisk"
    layout = BIDSLayout(DEMO_BIDS, derivatives=out)
    derivatives = layout.derivatives.get_pipeline("facerisk")
    pngs = derivatives.get(subject="01", suffix="T1w", extension=".png")
    assert {f.entities["desc"] for f in pngs} == {f"render{i:02d}" for i in range(1, 11)} | {
        "qcrenders", "qcmask"}


@pytest.mark.slow
def test_group_refuses_embeddings_of_different_models(demo_run, tmp_path):
    out, _, _ = demo_run
    copy = tmp_path / "mixed"
    shutil.copytree(out, copy)
    sidecar = copy / "sub-02" / "anat" / "sub-02_desc-faces_T1w.json"
    meta = json.loads(sidecar.read_text())
    meta["FaceModel"]["Files"]["recognizer"]["SHA256"] = "0" * 64  # another model file
    sidecar.write_text(json.dumps(meta))
    result = run_cli(DEMO_BIDS, copy, "group", "--modality", "T1w")
    assert result.returncode == 2
    assert "different face models" in result.stderr
    assert "sub-02" in result.stderr


@pytest.mark.slow
def test_two_backends_are_fused(tmp_path):
    out = tmp_path / "out"
    common = ["--modality", "T1w", "--photos-dir", DEMO_PHOTOS, "--face-model", "sface,dlib"]
    participant = run_cli(DEMO_BIDS, out, "participant", "--participant-label", "01", "02",
                          "--n-renders", "3", *common)
    assert participant.returncode == 0, participant.stderr[-2000:]
    anat = out / "sub-01" / "anat"
    sface = json.loads((anat / "sub-01_desc-faces_T1w.json").read_text())
    dlib = json.loads((anat / "sub-01_desc-facesDlib_T1w.json").read_text())
    assert (sface["FaceModel"]["Name"], dlib["FaceModel"]["Name"]) == ("sface", "dlib")
    render = json.loads((anat / "sub-01_desc-render01_T1w.json").read_text())
    assert set(render["FaceByModel"]) == {"sface", "dlib"}
    group = run_cli(DEMO_BIDS, out, "group", *common)
    assert group.returncode == 0, group.stderr[-2000:]
    summary = json.loads((out / "group_desc-summary.json").read_text())
    assert summary["face_model"]["Name"] == "sface+dlib"
    assert summary["reidentification"]["n"] == 2
    # a model whose embeddings were never computed is a clear error
    missing = run_cli(DEMO_BIDS, out, "group", "--modality", "T1w", "--face-model",
                      str(tmp_path))
    assert missing.returncode == 2


@pytest.mark.slow
def test_rerun_group_is_idempotent(demo_run, tmp_path):
    out, _, _ = demo_run
    before = (out / "group_desc-ranks.tsv").read_text()
    assert run_cli(DEMO_BIDS, out, "group", "--modality", "T1w").returncode == 0
    assert (out / "group_desc-ranks.tsv").read_text() == before
    # a copy of the outputs gives the same answer: group level reads only outputs
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert run_cli(DEMO_BIDS, copy, "group", "--modality", "T1w").returncode == 0
    assert (copy / "group_desc-ranks.tsv").read_text() == before


@pytest.mark.slow
def test_group_leaves_out_failed_and_killed_participants(demo_run, tmp_path):
    """The group level trusts a participant only when its record says it is complete."""
    out, _, _ = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    photos = tmp_path / "photos"
    shutil.copytree(DEMO_PHOTOS, photos)
    # sub-02: a photo that is not an image: its participant run fails and leaves no record
    (photos / "sub-02" / "sub-02_photo04.png").write_bytes(b"not an image")
    failed = run_cli(DEMO_BIDS, copy, "participant", "--modality", "T1w", "--photos-dir", photos,
                     "--participant-label", "02")
    assert failed.returncode == 1 and "sub-02" in failed.stderr
    assert not (copy / "sub-02" / "sub-02_facerisk.json").exists()
    # sub-03: a run killed after it started again (the record goes first)
    (copy / "sub-03" / "sub-03_facerisk.json").unlink()
    group = run_cli(DEMO_BIDS, copy, "group", "--modality", "T1w")
    assert group.returncode == 0, group.stderr[-2000:]
    assert "sub-02 left out" in group.stderr and "sub-03 left out" in group.stderr
    summary = json.loads((copy / "group_desc-summary.json").read_text())
    assert [e["participant_id"] for e in summary["excluded"]] == ["sub-02", "sub-03"]
    with open(copy / "group_desc-ranks.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["participant_id"] for r in rows] == ["sub-01", "sub-04"]
    assert summary["n_identities"] == 2 and summary["reidentification"]["n_gallery"] == 2
    html = (copy / "facerisk.html").read_text()
    assert "Participants left out" in html and "sub-03" in html
    assert not (copy / "sub-02.html").exists()  # the page of the earlier run is removed

    # --reports-only rebuilds the same report from the group outputs
    before = {p.name: p.read_bytes() for p in copy.glob("*.html")}
    for page in copy.glob("*.html"):
        page.unlink()
    again = run_cli(DEMO_BIDS, copy, "group", "--modality", "T1w", "--reports-only")
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in copy.glob("*.html")} == before
    wrong = run_cli(DEMO_BIDS, copy, "participant", "--reports-only")
    assert wrong.returncode == 2 and "--reports-only" in wrong.stderr


# -- one pybids index for all worker processes -------------------------------------

def test_layout_database_is_private_scratch_only_for_several_processes(tmp_path, monkeypatch):
    import tempfile

    from bids_app.cli.run import _layout_database
    from bids_app.config import Settings

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    common = dict(bids_dir=DEMO_BIDS, output_dir=tmp_path / "out", analysis_level="participant")
    with _layout_database(Settings(**common, nprocs=1)) as database_dir:
        assert database_dir is None  # one process: the index stays in memory
    given = tmp_path / "db"
    with _layout_database(Settings(**common, nprocs=2, bids_database_dir=given)) as database_dir:
        assert database_dir == given  # --bids-database-dir: as before, kept after the run
    with _layout_database(Settings(**common, nprocs=2)) as database_dir:
        assert database_dir.parent.parent == tmp_path and not database_dir.exists()
        database_dir.mkdir()
    assert list(tmp_path.iterdir()) == []  # removed at the end


@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="--nprocs is capped at the number of CPUs")
def test_parallel_workers_reuse_the_index_of_the_parent(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    result = run_cli(DEMO_BIDS, out, "participant", "--participant-label", "01", "02", "--modality", "T1w",
                     "--n-renders", "1", "--nprocs", "2", "-w", work, "--skip-bids-validator")
    assert result.returncode == 0, result.stderr[-3000:]
    assert all((out / f"sub-{s}" / f"sub-{s}_facerisk.json").is_file() for s in ("01", "02"))
    logs = "".join(path.read_text() for path in (out / "logs").glob("*.log"))
    built = re.findall(r"indexing \S+ into (\S+) \(pybids\)", logs)
    reused = re.findall(r"reusing the pybids index in (\S+)", logs)
    assert len(built) == 1, logs  # by the parent, once
    assert len(reused) == 2 and set(reused) == set(built), logs  # by each worker
    assert Path(built[0]).parent.parent == work.resolve()
    assert not Path(built[0]).parent.exists()  # the private index is gone after the run


def test_command_turns_off_numpys_huge_page_advice_unless_asked():
    """The package, imported before numpy (as the ``facerisk`` command imports it), turns numpy's
    huge-page advice off (about 1 s of system time on the first participant where the kernel
    compacts memory for it); NUMPY_MADVISE_HUGEPAGE in the environment wins."""
    # numpy's own switch returns its previous state: the state the import left
    probe = "import bids_app, numpy; print(numpy._core.multiarray._set_madvise_hugepage(True))"
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    out = subprocess.run([sys.executable, "-c", probe], env={**env, "NUMPY_MADVISE_HUGEPAGE": "1"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
