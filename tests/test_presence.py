"""Tests of bids_app.presence: landmarks cast onto the surface, and the scan's face decision."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bids_app import presence
from bids_app.presence import FaceGeometry, camera_axes, face_geometry, scan_decision, unproject

SIZE = 256
VIEW_ANGLE = 30.0


def _pose(yaw_deg: float = 0.0, distance: float = 400.0) -> dict:
    """A camera ``distance`` mm in front of a face in the plane y = 0 (looking along +y), turned by yaw."""
    t = np.deg2rad(yaw_deg)
    return {"Position": [distance * np.sin(t), -distance * np.cos(t), 0.0], "FocalPoint": [0.0, 0.0, 0.0],
            "ViewUp": [0.0, 0.0, 1.0]}


def _project(points: np.ndarray, pose: dict) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (x, y; y down) and camera-plane depths of world points."""
    position, forward, right, up = camera_axes(pose)
    rel = np.asarray(points, float) - position
    z = rel @ forward
    focal = 0.5 * SIZE / np.tan(np.deg2rad(VIEW_ANGLE) / 2)
    x = (rel @ right) / z * focal + SIZE / 2 - 0.5
    y = SIZE / 2 - (rel @ up) / z * focal - 0.5
    return np.stack([x, y], axis=1), z


def _depth_map(pose: dict, nose_mm: float, slope: float = 0.0, sigma: float = 12.0,
               dome_radius: float = np.inf) -> np.ndarray:
    """Ray-cast a face-sized surface y = slope * z - nose(x, z) + (x^2 + z^2) / (2 dome_radius) (a
    plane, leaning back by ``slope``, or a dome, with a Gaussian nose ``nose_mm`` high at the
    origin), 90 x 110 mm, NaN elsewhere."""
    position, forward, right, up = camera_axes(pose)
    focal = 0.5 * SIZE / np.tan(np.deg2rad(VIEW_ANGLE) / 2)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    ray = (forward[None, None] + ((xs + 0.5 - SIZE / 2) / focal)[..., None] * right
           + ((SIZE / 2 - ys - 0.5) / focal)[..., None] * up)

    def surface_y(x, z):
        x, z = np.clip(x, -60, 60), np.clip(z, -70, 70)  # keeps the iteration bounded off the face
        return (slope * z - nose_mm * np.exp(-(x ** 2 + z ** 2) / (2 * sigma ** 2))
                + (x ** 2 + z ** 2) / (2 * dome_radius))

    t = np.full(xs.shape, np.linalg.norm(position))
    for _ in range(60):  # fixed point along each ray: a contraction for these slopes
        hit = position + t[..., None] * ray
        t = t + (surface_y(hit[..., 0], hit[..., 2]) - hit[..., 1]) / ray[..., 1]
    hit = position + t[..., None] * ray
    depth = ((hit - position) @ forward).astype(np.float32)  # distance from the camera plane
    depth[(np.abs(hit[..., 0]) > 45) | (np.abs(hit[..., 2]) > 55)] = np.nan
    return depth


def _landmarks(pose: dict, nose_mm: float, slope: float = 0.0) -> np.ndarray:
    eyes_mouth = np.array([[-30.0, 0, 30], [30.0, 0, 30], [0, 0, 0], [-25.0, 0, -30], [25.0, 0, -30]])
    eyes_mouth[:, 1] = slope * eyes_mouth[:, 2]
    eyes_mouth[2, 1] = -nose_mm
    return _project(eyes_mouth, pose)[0]


def test_unproject_inverts_the_camera():
    rng = np.random.default_rng(0)
    for yaw in (-20.0, 0.0, 13.0):
        pose = _pose(yaw)
        points = rng.uniform(-60, 60, size=(50, 3))
        pixels, z = _project(points, pose)
        np.testing.assert_allclose(unproject(pixels, z, pose, VIEW_ANGLE, (SIZE, SIZE)), points, atol=1e-8)


