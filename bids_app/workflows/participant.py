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


def _face_record(detections, found_pass: int | None = None) -> dict:
    """What a detection step found, for a sidecar: best face, its score and box."""
    face: dict = {"Detected": bool(detections), "Score": None, "NumFaces": len(detections)}
    if found_pass is not None:
        face["Pass"] = found_pass or None
    if detections:
        face.update(detections[0].to_json())
    return face


def process_anat_image(
    image: bidsio.AnatImage, settings: Settings, models: list, result: ParticipantResult
) -> None:
    """Reconstruct, render and embed the face in one anatomical image.

    With several face models (fusion), every model detects and embeds every
    render; the render sidecar's ``Face`` is the first model's finding and
    ``FaceByModel`` holds all of them.
    """
    from bids_app.mri import face_frame, head_mask, head_surface, load_head
    from bids_app.render import render_views, sample_view_params

    label = f"sub-{image.subject}"
    source = f"bids:raw:{image.relative_to(settings.bids_dir)}"
    out_dir = bidsio.subject_dir(settings.output_dir, image.subject, image.session) / "anat"
    seed = settings.participant_seed(image.subject)

    start = time.perf_counter()
    try:
        data, affine, zooms = load_head(image.path)
    except ValueError as err:
        raise ParticipantError(f"{label}: {err}") from err
    start = _add_time(result, "load", start)
    mask = head_mask(data, zooms)
    start = _add_time(result, "mask", start)
    surface = head_surface(mask, affine)
    frame = face_frame(surface)
    start = _add_time(result, "surface", start)
    views = sample_view_params(seed, settings.n_renders)
    pictures = render_views(surface, frame, views)
    start = _add_time(result, "render", start)

    embeddings = [np.full((len(views), m.dim), np.nan, dtype=np.float32) for m in models]
    rows: list[list[dict]] = [[] for _ in models]
    for index, (picture, view) in enumerate(zip(pictures, views), start=1):
        png = out_dir / bidsio.render_name(image, index, ".png")
        by_model = {}
        for number, model in enumerate(models):
            detections, found_pass = model.detect_with_fallback(
                picture, min_score=settings.render_min_score
            )
            face = _face_record(detections, found_pass)
            if detections:
                embeddings[number][index - 1] = model.embed(picture, detections[0])
            by_model[model.info["Name"]] = face
            rows[number].append({"File": png.name, "Detected": face["Detected"],
                                 "Score": face["Score"], "Pass": face["Pass"]})
        face = next(iter(by_model.values()))
        atomic_write_png(png, picture)
        sidecar = {
            "Sources": [source],
            "Seed": seed,
            "RenderIndex": index,
            **view.to_json(frame),
            "ImageSize": [int(picture.shape[1]), int(picture.shape[0])],
            "Face": face,
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
    _add_time(result, "faces", start)

    for number, model in enumerate(models):
        desc = bidsio.faces_desc(model.info["Name"])
        atomic_write_npy(out_dir / bidsio.faces_name(image, ".npy", desc), embeddings[number])
        atomic_write_json(
            out_dir / bidsio.faces_name(image, ".json", desc),
            _embedding_sidecar(model, rows[number], [source]),
        )
    result.images += 1


def process_photos(
    subject: str, session: str | None, photos: list[Path], settings: Settings, models: list,
    result: ParticipantResult,
) -> None:
    """Detect, align and embed the face in each of a participant's photos."""
    from bids_app.photos import PhotoError, read_photo

    label = f"sub-{subject}"
    out_dir = bidsio.subject_dir(settings.output_dir, subject, session) / "photo"
    prefix = bidsio.photo_prefix(subject, session)
    start = time.perf_counter()
    embeddings = [np.full((len(photos), m.dim), np.nan, dtype=np.float32) for m in models]
    rows: list[list[dict]] = [[] for _ in models]
    for index, path in enumerate(photos, start=1):
        try:
            picture = read_photo(path)
        except PhotoError as err:
            LOGGER.warning("%s: photo %d of %d skipped: %s", label, index, len(photos), err)
            for model_rows in rows:
                model_rows.append({"Source": path.name, "Detected": False, "Score": None,
                                   "NumFaces": 0, "Error": str(err)})
            continue
        result.photos += 1
        for number, model in enumerate(models):
            detections = model.detect(picture, min_score=settings.photo_min_score)
            row = {"Source": path.name, **_face_record(detections)}
            if detections:
                embeddings[number][index - 1] = model.embed(picture, detections[0])
                if number == 0:
                    crop_name = f"{prefix}_desc-photo{index:02d}_photo.png"
                    atomic_write_png(out_dir / crop_name, model.align(picture, detections[0]))
                    row["File"] = crop_name
                    result.photos_with_face += 1
            elif number == 0:
                LOGGER.warning("%s: no face found in photo %d of %d", label, index, len(photos))
            if len(detections) > 1:
                row["Note"] = f"{len(detections)} faces: the largest, most central one was used"
            rows[number].append(row)
    for number, model in enumerate(models):
        desc = bidsio.faces_desc(model.info["Name"])
        atomic_write_npy(out_dir / f"{prefix}_desc-{desc}_photo.npy", embeddings[number])
        atomic_write_json(
            out_dir / f"{prefix}_desc-{desc}_photo.json",
            _embedding_sidecar(model, rows[number], [p.name for p in photos]),
        )
    _add_time(result, "photos", start)


def run_participant(subject: str, layout, settings: Settings, models: list) -> ParticipantResult:
    """Process every selected anat image and photo of one participant."""
    from bids_app.photos import default_photos_dir, find_photos

    begin = time.perf_counter()
    result = ParticipantResult(subject=subject)
    images = bidsio.find_anat_images(
        layout, subject, settings.modality, settings.session_label or None
    )
    if not images:
        raise ParticipantError(
            f"sub-{subject}: no anat image with suffix {' or '.join(settings.modality)} "
            f"(try --modality T1w or T2w)"
        )
    for number, image in enumerate(images, start=1):
        LOGGER.info("sub-%s: image %d/%d: %s", subject, number, len(images), image.path.name)
        process_anat_image(image, settings, models, result)

    photos_dir = settings.photos_dir or default_photos_dir(settings.bids_dir)
    if photos_dir is not None:
        sessions = settings.session_label or [None]
        for session in sessions:
            photos = find_photos(photos_dir, subject, session)
            if photos:
                LOGGER.info("sub-%s: %d photo(s)", subject, len(photos))
                process_photos(subject, session, photos, settings, models, result)
    result.seconds = time.perf_counter() - begin
    return result
