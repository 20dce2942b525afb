#!/usr/bin/env python
"""Face-present decision: the distributions behind its thresholds, and how often it is right.

For every scan (the real heads of ``benchmarks/robustness.py`` with each
alteration of :mod:`bids_app.mri.augment`, and simulated cohorts written by
``facerisk-simulate --with-defaced [--deface-methods plane]``: intact, the
simulator's defaced copies, plus a skull-stripped copy of each intact scan
made with ``augment``), the
participant level's steps run: head reconstruction, ``--n-renders`` seeded
renders with depth maps, YuNet (two passes), every detection measured in 3D
(:func:`bids_app.presence.face_geometry`), and the scan decision
(:func:`bids_app.presence.scan_decision`). Printed:

1. the distribution (percentiles) of the 3D nose relief and the eye
   distance of each render's first detection, for scans with a face and
   for scans without one (defaced, skull-stripped): where the thresholds
   :data:`~bids_app.presence.MIN_RELIEF_MM` and
   :data:`~bids_app.presence.EYE_DISTANCE_MM` sit between them;
2. per scan, the renders supporting a face (the scan-level evidence), for
   both kinds of scan;
3. per alteration or cohort state: renders counted as showing a face, and
   scans called "face present" (after the participant level's second look,
   aimed higher, for scans whose first renders are ``Review``).

Usage::

    python benchmarks/detection.py --heads                     # real heads x alterations
    python benchmarks/detection.py --cohort OUT [OUT ...]      # simulated cohorts
    python benchmarks/detection.py --rows rows.json            # reprint saved measurements
    python benchmarks/detection.py --heads --cohort OUT --save rows.json
    python benchmarks/detection.py --heads --variants FLAIR deface --cohort OUT --limit 10
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bids_app import presence  # noqa: E402
from bids_app.config import Settings  # noqa: E402
from bids_app.mri import augment, load_head, reconstruct_head  # noqa: E402
from bids_app.presence import MIN_FACE_CUT_MM2  # noqa: E402

#: The participant level's default detection settings.
DEFAULT_SETTINGS = Settings(bids_dir=Path("."), output_dir=Path("."), analysis_level="participant")

#: Alterations of a real head, and states of a simulated cohort, that remove its face; so does every
#: alteration whose name starts with "deface-" or "skullstrip-" and every cohort state whose name
#: starts with "defaced-", "mask-" or "plane-" (:func:`has_face`).
NO_FACE = {"deface", "skullstrip", "defaced", "mask", "plane", "mp2rage-uni-deface"}


def has_face(state: str) -> bool:
    """Whether the scans of this alteration or cohort state show a face."""
    return state not in NO_FACE and not state.startswith(("deface-", "skullstrip-", "defaced-", "mask-", "plane-"))


#: Other ways of storing a scan's intensities (the cohorts' ``STATE-NAME`` states, on request): the
#: air at -1024 (signed integers), z-scored (machine-learning-ready datasets) and inverted (an
#: intensity scale turned upside down: the air the brightest part).
ENCODINGS = {
    "signed": lambda data: data - np.float32(1024.0),
    "zscore": lambda data: (data - data.mean()) / data.std(),
    "inverted": lambda data: data.max() - data,
}


def _with_phantom(data, affine, tip):
    """A bottle of water beside the head, in a field of view padded by 40 mm to hold it."""
    from bids_app.mri.mask import head_mask

    padded, padded_affine = augment.pad(data, affine, 40.0)
    zooms = np.linalg.norm(padded_affine[:3, :3], axis=0)
    return augment.add_phantom(padded, padded_affine, head_mask(padded, zooms), tip)


def extra_variants(vol, mask, frame) -> dict:
    """Harder alterations than robustness.py's: dim noisy lower faces on FLAIR, thick slices,
    the no-face alterations on FLAIR-like and thick-slice copies, headers wrong about how the
    head lies and ghosts (with and without a face)."""
    d, a = vol.data, vol.affine
    tip, ant, sup = frame.nose_tip, frame.anterior, frame.superior

    def flair():
        return augment.remap_contrast(d, a, "FLAIR")

    return {
        "FLAIR-dim-strong": lambda: augment.dim_lower_face(*flair(), tip, ant, sup, low=0.2, noise=0.06,
                                                           start_mm=0.0),
        "FLAIR-dim-1x1x3": lambda: augment.add_noise(*augment.resample(
            *augment.dim_lower_face(*flair(), tip, ant, sup), (1.0, 1.0, 3.0)), 0.02),
        "T2w-dim-bias": lambda: augment.bias_field(
            *augment.dim_lower_face(*augment.remap_contrast(d, a, "T2w"), tip, ant, sup), low=0.5),
        "deface-FLAIR-noise": lambda: augment.add_noise(*augment.deface(*flair(), tip, ant, sup), 0.03),
        "skullstrip-FLAIR": lambda: augment.skull_strip(*flair(), mask, floor_z=float(tip[2])),
        "deface-1x1x3": lambda: augment.resample(*augment.deface(d, a, tip, ant, sup), (1.0, 1.0, 3.0)),
        # headers wrong about how the head lies: the face points up, down, sideways
        "header-face-up": lambda: augment.turn_voxels(d, a, 1, (1, 2)),
        "header-upside-down": lambda: augment.turn_voxels(d, a, 2, (1, 2)),
        "header-face-left": lambda: augment.turn_voxels(d, a, 1, (0, 1)),
        # a prone head whose header still says supine: the face looks at the header's posterior
        "header-prone": lambda: augment.turn_voxels(d, a, 2, (0, 1)),
        "deface-header-prone": lambda: augment.turn_voxels(*augment.deface(d, a, tip, ant, sup), 2, (0, 1)),
        "deface-header-face-up": lambda: augment.turn_voxels(*augment.deface(d, a, tip, ant, sup), 1, (1, 2)),
        "skullstrip-header-upside-down": lambda: augment.turn_voxels(
            *augment.skull_strip(d, a, mask, floor_z=float(tip[2])), 2, (1, 2)),
        # a Nyquist ghost (a third of the signal, half the field of view along A-P), with and
        # without a face
        "ghost-third": lambda: augment.add_ghost(d, a, 0.33, axis=1),
        "FLAIR-ghost": lambda: augment.add_ghost(*flair(), 0.25, axis=1),
        "deface-ghost": lambda: augment.add_ghost(*augment.deface(d, a, tip, ant, sup), 0.33, axis=1),
        # k-space ghosting at full intensity (several ghosts of different phase), and a face
        # folded onto the back of the head by a field of view too short (aliasing)
        "kspace-ghosts": lambda: augment.kspace_ghosts(d, a, 4, 1.0, axis=1),
        "fold-15mm": lambda: augment.fold_front(d, a, 15.0),
        "fold-35mm": lambda: augment.fold_front(d, a, 35.0),
        # a field of view that ends inside the face (no aliasing), and face-less images whose
        # front touches the image's edge: cropped to their non-zero voxels, or cut at the front
        # of what the defacing left
        "crop-5mm": lambda: augment.crop_front(d, a, 5.0),
        "crop-15mm": lambda: augment.crop_front(d, a, 15.0),
        "crop-35mm": lambda: augment.crop_front(d, a, 35.0),
        # a field of view that ends inside the head's side (an ear and the cheek beside it cut)
        "crop-side-20mm": lambda: augment.crop_front(d, a, 20.0, axis=0),
        "crop-side-40mm": lambda: augment.crop_front(d, a, 40.0, axis=0),
        "deface-crop-side-20mm": lambda: augment.crop_front(*augment.deface(d, a, tip, ant, sup), 20.0, axis=0),
        "skullstrip-cropped": lambda: augment.crop_to_content(*augment.skull_strip(d, a, mask,
                                                                                   floor_z=float(tip[2]))),
        "deface-cropped": lambda: augment.crop_to_content(*augment.deface(d, a, tip, ant, sup)),
        "deface-tight": lambda: augment.crop_front(*augment.deface(d, a, tip, ant, sup), 0.0),
        # a field of view that ends below at the nose tip, 10 and 20 mm above it (zeroed, as a slab
        # resampled into a larger grid): the nose cut from below, the mouth and chin gone
        "cut-at-nose": lambda: augment.cut_below(d, a, float(tip[2])),
        "cut-nose+10mm": lambda: augment.cut_below(d, a, float(tip[2]) + 10.0),
        "cut-nose+20mm": lambda: augment.cut_below(d, a, float(tip[2]) + 20.0),
        "deface-cut-at-nose": lambda: augment.cut_below(*augment.deface(d, a, tip, ant, sup), float(tip[2])),
        "deface-cut-nose+20mm": lambda: augment.cut_below(*augment.deface(d, a, tip, ant, sup), float(tip[2]) + 20.0),
        # MP2RAGE UNI images (the air noise over the whole intensity range), with and without a
        # face (the inversions defaced, whose zeros become noise, or the UNI image defaced, zeros in
        # the noise), and with the field of view ending inside the face
        "mp2rage-uni": lambda: augment.mp2rage_uni(d, a),
        "deface-mp2rage-uni": lambda: augment.mp2rage_uni(*augment.deface(d, a, tip, ant, sup)),
        "mp2rage-uni-deface": lambda: augment.deface(*augment.mp2rage_uni(d, a), tip, ant, sup),
        "mp2rage-uni-crop-15mm": lambda: augment.mp2rage_uni(*augment.crop_front(d, a, 15.0)),
        # very noisy magnitude images (rough backgrounds whose air is still dark), with and without a face
        # low resolution (isotropic 3 and 4 mm; 2D slices 5 mm thick in each direction), with and
        # without a face
        # clinical 2D FLAIR: 0.5 mm in plane, slices 5 mm thick with a 1.5 mm gap, axial or coronal
        "FLAIR-axial-0.5x0.5x6.5": lambda: augment.resample(*flair(), (0.5, 0.5, 6.5)),
        "FLAIR-coronal-0.5x6.5x0.5": lambda: augment.resample(*flair(), (0.5, 6.5, 0.5)),
        "deface-FLAIR-axial-0.5x0.5x6.5": lambda: augment.resample(*augment.deface(*flair(), tip, ant, sup),
                                                                   (0.5, 0.5, 6.5)),
        "iso3": lambda: augment.resample(d, a, (3.0, 3.0, 3.0)),
        "iso4": lambda: augment.resample(d, a, (4.0, 4.0, 4.0)),
        "axial-1x1x5": lambda: augment.resample(d, a, (1.0, 1.0, 5.0)),
        "coronal-1x5x1": lambda: augment.resample(d, a, (1.0, 5.0, 1.0)),
        "sagittal-5x1x1": lambda: augment.resample(d, a, (5.0, 1.0, 1.0)),
        "deface-iso4": lambda: augment.resample(*augment.deface(d, a, tip, ant, sup), (4.0, 4.0, 4.0)),
        "deface-coronal-1x5x1": lambda: augment.resample(*augment.deface(d, a, tip, ant, sup), (1.0, 5.0, 1.0)),
        # head motion (ringing, ghosts along A-P) and large poses
        "motion": lambda: augment.motion(d, a),
        "motion-strong": lambda: augment.motion(d, a, n_moves=6, degrees=8.0, shift_mm=6.0),
        "deface-motion-strong": lambda: augment.motion(*augment.deface(d, a, tip, ant, sup), n_moves=6,
                                                       degrees=8.0, shift_mm=6.0),
        # larger poses in a field of view padded by 40 mm (the face stays in the image)
        "padded-pitch40": lambda: augment.rotate_head(*augment.pad(d, a, 40.0), pitch=40.0),
        "padded-pitch-40": lambda: augment.rotate_head(*augment.pad(d, a, 40.0), pitch=-40.0),
        "padded-roll40": lambda: augment.rotate_head(*augment.pad(d, a, 40.0), roll=40.0),
        "deface-padded-pitch-40": lambda: augment.rotate_head(*augment.pad(*augment.deface(d, a, tip, ant, sup), 40.0),
                                                              pitch=-40.0),
        # a tilted head on a slab aligned with it: straight in the voxels, tilted in the header
        "tilted-pitch25": lambda: augment.tilt_header(d, a, pitch=25.0),
        "tilted-pitch-25": lambda: augment.tilt_header(d, a, pitch=-25.0),
        "tilted-pitch40": lambda: augment.tilt_header(d, a, pitch=40.0),
        "tilted-roll25": lambda: augment.tilt_header(d, a, roll=25.0),
        "tilted-yaw40": lambda: augment.tilt_header(d, a, yaw=40.0),
        # and the other way round: an upright head on a slab tilted by 40 or 25 degrees (straight in
        # the header, tilted in the voxels), the field of view padded by 30 mm to hold the whole head
        "oblique-pitch40": lambda: augment.resample(*augment.pad(d, a, 30.0), vol.zooms, rotation_deg=(40.0, 0.0, 0.0)),
        "oblique-roll25": lambda: augment.resample(*augment.pad(d, a, 30.0), vol.zooms, rotation_deg=(0.0, 25.0, 0.0)),
        "deface-tilted-pitch25": lambda: augment.tilt_header(*augment.deface(d, a, tip, ant, sup), pitch=25.0),
        "deface-tilted-pitch40": lambda: augment.tilt_header(*augment.deface(d, a, tip, ant, sup), pitch=40.0),
        "skullstrip-tilted-pitch-40": lambda: augment.tilt_header(
            *augment.skull_strip(d, a, mask, floor_z=float(tip[2])), pitch=-40.0),
        "deface-oblique": lambda: augment.resample(*augment.deface(d, a, tip, ant, sup), vol.zooms,
                                                   rotation_deg=(12.0, 0.0, 8.0)),
        "deface-oblique-pitch40": lambda: augment.resample(*augment.pad(*augment.deface(d, a, tip, ant, sup), 30.0),
                                                           vol.zooms, rotation_deg=(40.0, 0.0, 0.0)),
        "pitch30": lambda: augment.rotate_head(d, a, pitch=30.0),
        "pitch-30": lambda: augment.rotate_head(d, a, pitch=-30.0),
        "yaw30": lambda: augment.rotate_head(d, a, yaw=30.0),
        "roll30": lambda: augment.rotate_head(d, a, roll=30.0),
        # other encodings: a constant baseline in the air, air at -1024 (signed), 8-bit
        # quantisation, and a fine grid (0.6 mm, as at 7 T)
        "baseline-air": lambda: (d + np.float32(0.1 * np.percentile(d, 99)), a),
        "signed-1024": lambda: (ENCODINGS["signed"](d), a),
        "zscore": lambda: (ENCODINGS["zscore"](d), a),
        "deface-signed-1024": lambda: (ENCODINGS["signed"](augment.deface(d, a, tip, ant, sup)[0]), a),
        "deface-zscore": lambda: (ENCODINGS["zscore"](augment.deface(d, a, tip, ant, sup)[0]), a),
        "inverted": lambda: (ENCODINGS["inverted"](d), a),
        "inverted-FLAIR-noise": lambda: (lambda dd, aa: (ENCODINGS["inverted"](dd), aa))(
            *augment.add_noise(*augment.remap_contrast(d, a, "FLAIR"), 0.03)),
        "deface-inverted": lambda: (ENCODINGS["inverted"](augment.deface(d, a, tip, ant, sup)[0]), a),
        "signed-mp2rage-uni": lambda: (augment.mp2rage_uni(d, a)[0] - np.float32(2048.0), a),
        "uint8": lambda: (np.round(np.clip(d / np.percentile(d, 99.5), 0, 1) * 255).astype(np.float32), a),
        "iso0.6": lambda: augment.resample(d, a, (0.6, 0.6, 0.6)),
        "deface-baseline-air": lambda: (lambda dd, aa: (dd + np.float32(0.1 * np.percentile(dd, 99)), aa))(
            *augment.deface(d, a, tip, ant, sup)),
        # smaller heads (a child's: every length 0.8 and 0.65 times), fat-suppressed T2w, and a
        # bottle of water beside the head
        "head-0.8": lambda: augment.scale_head(d, a, 0.8),
        "head-0.65": lambda: augment.scale_head(d, a, 0.65),
        "deface-head-0.65": lambda: augment.scale_head(*augment.deface(d, a, tip, ant, sup), 0.65),
        "T2w-fatsat": lambda: augment.remap_contrast(d, a, "T2w-fatsat"),
        "deface-T2w-fatsat": lambda: augment.remap_contrast(*augment.deface(d, a, tip, ant, sup), "T2w-fatsat"),
        # neck, shoulders and chest in a field of view extended downwards: the chest 30 mm behind
        # the nose tip, or 20 mm in front of it (a supine person with a large chest)
        "torso": lambda: augment.add_torso(d, a, mask, tip, front_mm=-30.0),
        "torso-chest-in-front": lambda: augment.add_torso(d, a, mask, tip, front_mm=20.0),
        "deface-torso-chest-in-front": lambda: augment.add_torso(*augment.deface(d, a, tip, ant, sup), mask, tip,
                                                                 front_mm=20.0),
        "phantom": lambda: _with_phantom(d, a, tip),
        # a corrupt slice: an axial plate of garbage 5 mm above the nose tip (head and air raised by
        # five times the 99.9th percentile), a coronal slice dropped 10 mm behind it
        "slice-plate": lambda: augment.corrupt_slice(d, a, tip + 5.0 * np.asarray(sup), axis=2),
        "slice-dropped": lambda: augment.corrupt_slice(d, a, tip - 10.0 * np.asarray(ant), axis=1, kind="blank"),
        "deface-slice-plate": lambda: augment.corrupt_slice(*augment.deface(d, a, tip, ant, sup),
                                                            tip + 5.0 * np.asarray(sup), axis=2),
        "deface-phantom": lambda: _with_phantom(*augment.deface(d, a, tip, ant, sup), tip),
        # a portable low-field scanner (64 mT class): 1.6 x 1.6 x 5 mm, noisy, a strong bias field
        "lowfield": lambda: augment.bias_field(*augment.add_noise(*augment.resample(d, a, (1.6, 1.6, 5.0)), 0.08),
                                               low=0.5),
        "deface-lowfield": lambda: augment.bias_field(*augment.add_noise(*augment.resample(
            *augment.deface(d, a, tip, ant, sup), (1.6, 1.6, 5.0)), 0.08), low=0.5),
        "noise-15%": lambda: augment.add_noise(d, a, 0.15),
        "noise-25%": lambda: augment.add_noise(d, a, 0.25),
        "deface-noise-15%": lambda: augment.add_noise(*augment.deface(d, a, tip, ant, sup), 0.15),
        "deface-noise-25%": lambda: augment.add_noise(*augment.deface(d, a, tip, ant, sup), 0.25),
    }


def measure(data, affine, model, n_renders: int) -> tuple[list[list[dict]], str | None, float, bool]:
    """The participant level's looks at one scan (:func:`bids_app.workflows.face_search.search_face`,
    view seed 0): per render of the look it keeps, each detection's score and 3D geometry; which
    further look was kept ("used": the second look, aimed higher, after ``Review``; "not used": that
    look made and not kept; "turned": the look in the head's own axes; "smoothness mask": the looks
    on the head masked again from the image's smoothness, on a rough background; None otherwise;
    a re-aimed look kept is not named); the area (mm^2) the image's edge cuts off the front of the head
    (``FaceCutMm2``); and whether the kept look's decision used the lower nose thresholds of a cut
    head (``cut_by_edge`` of :func:`~bids_app.presence.scan_decision`)."""
    import nibabel as nib

    from bids_app.render import sample_view_params
    from bids_app.workflows.face_search import search_face, search_smoothness_mask

    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, np.float32), affine))
    canonical = (np.asarray(img.dataobj, np.float32), img.affine, img.header.get_zooms()[:3])
    try:
        head = reconstruct_head(*canonical)
    except ValueError:
        return [[] for _ in range(n_renders)], None, float("nan"), False
    views = sample_view_params(0, n_renders)
    search = search_face(head, views, [model], DEFAULT_SETTINGS)
    head, search = search_smoothness_mask(*canonical, head, search, views, [model], DEFAULT_SETTINGS)
    finding = search.look.findings[0]
    rows = [[{"score": float(d.score), "pass": found_pass, **g.to_json()} for d, g in zip(detections, geoms)]
            for (detections, found_pass), geoms in zip(finding.detections, finding.geometries)]
    if search.smoothness_look is not None and search.smoothness_look["Used"]:
        second = "smoothness mask"
    elif search.turned is not None and search.turned["Used"]:
        second = "turned"
    elif search.second_look is not None:
        second = "used" if search.second_look["Used"] else "not used"
    else:
        second = None
    return rows, second, head.face_cut_mm2, finding.decision.cut_by_edge


def real_head_scans(n_renders: int, model, only: list[str] | None = None):
    """(source, alteration, per-render detections) for every real head and alteration (or ``only`` these)."""
    from participant_speed import default_heads
    from robustness import variants

    for path in default_heads():
        vol = load_head(path)
        unaltered = reconstruct_head(vol.data, vol.affine, vol.zooms)
        makers = {**variants(vol, unaltered.mask, unaltered.frame),
                  **extra_variants(vol, unaltered.mask, unaltered.frame)}
        for name, make in makers.items():
            if only is None or name in only:
                yield (path.name.split(".")[0], name, *measure(*make(), model, n_renders))


#: Copies made here of each intact scan of a cohort (the cohorts' own scans hold the whole head):
#: skull-stripped, skull-stripped and cropped to its non-zero voxels (the brain touches the image's
#: edge), and the field of view ending 15 mm inside the face.
COHORT_COPIES = ("skullstrip", "skullstrip-cropped", "crop-15mm")


def cohort_scans(cohort: Path, n_renders: int, model, limit: int | None = None,
                 states: list[str] | None = None):
    """(participant, state, per-render detections, ...) for a simulated cohort: intact, every copy
    the simulator de-identified (``bids_defaced``: mask; ``bids_defaced-<method>``: ``plane``,
    ``mask``; placed with the simulator's true face frame), and the :data:`COHORT_COPIES` of each
    intact scan.

    A second defacing made here with :func:`augment.deface` would be placed by the face frame
    *estimated* on the intact scan; where that frame takes a lower-face fragment for the nose
    tip the cut lands too low and leaves eyes and nose, so its "no face" label would be wrong.
    The simulator's copies are placed by the truth instead. ``states``: only these (for
    example ``skullstrip`` after a change to :func:`augment.skull_strip`); ``STATE-mp2rage-uni``
    (for example ``intact-mp2rage-uni``, ``mask-mp2rage-uni``) adds that state's scans made into
    MP2RAGE UNI images (:func:`augment.mp2rage_uni`), and ``STATE-signed`` and ``STATE-zscore``
    the scans stored otherwise (:data:`ENCODINGS`), only when asked for."""
    import nibabel as nib

    kinds = [("bids", "intact"), ("bids_defaced", "defaced")]
    kinds += [(d.name, d.name.split("-", 1)[1]) for d in sorted(cohort.glob("bids_defaced-*"))
              if d.name.split("-", 1)[1] in ("mask", "plane")]

    def wanted(state):
        return states is None or state in states

    for kind, state in kinds:
        copies = [c for c in COHORT_COPIES if state == "intact" and wanted(c)]
        uni = f"{state}-mp2rage-uni"  # on request only: the scan as an MP2RAGE UNI image
        encodings = {f"{state}-{name}": encode for name, encode in ENCODINGS.items() if states and
                     f"{state}-{name}" in states}  # on request only: the scan stored otherwise
        if not (wanted(state) or copies or (states and uni in states) or encodings):
            continue
        for path in sorted((cohort / kind).glob("sub-*/anat/*.nii*"))[:limit]:
            sub = f"{cohort.name}/{path.name.split('_')[0]}"
            img = nib.as_closest_canonical(nib.load(path))
            data = np.asarray(img.dataobj, np.float32)
            if wanted(state):
                yield (sub, state, *measure(data, img.affine, model, n_renders))
            if states and uni in states:
                yield (sub, uni, *measure(*augment.mp2rage_uni(data, img.affine), model, n_renders))
            for name, encode in encodings.items():
                yield (sub, name, *measure(encode(data), img.affine, model, n_renders))
            if not copies:
                continue
            try:
                head = reconstruct_head(data, img.affine, img.header.get_zooms()[:3])
            except ValueError:
                continue

            def stripped():
                return augment.skull_strip(data, img.affine, head.mask, floor_z=float(head.frame.nose_tip[2]))

            makers = {"skullstrip": stripped, "skullstrip-cropped": lambda: augment.crop_to_content(*stripped()),
                      "crop-15mm": lambda: augment.crop_front(data, img.affine, 15.0)}
            for copy in copies:
                yield (sub, copy, *measure(*makers[copy](), model, n_renders))


def _geometry(row: dict) -> presence.FaceGeometry:
    def value(key):
        return float("nan") if row.get(key) is None else float(row[key])

    nose = row.get("Nose3D")
    return presence.FaceGeometry(value("NoseReliefMm"), value("EyeDistanceMm"), value("EyeMouthMm"),
                                 nose=np.asarray(nose if nose else [np.nan] * 3, float),
                                 eye_nose=value("EyeNoseMm"), nose_over_cheeks=value("NoseOverCheeksMm"))


def percentiles_text(values, fmt: str = "6.1f") -> str:
    """``n`` and the 0/1/5/50/95/99/100th percentiles of the finite values (also used by audit.py)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if not v.size:
        return "n=0"
    q = np.percentile(v, [0, 1, 5, 50, 95, 99, 100])
    return f"n={v.size:4d}  " + "  ".join(f"{x:{fmt}}" for x in q)


