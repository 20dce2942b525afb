"""The simulator's defacing methods (mask, plane, reface) on a tiny simulated cohort."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from bids_app import simulate as sim
from bids_app.simulate import cli, deface, scanner

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "bids"
HEAD = DEMO / "sub-02" / "anat" / "sub-02_T1w.nii.gz"  # both participants from one base head
SEED = 3
NAME = "sub-{0}/anat/sub-{0}_FLAIR.nii.gz"


def test_deface_values_and_claims():
    assert deface.deface_method(False) is None and deface.deface_method(None) is None
    assert deface.deface_method(True) == "mask"
    assert [deface.deface_method(m) for m in sim.DEFACE_METHODS] == ["mask", "plane", "reface"]
    with pytest.raises(ValueError, match="blur"):
        deface.deface_method("blur")
    assert deface.sidecar_claim(None) == {"Defaced": False}
    for method in sim.DEFACE_METHODS:
        claim = deface.sidecar_claim(method)
        assert claim["DeidentificationMethod"][0].startswith("simulated ")
        (code,) = claim["DeidentificationMethodCodeSequence"]
        assert code == {"CodeValue": "113102", "CodingSchemeDesignator": "DCM",
                        "CodeMeaning": "Clean Recognizable Visual Features Option"}
    assert deface.sidecar_claim("mask")["Defaced"] == "plane cut"  # as before the methods


def test_cli_deface_stays_backward_compatible():
    parse = cli._parser().parse_args
    assert parse(cli._deface_value(["out", "--deface"])).deface == "mask"
    assert parse(cli._deface_value(["--deface", "out"])).deface == "mask"
    assert parse(cli._deface_value(["--deface", "plane", "out"])).deface == "plane"
    assert parse(cli._deface_value(["out"])).deface is None
    args = parse(["out", "--deface-methods", "plane,reface,plane"])
    assert args.deface_methods == ("plane", "reface")
    with pytest.raises(SystemExit):
        parse(["out", "--deface-methods", "plane,blur"])
    with pytest.raises(SystemExit):
        parse(["out", "--deface", "blur"])


def test_cohort_rejects_unknown_methods(tmp_path):
    with pytest.raises(ValueError, match="blur"):
        sim.simulate_cohort(tmp_path, n=1, heads=[HEAD], deface_methods=["blur"], quiet=True)
    with pytest.raises(ValueError, match="blur"):
        sim.simulate_cohort(tmp_path, n=1, heads=[HEAD], deface="blur", quiet=True)
    with pytest.raises(FileNotFoundError, match="reface template"):
        sim.simulate_cohort(tmp_path, n=1, heads=[HEAD], deface="reface", quiet=True,
                            template=tmp_path / "none.nii.gz")
    assert not (tmp_path / "bids").exists()
    args = cli._parser().parse_args(["out", "--deface", "reface", "--reface-template", str(HEAD)])
    assert args.reface_template == HEAD


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim_deface")
    sim.simulate_cohort(out, n=2, seed=SEED, heads=[HEAD], deface_methods=sim.DEFACE_METHODS,
                        photos=(1, 1), photo_size=(200, 240), quiet=True)
    return out


def _in_base(out: Path, folder: str, label: str, order: int = 1) -> np.ndarray:
    part = sim.sample_participant(int(label) - 1, SEED, [HEAD], label=label)
    nii = nib.load(out / folder / NAME.format(label))
    return scanner.to_base_grid(nii, part, sim.load_base(HEAD), order=order)


@pytest.mark.slow
def test_datasets_sidecars_and_truth(cohort):
    truth = json.loads((cohort / "truth.json").read_text())
    assert truth["datasets"] == {"bids": "none", "bids_defaced-mask": "mask",
                                 "bids_defaced-plane": "plane", "bids_defaced-reface": "reface"}
    assert truth["reface_template"] == str(deface.REFACE_TEMPLATE)
    assert "deface" not in (cohort / "truth.tsv").read_text().splitlines()[0].split("\t")
    for folder, method in truth["datasets"].items():
        for label in ("01", "02"):
            meta = json.loads((cohort / folder / NAME.format(label)).with_suffix("").with_suffix(
                ".json").read_text())
            if method == "none":
                assert meta["Defaced"] is False and "DeidentificationMethod" not in meta
            else:
                assert meta["DeidentificationMethod"] == deface.sidecar_claim(method)[
                    "DeidentificationMethod"]
                assert meta["DeidentificationMethodCodeSequence"][0]["CodeValue"] == "113102"
        description = json.loads((cohort / folder / "dataset_description.json").read_text())
        assert description["BIDSVersion"] == "1.9.0"


@pytest.mark.slow
def test_mask_and_plane_remove_the_face_and_keep_the_brain(cohort):
    base = sim.load_base(HEAD)
    t = np.round(base.tip).astype(int)
    brain = ndi.binary_erosion(deface.brain_mask(base), iterations=3)
    for label in ("01", "02"):
        intact = np.asarray(nib.load(cohort / "bids" / NAME.format(label)).dataobj)
        for method in ("mask", "plane"):
            cut = np.asarray(nib.load(cohort / f"bids_defaced-{method}" / NAME.format(label)).dataobj)
            changed = intact != cut
            assert changed.sum() > 50_000 and not cut[changed].any()  # zeroed, nothing else
            # the same scan elsewhere: the removed part, on the base grid, misses the brain
            img = nib.load(cohort / "bids" / NAME.format(label))
            part = sim.sample_participant(int(label) - 1, SEED, [HEAD], label=label)
            removed = scanner.to_base_grid(nib.Nifti1Image(changed.astype(np.float32), img.affine),
                                           part, base, order=0) > 0
            assert not (removed & brain).any(), method
            # the nose tip, mouth and chin (within 6 mm of these points): empty
            face = _in_base(cohort, f"bids_defaced-{method}", label)
            for dv, dw in [(0, 0), (-10, -30), (-15, -55)]:
                c = t + [0, dv, dw]
                box = face[c[0] - 6:c[0] + 7, c[1] - 6:c[1] + 7, c[2] - 6:c[2] + 7]
                assert box.max() == 0, (method, dv, dw)


@pytest.mark.slow
def test_plane_is_fitted_to_the_brain_and_leaves_the_forehead():
    base = sim.load_base(HEAD)
    normal, offset = deface.plane_line(base)
    assert normal[0] > 0.3 and normal[1] < -0.3  # faces anterior-inferior
    brain = deface.brain_mask(base)
    assert 0.8e6 < brain.sum() < 2.0e6  # mm^3: a brain's volume
    vw = np.array(np.nonzero(brain.any(axis=0)), float).T - base.tip[1:]
    gap = offset - (vw @ normal).max()
    assert gap == pytest.approx(deface.PLANE_BUFFER_MM, abs=1.0)  # the buffer beyond the hull
    region = deface.plane_region(base)
    t = np.round(base.tip).astype(int)
    assert region[t[0], t[1], t[2]] and region[t[0], t[1] - 10, t[2] - 30]  # nose tip, mouth
    assert not region[t[0], t[1] - 20, t[2] + 75]  # forehead high above the brow: kept
    assert not region[t[0], t[1] - 120, t[2] + 20]  # back of the head
    # pydeface's mean head: too blurred for the brain estimate; the cut would miss the eyes
    with pytest.raises(ValueError, match="misses the face"):
        deface.plane_line(sim.load_base(DEMO / "sub-04" / "anat" / "sub-04_T1w.nii.gz"))


@pytest.mark.slow
def test_reface_gives_everyone_the_same_smoothly_blended_face(cohort):
    base = sim.load_base(HEAD)
    weight = deface.reface_weights(base)
    assert np.abs(np.diff(weight[0], axis=0)).max() < 0.25  # no step at the edge of the region
    assert np.abs(np.diff(weight[0], axis=1)).max() < 0.25
    core = (weight >= 1.0) & base.mask
    faces = {d: [_in_base(cohort, d, label)[core] for label in ("01", "02")]
             for d in ("bids", "bids_defaced-reface")}
    before = np.corrcoef(*faces["bids"])[0, 1]
    after = np.corrcoef(*faces["bids_defaced-reface"])[0, 1]
    assert after > 0.95 and after > before + 0.05, (before, after)
    # a face is there (not a hole): the template's tissue fills the region
    intact, refaced = faces["bids"][0], faces["bids_defaced-reface"][0]
    assert np.mean(refaced > 0.2 * intact.max()) > 0.5 * np.mean(intact > 0.2 * intact.max())
    # and it is not the participant's own: it differs where the identity warp moved the face
    assert np.corrcoef(intact, refaced)[0, 1] < after
