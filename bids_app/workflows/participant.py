"""Participant level: MRI -> head surface -> renders -> faces -> embeddings.

One call of :func:`run_participant` handles one participant and writes only
inside ``output_dir/sub-<label>/``. Files are written atomically; each
embedding set's JSON sidecar is written last, so its presence means the set
is complete.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bids_app import bids as bidsio
from bids_app.config import Settings
from bids_app.io import atomic_write_json, atomic_write_npy, atomic_write_png
from bids_app.workflows.face_search import face_record, search_face, search_smoothness_mask
from bids_app.workflows.record import clear_previous, fingerprint, is_complete, run_parameters, status_path

LOGGER = logging.getLogger("facerisk")


class ParticipantError(RuntimeError):
    """A participant could not be processed (message names participant, file and reason)."""


@dataclass
class ParticipantResult:
    """What one participant run produced, for the run summary."""

    subject: str
    images: int = 0
    renders: int = 0
    renders_with_face: int = 0
    photos: int = 0
    photos_with_face: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)


def _add_time(result: ParticipantResult, stage: str, start: float) -> float:
    now = time.perf_counter()
    result.stage_seconds[stage] = result.stage_seconds.get(stage, 0.0) + now - start
    return now


def _embedding_sidecar(model, rows: list[dict], sources: list[str]) -> dict:
    return {
        "Sources": sources,
        "FaceModel": model.info,
        "Dimension": model.dim,
        "Rows": rows,
    }


def _presence_json(decision, turned: dict | None, cut_mm2: float = 0.0, roughness: float = 0.0,
                   smoothness_mask: bool = False) -> dict:
    """The sidecar's ``FacePresence``: the scan decision, marked ``Review`` also where a turned
    look found a face in too few renders to overrule the header, or where no face was decided on
    a rough background (an MP2RAGE UNI image or a very noisy scan: the skin found in it is less
    certain; a person should look); the area of the head the image's edge cuts off in front
    (``FaceCutMm2``), the background's roughness (``BackgroundRoughness``; ``NoisyBackground``
    from :data:`bids_app.presence.NOISY_BACKGROUND_ROUGHNESS`) and whether the head was masked from
    the image's smoothness (``MaskFromSmoothness``: :mod:`bids_app.mri.background`)."""
    from bids_app.presence import NOISY_BACKGROUND_ROUGHNESS

    record = decision.to_json()
    record["FaceCutMm2"] = round(float(cut_mm2), 1)
    record["BackgroundRoughness"] = round(float(roughness), 3)
    record["NoisyBackground"] = bool(roughness >= NOISY_BACKGROUND_ROUGHNESS)
    record["MaskFromSmoothness"] = bool(smoothness_mask)
    if turned is not None and turned["Review"]:
        record["Review"] = True
        record["Reason"] += f"; in the head's own axes: {turned['Reason']} (check the renders by eye)"
    if record["NoisyBackground"] and not record["FacePresent"]:
        record["Review"] = True
        record["Reason"] += ("; the image's background is noise (an MP2RAGE UNI image or a very noisy scan): "
                             "the skin found in it is less certain")
        if "check the renders by eye" not in record["Reason"]:
            record["Reason"] += " (check the renders by eye)"
    return record


