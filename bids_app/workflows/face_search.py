"""Finding the face in a head's renders: the looks the participant level makes, in order.

1. **First look**: the renders of the face frame the reconstruction found
   (the image header's axes), every detection measured on the surface and
   the renders pooled into one scan decision (:func:`faces_on_renders`).
2. **Second look**, for a scan marked ``Review`` (too few renders found a
   nose, or the image's edge cuts off the front of the head): the cameras
   aimed :data:`~bids_app.presence.SECOND_LOOK_MM` higher; kept if it shows
   a face.
3. **Re-aimed look**, for a scan showing a face whose frame is far from the
   nose its renders agree on (:func:`~bids_app.presence.reaim_needed`):
   kept if it shows the face in as many renders or more.
4. **Turned look**, for a scan still showing no face: the head's own axes,
   found without the header (:func:`best_turned_frame`); kept under
   :func:`~bids_app.presence.turned_kept`, ``Review`` where it shows a face
   in fewer renders.

:func:`search_face` runs that sequence on one reconstruction. On a rough
background (an MP2RAGE UNI image or a very noisy scan) whose intensity mask
showed no face, :func:`search_smoothness_mask` runs it again on the head masked
from the image's smoothness (:func:`bids_app.mri.background.quiet_background`)
and keeps that if it shows a face. The participant level writes what is kept,
and ``benchmarks/detection.py`` measures the same decisions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from bids_app.config import Settings

LOGGER = logging.getLogger("facerisk")

#: Renders per orientation tried by :func:`best_turned_frame` before the full look.
TURNED_TRIAL_VIEWS = 3


@dataclass
class ModelFinding:
    """What one face model found in one look's renders.

    ``detections``: per render, ``(detections, pass)`` as
    :meth:`~bids_app.face.base.FaceModel.detect_with_fallback` gives them;
    ``geometries``: the :func:`~bids_app.presence.face_geometry` of each
    detection; ``kept``: per render the detection counted as the face (or
    None); ``faces``: per render the sidecar's ``Face`` record; ``decision``:
    the :class:`~bids_app.presence.ScanDecision`.
    """

    detections: list
    geometries: list
    kept: list
    faces: list[dict]
    decision: object


@dataclass
class Look:
    """One set of renders of the head from ``frame`` and what each model found in them."""

    frame: object
    pictures: list
    depths: list
    poses: list
    findings: list[ModelFinding]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def decision(self):
        """The first model's scan decision (the one the looks are chosen by)."""
        return self.findings[0].decision


@dataclass
class FaceSearch:
    """The look kept, the sidecar records of the further looks made, and the seconds per stage."""

    look: Look
    second_look: dict | None = None
    reaimed: dict | None = None
    turned: dict | None = None
    smoothness_look: dict | None = None
    """The sidecar's ``SmoothnessMaskLook`` (:func:`search_smoothness_mask`), where it was made."""
    seconds: dict[str, float] = field(default_factory=dict)


def detect_in_3d(model, pictures, depths, poses, min_score: float):
    """Detect faces in each render (two passes) and measure every detection on the surface.

    Returns ``(found, geometries)``: per render, ``(detections, pass)`` as
    :meth:`~bids_app.face.base.FaceModel.detect_with_fallback` gives them,
    and the :func:`bids_app.presence.face_geometry` of each detection.
    """
    from bids_app.presence import face_geometry
    from bids_app.render import VIEW_ANGLE

    found = [model.detect_with_fallback(picture, min_score=min_score) for picture in pictures]
    geometries = [[face_geometry(depth, d.landmarks, pose, VIEW_ANGLE) for d in detections]
                  for (detections, _), depth, pose in zip(found, depths, poses)]
    return found, geometries


def face_record(detections, found_pass: int | None = None) -> dict:
    """What a detection step found, for a sidecar: best face, its score and box."""
    face: dict = {"Detected": bool(detections), "Score": None, "NumFaces": len(detections)}
    if found_pass is not None:
        face["Pass"] = found_pass or None
    if detections:
        face.update(detections[0].to_json())
    return face


