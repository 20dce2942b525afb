"""Tests of bids_app.render: seeded parameters, and renders that show a face."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from bids_app.face import load_face_model
from bids_app.mri import face_frame, head_mask, head_surface, load_head
from bids_app.render import RANGES, ViewParams, camera_pose, render_views, sample_view_params

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "bids"


def _detector():
    """Face score of an RGB image: facerisk's default backend (YuNet), which must load."""
    model = load_face_model("sface")

    def score(img_rgb: np.ndarray) -> float:
        faces = model.detect(img_rgb, min_score=0.5)
        return float(faces[0].score) if faces else 0.0

    return score


def _pipeline(label: str, n: int = 10, seed: int = 0):
    vol = load_head(DEMO / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz")
    surf = head_surface(head_mask(vol.data, vol.zooms), vol.affine)
    frame = face_frame(surf)
    params = sample_view_params(seed, n)
    return frame, params, render_views(surf, frame, params, size=512)


def test_params_deterministic_and_in_range():
    a = sample_view_params(1234, 10)
    assert a == sample_view_params(1234, 10)
    assert a != sample_view_params(1235, 10)
    assert a[:3] == sample_view_params(1234, 3)
    for p in a:
        for name, (lo, hi) in RANGES.items():
            assert lo <= getattr(p, name) <= hi
    assert max(abs(p.yaw) for p in a) <= 20 and max(abs(p.pitch) for p in a) <= 10
    assert len({p.yaw for p in a}) == 10
    assert sample_view_params(0, 0) == []


def test_params_json_plain():
    from bids_app.mri.surface import FaceFrame

    frame = FaceFrame(center=np.array([0.0, 50.0, 0.0]), anterior=np.array([0.0, 1.0, 0.0]),
                      superior=np.array([0.0, 0.0, 1.0]), size=200.0, nose_tip=np.array([0, 80.0, 0]))
    p = sample_view_params(7, 1)[0]
    doc = p.to_json(frame)
    assert set(doc) == {"Camera", "Light"}
    assert {"Yaw", "Pitch", "Roll", "ViewAngle", "Position", "FocalPoint", "ViewUp"} <= set(doc["Camera"])
    assert {"Azimuth", "Elevation", "Intensity", "FillIntensity"} <= set(doc["Light"])
    assert json.loads(json.dumps(doc)) == doc
    pose = camera_pose(frame, p)
    # camera in front of the face, looking at its centre, up roughly superior
    assert pose["Position"][1] > frame.center[1] + 100
    assert np.allclose(pose["FocalPoint"], frame.center)
    assert pose["ViewUp"][2] > 0.9
    assert isinstance(ViewParams(**{k: 0.0 for k in RANGES}).to_json()["Camera"]["Yaw"], float)


@pytest.fixture(scope="module")
def renders02():
    return _pipeline("02")


def test_renders_shape_and_differ(renders02):
    _, params, images = renders02
    assert len(images) == len(params) == 10
    for img in images:
        assert img.shape == (512, 512, 3) and img.dtype == np.uint8
        assert img.std() > 10  # not blank
    for a, b in zip(images, images[1:]):
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0


def test_renders_show_a_face(renders02):
    score = _detector()
    scores = [score(img) for img in renders02[2]]
    assert sum(s >= 0.5 for s in scores) >= 8, scores


@pytest.mark.slow
@pytest.mark.parametrize("label", ["01", "03", "04"])
def test_renders_show_a_face_other_heads(label):
    score = _detector()
    _, _, images = _pipeline(label, seed=int(label))
    scores = [score(img) for img in images]
    assert sum(s >= 0.5 for s in scores) >= 8, scores


def test_render_empty_params_list(renders02):
    import pyvista as pv

    frame = renders02[0]
    assert render_views(pv.Sphere(), frame, []) == []


def test_headless_backend_default():
    assert os.environ.get("VTK_DEFAULT_OPENGL_WINDOW")


# ---------------------------------------------------------------------------
# Renders of realistically altered real heads (bids_app.mri.augment) built
# from demo head sub-03 (real T1w, 1.5 mm). Four renders each keep this fast.


def _variant(case: str, with_depth: bool = False):
    import nibabel as nib

    from bids_app.mri import augment

    vol = load_head(DEMO / "sub-03" / "anat" / "sub-03_T1w.nii.gz")
    d, a = vol.data, vol.affine
    mask = head_mask(d, vol.zooms)
    tip = face_frame(head_surface(mask, a)).nose_tip
    makers = {
        "FLAIR": lambda: augment.remap_contrast(d, a, "FLAIR"),
        "T2w": lambda: augment.remap_contrast(d, a, "T2w"),
        "FLAIR+bias": lambda: augment.bias_field(*augment.remap_contrast(d, a, "FLAIR"), low=0.5),
        "LPS+oblique": lambda: augment.resample(*augment.reorient(d, a, "LPS"), vol.zooms, (10.0, 0.0, 10.0)),
        "1x1x3": lambda: augment.resample(d, a, (1.0, 1.0, 3.0)),
        "pitch15": lambda: augment.rotate_head(d, a, pitch=15.0),
        "roll15": lambda: augment.rotate_head(d, a, roll=15.0),
        "clutter+noise": lambda: augment.add_noise(*augment.add_frame(d, a, tip), 0.03),
        "defaced": lambda: augment.deface(d, a, tip),
        "skullstripped": lambda: augment.skull_strip(d, a, mask, floor_z=float(tip[2])),
    }
    d2, a2 = makers[case]()
    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(d2, np.float32), a2))
    data = np.asarray(img.dataobj, np.float32)
    surf = head_surface(head_mask(data, img.header.get_zooms()[:3]), img.affine)
    frame = face_frame(surf)
    views = sample_view_params(3, 4)
    if not with_depth:
        return render_views(surf, frame, views, size=512)
    images, depths = render_views(surf, frame, views, size=512, with_depth=True)
    return images, depths, [camera_pose(frame, v) for v in views]


