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
from .deface import (
    DEFACE_METHODS, deface_method, reface_head, reface_template, sidecar_claim, template_in_base,
)
from .deform import _FLATTEN_GAIN, _face_box, _warp, deformation_field
from .heads import _base_protrusion, default_heads, find_heads, load_base, nose_protrusion_mm
from .participant import Participant, sample_participant
from .photos import render_photos
from .scanner import _add_pads, _contrast_map, acquire
from .settings import CONTRASTS, HARD, MODES


def simulate_participant(part: Participant, bids_dir: Path, photos_dir: Path | None, *,
                         deface_dirs: tuple[Path | tuple[Path, str], ...] = (),
                         deface: bool | str = False, photo_size: tuple[int, int] | None = None,
                         template: Path | None = None) -> dict[str, Any]:
    """Write one participant's MRI (and photos); returns timing and file info.

    ``deface`` (False, True = "mask", "mask", "plane" or "reface") applies to
    ``bids_dir``; ``deface_dirs`` are more datasets of the same scans, each a
    path (defaced with "mask") or a ``(path, method)`` pair. ``template``: the
    head whose face "reface" pastes (default :func:`.deface.reface_template`).
    """
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
    outs = [(bids_dir, deface_method(deface))] + [
        (Path(d), "mask") if isinstance(d, (str, os.PathLike)) else (Path(d[0]), deface_method(d[1]))
        for d in deface_dirs]
    refaced = None
    for target, method in outs:
        if method == "reface" and refaced is None:
            refaced = _refaced_head(part, base, head, template or reface_template([part.base_path]))
        rng = np.random.default_rng(part.seed + [1])  # same noise with and without defacing
        scanned = refaced if method == "reface" else head
        nii = acquire(part, base, scanned, deface=method if method != "reface" else False, rng=rng)
        anat = target / f"sub-{part.label}" / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        nib.save(nii, anat / f"{stem}.nii.gz")
        meta = dict(sidecar, **sidecar_claim(method))
        (anat / f"{stem}.json").write_text(json.dumps(meta, indent=2) + "\n")
    del refaced
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


def _refaced_head(part: Participant, base, head: np.ndarray, template: Path) -> np.ndarray:
    """``head`` with the template's face, in this participant's contrast (see :mod:`.deface`)."""
    data, deep = template_in_base(load_base(template), base)
    face = _contrast_map(data, part.contrast_nodes, part.contrast, deep)
    return reface_head(head, base, face)


# --------------------------------------------------------------------------- cohort


def _worker(args: tuple) -> dict[str, Any]:
    return simulate_participant(*args[0], **args[1])


def simulate_cohort(out_dir: str | os.PathLike[str], n: int = 6, seed: int = 0, *,
                    contrast: str = "FLAIR", heads: list[str | os.PathLike[str]] | None = None,
                    deface: bool | str = False, with_defaced: bool = False,
                    deface_methods: tuple[str, ...] | list[str] = (), spread: float = 1.0,
                    nprocs: int = 1, photos: tuple[int, int] = (3, 5),
                    photo_size: tuple[int, int] | None = None, quiet: bool = False,
                    mode: str = "default",
                    template: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write ``out_dir/bids``, ``out_dir/photos``, ``out_dir/truth.tsv`` (+ ``truth.json``).

    ``deface`` (False; True or "mask", "plane", "reface": see
    :mod:`.deface`) de-identifies ``out_dir/bids`` itself. With
    ``with_defaced``, ``out_dir/bids_defaced`` (same participants, same
    noise, face cut off with "mask") is written as well, and for each of
    ``deface_methods`` ``out_dir/bids_defaced-<method>``. ``truth.json``
    then maps each dataset folder to its method (``"datasets"``); ``template``
    is the head whose face "reface" pastes (default :data:`.deface.REFACE_TEMPLATE`). ``mode``:
    "default" or "hard" (:data:`HARD`, see the module docstring).
    """
    method = deface_method(deface)
    bad = [m for m in deface_methods if m not in DEFACE_METHODS]
    if bad:
        raise ValueError(f"deface methods must be among {list(DEFACE_METHODS)}, got {bad}")
    if template is not None and not Path(template).is_file():
        raise FileNotFoundError(f"reface template {template}: no such file")
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
    defaced_dirs = ((out / "bids_defaced", "mask"),) if with_defaced else ()
    defaced_dirs += tuple((out / f"bids_defaced-{m}", m) for m in dict.fromkeys(deface_methods))
    datasets = {bids_dir: method, **dict(defaced_dirs)}
    for d, how in datasets.items():
        d.mkdir(parents=True, exist_ok=True)
        _write_dataset_files(d, parts, contrast, how, seed, spread, mode)
    if "reface" in datasets.values():
        template = Path(template) if template is not None else reface_template(head_paths)
    else:
        template = None
    jobs = [((p, bids_dir, photos_dir), {"deface_dirs": defaced_dirs, "deface": deface,
                                          "photo_size": photo_size, "template": template})
            for p in parts]
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
    rows = [p.row() | ({"deface": method} if method else {}) for p in parts]
    cols = list(rows[0])
    (out / "truth.tsv").write_text("\t".join(cols) + "\n" + "".join(
        "\t".join(str(r[c]) for c in cols) + "\n" for r in rows))
    truth = {"seed": seed, "n": n, "contrast": contrast, "spread": spread, "deface": method or False,
             "mode": mode, **({"hard": HARD} if mode == "hard" else {}),
             **({"datasets": {d.name: how or "none" for d, how in datasets.items()}}
                if any(datasets.values()) else {}),
             **({"reface_template": str(template)} if template else {}),
             "heads": [str(p) for p in head_paths],
             "participants": [{**p.row(), "free_bumps": p.free_bumps,
                               "contrast_nodes": p.contrast_nodes, "bias_coefs": p.bias_coefs}
                              for p in parts]}
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return {"out": str(out), "bids": str(bids_dir), "photos": str(photos_dir),
            "seconds": time.perf_counter() - begin, "participants": results}


def _write_dataset_files(bids_dir: Path, parts: list[Participant], contrast: str,
                         method: str | None, seed: int, spread: float, mode: str = "default") -> None:
    (bids_dir / "dataset_description.json").write_text(json.dumps({
        "Name": f"facerisk simulated cohort (n={len(parts)}, seed={seed}, {contrast}"
                + (f", {mode} mode" if mode != "default" else "")
                + {None: "", "mask": ", defaced", "plane": ", defaced with a shear plane",
                   "reface": ", refaced"}[method] + ")",
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