def process_anat_image(
    image: bidsio.AnatImage, settings: Settings, models: list, result: ParticipantResult,
    written: dict[Path, np.ndarray] | None = None,
) -> None:
    """Reconstruct, render and embed the face in one anatomical image.

    With several face models (fusion), every model detects and embeds every
    render; the render sidecar's ``Face`` is the first model's finding and
    ``FaceByModel`` holds all of them. Each render written is added to
    ``written`` (path -> RGB array), for the thumbnails.
    """
    from bids_app.mri import load_head, reconstruct_head
    from bids_app.qc import mask_overlay, render_mosaic
    from bids_app.render import sample_view_params

    label = f"sub-{image.subject}"
    source = f"bids:raw:{image.relative_to(settings.bids_dir)}"
    metadata = source_metadata(image.path, settings.bids_dir)
    out_dir = bidsio.subject_dir(settings.output_dir, image.subject, image.session) / "anat"
    seed = settings.participant_seed(image.subject)

    start = time.perf_counter()
    try:
        data, affine, zooms = load_head(image.path)
    except ValueError as err:
        raise ParticipantError(f"{label}: {err}") from err
    start = _add_time(result, "load", start)
    try:
        head = reconstruct_head(data, affine, zooms)
    except ValueError as err:
        raise ParticipantError(f"{label}: {image.path.name}: {err}") from err
    if head.clutter_voxels:
        LOGGER.info("%s: removed %d voxels of clutter standing in front of the face",
                    label, head.clutter_voxels)
    if head.air_offset:
        LOGGER.warning("%s: %s: the air is stored at %g, below zero (signed storage or z-scored intensities): "
                       "brought to zero before the head mask", label, image.path.name, head.air_offset)
    if head.inverted_about:
        LOGGER.warning("%s: %s: the air is the image's brightest part (an image stored inverted): the "
                       "intensities are mirrored about %g before the head mask", label, image.path.name,
                       head.inverted_about)
    if head.corrupt_slices:
        LOGGER.warning("%s: %s: %d corrupt slice(s) replaced by the mean of their neighbours before the head "
                       "mask: %s", label, image.path.name, len(head.corrupt_slices),
                       "; ".join(c.describe() for c in head.corrupt_slices[:5]))
    if head.ghosts:
        LOGGER.warning("%s: %s: ghosts of the head in the air (%s) subtracted before the head mask", label,
                       image.path.name, "; ".join(g.describe() for g in head.ghosts))
    if head.noisy_background:
        LOGGER.warning("%s: %s: the background is noise (roughness %.2f; an MP2RAGE UNI image or a very noisy "
                       "scan): the head is masked from the image's %s", label, image.path.name,
                       head.background_roughness, "smoothness: the intensity threshold took the noise for head"
                       if head.smoothness_mask else "intensities (the air is darker than the head)")
    if head.face_cut:
        LOGGER.warning("%s: %s: the image's edge cuts off %.0f mm^2 of the front of the head (a field of view "
                       "ending inside the face): the nose may be cut with it, its thresholds are lowered",
                       label, image.path.name, head.face_cut_mm2)
    views = sample_view_params(seed, settings.n_renders)
    search = search_face(head, views, models, settings, f"{label}: {image.suffix}")
    first_seconds = head.seconds  # on a rough background the head may be masked again, below
    head, search = search_smoothness_mask(data, affine, zooms, head, search, views, models, settings,
                                          f"{label}: {image.suffix}")
    for stage, seconds in [*first_seconds.items(), *search.seconds.items()]:
        result.stage_seconds[stage] = result.stage_seconds.get(stage, 0.0) + seconds
    start = time.perf_counter()
    frame, pictures = search.look.frame, search.look.pictures
    turned = search.turned
    further = {key: record for key, record in (("SecondLook", search.second_look), ("Reaimed", search.reaimed),
                                               ("Turned", turned), ("SmoothnessMaskLook", search.smoothness_look))
               if record}  # the further looks made, for the sidecars

    # the face where the header's axes put it, or in the head's own axes where those showed it
    face_at = frame if turned and turned["Used"] else head.frame
    profile = _profile_json(head.mask, affine, face_at)
    embeddings = [np.full((len(views), m.dim), np.nan, dtype=np.float32) for m in models]
    rows: list[list[dict]] = [[] for _ in models]
    decisions = []
    by_render: list[dict] = [{} for _ in views]  # model name -> Face record
    for number, (model, finding) in enumerate(zip(models, search.look.findings)):
        decision = finding.decision
        decisions.append(decision)
        for index, (picture, det, face) in enumerate(zip(pictures, finding.kept, finding.faces)):
            if det is not None:
                embeddings[number][index] = model.embed(picture, det)
            by_render[index][model.info["Name"]] = face
            rows[number].append({"File": bidsio.render_name(image, index + 1, ".png"), "Detected": face["Detected"],
                                 "Score": face["Score"], "Pass": face["Pass"],
                                 **{k: face[k] for k in _EVIDENCE if k in face}})
        log = LOGGER.warning if decision.review else LOGGER.info
        log("%s: %s %s: %s", label, image.suffix, model.info["Name"], decision.reason)
    found_faces: list[dict] = []  # the first model's finding per render, for the QC mosaic
    for index, (picture, view, by_model) in enumerate(zip(pictures, views, by_render), start=1):
        png = out_dir / bidsio.render_name(image, index, ".png")
        face = next(iter(by_model.values()))
        found_faces.append(face)
        atomic_write_png(png, picture)
        if written is not None:
            written[png] = picture
        sidecar = {
            "Sources": [source],
            "Seed": seed,
            "RenderIndex": index,
            **view.to_json(frame),
            "ImageSize": [int(picture.shape[1]), int(picture.shape[0])],
            "Face": face,
            "FacePresence": _presence_json(decisions[0], turned, head.face_cut_mm2, head.background_roughness,
                                           head.smoothness_mask),
            **further,
            "FaceFrame": frame.to_json(),
            "ClutterCutVoxels": head.clutter_voxels,
            "GhostsRemoved": [g.to_json() for g in head.ghosts],
            "SlicesRepaired": [c.to_json() for c in head.corrupt_slices],
            "AirOffset": round(float(head.air_offset), 4),
            "InvertedAbout": round(float(head.inverted_about), 4),
            "FaceModel": models[0].info["Name"],
            "DetectionThreshold": settings.render_min_score,
        }
        if len(models) > 1:
            sidecar["FaceByModel"] = by_model
        atomic_write_json(png.with_suffix(".json"), sidecar)
        result.renders += 1
        result.renders_with_face += int(face["Detected"])
        score = f"face {face['Score']:.2f} (pass {face['Pass']})" if face["Detected"] else "no face"
        LOGGER.info("%s: %s render %d/%d: %s", label, image.suffix, index, len(views), score)
    start = _add_time(result, "faces", start)

    # QC images a person looks at first: the renders with what was detected,
    # and where the head mask and the face were found in the scan.
    qc_name = f"{image.stem}_desc-qc{{}}_{image.suffix}.png"
    atomic_write_png(out_dir / qc_name.format("renders"), render_mosaic(pictures, found_faces))
    atomic_write_png(out_dir / qc_name.format("mask"), mask_overlay(data, head.mask, affine, face_at))
    _add_time(result, "qc", start)

    for number, model in enumerate(models):
        desc = bidsio.faces_desc(model.info["Name"])
        atomic_write_npy(out_dir / bidsio.faces_name(image, ".npy", desc), embeddings[number])
        atomic_write_json(
            out_dir / bidsio.faces_name(image, ".json", desc),
            {**_embedding_sidecar(model, rows[number], [source]),
             "FacePresence": _presence_json(decisions[number], turned, head.face_cut_mm2,
                                            head.background_roughness, head.smoothness_mask),
             **further,
             "SourceMetadata": metadata, "FaceProfile": profile},
        )
    result.images += 1


