"""The dlib backend, insightface model packs, two-pass detection and model lists.

Real images (NASA's astronaut, ``skimage.data``, public domain; insightface's
group photo ``t1.jpg``) and real networks. The insightface packs themselves
(buffalo_l, antelopev2) cannot be shipped (non-commercial licence, not in any
registry), so packs are assembled here from the Apache-licensed YuNet and
SFace files, and the SCRFD code path is exercised with a small SCRFD-shaped
ONNX graph built below whose outputs encode one known face.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bids_app.face import (
    FaceModel,
    available_face_models,
    fuse_scores,
    load_face_model,
    parse_face_models,
)
from bids_app.face._onnx import cleaned_onnx
from bids_app.face.sface import DETECTOR_FILE, RECOGNIZER_FILE, model_dir


@pytest.fixture(scope="module")
def sface() -> FaceModel:
    return load_face_model("sface")


# --------------------------------------------------------------------------- names


def test_known_names() -> None:
    assert {"sface", "dlib"} <= set(available_face_models())


def test_unknown_name_lists_known_and_packs() -> None:
    with pytest.raises(ValueError) as err:
        load_face_model("arcface-large")
    message = str(err.value)
    assert "'arcface-large'" in message
    assert "sface" in message and "dlib" in message and "pack" in message


def test_missing_pack_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such folder"):
        load_face_model(str(tmp_path / "buffalo_l"))


def test_parse_face_models(tmp_path: Path) -> None:
    assert parse_face_models("sface") == ["sface"]
    assert parse_face_models(" SFace , dlib,sface ") == ["sface", "dlib"]
    assert parse_face_models(f"sface,{tmp_path}") == ["sface", str(tmp_path)]
    with pytest.raises(ValueError, match="known models: dlib, sface"):
        parse_face_models("sface,facenet")
    with pytest.raises(ValueError, match="no such folder"):
        parse_face_models(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="no face model"):
        parse_face_models(" , ")


def test_fuse_scores() -> None:
    a = np.array([[0.9, 0.1], [0.2, 0.8]])  # one backend's scale
    b = 0.8 + 0.1 * a  # another's: same order, compressed and shifted
    fused = fuse_scores([a, b])
    za = (a - a.mean()) / a.std()
    np.testing.assert_allclose(fused, za)  # z-scoring removes the scale
    c = a.copy()
    c[0, 1] = np.nan
    fused = fuse_scores([c, np.full_like(a, np.nan)])
    assert np.isnan(fused[0, 1]) and np.isfinite(fused[1]).all()
    with pytest.raises(ValueError, match="shape"):
        fuse_scores([a, a[:1]])


# --------------------------------------------------------------------------- dlib


@pytest.fixture(scope="module")
def dlib_model() -> FaceModel:
    pytest.importorskip("dlib", reason="optional backend: pip install 'facerisk[dlib]'")
    pytest.importorskip("face_recognition_models", reason="optional: pip install 'facerisk[dlib]'")
    return load_face_model("dlib")


def test_dlib_info(dlib_model: FaceModel) -> None:
    info = dlib_model.info
    assert info["Name"] == "dlib" and info["Dimension"] == dlib_model.dim == 128
    names = {entry["Name"] for entry in info["Files"].values()}
    assert "shape_predictor_5_face_landmarks.dat" in names
    assert "dlib_face_recognition_resnet_model_v1.dat" in names
    assert not any("68" in name for name in names)  # the non-commercial model is not used
    assert len(info["Files"]["recognizer"]["SHA256"]) == 64


def test_dlib_astronaut(dlib_model: FaceModel, astronaut: np.ndarray) -> None:
    dets = dlib_model.detect(astronaut, min_score=0.6)
    assert len(dets) == 1
    det = dets[0]
    assert 0.6 < det.score < 1.0
    lmk = det.landmarks
    assert lmk.shape == (5, 2)
    x, y, w, h = det.box
    assert np.all((lmk[:, 0] > x) & (lmk[:, 0] < x + w))
    # common order: person's right eye on the image's left, eyes above nose above mouth
    assert lmk[0, 0] < lmk[1, 0] and lmk[3, 0] < lmk[4, 0]
    assert max(lmk[0, 1], lmk[1, 1]) < lmk[2, 1] < min(lmk[3, 1], lmk[4, 1])
    # the same eyes as YuNet finds, within a few pixels
    ref = load_face_model("sface").detect(astronaut)[0].landmarks
    assert np.abs(lmk[:2] - ref[:2]).max() < 6.0

    crop = dlib_model.align(astronaut, det)
    assert crop.shape == (150, 150, 3) and crop.dtype == np.uint8
    vec = dlib_model.embed(astronaut, det)
    assert vec.dtype == np.float32 and vec.shape == (128,)
    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    np.testing.assert_array_equal(vec, dlib_model.embed_crop(crop))


def test_dlib_same_person_closer(dlib_model: FaceModel, group: np.ndarray, astronaut: np.ndarray) -> None:
    faces = dlib_model.detect(group, min_score=0.6)
    assert len(faces) == 6
    refs = np.stack([dlib_model.embed(group, d) for d in faces])
    between = refs @ refs.T
    np.fill_diagonal(between, -1.0)
    # the same people, mirrored and re-encoded at JPEG quality 35
    import io

    flipped = np.ascontiguousarray(group[:, ::-1])
    buf = io.BytesIO()
    Image.fromarray(flipped).save(buf, format="JPEG", quality=35)
    aug = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    aug_faces = dlib_model.detect(aug, min_score=0.6)
    assert len(aug_faces) == 6
    width = group.shape[1]
    centres = np.array([(width - 1 - d.center[0], d.center[1]) for d in aug_faces])
    for i, det in enumerate(faces):
        j = int(np.argmin(np.linalg.norm(centres - np.array(det.center), axis=1)))
        same = float(refs[i] @ dlib_model.embed(aug, aug_faces[j]))
        # dlib's descriptors are not centred: different people score high too,
        # but the same person scores higher than anyone else
        assert same > between[i].max() + 0.02, (i, same, between[i].max())
    astro = dlib_model.embed(astronaut, dlib_model.detect(astronaut, 0.6)[0])
    assert float((refs @ astro).max()) < float(astro @ astro) - 0.05


def test_dlib_missing_message() -> None:
    from bids_app.face import dlib_resnet

    assert dlib_resnet.INSTALL_HINT == "the dlib backend needs: pip install 'facerisk[dlib]'"


# --------------------------------------------------------------------------- two-pass detection


def test_fallback_finds_tight_crop_and_maps_back(dlib_model: FaceModel, astronaut: np.ndarray) -> None:
    """dlib's HOG window needs margin: a face cropped inside its box is found only in pass 2."""
    full = dlib_model.detect(astronaut)[0]
    x, y, w, h = (int(round(v)) for v in full.box)
    m = 10
    crop = np.ascontiguousarray(astronaut[y + m : y + h - m, x + m : x + w - m])
    assert dlib_model.detect(crop) == []
    dets, npass = dlib_model.detect_with_fallback(crop)
    assert npass == 2 and len(dets) == 1
    # back in crop coordinates: the eyes and nose where they are in the full photo
    expected = full.landmarks[:3] - [x + m, y + m]
    assert np.abs(dets[0].landmarks[:3] - expected).max() < 3.0
    bx, by, _, _ = dets[0].box
    assert bx < 0 and by < 0  # the box reaches beyond the tight crop, as it should
    # and the face embeds as the same person
    same = float(dlib_model.embed(crop, dets[0]) @ dlib_model.embed(astronaut, full))
    assert same > 0.95


