"""Bad input, killed runs, parallel writers and the network: facerisk stays safe.

Every bad input is a real file on disk; one CLI run processes a dataset in
which most participants are broken in a different way and one is healthy.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo" / "bids"
GOOD_HEAD = DEMO / "sub-03" / "anat" / "sub-03_T1w.nii.gz"  # smallest real head (1.5 mm)
GOOD_PHOTO = REPO / "data" / "demo" / "photos" / "sub-03" / "sub-03_photo01.png"

# every test runs the command line on real heads (11-31 s each)
pytestmark = pytest.mark.slow


def run_cli(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bids_app", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def new_dataset(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "faults", "BIDSVersion": "1.9.0"}))
    return root


def add_image(root: Path, label: str, write) -> Path:
    anat = root / f"sub-{label}" / "anat"
    anat.mkdir(parents=True)
    path = anat / f"sub-{label}_T1w.nii.gz"
    write(path)
    return path


def save(data, affine=np.eye(4)):
    def write(path):
        nib.save(nib.Nifti1Image(np.asarray(data), affine), path)
    return write


@pytest.fixture(scope="module")
def broken_dataset(tmp_path_factory):
    root = new_dataset(tmp_path_factory.mktemp("faults") / "bids")
    photos = root.parent / "photos"
    head = nib.load(GOOD_HEAD)
    cube = np.asarray(head.dataobj, dtype=np.float32)
    add_image(root, "good", lambda p: shutil.copy(GOOD_HEAD, p))
    expected = {}

    add_image(root, "trunc", lambda p: p.write_bytes(GOOD_HEAD.read_bytes()[: GOOD_HEAD.stat().st_size // 3]))
    expected["trunc"] = "sub-trunc_T1w.nii.gz: cannot"
    add_image(root, "empty", lambda p: p.write_bytes(b""))
    expected["empty"] = "sub-empty_T1w.nii.gz: cannot be read"
    # 4D images are read (the voxel-wise maximum of their volumes); five axes with several volumes are not
    add_image(root, "fived", save(np.stack([cube[::4, ::4, ::4]] * 4, axis=-1).reshape(cube[::4, ::4, ::4].shape + (2, 2))))
    expected["fived"] = "expected a 3D image"
    add_image(root, "twod", save(cube[:, :, 40]))
    expected["twod"] = "expected a 3D image"
    add_image(root, "nan", save(np.full((40, 40, 40), np.nan, np.float32)))
    expected["nan"] = "every voxel is NaN or infinite"
    def zero_affine(path):
        # an sform of zeros (and no qform): a singular voxel-to-world matrix.
        # nibabel refuses to write one, so patch the header bytes.
        plain = path.with_suffix("")  # .nii
        nib.save(nib.Nifti1Image(cube, head.affine), plain)
        raw = bytearray(plain.read_bytes())
        raw[252:256] = np.array([0, 1], "<i2").tobytes()  # qform_code 0, sform_code 1
        raw[280:328] = bytes(48)  # srow_x, srow_y, srow_z
        path.write_bytes(gzip.compress(bytes(raw)))
        plain.unlink()
    add_image(root, "affine", zero_affine)
    expected["affine"] = "affine is degenerate"

    def wrong_dims(path):
        # an uncompressed header that promises more voxels than the file holds
        plain = path.with_suffix("")  # .nii
        nib.save(nib.Nifti1Image(cube[:20, :20, :20], head.affine), plain)
        raw = bytearray(plain.read_bytes())
        raw[42:48] = np.array([200, 200, 200], "<i2").tobytes()  # dim[1..3]
        path.write_bytes(gzip.compress(bytes(raw)))
        plain.unlink()
    add_image(root, "dims", wrong_dims)
    expected["dims"] = "sub-dims_T1w.nii.gz: cannot"

    add_image(root, "json", lambda p: shutil.copy(GOOD_HEAD, p))
    (root / "sub-json" / "anat" / "sub-json_T1w.json").write_text('{"RepetitionTime": 2.3,,}')
    expected["json"] = "sub-json_T1w.json: invalid JSON"

    add_image(root, "photo", lambda p: shutil.copy(GOOD_HEAD, p))
    (photos / "sub-photo").mkdir(parents=True)
    shutil.copy(GOOD_PHOTO, photos / "sub-photo" / "good.png")
    (photos / "sub-photo" / "notanimage.jpg").write_text("this is a text file, not a JPEG\n")
    bomb = photos / "sub-photo" / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 400 megapixels, a few kB on disk
    expected["photo"] = "photo notanimage.jpg"
    return root, photos, expected


@pytest.fixture(scope="module")
def broken_run(broken_dataset, tmp_path_factory):
    root, photos, expected = broken_dataset
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    os.chmod(root, 0o555)  # read-only input
    try:
        out = tmp_path_factory.mktemp("out") / "out"
        result = run_cli(root, out, "participant", "--modality", "T1w", "--n-renders", "2",
                         "--photos-dir", photos, "--skip-bids-validator", "--nprocs", "2")
    finally:
        os.chmod(root, 0o755)
    return out, result, expected, before, root


def test_each_bad_input_fails_only_its_participant_with_a_clear_line(broken_run):
    out, result, expected, _, _ = broken_run
    assert result.returncode == 1, result.stderr[-3000:]
    failed_lines = [line for line in result.stderr.splitlines() if "FAILED" in line]
    for label, reason in expected.items():
        lines = [line for line in failed_lines if f"FAILED sub-{label}:" in line]
        assert len(lines) == 1, f"sub-{label}: {failed_lines}"
        assert reason in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    summary = [line for line in result.stderr.splitlines() if "participant(s) failed" in line]
    assert summary and f"{len(expected)} of {len(expected) + 1} participant(s) failed" in summary[0]
    # the healthy participant was processed completely
    assert (out / "sub-good" / "sub-good_facerisk.json").is_file()
    assert len(list((out / "sub-good" / "anat").glob("*_desc-render*_T1w.png"))) == 2


def test_bad_photos_are_recorded_and_the_good_one_used(broken_run):
    out, result, _, _, _ = broken_run
    rows = json.loads((out / "sub-photo" / "photo" / "sub-photo_desc-faces_photo.json").read_text())["Rows"]
    by_source = {row["Source"]: row for row in rows}
    assert by_source["good.png"]["Detected"] is True
    assert "not an image" in by_source["notanimage.jpg"]["Error"] or "cannot" in by_source["notanimage.jpg"]["Error"]
    assert "pixels" in by_source["bomb.png"]["Error"]
    assert not (out / "sub-photo" / "sub-photo_facerisk.json").exists()  # rerun after fixing photos


def test_input_dataset_is_never_written(broken_run):
    _, _, _, before, root = broken_run
    after = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert after == before


def test_failed_participants_leave_no_outputs_that_group_trusts(broken_run):
    out, _, _, _, root = broken_run
    for label in ("trunc", "empty", "fourd", "twod", "nan", "affine", "dims", "json"):
        assert not list((out / f"sub-{label}").rglob("*_desc-faces_*.json"))
    assert not list(out.rglob("*.tmp"))


# -- resumability --------------------------------------------------------------

@pytest.fixture()
def small_dataset(tmp_path):
    root = new_dataset(tmp_path / "bids")
    add_image(root, "01", lambda p: shutil.copy(GOOD_HEAD, p))
    return root


def test_complete_participant_is_skipped_and_force_redoes(small_dataset, tmp_path):
    out = tmp_path / "out"
    args = [small_dataset, out, "participant", "--modality", "T1w", "--n-renders", "2"]
    assert run_cli(*args).returncode == 0
    status = out / "sub-01" / "sub-01_facerisk.json"
    stamp = status.stat().st_mtime_ns
    again = run_cli(*args)
    assert again.returncode == 0 and "already complete" in again.stderr
    assert status.stat().st_mtime_ns == stamp
    # other parameters are not "complete": the participant is redone
    changed = run_cli(*args[:-1], "3")
    assert changed.returncode == 0 and "already complete" not in changed.stderr
    assert len(list((out / "sub-01" / "anat").glob("*_desc-render*_T1w.png"))) == 3
    forced = run_cli(*args[:-1], "3", "--force")
    assert "already complete" not in forced.stderr


def test_killed_run_leaves_nothing_trusted_and_rerun_gives_same_results(small_dataset, tmp_path):
    reference = tmp_path / "reference"
    args = ["participant", "--modality", "T1w", "--n-renders", "6", "--skip-bids-validator"]
    assert run_cli(small_dataset, reference, *args).returncode == 0

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "bids_app", str(small_dataset), str(out), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    anat = out / "sub-01" / "anat"
    while time.time() < deadline and not list(anat.glob("*_desc-render0[2-9]_T1w.png")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # mid-render
    proc.wait()
    assert not (out / "sub-01" / "sub-01_facerisk.json").exists()
    assert not list(anat.glob("*_desc-faces_T1w.json"))  # no embedding set to trust

    assert run_cli(small_dataset, out, *args).returncode == 0
    assert not list(out.rglob("*.tmp"))
    new = np.load(anat / "sub-01_desc-faces_T1w.npy")
    old = np.load(reference / "sub-01" / "anat" / "sub-01_desc-faces_T1w.npy")
    np.testing.assert_allclose(new, old, atol=1e-6, equal_nan=True)
    for index in range(1, 7):
        name = f"sub-01_desc-render{index:02d}_T1w.json"
        a = json.loads((anat / name).read_text())
        b = json.loads((reference / "sub-01" / "anat" / name).read_text())
        assert a["Camera"] == b["Camera"] and a["Light"] == b["Light"]


# -- concurrency -----------------------------------------------------------------

def test_parallel_participant_processes_share_one_output_dir(tmp_path):
    root = new_dataset(tmp_path / "bids")
    for label in ("01", "02", "03"):
        add_image(root, label, lambda p: shutil.copy(GOOD_HEAD, p))
    out = tmp_path / "out"
    procs = [
        subprocess.Popen([sys.executable, "-m", "bids_app", str(root), str(out), "participant",
                          "--participant-label", label, "--modality", "T1w", "--n-renders", "2",
                          "--skip-bids-validator"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for label in ("01", "02", "03")
    ]
    codes = [proc.wait(timeout=600) for proc in procs]
    assert codes == [0, 0, 0], [proc.stderr.read()[-1000:] for proc in procs]
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    logs = list((out / "logs").glob("facerisk_participant_*.log"))
    assert len(logs) == 3  # one log per process, none shared
    for label in ("01", "02", "03"):
        assert (out / f"sub-{label}" / f"sub-{label}_facerisk.json").is_file()
    assert not list(out.rglob("*.tmp"))
    assert run_cli(root, out, "group", "--modality", "T1w").returncode == 0


# -- privacy -------------------------------------------------------------------------

def test_no_network_access_at_run_time(small_dataset, tmp_path):
    """Every socket connection attempt is refused and recorded; none may happen."""
    guard = tmp_path / "guard"
    guard.mkdir()
    attempts = tmp_path / "attempts.txt"
    (guard / "sitecustomize.py").write_text(
        "import socket\n"
        f"LOG = {str(attempts)!r}\n"
        "def _refuse(self, address, *args, **kwargs):\n"
        "    if self.family in (socket.AF_INET, socket.AF_INET6):\n"
        "        with open(LOG, 'a') as handle:\n"
        "            handle.write(repr(address) + '\\n')\n"
        "        raise OSError('network access blocked by test')\n"
        "    return _connect(self, address, *args, **kwargs)\n"
        "_connect = socket.socket.connect\n"
        "socket.socket.connect = _refuse\n"
        "socket.socket.connect_ex = _refuse\n"
    )
    env = dict(os.environ, PYTHONPATH=f"{guard}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    out = tmp_path / "out"
    photos = tmp_path / "photos" / "sub-01"
    photos.mkdir(parents=True)
    shutil.copy(GOOD_PHOTO, photos)
    participant = run_cli(small_dataset, out, "participant", "--modality", "T1w", "--n-renders", "2",
                          "--photos-dir", photos.parent, env=env)
    group = run_cli(small_dataset, out, "group", "--modality", "T1w", env=env)
    assert participant.returncode == 0, participant.stderr[-2000:]
    assert group.returncode == 0, group.stderr[-2000:]
    assert not attempts.exists(), attempts.read_text()


def test_logs_name_participants_not_photos(broken_run, small_dataset, tmp_path):
    out, _, _, _, _ = broken_run
    text = "".join(p.read_text() for p in (out / "logs").glob("*.log"))
    assert "good.png" not in text  # photo names only appear when a photo is broken