def report(scans: list[dict]) -> None:
    first = {True: [], False: []}
    support = {True: [], False: []}
    over_cheeks = {True: [], False: []}  # per scan: the decision's median over supporting detections
    eye_distance = {True: [], False: []}  # the same for the eye distance
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    missed = []
    second_looks: dict[bool, list[tuple[str, str]]] = {True: [], False: []}  # (scan, "used" or "not used")
    cuts: dict[bool, list[float]] = {True: [], False: []}  # FaceCutMm2 per scan
    cut_scans: list[str] = []
    for scan in scans:
        face = has_face(scan["state"])
        renders = scan["renders"]
        first[face] += [dets[0] for dets in renders if dets]
        decision = presence.scan_decision([[_geometry(d) for d in dets] for dets in renders],
                                          cut_by_edge=bool(scan.get("cut")))
        support[face].append(decision.support)
        if decision.support >= decision.need:
            over_cheeks[face].append(decision.over_cheeks)
            eye_distance[face].append(decision.eye_distance)
        counted = sum(c is not None for c in decision.chosen)
        row = table[("face     " if face else "no face  ") + scan["state"]]
        row[0] += counted
        row[1] += len(renders)
        row[2] += decision.face
        row[3] += 1
        if scan.get("second_look"):
            second_looks[face].append((f"{scan['source']} {scan['state']}", scan["second_look"]))
        if face and counted <= 2 or not face and counted:
            missed.append(f"{scan['source']} {scan['state']}: {counted}/{len(renders)}"
                          f"{' Review' if decision.review else ''} ({decision.reason})")
        cut_mm2 = scan.get("face_cut_mm2")
        if cut_mm2 is not None and np.isfinite(cut_mm2):
            cuts[face].append(cut_mm2)
            if cut_mm2 >= MIN_FACE_CUT_MM2:
                cut_scans.append(f"{'face   ' if face else 'no face'} {scan['source']} {scan['state']}: "
                                 f"{cut_mm2:.0f} mm^2, {counted}/{len(renders)} renders, "
                                 f"{'face' if decision.face else 'Review' if decision.review else 'no face'}")
    print("1. first detection of each render with a detection: percentiles 0 1 5 50 95 99 100")
    for face in (True, False):
        kind = "face   " if face else "no face"
        print(f"   {kind} nose relief (mm)   {percentiles_text(d['NoseReliefMm'] for d in first[face])}")
        print(f"   {kind} eye distance (mm)  {percentiles_text(d['EyeDistanceMm'] for d in first[face])}")
        print(f"   {kind} eye-nose (mm)      {percentiles_text(d.get('EyeNoseMm') for d in first[face])}")
        strong = [d for d in first[face] if (d["NoseReliefMm"] or -1) >= presence.MIN_RELIEF_MM
                  and presence.EYE_DISTANCE_MM[0] <= (d["EyeDistanceMm"] or 0) <= presence.EYE_DISTANCE_MM[1]]
        print(f"   {kind} eye-nose (mm) of those passing relief and eye distance  "
              f"{percentiles_text(d.get('EyeNoseMm') for d in strong)}")
        print(f"   {kind} nose over cheeks (mm) of those               "
              f"{percentiles_text(d.get('NoseOverCheeksMm') for d in strong)}")
        print(f"   {kind} scans with enough support: median nose over cheeks (mm)  "
              f"{percentiles_text(over_cheeks[face])}")
        print(f"   {kind} scans with enough support: median eye distance (mm)  "
              f"{percentiles_text(eye_distance[face])}")
    print(f"   thresholds: relief >= {presence.MIN_RELIEF_MM:g} mm, eye distance "
          f"{presence.EYE_DISTANCE_MM[0]:g}-{presence.EYE_DISTANCE_MM[1]:g} mm, eyes to nose <= "
          f"{presence.MAX_EYE_NOSE_MM:g} mm, eyes to mouth <= {presence.MAX_EYE_MOUTH_MM:g} mm (where measured), "
          f"scan median of nose over cheeks >= {presence.MIN_NOSE_OVER_CHEEKS_MM:g} mm (where seen), "
          f"scan median of eye distance <= {presence.MAX_MEDIAN_EYE_DISTANCE_MM:g} mm")
    print(f"2. renders supporting a face, per scan (face present from "
          f"{100 * presence.MIN_SUPPORT_FRACTION:g}% of the renders):")
    for face in (True, False):
        counts = np.bincount(support[face], minlength=11) if support[face] else []
        print(f"   {'face   ' if face else 'no face'} scans {len(support[face]):4d}: "
              + " ".join(f"{k}:{c}" for k, c in enumerate(counts) if c))
    print("3. renders counted as showing a face, and scans with a face, per alteration or state")
    totals = {True: [0, 0, 0, 0], False: [0, 0, 0, 0]}
    for name, (counted, total, with_face, n) in sorted(table.items()):
        print(f"   {name:28s} renders {counted:5d}/{total:5d} ({100 * counted / max(total, 1):5.1f}%)  "
              f"scans {with_face:4d}/{n:4d}")
        t = totals[name.startswith("face")]
        for i, v in enumerate((counted, total, with_face, n)):
            t[i] += v
    for face in (True, False):
        c, t, f, n = totals[face]
        print(f"   ALL {'face   ' if face else 'no face'}  renders {c}/{t} ({100 * c / max(t, 1):.2f}%), "
              f"scans with a face {f}/{n}")
    for face in (True, False):
        used = sum(status == "used" for _, status in second_looks[face])
        print(f"   second looks (aimed {presence.SECOND_LOOK_MM:g} mm higher after a Review) on "
              f"{'faces' if face else 'face-less scans'}: {len(second_looks[face])}, kept {used}"
              + "".join(f"\n      {name}: {status}" for name, status in second_looks[face]))
    print(f"4. area (mm^2) of the head on the image's edge in front of the face, percentiles "
          f"0 1 5 50 95 99 100 (cut from {MIN_FACE_CUT_MM2:g}):")
    for face in (True, False):
        print(f"   {'face   ' if face else 'no face'} {percentiles_text(cuts[face], '7.0f')}")
    for line in cut_scans:
        print("   " + line)
    if missed:
        print("scans a person would judge otherwise (face with 0-2 renders counted, or no face with any):")
        for line in missed:
            print("   " + line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", action="store_true", help="real heads x alterations")
    ap.add_argument("--cohort", nargs="*", type=Path, default=[], help="simulated cohorts (--with-defaced)")
    ap.add_argument("--rows", nargs="*", type=Path, default=[], help="saved measurements to reprint")
    ap.add_argument("--save", type=Path, help="save the measurements (JSON)")
    ap.add_argument("--n-renders", type=int, default=10)
    ap.add_argument("--variants", nargs="+", help="only these alterations of the real heads")
    ap.add_argument("--limit", type=int, help="only the first N participants of each cohort")
    ap.add_argument("--states", nargs="+", help="only these states of the cohorts (intact, defaced, mask, "
                    "plane, skullstrip, skullstrip-cropped, crop-15mm; STATE-mp2rage-uni, STATE-signed, "
                    "STATE-zscore on request)")
    args = ap.parse_args(argv)
    logging.getLogger("facerisk").setLevel(logging.ERROR)  # the looks' log lines: the tables say it
    scans: list[dict] = []
    for path in args.rows:
        scans += json.loads(path.read_text())
    sources = []
    if args.heads or args.cohort:
        from bids_app.face import load_face_model

        model = load_face_model("sface")
        if args.heads:
            sources.append(real_head_scans(args.n_renders, model, args.variants))
        sources += [cohort_scans(c, args.n_renders, model, args.limit, args.states) for c in args.cohort]
    for source in sources:
        t = time.perf_counter()
        for name, state, renders, second, cut_mm2, cut in source:
            scans.append({"source": name, "state": state, "renders": renders, "second_look": second,
                          "face_cut_mm2": cut_mm2, "cut": cut})
            n_face = sum(bool(r) for r in renders)
            print(f"  {name:28s} {state:20s} detector fired in {n_face:2d}/{len(renders)}  "
                  f"({time.perf_counter() - t:.1f} s)", flush=True)
            t = time.perf_counter()
            if args.save:
                args.save.write_text(json.dumps(scans))
    if not scans:
        ap.error("nothing to measure: give --heads, --cohort or --rows")
    report(scans)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