def process_photos(
    subject: str, session: str | None, photos: list[Path], settings: Settings, models: list,
    result: ParticipantResult, written: dict[Path, np.ndarray] | None = None,
) -> list[str]:
    """Detect, align and embed the face in each of a participant's photos.

    A photo that cannot be read is recorded in the sidecar and returned as an
    error (the other photos are still used); a photo without a face is
    recorded, not an error. Each aligned crop written is added to
    ``written`` (path -> RGB array), for the thumbnails.
    """
    from bids_app.photos import PhotoError, read_photo

    label = f"sub-{subject}"
    out_dir = bidsio.subject_dir(settings.output_dir, subject, session) / "photo"
    start = time.perf_counter()
    embeddings = [np.full((len(photos), m.dim), np.nan, dtype=np.float32) for m in models]
    rows: list[list[dict]] = [[] for _ in models]
    errors: list[str] = []
    for index, path in enumerate(photos, start=1):
        try:
            picture = read_photo(path)
        except PhotoError as err:
            errors.append(f"{label}: photo {path.name}: {getattr(err, 'reason', err)}")
            LOGGER.error("%s", errors[-1])
            for model_rows in rows:
                model_rows.append({"Source": path.name, "Detected": False, "Score": None,
                                   "NumFaces": 0, "Error": str(err)})
            continue
        result.photos += 1
        for number, model in enumerate(models):
            detections = model.detect(picture, min_score=settings.photo_min_score)
            row = {"Source": path.name, **face_record(detections)}
            if detections:
                embeddings[number][index - 1] = model.embed(picture, detections[0])
                if number == 0:
                    crop_name = bidsio.photo_crop_name(subject, session, index)
                    crop = model.align(picture, detections[0])
                    atomic_write_png(out_dir / crop_name, crop)
                    if written is not None:
                        written[out_dir / crop_name] = crop
                    row["File"] = crop_name
                    result.photos_with_face += 1
            elif number == 0:
                LOGGER.warning("%s: no face found in photo %d of %d", label, index, len(photos))
            if len(detections) > 1:
                row["Note"] = f"{len(detections)} faces: the largest, most central one was used"
            rows[number].append(row)
    for number, model in enumerate(models):
        desc = bidsio.faces_desc(model.info["Name"])
        atomic_write_npy(out_dir / bidsio.photo_faces_name(subject, session, ".npy", desc),
                         embeddings[number])
        atomic_write_json(
            out_dir / bidsio.photo_faces_name(subject, session, ".json", desc),
            _embedding_sidecar(model, rows[number], [p.name for p in photos]),
        )
    _add_time(result, "photos", start)
    return errors


