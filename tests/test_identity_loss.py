"""benchmarks/identity_loss.py: the cohort scanned again with one acquisition factor off."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_app.simulate.cohort import simulate_participant
from bids_app.simulate.heads import default_heads
from bids_app.simulate.participant import sample_participant

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "identity_loss.py"
_spec = importlib.util.spec_from_file_location("facerisk_benchmark_identity_loss", _PATH)
identity_loss = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(identity_loss)

#: Fields each variant may change; every other field (the face, pose, noise draws) stays.
CHANGED = {
    "slices": {"voxel_size", "hard"},
    "dim": {"hard"},
    "pads": {"pad_press_mm", "pad_visible"},
    "noise": {"noise"},
    "all": {"voxel_size", "hard", "pad_press_mm", "pad_visible", "noise", "bias_coefs"},
}


def _hard_participant():
    # seed 1, index 4 of the hard mode: 1.2 x 1.2 x 1.76 mm, dim lower face, visible pads
    part = sample_participant(4, 1, default_heads(), label="05", mode="hard")
    assert part.hard["dim_lower_face"] and part.pad_visible > 0 and part.voxel_size[2] > part.voxel_size[0]
    return part


@pytest.mark.parametrize("variant", sorted(CHANGED))
def test_one_factor_off_and_nothing_else(variant):
    part = _hard_participant()
    before = dataclasses.asdict(part)
    off = identity_loss.switched_off(part, variant)
    assert dataclasses.asdict(part) == before  # the cohort's participant is not touched
    after = dataclasses.asdict(off)
    changed = {k for k in before if before[k] != after[k]}
    assert changed and changed <= CHANGED[variant]
    if variant in ("slices", "all"):
        assert len(set(off.voxel_size)) == 1
    if variant in ("dim", "all"):
        assert off.hard["dim_lower_face"] == 0
    if variant in ("pads", "all"):
        assert off.pad_visible == 0 and off.pad_press_mm == (0.0, 0.0)
    if variant in ("noise", "all"):
        assert off.noise == 0


def test_scan_without_noise_and_slices(tmp_path):
    """The real simulator writes the variant's scan: isotropic voxels, and air without noise."""
    part = _hard_participant()
    simulate_participant(part, tmp_path / "full", None)
    simulate_participant(identity_loss.switched_off(part, "all"), tmp_path / "all", None)
    full = nib.load(tmp_path / "full" / "sub-05" / "anat" / "sub-05_FLAIR.nii.gz")
    clean = nib.load(tmp_path / "all" / "sub-05" / "anat" / "sub-05_FLAIR.nii.gz")
    assert np.allclose(clean.header.get_zooms()[:3], [part.voxel_size[0]] * 3)
    assert not np.allclose(full.header.get_zooms()[:3], clean.header.get_zooms()[:3])
    # a corner of the field of view is air: noisy as scanned, zero without noise
    corner = (slice(0, 5),) * 3
    assert np.asarray(full.dataobj[corner]).mean() > 0
    assert np.asarray(clean.dataobj[corner]).max() == 0