def test_fallback_pass_numbers(sface: FaceModel, astronaut: np.ndarray) -> None:
    ref = sface.detect(astronaut)[0]
    dets, npass = sface.detect_with_fallback(astronaut, min_score=0.5)
    assert npass == 1 and dets[0] == ref
    # pass 1 cannot succeed at 0.999; pass 2 (padded, 0.5) finds the same face
    dets, npass = sface.detect_with_fallback(astronaut, min_score=0.999, fallback_min_score=0.5)
    assert npass == 2
    assert np.abs(dets[0].landmarks - ref.landmarks).max() < 4.0
    assert abs(dets[0].center[0] - ref.center[0]) < 4 and abs(dets[0].center[1] - ref.center[1]) < 4
    # threshold only (pad 0): the same face at its own coordinates
    dets, npass = sface.detect_with_fallback(astronaut, min_score=0.999, fallback_min_score=0.5, pad=0)
    assert npass == 2 and dets[0] == ref
    blank = np.full((200, 200, 3), 90, np.uint8)
    assert sface.detect_with_fallback(blank) == ([], 0)
    with pytest.raises(ValueError):
        sface.detect_with_fallback(blank, pad=-0.1)


# --------------------------------------------------------------------------- insightface packs


def _recogniser_bytes() -> bytes:
    return cleaned_onnx(model_dir() / RECOGNIZER_FILE)


