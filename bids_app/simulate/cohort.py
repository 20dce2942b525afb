"""One participant and a whole cohort written to disk: BIDS dataset, photos, truth table."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from .augment import dim_lower_face
from .deform import _FLATTEN_GAIN, _face_box, _warp, deformation_field
from .heads import _base_protrusion, default_heads, find_heads, load_base, nose_protrusion_mm
from .participant import Participant, sample_participant
from .photos import render_photos
from .scanner import _add_pads, _contrast_map, acquire
from .settings import CONTRASTS, HARD, MODES


def simulate_participant(part: Participant, bids_dir: Path, photos_dir: Path | None, *,
                         deface_dirs: tuple[Path, ...] = (), deface: bool = False,
                         photo_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Write one participant's MRI (and photos); returns timing and file info."""
    t0 = time.perf_counter()
    base = load_base(part.base_path)
    t1 = time.perf_counter()
    hard = part.mode == "hard"
    if hard:  # the nose flattening in mm, from the base head's own nose
        part = dataclasses.replace(part, hard=dict(part.hard))
        excess = max(_base_protrusion(base) - HARD["nose_protrusion_mm"], 0.0)
        part.hard["nose_flatten_mm"] = part.hard["nose_flatten"] * excess / _FLATTEN_GAIN
    box = _face_box(base)
    d_face = deformation_field(part, base, box, with_pads=False)
    d_mri = deformation_field(part, base, box, with_pads=True)
    head = _warp(base.data, box, d_mri)
    deep = _warp(base.deep, box, d_mri) if base.deep is not None else None
    head = _contrast_map(head, part.contrast_nodes, part.contrast, deep)
    del deep
    _add_pads(part, base, head, base.mask)
    if hard and part.hard["dim_lower_face"]:
        # coil sensitivity: the signal falls, the scanner's noise (added in acquire) does not
        head, _ = dim_lower_face(head, base.affine, base.frame.nose_tip, base.frame.anterior,
                                 base.frame.superior, low=part.hard["dim_low"], noise=0.0)
    t2 = time.perf_counter()
    stem = f"sub-{part.label}_{part.contrast}"
    sidecar = {
        "Simulated": True,
        "GeneratedBy": "bids_app.simulate (facerisk); see truth.tsv of the parent folder",
        "ContrastApproximation": f"{part.contrast}-like remap of T1 intensities",
        "VoxelSize": list(part.voxel_size), "StorageOrientation": part.orientation,
    }
    outs = [(bids_dir, deface)] + [(d, True) for d in deface_dirs]
    for target, cut in outs:
        rng = np.random.default_rng(part.seed + [1])  # same noise with and without defacing
        nii = acquire(part, base, head, deface=cut, rng=rng)
        anat = target / f"sub-{part.label}" / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        nib.save(nii, anat / f"{stem}.nii.gz")
        meta = dict(sidecar, Defaced=("plane cut" if cut else False))
        (anat / f"{stem}.json").write_text(json.dumps(meta, indent=2) + "\n")
    t3 = time.perf_counter()
    photos: list[Path] = []
    if photos_dir is not None or hard:
        # the face only (up to 120 mm behind the nose tip), soft edge kept for contouring
        front = max(int(base.tip[1]) - 120, 0)
        soft = base.mask.astype(np.float32)
        soft[:, :front] = 0.0
        mask_photo = _warp(soft, box, d_face)
        if hard:
            part.hard["nose_protrusion_mm"] = nose_protrusion_mm(mask_photo, base.affine, base.frame)
        if photos_dir is not None:
            photos = render_photos(part, mask_photo, base.affine, photos_dir / f"sub-{part.label}",
                                   base.frame, size=photo_size)
    t4 = time.perf_counter()
    return {"label": part.label, "photos": [str(p) for p in photos],
            "hard": dict(part.hard) if hard else {},
            "seconds": {"base": t1 - t0, "deform": t2 - t1, "acquire": t3 - t2, "photos": t4 - t3}}


# --------------------------------------------------------------------------- cohort


def _worker(args: tuple) -> dict[str, Any]:
    return simulate_participant(*args[0], **args[1])