def faces_on_renders(model, pictures, depths, poses, settings: Settings, cut: bool = False) -> ModelFinding:
    """Detect the face in every render of one scan and keep what is a face in 3D.

    A face detector trained on photos can take shading on a face-less
    surface (a defaced cut, a skull-stripped brain) for a face. Each
    detection's landmarks are cast onto the surface through the render's
    depth map and camera (:func:`bids_app.presence.face_geometry`), and the
    scan's renders are pooled (:func:`bids_app.presence.scan_decision`):
    the scan shows a face when enough renders find a nose standing out of a
    face of human size at one place. Detections that do not count are
    recorded as rejected, with the reason.

    ``cut``: the image's edge cuts off the front of the head
    (:attr:`bids_app.mri.HeadReconstruction.face_cut`; the nose thresholds are
    lowered, see :func:`bids_app.presence.scan_decision`).
    """
    from bids_app.presence import feature_shape, scan_decision
    from bids_app.render import VIEW_ANGLE

    found, geometries = detect_in_3d(model, pictures, depths, poses, settings.render_min_score)
    decision = scan_decision(geometries, min_relief=settings.min_nose_relief, cut_by_edge=cut)
    kept, faces = [], []
    for (detections, found_pass), geoms, chosen, depth, pose in zip(found, geometries, decision.chosen,
                                                                     depths, poses):
        det = detections[chosen] if chosen is not None else None
        face = face_record([det] if det is not None else [], found_pass if det is not None else 0)
        if det is not None:
            face["NumFaces"] = len(detections)
            face.update(geoms[chosen].to_json())
        if detections:  # what remains of each feature under the counted (or else the best) detection
            measured = chosen if chosen is not None else 0
            face["Features"] = {"Detection": "counted" if chosen is not None else "best rejected",
                                **feature_shape(depth, detections[measured].landmarks, pose, VIEW_ANGLE).to_json()}
            if chosen is None:
                face["Features"].update(geoms[0].to_json())
        rejected = [{"Score": round(float(d.score), 4), **g.to_json()}
                    for j, (d, g) in enumerate(zip(detections, geoms)) if j != chosen]
        if rejected:
            face["Rejected"] = rejected
            face["RejectedReason"] = (decision.reason if not decision.face else
                                      "no nose standing out of a face of human size at the scan's nose")
        kept.append(det)
        faces.append(face)
    return ModelFinding(found, geometries, kept, faces, decision)


def look(surface, frame, views, models: list, settings: Settings, cut: bool = False) -> Look:
    """Render ``views`` of ``frame`` and find the face in them with every model."""
    from bids_app.render import camera_pose, render_views

    start = time.perf_counter()
    pictures, depths = render_views(surface, frame, views, with_depth=True)
    rendered = time.perf_counter()
    poses = [camera_pose(frame, view) for view in views]
    findings = [faces_on_renders(model, pictures, depths, poses, settings, cut) for model in models]
    return Look(frame, pictures, depths, poses, findings,
                {"render": rendered - start, "faces": time.perf_counter() - rendered})


def second_look(surface, frame, views, models: list, settings: Settings, cut: bool = False):
    """Render and detect again with the cameras aimed :data:`~bids_app.presence.SECOND_LOOK_MM` higher.

    For a scan whose renders found a nose in too few of them, or whose front
    the image's edge cuts with no face found (``Review``): the face frame may
    have aimed at the mouth (a flattened nose above protruding lips taken for
    the nose), so that no render shows the eyes. Returns the new
    :class:`Look` and the sidecar's ``SecondLook`` record; the caller keeps
    the new look only if it shows a face (``Used``).
    """
    from bids_app.presence import SECOND_LOOK_MM

    higher = look(surface, frame.aimed_higher(SECOND_LOOK_MM), views, models, settings, cut)
    decision = higher.decision
    record = {"RaisedMm": SECOND_LOOK_MM, "Used": bool(decision.face), "Reason": decision.reason,
              "Support": decision.support}
    return higher, record


