"""Tests of bids_app.simulate (simulated cohorts) on a bundled demo head."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_app import simulate as sim
from bids_app.simulate import deform, heads, scanner

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "bids"
HEAD = DEMO / "sub-02" / "anat" / "sub-02_T1w.nii.gz"  # both participants from one base head


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    sim.simulate_cohort(out, n=2, seed=3, heads=[HEAD], with_defaced=True, photos=(2, 2),
                        photo_size=(320, 400), quiet=True)
    return out


@pytest.fixture(scope="module")
def face_model():
    from bids_app.face import load_face_model

    return load_face_model("sface")


def test_sampling_is_deterministic():
    a = sim.sample_participant(0, 7, [HEAD])
    b = sim.sample_participant(0, 7, [HEAD])
    c = sim.sample_participant(1, 7, [HEAD])
    assert a == b
    assert a.deformation != c.deformation
    assert a.base_head == c.base_head == "sub-02_T1w"


@pytest.mark.slow
def test_layout_and_truth(cohort):
    bids = cohort / "bids"
    for name in ("dataset_description.json", "participants.tsv", "README"):
        assert (bids / name).is_file()
    for label in ("01", "02"):
        for folder in ("bids", "bids_defaced"):
            anat = cohort / folder / f"sub-{label}" / "anat"
            assert (anat / f"sub-{label}_FLAIR.nii.gz").is_file()
            assert (anat / f"sub-{label}_FLAIR.json").is_file()
        assert len(list((cohort / "photos" / f"sub-{label}").glob("sub-*_photo*"))) == 2
    rows = (cohort / "truth.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    assert header[:2] == ["participant_id", "base_head"]
    assert {"nose_length", "jaw_width", "face_width", "seed", "orientation"} <= set(header)
    assert [r.split("\t")[0] for r in rows[1:]] == ["sub-01", "sub-02"]


@pytest.mark.slow
def test_pybids_indexes_dataset(cohort):
    from bids import BIDSLayout

    layout = BIDSLayout(cohort / "bids", validate=True)
    files = layout.get(suffix="FLAIR", extension=".nii.gz")
    assert sorted(f.entities["subject"] for f in files) == ["01", "02"]


@pytest.mark.slow
def test_acquisition_grid_matches_truth(cohort):
    for label in ("01", "02"):
        part = sim.sample_participant(int(label) - 1, 3, [HEAD])
        img = nib.load(cohort / "bids" / f"sub-{label}" / "anat" / f"sub-{label}_FLAIR.nii.gz")
        assert img.get_data_dtype() == np.int16
        assert "".join(nib.aff2axcodes(img.affine)) == part.orientation
        assert np.allclose(img.header.get_zooms(), part.voxel_size, atol=1e-4)


@pytest.mark.slow
def test_same_seed_same_image(cohort, tmp_path):
    part = sim.sample_participant(0, 3, [HEAD], label="01")
    sim.simulate_participant(part, tmp_path, None)
    again = nib.load(tmp_path / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz")
    first = nib.load(cohort / "bids" / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz")
    assert np.array_equal(np.asarray(again.dataobj), np.asarray(first.dataobj))
    assert np.allclose(again.affine, first.affine)


@pytest.mark.slow
def test_identities_are_distinct():
    from scipy.spatial import cKDTree

    from bids_app.mri import head_surface

    base = sim.load_base(HEAD)
    box = deform._face_box(base)
    parts = [sim.sample_participant(i, 3, [HEAD]) for i in range(2)]
    fields = [sim.deformation_field(p, base, box, with_pads=False) for p in parts]
    assert np.abs(fields[0] - fields[1]).max() > 3.0
    surfs = []
    for d in fields:
        mask = deform._warp(base.mask.astype(np.float32), box, d) > 0.5
        surfs.append(head_surface(mask, base.affine))
    tip = base.affine[:3, :3] @ base.tip + base.affine[:3, 3]
    pts = np.asarray(surfs[0].points)
    face = pts[(np.linalg.norm(pts - tip, axis=1) < 70) & (pts[:, 1] > tip[1] - 50)]
    dist, _ = cKDTree(np.asarray(surfs[1].points)).query(face)
    assert np.percentile(dist, 90) > 1.5  # mm: the faces differ, not just noise


@pytest.mark.slow
def test_photos_readable_with_a_face(cohort, face_model):
    from bids_app.photos import read_photo

    found = {}
    for path in sorted((cohort / "photos").glob("sub-*/*")):
        image = read_photo(path)
        assert image.ndim == 3 and image.shape[2] == 3
        found.setdefault(path.parent.name, []).append(bool(face_model.detect(image, min_score=0.5)))
    assert sorted(found) == ["sub-01", "sub-02"]
    # framed with the base head's face frame: every photo shows the whole face
    assert all(all(v) for v in found.values()), found


def test_default_heads_are_people():
    found = sim.default_heads()
    assert [h.name for h in found] == ["sub-01_T1w.nii.gz", "sub-02_T1w.nii.gz", "sub-03_T1w.nii.gz"]
    assert "sub-04" in sim.NOT_A_BASE  # the mean head, with the reason


def _renders(path: Path, n: int = 3):
    from bids_app.mri import face_frame, head_mask, head_surface, load_head
    from bids_app.render import render_views, sample_view_params

    vol = load_head(path)
    surf = head_surface(head_mask(vol.data, vol.zooms), vol.affine)
    try:
        frame = face_frame(surf)
    except ValueError:  # no nose-like protrusion at all: certainly no face
        return []
    return render_views(surf, frame, sample_view_params(1, n))


@pytest.mark.slow
def test_deface_removes_the_face(cohort, face_model):
    name = "sub-01/anat/sub-01_FLAIR.nii.gz"
    a = np.asarray(nib.load(cohort / "bids" / name).dataobj)
    b = np.asarray(nib.load(cohort / "bids_defaced" / name).dataobj)
    cut = (a != b)
    assert cut.sum() > 100_000 and not b[cut].any()  # a large region set to zero, same scan otherwise
    intact = _renders(cohort / "bids" / name, n=4)
    defaced = _renders(cohort / "bids_defaced" / name, n=4)
    n_intact = sum(bool(face_model.detect(im, min_score=0.5)) for im in intact)
    n_defaced = sum(bool(face_model.detect(im, min_score=0.5)) for im in defaced)
    assert n_intact >= 3
    # the cut surface keeps dents (orbit apices, ethmoid, pharynx) that YuNet can take
    # for a face at low scores: fewer faces, not always none (the benchmark gives the rate)
    assert n_defaced < n_intact


@pytest.mark.slow
def test_deface_region_is_the_face():
    base = sim.load_base(HEAD)
    region = scanner._deface_region(base)
    t = np.round(base.tip).astype(int)
    # nose tip, eyes (30 mm up, 20 mm back, 32 mm aside), mouth, chin: removed
    for du, dv, dw in [(0, 0, 0), (32, -20, 30), (-32, -20, 30), (0, -10, -30), (0, -15, -60)]:
        assert region[t[0] + du, t[1] + dv, t[2] + dw], (du, dv, dw)
    # forehead above the brow, the brain, the back of the head: kept
    for du, dv, dw in [(0, -25, 75), (0, -70, 50), (0, -120, 20), (50, -110, 0)]:
        assert not region[t[0] + du, t[1] + dv, t[2] + dw], (du, dv, dw)


def test_superficial_tissue_is_not_nulled():
    t1 = np.array([0.3, 0.3, 1.5], np.float32)  # CSF-like T1 intensity deep and near the skin, fat
    deep = np.array([1.0, 0.0, 0.0], np.float32)
    flair = scanner._contrast_map(t1, list(sim.CONTRASTS["FLAIR"]), "FLAIR", deep)
    assert flair[0] == pytest.approx(sim.CONTRASTS["FLAIR"][2])  # CSF nulled inside the head
    assert flair[1] > 2 * flair[0]  # lips, muscle, thin skin: not nulled
    assert flair[2] > flair[1]
    nodes = list(sim.CONTRASTS["T1w"])  # T1w: the same curve at every depth
    assert np.allclose(scanner._contrast_map(t1, nodes, "T1w", deep), scanner._contrast_map(t1, nodes))


def test_cli_rejects_bad_values(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        sim.main([str(tmp_path / "x"), "--n", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        sim.main([str(tmp_path / "x"), "--contrast", "DWI"])


def test_photo_view_direction_in_the_face_frame():
    from types import SimpleNamespace

    from bids_app.simulate.photos import view_direction

    # a face looking along -y, up +z: positive yaw turns the camera towards cross(superior, anterior)
    frame = SimpleNamespace(anterior=np.array([0.0, -1.0, 0.0]), superior=np.array([0.0, 0.0, 1.0]))
    right = np.cross(frame.superior, frame.anterior)
    assert np.allclose(view_direction(frame, 0.0, 0.0), frame.anterior)
    assert np.allclose(view_direction(frame, 90.0, 0.0), right)
    assert np.allclose(view_direction(frame, 0.0, 90.0), frame.superior)
    d = view_direction(frame, 17.0, -6.0)
    assert np.linalg.norm(d) == pytest.approx(1.0)
    assert np.degrees(np.arcsin(d @ frame.superior)) == pytest.approx(-6.0)


# --------------------------------------------------------------------------- hard mode

HARD_SEED = 1  # with HEAD: sub-01 2.98 mm slices and a much flattened nose, sub-02 a dim lower face


@pytest.fixture(scope="module")
def hard_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim_hard")
    sim.simulate_cohort(out, n=2, seed=HARD_SEED, heads=[HEAD], photos=(2, 2),
                        photo_size=(320, 400), quiet=True, mode="hard")
    return out


def _truth(out: Path) -> list[dict[str, str]]:
    rows = [r.split("\t") for r in (out / "truth.tsv").read_text().splitlines()]
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def test_hard_sampling_deterministic_and_sibling_like():
    a = sim.sample_participant(0, HARD_SEED, [HEAD], mode="hard")
    assert a == sim.sample_participant(0, HARD_SEED, [HEAD], mode="hard")
    d = sim.sample_participant(0, HARD_SEED, [HEAD])
    assert d.mode == "default" and d.hard == {}
    # the same identity draws, scaled down: participants are more alike
    for name, value in d.deformation.items():
        assert a.deformation[name] == pytest.approx(value * sim.HARD["spread"])
    assert a.mode == "hard" and 1.0 <= a.voxel_size[2] <= 3.0
    assert a.voxel_size[2] == a.hard["slice_mm"]
    assert {"dim_lower_face", "dim_low", "nose_flatten", "nose_protrusion_mm"} <= set(a.hard)
    slices = [sim.sample_participant(i, 0, [HEAD], mode="hard").voxel_size[2] for i in range(30)]
    assert min(slices) < 1.5 and max(slices) > 2.5
    with pytest.raises(ValueError):
        sim.sample_participant(0, 0, [HEAD], mode="harder")


def test_slice_profile_is_a_box():
    assert scanner._slice_profile(3.0) == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3, 0])
    assert scanner._slice_profile(2.0) == pytest.approx([0.25, 0.5, 0.25])
    for t in (1.2, 1.85, 2.98):
        w = scanner._slice_profile(t)
        offsets = np.arange(len(w)) - len(w) // 2
        assert w.sum() == pytest.approx(1.0)
        assert w.max() == pytest.approx(1.0 / t)  # full weight for a whole mm inside the slice
        assert (w * offsets).sum() == pytest.approx(0.0, abs=1e-6)  # centred


@pytest.mark.slow
def test_hard_cohort_valid_with_its_features(hard_cohort):
    truth = _truth(hard_cohort)
    assert [r["participant_id"] for r in truth] == ["sub-01", "sub-02"]
    assert all(r["mode"] == "hard" for r in truth)
    meta = json_load(hard_cohort / "truth.json")
    assert meta["mode"] == "hard" and meta["hard"]["spread"] == sim.HARD["spread"]
    for i, row in enumerate(truth):
        part = sim.sample_participant(i, HARD_SEED, [HEAD], mode="hard")
        label = f"{i + 1:02d}"
        img = nib.load(hard_cohort / "bids" / f"sub-{label}" / "anat" / f"sub-{label}_FLAIR.nii.gz")
        assert img.get_data_dtype() == np.int16 and np.asarray(img.dataobj).max() > 0
        assert "".join(nib.aff2axcodes(img.affine)) == part.orientation
        assert np.allclose(img.header.get_zooms(), part.voxel_size, atol=1e-4)
        assert float(row["slice_mm"]) == pytest.approx(part.voxel_size[2])
        assert len(list((hard_cohort / "photos" / f"sub-{label}").glob("sub-*_photo*"))) == 2
    assert float(truth[0]["slice_mm"]) > 2.5  # a thick-slice grid
    # the flattened nose: well below the base head's own, and not below about 8 mm
    base = sim.load_base(HEAD)
    own = heads._base_protrusion(base)
    flat = float(truth[0]["nose_protrusion_mm"])
    assert float(truth[0]["nose_flatten"]) > 0.7 and float(truth[0]["nose_flatten_mm"]) > 5.0
    assert 6.0 < flat < own - 8.0, (flat, own)
    assert truth[1]["dim_lower_face"] == "1" and 0.25 <= float(truth[1]["dim_low"]) <= 0.35


def json_load(path: Path):
    import json

    return json.loads(path.read_text())


@pytest.mark.slow
def test_hard_same_seed_same_image_and_dim_lower_face(hard_cohort, tmp_path):
    import dataclasses

    part = sim.sample_participant(1, HARD_SEED, [HEAD], label="02", mode="hard")
    sim.simulate_participant(part, tmp_path / "again", None)
    name = "sub-02/anat/sub-02_FLAIR.nii.gz"
    again = np.asarray(nib.load(tmp_path / "again" / name).dataobj).astype(np.float32)
    first = np.asarray(nib.load(hard_cohort / "bids" / name).dataobj).astype(np.float32)
    assert np.array_equal(again, first)  # deterministic for a seed
    # the same participant without the dim lower face: same scan above the nose, dimmed below
    bright = dataclasses.replace(part, hard={**part.hard, "dim_lower_face": 0, "dim_low": 1.0})
    sim.simulate_participant(bright, tmp_path / "bright", None)
    undimmed = np.asarray(nib.load(tmp_path / "bright" / name).dataobj).astype(np.float32)
    sel = undimmed > 0.3 * np.percentile(undimmed, 99.5)
    ratio = first[sel] / undimmed[sel]
    assert np.mean(ratio == 1.0) > 0.5  # the brain and upper face: identical
    low = part.hard["dim_low"]
    assert np.percentile(ratio, 1) == pytest.approx(low, abs=0.1)  # the chin: dimmed to ~low