def _detections(images):
    model = load_face_model("sface")
    return [model.detect(img, min_score=0.5) for img in images]


@pytest.mark.parametrize("case", ["FLAIR", "T2w", "FLAIR+bias", "LPS+oblique", "1x1x3", "pitch15",
                                  "roll15", "clutter+noise"])
@pytest.mark.slow
def test_variants_render_frontal_faces(case):
    found = _detections(_variant(case))
    assert sum(bool(f) for f in found) >= 3, case
    tilts = []
    for faces in found:
        if faces:
            lm = np.asarray(faces[0].landmarks)
            tilts.append(np.degrees(np.arctan2(lm[1, 1] - lm[0, 1], lm[1, 0] - lm[0, 0])))
    # eye line near horizontal: the camera's up is the head's superior axis
    assert np.median(np.abs(tilts)) < 10, (case, tilts)


def _faces_in_3d(case: str, **settings):
    """The participant level's detection (two passes) and 3D face decision on four renders."""
    from bids_app.config import Settings
    from bids_app.workflows.face_search import faces_on_renders

    images, depths, poses = _variant(case, with_depth=True)
    found = [bool(load_face_model("sface").detect_with_fallback(im, min_score=0.5)[0]) for im in images]
    finding = faces_on_renders(load_face_model("sface"), images, depths, poses,
                               Settings(Path("."), Path("."), "participant", **settings))
    return found, finding.kept, finding.faces, finding.decision


@pytest.mark.slow
@pytest.mark.parametrize("case", ["defaced", "skullstripped"])
def test_no_face_no_detection(case):
    """The detector alone scores face-like shading on these (0.3-0.8); the 3D check keeps none."""
    found, kept, faces, decision = _faces_in_3d(case)
    assert any(found), "the detector should be fooled here, or this checks nothing"
    assert not decision.face and not any(kept), [f.get("Rejected") for f in faces]
    assert all("Rejected" in face for face, f in zip(faces, found) if f)


@pytest.mark.slow
def test_face_check_off_keeps_what_the_detector_finds():
    """--min-nose-relief 0 turns the 3D check off: the detector's own findings on a
    skull-stripped head are kept."""
    found, kept, _, decision = _faces_in_3d("skullstripped", min_nose_relief=0.0)
    assert [k is not None for k in kept] == found and decision.support == sum(found)


@pytest.mark.slow
def test_real_faces_pass_the_3d_check():
    _, kept, faces, decision = _faces_in_3d("FLAIR")
    assert all(k is not None for k in kept) and decision.face and decision.support == 4
    reliefs = [face["NoseReliefMm"] for face in faces]
    assert min(reliefs) > 25, reliefs  # this head's nose: 31-32 mm out of the face in 3D
    assert all(40 < face["EyeDistanceMm"] < 60 for face in faces)  # 47-51 mm between the eye landmarks


def test_render_crops_the_back_of_the_head(renders02):
    frame, params, images = renders02
    import pyvista as pv

    sphere = pv.Sphere(radius=80, center=tuple(frame.center), theta_resolution=60, phi_resolution=60)
    full = render_views(sphere, frame, params[:1], size=128, crop_mm=None)[0]
    cropped = render_views(sphere, frame, params[:1], size=128)[0]
    assert full.shape == cropped.shape == (128, 128, 3)


def test_depth_from_zbuffer_inverts_the_perspective_depth():
    from bids_app.render import _depth_from_zbuffer

    near, far = 100.0, 400.0
    distance = np.array([100.0, 150.0, 250.0, 399.0])
    # OpenGL window depth of a point ``distance`` in front of a perspective camera
    ndc = (far + near) / (far - near) - 2 * far * near / ((far - near) * distance)
    zbuffer = np.r_[(ndc + 1) / 2, 1.0].reshape(1, -1)  # last pixel: the far plane (background)
    depth = _depth_from_zbuffer(zbuffer, near, far)
    assert depth.dtype == np.float32 and depth.shape == (1, 5)
    assert np.allclose(depth[0, :4], distance, atol=1e-3)
    assert np.isnan(depth[0, 4])


def test_depth_map_of_a_sphere(renders02):
    """Depth maps measure mm from the camera plane, aligned with the image, NaN off the surface."""
    import pyvista as pv

    from bids_app.render import BACKGROUND, VIEW_ANGLE

    frame = renders02[0]
    radius = 80.0
    sphere = pv.Sphere(radius=radius, center=tuple(frame.center), theta_resolution=90, phi_resolution=90)
    front = ViewParams(**{**{k: (lo + hi) / 2 for k, (lo, hi) in RANGES.items()},
                          "yaw": 0.0, "pitch": 0.0, "roll": 0.0, "zoom": 1.0})
    (image,), (depth,) = render_views(sphere, frame, [front], size=129, crop_mm=None, with_depth=True)
    distance = 0.5 * frame.size / np.tan(np.deg2rad(VIEW_ANGLE / 2))
    assert depth[64, 64] == pytest.approx(distance - radius, abs=0.5)  # the point nearest the camera
    assert np.nanmin(depth) == pytest.approx(distance - radius, abs=0.5)
    background = np.all(image == np.round(np.array(BACKGROUND) * 255).astype(np.uint8), axis=-1)
    assert np.isnan(depth[background]).all() and np.isfinite(depth[~background]).mean() > 0.9  # edges: anti-aliased
    assert np.isnan(depth[0, 0]) and background.any() and (~background).any()