def reaimed_look(surface, frame, decision, views, models: list, settings: Settings, cut: bool = False):
    """Render and detect again with the cameras aimed at the nose the renders agree on.

    For a scan that shows a face (``decision.face``) whose frame is far from
    that nose or pitched otherwise once fitted from it
    (:func:`~bids_app.presence.reaim_needed`). Returns the new :class:`Look`
    and the sidecar's ``Reaimed`` record, or ``(None, None)`` when the frame
    is close enough. The caller keeps the new look only if it shows a face in
    at least as many renders (``Used``).
    """
    from bids_app.mri import face_frame_at
    from bids_app.presence import frame_change, reaim_kept, reaim_needed

    try:
        aimed = face_frame_at(surface, frame, decision.nose)
    except ValueError:
        return None, None
    if not reaim_needed(frame, aimed):
        return None, None
    again = look(surface, aimed, views, models, settings, cut)
    moved, turned = frame_change(frame, aimed)
    record = {"MovedMm": round(moved, 1), "TurnedDeg": round(turned, 1), "Used": reaim_kept(decision, again.decision),
              "Reason": again.decision.reason, "Support": again.decision.support}
    return again, record


def best_turned_frame(surface, frame, views, model, settings: Settings):
    """Of the orientations :func:`bids_app.mri.turned_frames` finds, the one whose first
    :data:`TURNED_TRIAL_VIEWS` renders show a face in 3D most often (at least once), or None."""
    from bids_app.mri import turned_frames

    trial = views[:TURNED_TRIAL_VIEWS]
    best, best_support = None, 0
    for candidate in turned_frames(surface, frame):
        decision = look(surface, candidate, trial, [model], settings).decision
        support = sum(chosen is not None for chosen in decision.chosen)
        if support > best_support:
            best, best_support = candidate, support
    return best


def turned_look(surface, frame, views, models: list, settings: Settings):
    """Render and detect again in the head's own frame, found without the image header.

    For a scan that shows no face in the frame the header's axes led to: the
    header may be wrong about how the head lies. Each of the other
    orientations the head allows is tried on a few renders with the first
    model (:func:`best_turned_frame`); the one with the most renders showing
    a face in 3D (at least one) gets the full look. Returns that
    :class:`Look` and the sidecar's ``Turned`` record, or ``(None, None)``
    when no orientation shows a face in its trial renders. The caller keeps
    the new look only if it shows a face in
    :data:`~bids_app.presence.TURNED_MIN_SUPPORT_FRACTION` of the renders
    (``Used``); a face in fewer is not kept but marked ``Review`` (check the
    renders by eye).
    """
    from bids_app.presence import frame_change, turned_kept

    best = best_turned_frame(surface, frame, views, models[0], settings)
    if best is None:
        return None, None
    turned = look(surface, best, views, models, settings)
    decision = turned.decision
    _, degrees = frame_change(frame, best)
    used = turned_kept(decision, len(views))
    record = {"TurnedDeg": round(degrees, 1), "Used": used, "Reason": decision.reason,
              "Support": decision.support, "Review": bool(decision.face and not used)}
    return turned, record


def _add(seconds: dict[str, float], stage: str, value: float) -> None:
    seconds[stage] = seconds.get(stage, 0.0) + value