@pytest.mark.parametrize("yaw", [0.0, -18.0, 20.0])
def test_a_nose_is_measured_in_mm_whatever_the_view(yaw):
    pose = _pose(yaw)
    g = face_geometry(_depth_map(pose, 15.0), _landmarks(pose, 15.0), pose, VIEW_ANGLE)
    # the ring around the nose (27-51 mm from the tip) carries at most 15 exp(-729 / 288) = 1.2 mm
    assert 13.8 < g.relief < 15.1
    assert g.eye_distance == pytest.approx(60.0, abs=1.0)
    assert g.eye_mouth == pytest.approx(np.hypot(60.0, 0.0), abs=1.5)
    np.testing.assert_allclose(g.nose, [0.0, -15.0, 0.0], atol=1.5)
    assert g.eye_nose == pytest.approx(np.hypot(15.0, 30.0), abs=1.5)  # eyes' middle (0, 0, 30) to the tip


@pytest.mark.parametrize("yaw", [0.0, 18.0])
def test_a_bump_on_a_dome_is_not_a_nose(yaw):
    """A plane fitted to the ring around a point of a dome lies below the point: a small bump on a
    brain-sized dome (a gyrus that the detector frames as a whole face) gets the relief of a flat
    nose, but the dome beside it is hardly lower, and the scan is not taken for a face. A flat
    nose on a face stands out of the cheeks beside it."""
    pose = _pose(yaw)
    dome = face_geometry(_depth_map(pose, 2.0, sigma=6.0, dome_radius=100.0), _landmarks(pose, 2.0),
                         pose, VIEW_ANGLE)
    assert dome.relief >= presence.MIN_RELIEF_MM  # the ring alone would pass it
    assert dome.nose_over_cheeks < presence.MIN_NOSE_OVER_CHEEKS_MM
    flat_nose = face_geometry(_depth_map(pose, 9.0), _landmarks(pose, 9.0), pose, VIEW_ANGLE)
    assert presence.MIN_NOSE_OVER_CHEEKS_MM < flat_nose.nose_over_cheeks < 9.0
    assert flat_nose.to_json()["NoseOverCheeksMm"] == pytest.approx(flat_nose.nose_over_cheeks, abs=0.06)
    on_dome = scan_decision([[dome]] * 10)
    assert not on_dome.face and on_dome.support == 10 and on_dome.review and "cheeks" in on_dome.reason
    assert on_dome.to_json()["NoseOverCheeksMm"] == pytest.approx(dome.nose_over_cheeks, abs=0.06)
    assert scan_decision([[flat_nose]] * 10).face


def test_the_cheek_check_is_pooled_over_the_scan():
    """A few renders of a fragmented nose that do not stand out of the cheeks do not undo a face;
    renders whose cheeks were not both seen do not count either way."""
    strong = presence.MIN_RELIEF_MM + 5

    def with_(over):
        return dataclasses.replace(_geometry(strong), nose_over_cheeks=over)

    low, high = presence.MIN_NOSE_OVER_CHEEKS_MM - 6, presence.MIN_NOSE_OVER_CHEEKS_MM + 4
    mixed = scan_decision([[with_(low)]] * 3 + [[with_(high)]] * 4 + [[with_(float("nan"))]] * 3)
    assert mixed.face and mixed.support == 10 and mixed.over_cheeks == high
    assert scan_decision([[with_(float("nan"))]] * 10).face  # never seen: no veto
    assert not scan_decision([[with_(low)]] * 6 + [[with_(high)]] * 4).face