def _profile_json(mask, affine, frame) -> dict:
    """The face's 3D profile (:func:`bids_app.presence.face_profile`) for the embedding sidecar."""
    from bids_app import presence

    profile = presence.face_profile(mask, affine, frame)
    return {"StepMm": presence.PROFILE_STEP_MM, "RightMm": list(presence.PROFILE_RIGHT_MM),
            "SuperiorMm": list(presence.PROFILE_SUPERIOR_MM),
            "AnteriorMm": [[round(float(v), 1) if np.isfinite(v) else None for v in row] for row in profile]}


#: Per-render measures copied into the embedding sidecar's ``Rows``: the
#: evidence the group level's verdicts (:mod:`bids_app.audit`) are made from.
_EVIDENCE = ("NoseReliefMm", "NoseOverCheeksMm", "EyeDistanceMm", "EyeMouthMm", "EyeNoseMm", "Features")
#: Sidecar fields that say whether and how an image was de-identified
#: (BIDS 1.9+: ``DeidentificationMethod``, ``DeidentificationMethodCodeSequence``;
#: free-text hints in the DICOM-derived fields). Copied as they are.
CLAIM_FIELDS = ("DeidentificationMethod", "DeidentificationMethodCodeSequence", "ImageType",
                "SeriesDescription", "ProtocolName", "ImageComments", "Defaced")


def _entities(name: str) -> tuple[set[str], str]:
    stem = name.split(".")[0]
    parts = stem.split("_")
    return {p for p in parts[:-1] if "-" in p}, parts[-1]


def source_metadata(path: Path, bids_dir: Path) -> dict:
    """The de-identification fields of an image's JSON metadata, with BIDS inheritance.

    JSON files from the dataset root down to the image's folder whose
    suffix is the image's and whose entities are a subset of its entities
    apply, the nearest last; only :data:`CLAIM_FIELDS` are kept. An
    unreadable file is skipped here (:func:`_check_sidecar` reports it).
    """
    from bids_app.io import read_json

    want, suffix = _entities(path.name)
    try:
        folders = [bids_dir, *reversed(path.parent.relative_to(bids_dir).parents)][:-1] + [path.parent]
    except ValueError:
        folders = [path.parent]
    merged: dict = {}
    for folder in dict.fromkeys(Path(bids_dir) / f for f in folders):
        for candidate in sorted(folder.glob(f"*{suffix}.json")):
            have, other = _entities(candidate.name)
            if other != suffix or not have <= want:
                continue
            try:
                data = read_json(candidate)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                merged.update({k: data[k] for k in CLAIM_FIELDS if k in data})
    return merged


