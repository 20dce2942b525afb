"""Face detection, alignment and embedding on real photos (no mocks).

Images: NASA's astronaut portrait (``skimage.data.astronaut``, public domain)
and insightface's group photo of six people (``insightface/data/images/t1.jpg``).
"""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from bids_app.face import Detection, FaceModel, available_face_models, load_face_model
from bids_app.face.align import ARCFACE_TEMPLATE, similarity_transform


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return load_face_model("sface")


@pytest.fixture(scope="module")
def group_faces(model: FaceModel, group: np.ndarray) -> list[Detection]:
    return model.detect(group)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


# --------------------------------------------------------------------------- API


def test_unknown_model_name_lists_known() -> None:
    with pytest.raises(ValueError, match="sface"):
        load_face_model("no-such-model")
    assert "sface" in available_face_models()


def test_info(model: FaceModel) -> None:
    info = model.info
    assert info["Name"] == "sface"
    assert info["Detector"] == "yunet"
    assert info["Recognizer"] == "sface"
    assert info["Dimension"] == model.dim == 128
    for role in ("detector", "recognizer"):
        entry = info["Files"][role]
        assert entry["Name"].endswith(".onnx")
        assert len(entry["SHA256"]) == 64
        int(entry["SHA256"], 16)
    assert "RGB" in info["Preprocessing"]
    json.dumps(info)  # serialisable
    info["Files"]["detector"]["Name"] = "changed"  # a copy: the model is unchanged
    assert model.info["Files"]["detector"]["Name"].endswith(".onnx")


def test_bad_image_rejected(model: FaceModel, astronaut: np.ndarray) -> None:
    with pytest.raises(TypeError):
        model.detect(astronaut.astype(np.float32))
    with pytest.raises(ValueError):
        model.detect(astronaut[:, :, 0])


# --------------------------------------------------------------------------- detection


def test_astronaut_detection(model: FaceModel, astronaut: np.ndarray) -> None:
    dets = model.detect(astronaut, min_score=0.5)
    assert len(dets) == 1
    det = dets[0]
    assert det.score > 0.8
    x, y, w, h = det.box
    assert w > 50 and h > 50
    lmk = det.landmarks
    assert lmk.shape == (5, 2)
    assert np.all((lmk[:, 0] > x) & (lmk[:, 0] < x + w))
    assert np.all((lmk[:, 1] > y) & (lmk[:, 1] < y + h))
    # ArcFace order: the person's right eye is on the image's left; eyes above nose above mouth
    assert lmk[0, 0] < lmk[1, 0] and lmk[3, 0] < lmk[4, 0]
    assert max(lmk[0, 1], lmk[1, 1]) < lmk[2, 1] < min(lmk[3, 1], lmk[4, 1])


def test_detection_json_roundtrip(model: FaceModel, astronaut: np.ndarray) -> None:
    det = model.detect(astronaut)[0]
    doc = det.to_json()
    assert set(doc) == {"Score", "Box", "Landmarks"}
    assert type(doc["Score"]) is float
    assert all(type(v) is float for v in doc["Box"]) and len(doc["Box"]) == 4
    assert len(doc["Landmarks"]) == 5
    assert all(type(v) is float for pt in doc["Landmarks"] for v in pt)
    again = Detection.from_json(json.loads(json.dumps(doc)))
    assert again == det
    with pytest.raises(Exception):
        det.score = 0.0  # frozen
    with pytest.raises(ValueError):
        det.landmarks[0, 0] = 0.0  # read-only


def test_min_score_filters(model: FaceModel, astronaut: np.ndarray) -> None:
    assert model.detect(astronaut, min_score=0.999) == []
    blank = np.full((200, 300, 3), 127, np.uint8)
    assert model.detect(blank) == []


def test_group_photo_six_faces(model: FaceModel, group_faces: list[Detection]) -> None:
    assert len(group_faces) == 6
    assert all(d.score > 0.8 for d in group_faces)
    centres = np.array([d.center for d in group_faces])
    # six distinct people: no two boxes share a centre
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    assert dist[np.triu_indices(6, 1)].min() > 50


def test_largest_central_face_first(model: FaceModel, astronaut: np.ndarray) -> None:
    # the astronaut, shrunk, beside the full-size one on a wide canvas
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 1024, 3), 200, np.uint8)
    canvas[:, 256:768] = astronaut
    canvas[:256, 768:] = small
    dets = model.detect(canvas)
    assert len(dets) == 2
    assert dets[0].area > dets[1].area
    assert 256 < dets[0].center[0] < 768


# --------------------------------------------------------------------------- alignment