def test_a_whole_head_framed_as_a_face_is_not_one():
    """Eyes wider apart than on any face, in most supporting renders: the detector framed a whole
    face-less head (a plane cut with its "eyes" on the forehead). A few wide renders of a face
    do not undo it: the bound is on the scan's median."""
    strong = presence.MIN_RELIEF_MM + 5
    wide, human = presence.MAX_MEDIAN_EYE_DISTANCE_MM + 6, 58.0
    head = scan_decision([[_geometry(strong, eyes=wide)]] * 6 + [[_geometry(strong, eyes=human)]] * 4)
    assert not head.face and head.support == 10 and head.review
    assert "whole head" in head.reason and head.eye_distance == wide
    assert head.to_json()["MedianEyeDistanceMm"] == wide
    assert head.to_json()["MaxMedianEyeDistanceMm"] == presence.MAX_MEDIAN_EYE_DISTANCE_MM
    face = scan_decision([[_geometry(strong, eyes=wide)]] * 4 + [[_geometry(strong, eyes=human)]] * 6)
    assert face.face and face.eye_distance == human


def test_a_nose_landmark_beside_the_tip_still_finds_the_tip():
    pose = _pose(10.0)
    marks = _landmarks(pose, 15.0)
    marks[2] += [6.0, 4.0]  # detectors put the nose point a few pixels off the tip
    g = face_geometry(_depth_map(pose, 15.0), marks, pose, VIEW_ANGLE)
    assert 13.5 < g.relief < 15.1


@pytest.mark.parametrize("slope", [0.0, 0.6])
def test_no_nose_no_relief(slope):
    """A flat face-less surface, square to the view or leaning back like a defacing cut."""
    pose = _pose(15.0)
    g = face_geometry(_depth_map(pose, 0.0, slope), _landmarks(pose, 0.0, slope), pose, VIEW_ANGLE)
    assert abs(g.relief) < 0.5


def test_eyes_in_holes_are_no_nose():
    """A defacing cut that opens the orbits: eye landmarks placed in the holes are 20 mm
    behind the cut, the "nose" between them on it. The face around the nose is the cut."""
    pose = _pose(8.0)
    depth = _depth_map(pose, 0.0, 0.3)
    marks = _landmarks(pose, 0.0, 0.3)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    for eye in marks[:2]:
        depth[np.hypot(xs - eye[0], ys - eye[1]) < 12] += 20.0
    g = face_geometry(depth, marks, pose, VIEW_ANGLE)
    assert abs(g.relief) < 1.0


def test_landmarks_off_the_surface_give_no_measure():
    pose = _pose()
    depth = _depth_map(pose, 15.0)
    marks = _landmarks(pose, 15.0)
    outside = marks.copy()
    outside[3:, 1] = SIZE + 10  # mouth below the image: not a whole face
    assert np.isnan(face_geometry(depth, outside, pose, VIEW_ANGLE).relief)
    background = marks.copy()
    background[0] = [2.0, 2.0]  # an eye on the background
    assert np.isnan(face_geometry(depth, background, pose, VIEW_ANGLE).relief)
    cut = depth.copy()
    cut[int(marks[3, 1]) - 3:, :] = np.nan  # the field of view ends above the mouth: eyes and cheeks remain
    g = face_geometry(cut, marks, pose, VIEW_ANGLE)
    assert 13.5 < g.relief < 15.5 and np.isnan(g.eye_mouth)
    assert np.isfinite(g.nose_over_cheeks)  # the surface around the nose is whole
    at_nose = depth.copy()
    at_nose[int(marks[2, 1]) + 6:, :] = np.nan  # a cut just below the nose tip: no cheek check
    g = face_geometry(at_nose, marks, pose, VIEW_ANGLE)
    assert g.relief > presence.MIN_RELIEF_MM and np.isnan(g.nose_over_cheeks)


def _geometry(relief: float, eyes: float = 62.0, nose=(0.0, 90.0, -40.0)) -> FaceGeometry:
    return FaceGeometry(relief=relief, eye_distance=eyes, eye_mouth=60.0, nose=np.asarray(nose, float))