def test_pack_without_detector_lists_files(tmp_path: Path) -> None:
    pack = tmp_path / "buffalo_x"
    pack.mkdir()
    (pack / "w600k_r50.onnx").write_bytes(_recogniser_bytes())
    (pack / "1k3d68.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError) as err:
        load_face_model(str(pack))
    message = str(err.value)
    assert "no face detector" in message
    assert "w600k_r50.onnx: arcface recogniser" in message and "128-D" in message
    assert "1k3d68.onnx: unreadable" in message


def test_pack_without_recogniser_lists_files(tmp_path: Path) -> None:
    pack = tmp_path / "detonly"
    pack.mkdir()
    shutil.copy(model_dir() / DETECTOR_FILE, pack / "det_10g.onnx")
    with pytest.raises(ValueError, match=r"no recogniser.*det_10g.onnx: yunet detector"):
        load_face_model(str(pack))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no \\*.onnx files"):
        load_face_model(str(empty))


def test_pack_yunet_arcface(tmp_path: Path, sface: FaceModel, astronaut: np.ndarray, group: np.ndarray) -> None:
    """A pack under insightface's names, identified by graph: YuNet + SFace (raw, uncleaned file)."""
    pack = tmp_path / "mypack"
    pack.mkdir()
    shutil.copy(model_dir() / DETECTOR_FILE, pack / "det_500m.onnx")
    shutil.copy(model_dir() / RECOGNIZER_FILE, pack / "w600k_mbf.onnx")
    model = load_face_model(str(pack))
    assert model.name == "pack:mypack" and model.dim == 128
    info = model.info
    assert info["Detector"] == "yunet" and info["Recognizer"] == "arcface"
    assert info["Files"]["recognizer"]["Name"] == "w600k_mbf.onnx"
    assert info["Files"]["recognizer"]["SHA256"] == sface.info["Files"]["recognizer"]["SHA256"]
    # the graph normalises pixels itself (Sub, Mul on the input): raw 0-255 in
    assert "(x - 0) / 1" in info["Preprocessing"]
    det = model.detect(astronaut)[0]
    vec = model.embed(astronaut, det)
    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    # through insightface's ArcFaceONNX, the same vector as the sface backend
    assert float(vec @ sface.embed(astronaut, det)) > 0.9999
    assert len(model.detect(group)) == 6


def _scrfd_like_onnx(path: Path, face: dict[str, np.ndarray]) -> None:
    """An ONNX graph shaped like SCRFD (3 strides x score/box/5 keypoints, 2 anchors).

    For a 640 x 640 input its outputs are constant except for one anchor at
    stride 32 (row 5, column 6) that scores 0.9 with the box distances and
    keypoint offsets in *face* (in stride units). The input is used (times
    zero), so that the graph has a real image input.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["input.1"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outputs = []
    anchors = {s: (640 // s) ** 2 * 2 for s in (8, 16, 32)}
    index = (5 * 20 + 6) * 2
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride, count in anchors.items():
            value = np.zeros((count, width), np.float32)
            if stride == 32:
                value[index] = {"score": [0.9], "bbox": face["bbox"], "kps": face["kps"]}[kind]
            name = f"{kind}_{stride}"
            inits.append(numpy_helper.from_array(value, f"{name}_const"))
            nodes.append(helper.make_node("Add", [f"{name}_const", "nothing"], [name]))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [count, width]))
    graph = helper.make_graph(
        nodes,
        "scrfd_like",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 640, 640])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_pack_scrfd_path(tmp_path: Path) -> None:
    """SCRFD is preferred over YuNet and its outputs are decoded into image coordinates."""
    face = {
        "bbox": np.array([2.0, 3.0, 2.0, 3.0]),  # left, top, right, bottom distances
        "kps": np.array([-1.0, -1.0, 1.0, -1.0, 0.0, 0.0, -0.8, 1.2, 0.8, 1.2]),
    }
    pack = tmp_path / "antelope_like"
    pack.mkdir()
    _scrfd_like_onnx(pack / "scrfd_10g_bnkps.onnx", face)
    shutil.copy(model_dir() / DETECTOR_FILE, pack / "yunet.onnx")
    (pack / "glintr100.onnx").write_bytes(_recogniser_bytes())
    model = load_face_model(str(pack))
    assert model.info["Detector"] == "scrfd"

    image = np.full((320, 320, 3), 128, np.uint8)  # letterboxed to 640: scale 2
    dets = model.detect(image, min_score=0.5)
    assert len(dets) == 1
    det = dets[0]
    assert det.score == pytest.approx(0.9)
    centre = np.array([6 * 32, 5 * 32]) / 2.0  # anchor centre in image pixels
    np.testing.assert_allclose(det.box, (centre[0] - 32, centre[1] - 48, 64, 96), atol=1e-3)
    np.testing.assert_allclose(det.landmarks, centre + face["kps"].reshape(5, 2) * 16, atol=1e-3)
    assert model.detect(image, min_score=0.95) == []
    assert model.embed(image, det).shape == (128,)


def test_one_opencv_in_the_installed_environment() -> None:
    """scripts/install.sh (CI, Docker, Singularity) leaves one OpenCV distribution: the headless one."""
    import sys
    from importlib.metadata import PackageNotFoundError, version

    if not (Path(sys.prefix) / ".facerisk-one-opencv").is_file():
        pytest.skip("environment not made by scripts/install.sh")
    import cv2

    with pytest.raises(PackageNotFoundError):
        version("opencv-python")
    assert version("opencv-python-headless").startswith(cv2.__version__)
    assert hasattr(cv2, "FaceDetectorYN")