def simulate_cohort(out_dir: str | os.PathLike[str], n: int = 6, seed: int = 0, *,
                    contrast: str = "FLAIR", heads: list[str | os.PathLike[str]] | None = None,
                    deface: bool = False, with_defaced: bool = False, spread: float = 1.0,
                    nprocs: int = 1, photos: tuple[int, int] = (3, 5),
                    photo_size: tuple[int, int] | None = None, quiet: bool = False,
                    mode: str = "default") -> dict[str, Any]:
    """Write ``out_dir/bids``, ``out_dir/photos``, ``out_dir/truth.tsv`` (+ ``truth.json``).

    With ``with_defaced``, ``out_dir/bids_defaced`` (same participants,
    same noise, face cut off) is written as well. ``mode``: "default" or
    "hard" (:data:`HARD`, see the module docstring).
    """
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {sorted(CONTRASTS)}, got {contrast!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if n < 1:
        raise ValueError("n must be >= 1")
    head_paths = find_heads(list(heads)) if heads else default_heads()
    if not head_paths:
        raise FileNotFoundError("no base heads: pass --heads (a BIDS dataset or head images)")
    out = Path(out_dir)
    bids_dir, photos_dir = out / "bids", out / "photos"
    width = max(2, len(str(n)))
    parts = [sample_participant(i, seed, head_paths, contrast=contrast, spread=spread,
                                label=f"{i + 1:0{width}d}", photos=photos, mode=mode)
             for i in range(n)]
    defaced_dirs = (out / "bids_defaced",) if with_defaced else ()
    for d in (bids_dir, *defaced_dirs):
        d.mkdir(parents=True, exist_ok=True)
        _write_dataset_files(d, parts, contrast, deface or d in defaced_dirs, seed, spread, mode)
    jobs = [((p, bids_dir, photos_dir), {"deface_dirs": defaced_dirs, "deface": deface,
                                          "photo_size": photo_size}) for p in parts]
    begin = time.perf_counter()
    results = []
    if nprocs > 1 and n > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(nprocs, n), mp_context=ctx) as pool:
            for res in pool.map(_worker, jobs):
                results.append(res)
                if not quiet:
                    print(f"sub-{res['label']}: {len(res['photos'])} photos, "
                          f"{sum(res['seconds'].values()):.1f} s", flush=True)
    else:
        for job in jobs:
            res = _worker(job)
            results.append(res)
            if not quiet:
                print(f"sub-{res['label']}: {len(res['photos'])} photos, "
                      f"{sum(res['seconds'].values()):.1f} s", flush=True)
    for part, res in zip(parts, results):  # what the hard mode set from the base heads
        part.hard.update(res.get("hard") or {})
    rows = [p.row() for p in parts]
    cols = list(rows[0])
    (out / "truth.tsv").write_text("\t".join(cols) + "\n" + "".join(
        "\t".join(str(r[c]) for c in cols) + "\n" for r in rows))
    truth = {"seed": seed, "n": n, "contrast": contrast, "spread": spread, "deface": deface,
             "mode": mode, **({"hard": HARD} if mode == "hard" else {}),
             "heads": [str(p) for p in head_paths],
             "participants": [{**p.row(), "free_bumps": p.free_bumps,
                               "contrast_nodes": p.contrast_nodes, "bias_coefs": p.bias_coefs}
                              for p in parts]}
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return {"out": str(out), "bids": str(bids_dir), "photos": str(photos_dir),
            "seconds": time.perf_counter() - begin, "participants": results}


def _write_dataset_files(bids_dir: Path, parts: list[Participant], contrast: str, defaced: bool,
                         seed: int, spread: float, mode: str = "default") -> None:
    (bids_dir / "dataset_description.json").write_text(json.dumps({
        "Name": f"facerisk simulated cohort (n={len(parts)}, seed={seed}, {contrast}"
                + (f", {mode} mode" if mode != "default" else "")
                + (", defaced" if defaced else "") + ")",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "Derived from public heads (BSD-2-Clause, MIT, BSD); see README",
        "Authors": ["facerisk simulate"],
        "GeneratedBy": [{"Name": "facerisk-simulate",
                         "Description": f"bids_app.simulate seed={seed} spread={spread}"
                                        + (f" mode={mode}" if mode != "default" else "")}],
    }, indent=2) + "\n")
    (bids_dir / "README").write_text(
        "Simulated participants made by bids_app.simulate (facerisk): each is a real public\n"
        "head with a random smooth change of face shape, scanned with a random pose, grid,\n"
        "contrast remap, pads, bias field and noise. Not real people. See truth.tsv beside\n"
        "this folder for the parameters.\n")
    (bids_dir / "participants.tsv").write_text("participant_id\tbase_head\n" + "".join(
        f"sub-{p.label}\t{p.base_head}\n" for p in parts))
    (bids_dir / "participants.json").write_text(json.dumps({
        "base_head": {"Description": "real public head the simulated participant was made from"}},
        indent=2) + "\n")