def test_scan_decision_pools_the_renders():
    strong, weak = presence.MIN_RELIEF_MM + 5, presence.MIN_RELIEF_MM * 0.75
    far = _geometry(strong / 2 + 1, nose=(0.0, 90.0 + 3 * presence.SAME_PLACE_MM, -40.0))
    renders = [[_geometry(strong)], [_geometry(strong + 2)], [], [_geometry(weak)], [far, _geometry(weak)],
               [_geometry(1.0)]]
    assert presence.min_support(len(renders)) == 3  # 40% of 6, rounded up
    assert not scan_decision(renders).face
    renders[2] = [_geometry(strong + 1, eyes=40.0)]
    d = scan_decision(renders)
    assert d.face and d.support == 3 and d.need == 3
    # weak detections at the scan's nose count; one elsewhere or without relief does not
    assert d.chosen == [0, 0, 0, 0, 1, None]
    np.testing.assert_allclose(d.nose, [0.0, 90.0, -40.0])
    assert d.to_json()["FacePresent"] is True


def test_scan_decision_needs_support_and_human_size():
    strong = presence.MIN_RELIEF_MM + 5
    one = scan_decision([[_geometry(strong)], [_geometry(3.0)], [], [_geometry(5.0)]])
    assert not one.face and one.chosen == [None] * 4 and one.support == 1 and "2 needed" in one.reason
    assert one.review and "by eye" in one.reason and one.to_json()["Review"] is True
    assert [presence.min_support(n) for n in (1, 2, 5, 10, 20)] == [1, 1, 2, 4, 8]
    tiny = scan_decision([[_geometry(strong, eyes=15.0)]] * 5)  # face-like shading on a gyrus
    assert not tiny.face and tiny.support == 0 and not tiny.review
    assert scan_decision([[_geometry(strong)]]).face  # one render: one is enough
    assert not scan_decision([]).face


def test_scan_decision_needs_eyes_nose_and_mouth_where_a_face_has_them():
    """A detector framing a whole face-less head (eyes at the brow, "nose" on a fragment far
    below) is no support; a face whose mouth the field of view cut off (unmeasured) still is."""
    strong = presence.MIN_RELIEF_MM + 5

    def with_(eye_nose, eye_mouth):
        return dataclasses.replace(_geometry(strong), eye_nose=eye_nose, eye_mouth=eye_mouth)

    face = scan_decision([[with_(45.0, 60.0)]] * 10)
    assert face.face and face.support == 10
    far_nose = scan_decision([[with_(presence.MAX_EYE_NOSE_MM + 5, 60.0)]] * 10)
    far_mouth = scan_decision([[with_(45.0, presence.MAX_EYE_MOUTH_MM + 5)]] * 10)
    assert not far_nose.face and far_nose.support == 0 and not far_mouth.face and far_mouth.support == 0
    no_mouth = scan_decision([[with_(45.0, float("nan"))]] * 10)
    assert no_mouth.face and no_mouth.support == 10


def test_a_head_cut_by_the_image_edge_needs_less_nose_and_is_reviewed():
    """A field of view that ends inside the face cuts the nose with it: where the image's edge cuts
    off the front of the head, the nose's relief and height over the cheeks need
    EDGE_CUT_FRACTION of their thresholds, and a scan with no face decided is a Review."""
    lowered = dataclasses.replace(_geometry(0.75 * presence.MIN_RELIEF_MM),
                                  nose_over_cheeks=0.75 * presence.MIN_NOSE_OVER_CHEEKS_MM)
    assert not scan_decision([[lowered]] * 10).face
    cut = scan_decision([[lowered]] * 10, cut_by_edge=True)
    assert cut.face and cut.support == 10 and "image's edge" in cut.reason
    assert cut.min_relief == presence.EDGE_CUT_FRACTION * presence.MIN_RELIEF_MM
    record = cut.to_json()
    assert record["CutByImageEdge"] is True
    assert record["MinNoseOverCheeksMm"] == presence.EDGE_CUT_FRACTION * presence.MIN_NOSE_OVER_CHEEKS_MM
    flat = scan_decision([[_geometry(1.0)]] * 10, cut_by_edge=True)  # cut flat: nothing stands out
    assert not flat.face and flat.support == 0 and flat.review and "check the renders by eye" in flat.reason
    assert not scan_decision([[_geometry(1.0)]] * 10).review  # the same renders of a head the image holds
    # lower thresholds only add faces: weak detections with no height over the cheeks would pull
    # the median under even the lowered threshold, but the usual thresholds already find the face
    strong = dataclasses.replace(_geometry(presence.MIN_RELIEF_MM + 5), nose_over_cheeks=10.0)
    weak = dataclasses.replace(lowered, nose_over_cheeks=0.0)
    mixed = [[strong]] * 4 + [[weak]] * 6
    assert scan_decision(mixed).face and scan_decision(mixed, cut_by_edge=True).face