def test_similarity_transform_recovers_known_transform() -> None:
    angle, scale, shift = np.deg2rad(17.0), 2.5, np.array([40.0, -12.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE
    dst = scale * src @ rot.T + shift
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], scale * rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def _crop_landmarks(model: FaceModel, crop: np.ndarray) -> np.ndarray:
    """Landmarks the detector finds in an aligned crop, in crop pixels."""
    big = cv2.resize(crop, (224, 224), interpolation=cv2.INTER_CUBIC)
    dets = model.detect(big, min_score=0.3)
    assert dets, "no face found in the aligned crop"
    return dets[0].landmarks / 2.0


@pytest.mark.parametrize("angle", [0.0, 10.0, -12.0])
def test_aligned_crop_is_upright(model: FaceModel, astronaut: np.ndarray, angle: float) -> None:
    centre = (256.0, 256.0)
    image = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D(centre, angle, 1.0), (512, 512))
    crop = model.align(image, model.detect(image)[0])
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    # the detector, run on the crop itself, finds eyes above nose above mouth,
    # a near-level eye line and landmarks near the template
    lmk = _crop_landmarks(model, crop)
    assert lmk[:2, 1].max() < lmk[2, 1] < lmk[3:, 1].min()
    assert lmk[0, 0] < lmk[1, 0]
    eye_dx, eye_dy = lmk[1] - lmk[0]
    assert abs(np.degrees(np.arctan2(eye_dy, eye_dx))) < 10.0
    assert np.abs(lmk - ARCFACE_TEMPLATE).max() < 8.0
    # and the recogniser sees the same person as in the unrotated photo
    upright = model.embed(astronaut, model.detect(astronaut)[0])
    assert _cos(upright, model.embed_crop(crop)) > 0.9


# --------------------------------------------------------------------------- embedding


def test_embedding_shape_norm_and_determinism(model: FaceModel, astronaut: np.ndarray) -> None:
    det = model.detect(astronaut)[0]
    vec = model.embed(astronaut, det)
    assert vec.dtype == np.float32 and vec.shape == (model.dim,) == (128,)
    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    again = model.embed(astronaut.copy(), model.detect(astronaut.copy())[0])
    np.testing.assert_array_equal(vec, again)
    np.testing.assert_array_equal(vec, model.embed_crop(model.align(astronaut, det)))


def _augmentations(image: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Augmented copies of *image* with the 2x3 affine map of their pixel coordinates."""
    h, w = image.shape[:2]
    ident = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out["flip"] = (np.ascontiguousarray(image[:, ::-1]), np.array([[-1.0, 0, w - 1], [0, 1.0, 0]]))
    brighter = np.clip(image.astype(np.float32) * 1.3 + 20, 0, 255).astype(np.uint8)
    out["brightness"] = (brighter, ident)
    rot = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), 8.0, 1.0)
    out["rotation"] = (cv2.warpAffine(image, rot, (w, h), borderMode=cv2.BORDER_REFLECT), rot)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=35)
    out["jpeg"] = (np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), ident)
    scale = 0.6
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    out["scale"] = (small, np.array([[scale, 0, 0], [0, scale, 0]]))
    return out


def test_same_person_closer_than_others(
    model: FaceModel, group: np.ndarray, group_faces: list[Detection]
) -> None:
    refs = np.stack([model.embed(group, d) for d in group_faces])
    between = refs @ refs.T
    np.fill_diagonal(between, -1.0)
    assert between.max() < 0.5  # six different people
    for name, (aug, affine) in _augmentations(group).items():
        aug_faces = model.detect(aug)
        assert len(aug_faces) == 6, name
        aug_centres = np.array([d.center for d in aug_faces])
        for i, det in enumerate(group_faces):
            where = affine[:, :2] @ np.array(det.center) + affine[:, 2]
            j = int(np.argmin(np.linalg.norm(aug_centres - where, axis=1)))
            same = _cos(refs[i], model.embed(aug, aug_faces[j]))
            others = between[i].max()
            # measured: same 0.46-0.98 (lowest: a 3/4 profile, mirrored), others <= 0.31
            assert same > 0.4, (name, i, same)
            assert same > others + 0.15, (name, i, same, others)


def test_model_threads_give_the_same_embedding(model: FaceModel, astronaut: np.ndarray) -> None:
    """The command gives SFace's session a second onnxruntime thread where a CPU is free
    (:func:`bids_app.cli.run.model_threads`): the embedding is the same, to float rounding."""
    two = load_face_model("sface", threads=2)
    det = model.detect(astronaut)[0]
    one_vec, two_vec = model.embed(astronaut, det), two.embed(astronaut, det)
    assert one_vec.shape == two_vec.shape == (model.dim,)
    np.testing.assert_allclose(two_vec, one_vec, rtol=0, atol=1e-6)


def test_model_threads_share_the_cpus_this_process_may_use(monkeypatch) -> None:
    import os

    from bids_app.cli import run

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert [run.model_threads(n) for n in (1, 3, 4, 5, 8, 16)] == [2, 2, 2, 1, 1, 1]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert run.model_threads(1) == 1