def _check_sidecar(image: bidsio.AnatImage) -> None:
    """An anat image's JSON sidecar, if present, must be valid JSON."""
    from bids_app.io import read_json

    sidecar = image.path.with_name(image.path.name.split(".")[0] + ".json")
    if sidecar.is_file():
        try:
            read_json(sidecar)
        except ValueError as err:
            raise ParticipantError(f"sub-{image.subject}: {err}") from err


def run_participant(subject: str, layout, settings: Settings, models: list) -> ParticipantResult | None:
    """Process every selected anat image and photo of one participant.

    Returns None when the participant's outputs are already complete for
    these settings and inputs (and ``settings.force`` is off).
    """
    from bids_app.photos import default_photos_dir, find_photos
    from bids_app.report.thumbs import write_thumbnails

    begin = time.perf_counter()
    result = ParticipantResult(subject=subject)
    images = bidsio.find_anat_images(
        layout, subject, settings.modality, settings.session_label or None, settings.bids_filters
    )
    if not images:
        raise ParticipantError(
            f"sub-{subject}: no anat image with suffix {' or '.join(settings.modality)}"
            + (" matching --bids-filter-file" if settings.bids_filters else "")
            + " (try --modality T1w or T2w)"
        )
    photos_dir = settings.photos_dir or default_photos_dir(settings.bids_dir)
    photo_sets = []
    if photos_dir is not None:
        for session in settings.session_label or [None]:
            photos = find_photos(photos_dir, subject, session)
            if photos:
                photo_sets.append((session, photos))
    inputs = [image.path for image in images] + [p for _, photos in photo_sets for p in photos]
    if not settings.force and is_complete(settings, subject, inputs):
        LOGGER.info("sub-%s: outputs complete for these settings; skipped (--force redoes)", subject)
        return None
    clear_previous(settings, subject, images, [session for session, _ in photo_sets])

    errors = []
    written: dict[Path, np.ndarray] = {}  # renders and crops, made into thumbnails without reading them back
    for number, image in enumerate(images, start=1):
        LOGGER.info("sub-%s: image %d/%d: %s", subject, number, len(images), image.path.name)
        try:
            _check_sidecar(image)
            process_anat_image(image, settings, models, result, written)
        except ParticipantError as err:
            errors.append(str(err))
            LOGGER.debug("%s", err)
    for session, photos in photo_sets:
        LOGGER.info("sub-%s: %d photo(s)", subject, len(photos))
        errors += process_photos(subject, session, photos, settings, models, result, written)
    if errors:
        raise ParticipantError("; ".join(errors))

    folder = settings.output_dir / f"sub-{subject}"
    start = time.perf_counter()
    # the report's thumbnails, made once here (bids_app/report/thumbs.py)
    write_thumbnails(folder, written)
    _add_time(result, "thumbnails", start)
    result.seconds = time.perf_counter() - begin
    outputs = sorted(
        path.relative_to(settings.output_dir).as_posix()
        for path in folder.rglob("*") if path.is_file() and not path.name.startswith(".")
    )
    atomic_write_json(status_path(settings, subject), {
        "Participant": f"sub-{subject}",
        "Parameters": run_parameters(settings),
        "Inputs": fingerprint(inputs),
        "Outputs": outputs,
        "Renders": result.renders,
        "RendersWithFace": result.renders_with_face,
        "Photos": result.photos,
        "PhotosWithFace": result.photos_with_face,
        "Seconds": round(result.seconds, 3),
        "StageSeconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
    })
    return result