def test_scan_decision_turned_off_keeps_every_detection():
    d = scan_decision([[_geometry(0.0, eyes=10.0)], [], [_geometry(-3.0)]], min_relief=0)
    assert d.chosen == [0, None, 0] and d.support == 2


def test_settings_default_is_the_measured_threshold():
    from bids_app.config import Settings

    assert Settings.min_nose_relief == presence.MIN_RELIEF_MM


def test_feature_shape_tells_a_cut_plane_from_a_nose():
    """A plane (a defacing cut) is flat under every landmark; a nose is not flat under its landmark."""
    from bids_app.presence import feature_shape

    pose = _pose(10.0)
    cut = feature_shape(_depth_map(pose, 0.0, slope=0.3), _landmarks(pose, 0.0, slope=0.3), pose, VIEW_ANGLE)
    assert min(cut.flat.values()) > 0.95 and cut.face_flat > 0.95
    assert min(cut.seen.values()) > 0.95
    face = feature_shape(_depth_map(pose, 18.0), _landmarks(pose, 18.0), pose, VIEW_ANGLE)
    assert face.flat["Nose"] < 0.5 and face.face_flat < cut.face_flat
    as_json = face.to_json()
    assert set(as_json["Flat"]) == {"EyeLeft", "EyeRight", "Nose", "Mouth"} and as_json["FaceFlat"] is not None


def test_feature_shape_of_landmarks_on_the_background_is_unseen():
    from bids_app.presence import feature_shape

    pose = _pose()
    depth = _depth_map(pose, 15.0)
    marks = _landmarks(pose, 15.0)
    marks[3:] = [[2.0, SIZE - 3.0], [6.0, SIZE - 3.0]]  # mouth corners off the face, in the image corner
    shape = feature_shape(depth, marks, pose, VIEW_ANGLE)
    assert shape.seen["Mouth"] == 0.0 and np.isnan(shape.flat["Mouth"])
    assert shape.seen["Nose"] == 1.0
    outside = feature_shape(depth, marks - SIZE, pose, VIEW_ANGLE)
    assert all(np.isnan(v) for v in outside.seen.values())


def _hard_mode_first_look(tmp_path, seed: int, label: str):
    """Simulated hard-mode participant ``label`` of ``seed`` (made here from a bundled demo head,
    as ``facerisk-simulate --seed SEED --mode hard`` makes it), reconstructed, with the
    participant level's first look (10 renders of view seed 0): ``(head, model, settings, views,
    decision)``."""
    from bids_app.config import Settings
    from bids_app.face import load_face_model
    from bids_app.mri import load_head, reconstruct_head
    from bids_app.render import sample_view_params
    from bids_app.simulate.cohort import simulate_participant
    from bids_app.simulate.heads import default_heads
    from bids_app.simulate.participant import sample_participant
    from bids_app.workflows.face_search import look

    part = sample_participant(int(label) - 1, seed, default_heads(), mode="hard", label=label)
    simulate_participant(part, tmp_path / "bids", None)
    vol = load_head(tmp_path / "bids" / f"sub-{label}" / "anat" / f"sub-{label}_FLAIR.nii.gz")
    head = reconstruct_head(vol.data, vol.affine, vol.zooms)
    model = load_face_model("sface")
    settings = Settings(bids_dir=tmp_path / "bids", output_dir=tmp_path / "out", analysis_level="participant")
    views = sample_view_params(0, 10)
    return head, model, settings, views, look(head.surface, head.frame, views, [model], settings).decision