def search_face(head, views, models: list, settings: Settings, name: str = "") -> FaceSearch:
    """The participant level's looks at one reconstructed head (see the module's docstring).

    ``head``: a :class:`~bids_app.mri.HeadReconstruction`; ``views``: the
    seeded view parameters of every render; ``models``: the face models (the
    first one decides which look is kept); ``name`` starts each log line.
    """
    surface, cut = head.surface, head.face_cut
    seconds: dict[str, float] = {}
    current = look(surface, head.frame, views, models, settings, cut)
    for stage, value in current.seconds.items():
        _add(seconds, stage, value)
    search = FaceSearch(current, seconds=seconds)

    if current.decision.review:  # no face decided, yet some renders found a nose (or the edge cuts the head)
        start = time.perf_counter()
        higher, search.second_look = second_look(surface, current.frame, views, models, settings, cut)
        record = search.second_look
        (LOGGER.warning if record["Used"] else LOGGER.info)(
            "%s: second look, cameras aimed %g mm higher: %s (%s)", name, record["RaisedMm"], record["Reason"],
            "kept" if record["Used"] else "not kept")
        if record["Used"]:
            current = higher
        _add(seconds, "second_look", time.perf_counter() - start)

    if current.decision.face:  # aimed at the face the renders found, where the frame was far from it
        start = time.perf_counter()
        again, search.reaimed = reaimed_look(surface, current.frame, current.decision, views, models, settings, cut)
        record = search.reaimed
        if record is not None:
            LOGGER.info("%s: cameras aimed again at the renders' nose (moved %g mm, turned %g degrees): %s (%s)",
                        name, record["MovedMm"], record["TurnedDeg"], record["Reason"],
                        "kept" if record["Used"] else "not kept")
            if record["Used"]:
                current = again
            _add(seconds, "reaim", time.perf_counter() - start)

    if not current.decision.face:  # no face where the header says the front is: try the head's own axes
        start = time.perf_counter()
        turned, search.turned = turned_look(surface, current.frame, views, models, settings)
        record = search.turned
        if record is not None:
            (LOGGER.warning if record["Used"] or record["Review"] else LOGGER.info)(
                "%s: cameras turned to the head's own axes (%g degrees from the header's front): %s (%s)",
                name, record["TurnedDeg"], record["Reason"],
                "kept: the image header's orientation is wrong" if record["Used"] else
                "not kept, too few renders for overruling the header; check the renders by eye"
                if record["Review"] else "not kept")
            if record["Used"]:
                current = turned
        _add(seconds, "turned", time.perf_counter() - start)

    search.look = current
    return search


def search_smoothness_mask(data, affine, zooms, head, search: FaceSearch, views, models: list,
                           settings: Settings, name: str = ""):
    """On a rough background whose intensity mask showed no face, the looks again on the head
    masked from the image's smoothness; that head and its looks are kept if they show a face.

    ``data``, ``affine``, ``zooms``: the image ``head`` was reconstructed from (by
    :func:`~bids_app.mri.reconstruct_head`), ``search`` its :func:`search_face`. Returns the head
    and the search kept; the search's ``smoothness_look`` holds the sidecar's record (``Used``,
    ``Reason``, ``Support``) where the look was made. Measured (``README``, "Backgrounds of
    noise"): MP2RAGE UNI images made from simulated FLAIR scans, whose air has a noise floor,
    are rough, yet their intensity mask can stay clear of the image's edges and miss the face.
    """
    from bids_app.mri import reconstruct_head

    if search.look.decision.face or not head.noisy_background or head.smoothness_mask:
        return head, search
    start = time.perf_counter()
    try:
        other = reconstruct_head(data, affine, zooms, smoothness_mask=True)
    except ValueError as err:
        search.smoothness_look = {"Used": False, "Reason": f"no head masked from the smoothness: {err}",
                                  "Support": 0}
        return head, search
    again = search_face(other, views, models, settings, name)
    decision = again.look.decision
    record = {"Used": bool(decision.face), "Reason": decision.reason, "Support": decision.support}
    (LOGGER.warning if record["Used"] else LOGGER.info)(
        "%s: the head masked again from the image's smoothness (a rough background): %s (%s)", name,
        decision.reason, "kept" if record["Used"] else "not kept")
    seconds = dict(search.seconds)  # the first search's stages; this one's mask, surface and looks as one
    _add(seconds, "smoothness_mask", time.perf_counter() - start)
    kept_head, kept = (other, again) if record["Used"] else (head, search)
    kept.smoothness_look = record
    kept.seconds = seconds
    return kept_head, kept