@pytest.mark.slow
def test_a_face_framed_at_its_mouth_gets_a_second_look(tmp_path):
    """Simulated hard-mode participant 21 of seed 6161 (made here from a bundled demo head, as
    ``facerisk-simulate --seed 6161 --mode hard`` makes it): a flattened nose above protruding
    lips, which the face frame takes for the nose, so the renders show the mouth and chin and
    too few of them find a nose (``Review``). Aimed 30 mm higher, the renders find the face."""
    from bids_app.workflows.face_search import second_look

    head, model, settings, views, first = _hard_mode_first_look(tmp_path, 6161, "21")
    assert not first.face and first.review  # measured: 2 of 10, 4 needed
    higher, record = second_look(head.surface, head.frame, views, [model], settings)
    frame = higher.frame
    assert record["Used"] and higher.decision.face and record["Support"] >= first.need  # measured: 6
    np.testing.assert_allclose(frame.center - head.frame.center, presence.SECOND_LOOK_MM * head.frame.superior)
    np.testing.assert_allclose(frame.nose_tip, head.frame.nose_tip)


def test_reaim_needed_by_distance_or_turn():
    from bids_app.mri.surface import FaceFrame

    def frame(tip, anterior):
        a = np.asarray(anterior, float) / np.linalg.norm(anterior)
        s = np.cross([1.0, 0.0, 0.0], a)
        return FaceFrame(center=np.zeros(3), anterior=a, superior=s, size=190.0,
                         nose_tip=np.asarray(tip, float), prominence=10.0)

    base = frame([0, 100, 0], [0, 1, 0])
    near = presence.REAIM_MM - 1
    assert not presence.reaim_needed(base, frame([0, 100, near], [0, 1, 0]))
    assert presence.reaim_needed(base, frame([0, 100, presence.REAIM_MM + 1], [0, 1, 0]))
    turn = np.deg2rad(presence.REAIM_DEG + 2)
    assert presence.reaim_needed(base, frame([0, 100, 0], [0, np.cos(turn), np.sin(turn)]))
    turn = np.deg2rad(presence.REAIM_DEG - 2)
    assert not presence.reaim_needed(base, frame([0, 100, 0], [0, np.cos(turn), np.sin(turn)]))


@pytest.mark.slow
def test_a_face_framed_on_its_chin_is_aimed_again_at_its_nose(tmp_path):
    """Simulated hard-mode participant 9 of development seed 7373 (made here from a bundled demo
    head): its face frame's tip sits on the chin (74 mm from the nose its renders agree on, 64 mm
    below it, measured), so the renders show the face from low down, yet enough of them find it.
    Aimed again at the renders' nose (the frame re-fitted from that tip), the look is kept: its
    nose tip is that nose, and the face is found in as many renders or more."""
    from bids_app.workflows.face_search import reaimed_look

    head, model, settings, views, first = _hard_mode_first_look(tmp_path, 7373, "09")
    assert first.face and np.linalg.norm(first.nose - head.frame.nose_tip) > presence.REAIM_MM
    aimed, record = reaimed_look(head.surface, head.frame, first, views, [model], settings)
    assert record is not None and record["Used"] and record["MovedMm"] > presence.REAIM_MM
    frame, decision = aimed.frame, aimed.decision
    assert decision.face and decision.support >= first.support
    assert np.linalg.norm(frame.nose_tip - first.nose) < 5.0
    assert np.linalg.norm(decision.nose - frame.nose_tip) < presence.REAIM_MM  # no third look needed
    again, none = reaimed_look(head.surface, frame, decision, views, [model], settings)
    assert again is None and none is None


@pytest.mark.slow
def test_a_face_a_wrong_header_turned_upside_down_is_found_in_the_heads_own_axes(tmp_path):
    """Demo sub-03 with its voxels turned 180 degrees against the affine (the face points down
    and back in world space): the header's frame shows no face in any render; the look in the
    head's own axes finds it in at least as many renders as a face needs, and is kept."""
    from bids_app.config import Settings
    from bids_app.face import load_face_model
    from bids_app.mri import augment, load_head, reconstruct_head
    from bids_app.render import sample_view_params
    from bids_app.workflows.face_search import look, turned_look

    demo = Path(__file__).resolve().parents[1] / "data" / "demo" / "bids"
    vol = load_head(demo / "sub-03" / "anat" / "sub-03_T1w.nii.gz")
    data, affine = augment.turn_voxels(vol.data, vol.affine, 2, (1, 2))
    head = reconstruct_head(data, affine, vol.zooms)
    model = load_face_model("sface")
    settings = Settings(bids_dir=tmp_path, output_dir=tmp_path / "out", analysis_level="participant")
    views = sample_view_params(0, 10)
    first = look(head.surface, head.frame, views, [model], settings).decision
    assert not first.face  # measured: no render finds a nose
    turned, record = turned_look(head.surface, head.frame, views, [model], settings)
    assert record is not None and record["Used"] and record["TurnedDeg"] > 90
    decision = turned.decision
    assert decision.face and decision.support >= decision.need


def test_a_turned_look_needs_more_renders_than_a_first_look():
    def decision(face, support):
        return presence.ScanDecision(face=face, support=support, nose=np.zeros(3), chosen=[None] * 10,
                                     reason="", need=presence.min_support(10))

    need = int(np.ceil(presence.TURNED_MIN_SUPPORT_FRACTION * 10))
    assert need > presence.min_support(10)  # 6 of 10 against 4
    assert presence.turned_kept(decision(True, need), 10)
    assert not presence.turned_kept(decision(True, need - 1), 10)  # a face for a first look, not here
    assert not presence.turned_kept(decision(False, 10), 10)


def test_a_turned_face_too_weak_to_keep_is_marked_for_review():
    from bids_app.workflows.participant import _presence_json

    first = presence.ScanDecision(face=False, support=0, nose=np.full(3, np.nan), chosen=[None] * 10,
                                  reason="0 of 10 renders show a nose", need=4)
    assert _presence_json(first, None)["Review"] is False
    weak = {"TurnedDeg": 112.0, "Used": False, "Reason": "4 of 10 renders show a nose in 3D at one place",
            "Support": 4, "Review": True}
    record = _presence_json(first, weak)
    assert record["Review"] is True and record["FacePresent"] is False
    assert "head's own axes: 4 of 10" in record["Reason"]
    assert _presence_json(first, {**weak, "Review": False})["Review"] is False


def test_no_face_on_a_noisy_background_is_marked_for_review():
    from bids_app.workflows.participant import _presence_json

    none = presence.ScanDecision(face=False, support=0, nose=np.full(3, np.nan), chosen=[None] * 10,
                                 reason="0 of 10 renders show a nose", need=4)
    dark = _presence_json(none, None, roughness=0.01)
    assert dark["Review"] is False and dark["NoisyBackground"] is False and dark["BackgroundRoughness"] == 0.01
    noisy = _presence_json(none, None, roughness=0.28, smoothness_mask=True)
    assert noisy["Review"] is True and noisy["NoisyBackground"] is True and "MP2RAGE UNI" in noisy["Reason"]
    assert noisy["MaskFromSmoothness"] is True
    # a rough background masked from the intensities (a very noisy scan, or a UNI image whose air is
    # partly signal) is as uncertain: Review too
    rough = _presence_json(none, None, roughness=0.16)
    assert rough["Review"] is True and rough["NoisyBackground"] is True and rough["MaskFromSmoothness"] is False
    face = presence.ScanDecision(face=True, support=9, nose=np.zeros(3), chosen=[0] * 9 + [None],
                                 reason="9 of 10 renders show a nose", need=4)
    found = _presence_json(face, None, roughness=0.3, smoothness_mask=True)
    assert found["FacePresent"] is True and found["Review"] is False and found["NoisyBackground"] is True


@pytest.mark.slow
def test_a_face_whose_field_of_view_ends_inside_it_is_found(tmp_path):
    """Demo sub-04 with the image ending 15 mm behind its nose tip (``augment.crop_front``): the
    nose is cut flat by the image's edge, so with the full thresholds too few renders find it
    (measured: 1 of 10, and "no face"); the head is cut by the image's edge, and with the lower
    nose thresholds of such a head the face is found (measured: 9 of 10 renders)."""
    from bids_app.config import Settings
    from bids_app.face import load_face_model
    from bids_app.mri import augment, load_head, reconstruct_head
    from bids_app.render import sample_view_params
    from bids_app.workflows.face_search import look
    from bids_app.workflows.participant import _presence_json

    demo = Path(__file__).resolve().parents[1] / "data" / "demo" / "bids"
    vol = load_head(demo / "sub-04" / "anat" / "sub-04_T1w.nii.gz")
    head = reconstruct_head(*augment.crop_front(vol.data, vol.affine, 15.0), vol.zooms)
    assert head.face_cut
    model = load_face_model("sface")
    settings = Settings(bids_dir=tmp_path, output_dir=tmp_path / "out", analysis_level="participant")
    views = sample_view_params(0, 10)
    full = look(head.surface, head.frame, views, [model], settings).decision
    assert not full.face and full.support < full.need
    cut = look(head.surface, head.frame, views, [model], settings, cut=True).decision
    assert cut.face and cut.support >= cut.need + 2 and cut.cut_by_edge
    record = _presence_json(cut, None, head.face_cut_mm2)
    assert record["CutByImageEdge"] is True and record["FaceCutMm2"] >= presence.MIN_FACE_CUT_MM2


@pytest.mark.slow
def test_a_rough_background_whose_intensity_mask_shows_no_face_is_masked_again(tmp_path):
    """Simulated default-mode participant 9 of seed 97531 (made here from a bundled demo head, as
    ``facerisk-simulate --seed 97531`` makes it) as an MP2RAGE UNI image: the simulator's FLAIR air
    has a noise floor, so the UNI air is partly signal: the background is rough (measured 0.237),
    yet the intensity mask stays clear of the image's edges and shows no face (measured: no render
    supports one). Masked again from the image's smoothness, the face is found (measured: 10 of 10
    renders), and that head and its looks are kept."""
    import nibabel as nib

    from bids_app.config import Settings
    from bids_app.face import load_face_model
    from bids_app.mri import augment, reconstruct_head
    from bids_app.render import sample_view_params
    from bids_app.simulate.cohort import simulate_participant
    from bids_app.simulate.heads import default_heads
    from bids_app.simulate.participant import sample_participant
    from bids_app.workflows.face_search import search_face, search_smoothness_mask

    part = sample_participant(8, 97531, default_heads(), mode="default", label="09")
    simulate_participant(part, tmp_path / "bids", None)
    img = nib.as_closest_canonical(nib.load(tmp_path / "bids" / "sub-09" / "anat" / "sub-09_FLAIR.nii.gz"))
    data, affine = augment.mp2rage_uni(np.asarray(img.dataobj, np.float32), img.affine)
    zooms = img.header.get_zooms()[:3]
    head = reconstruct_head(data, affine, zooms)
    assert head.noisy_background and not head.smoothness_mask
    model = load_face_model("sface")
    settings = Settings(bids_dir=tmp_path / "bids", output_dir=tmp_path / "out", analysis_level="participant")
    views = sample_view_params(0, 10)
    first = search_face(head, views, [model], settings)
    assert not first.look.decision.face
    kept_head, kept = search_smoothness_mask(data, affine, zooms, head, first, views, [model], settings)
    assert kept_head.smoothness_mask and kept.look.decision.face and kept.smoothness_look["Used"]
    assert kept.look.decision.support >= kept.look.decision.need + 2
    # a face already found, or a background that is not rough: nothing more is done
    assert search_smoothness_mask(data, affine, zooms, kept_head, kept, views, [model], settings) == (kept_head, kept)
