"""insightface model packs (SCRFD detector + ArcFace recogniser), loaded by path.

``--face-model /path/to/buffalo_l`` points facerisk at an unpacked insightface
model pack. The strongest open face recognisers are distributed this way:

* ``buffalo_l``: SCRFD-10GF detector (``det_10g.onnx``) + ArcFace ResNet-50
  trained on WebFace600K (``w600k_r50.onnx``, 512-D);
* ``antelopev2``: SCRFD-10GF + ArcFace ResNet-100 trained on Glint360K
  (``glintr100.onnx``, 512-D);
* ``buffalo_s`` / ``buffalo_sc``: small SCRFD + MobileFaceNet (512-D).

Where to get them: the insightface project publishes the packs as zip files on
its GitHub releases (https://github.com/deepinsight/insightface/releases, tag
``v0.7``) and lists them in its model zoo
(https://github.com/deepinsight/insightface/tree/master/python-package).
**Licence: the packs are for non-commercial research use only** (the
insightface code is MIT, the trained models are not); check the terms before
using them. facerisk never downloads them: unzip a pack yourself and pass the
folder.

How a pack is read
------------------
Every ``*.onnx`` file in the folder (not its subfolders) is identified by its
graph, not its name (:func:`identify`):

* **SCRFD detector**: one image input, 9 or 15 outputs (score, box and five
  keypoints at 3 or 5 strides). SCRFD variants without keypoints (6 or 10
  outputs) cannot align faces and are reported as such.
* **YuNet detector** (OpenCV Zoo): one image input, 12 outputs
  (``cls``/``obj``/``bbox``/``kps`` at strides 8, 16, 32). Accepted in place
  of SCRFD, so that a pack can pair an ArcFace recogniser with the
  Apache-licensed detector (this is also how the tests assemble a pack).
* **ArcFace-style recogniser**: one input ``N x 3 x 112 x 112``, one output
  ``N x D``.
* anything else (insightface's 2d106/3d68 landmark and gender-age models,
  swappers): ignored, and listed in errors.

A pack needs exactly one usable detector (SCRFD preferred over YuNet) and one
recogniser; otherwise :class:`PackError` lists each file and what it was
taken for. SCRFD and the recogniser run through insightface's own wrappers
(:class:`insightface.model_zoo.SCRFD`, :class:`insightface.model_zoo.ArcFaceONNX`),
built from the explicit files with onnxruntime's CPU provider: nothing is
looked up in ``~/.insightface`` and nothing is downloaded.

Pixel normalisation of the recogniser: ArcFace exports that do it inside the
graph (MXNet conversions, SFace) start with a ``Sub`` or ``Mul`` on the input
and take raw 0-255 RGB; the others take ``(x - 127.5) / 127.5``. This is read
from the graph (the first operator on the input) and recorded in
``info["Preprocessing"]``; ``input_mean`` / ``input_std`` override it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bids_app.face._onnx import GraphSummary, file_record, onnx_session, summarize_graph
from bids_app.face.base import Detection, FaceModel, check_image, order_detections

__all__ = ["InsightFacePackModel", "PackError", "PackFile", "identify", "scan_pack"]

#: Roles :func:`identify` assigns.
SCRFD, SCRFD_NO_KPS, YUNET, RECOGNIZER, OTHER, UNREADABLE = (
    "scrfd detector",
    "scrfd detector without landmarks (unusable)",
    "yunet detector",
    "arcface recogniser",
    "other model (ignored)",
    "unreadable",
)

#: Operators that, applied straight to the input, mean the graph normalises pixels itself.
_NORMALISING_OPS = frozenset({"Sub", "Add", "Mul", "Div"})


class PackError(ValueError):
    """A model pack facerisk cannot use; the message lists the files found."""


@dataclass(frozen=True)
class PackFile:
    """One ONNX file of a pack and what it was identified as."""

    path: Path
    role: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path.name}: {self.role} ({self.detail})"


def _last_dims(summary: GraphSummary) -> list[int | str | None]:
    return [shape[-1] if shape else None for _, shape in summary.outputs]


def identify(path: Path) -> PackFile:
    """Tell what kind of face model the ONNX file at *path* is, from its graph."""
    path = Path(path)
    try:
        summary = summarize_graph(path.resolve())
    except ValueError as err:
        return PackFile(path, UNREADABLE, str(err))
    detail = summary.describe()
    if len(summary.inputs) != 1:
        return PackFile(path, OTHER, detail)
    in_shape = summary.inputs[0][1]
    if len(in_shape) != 4 or in_shape[1] != 3:
        return PackFile(path, OTHER, detail)
    n_out = len(summary.outputs)
    last = _last_dims(summary)
    names = [name for name, _ in summary.outputs]
    if n_out == 12 and all(any(n.startswith(p) for p in ("cls", "obj", "bbox", "kps")) for n in names):
        return PackFile(path, YUNET, detail)
    if n_out in (9, 15):
        levels = n_out // 3
        expected = [1] * levels + [4] * levels + [10] * levels
        if all(d is None or isinstance(d, str) or d == e for d, e in zip(last, expected)):
            return PackFile(path, SCRFD, detail)
    if n_out in (6, 10):
        levels = n_out // 2
        expected = [1] * levels + [4] * levels
        if all(d is None or isinstance(d, str) or d == e for d, e in zip(last, expected)):
            return PackFile(path, SCRFD_NO_KPS, detail)
    if n_out == 1 and in_shape[2] == in_shape[3] == 112:
        out_shape = summary.outputs[0][1]
        if len(out_shape) == 2 and isinstance(out_shape[1], int) and out_shape[1] >= 64:
            return PackFile(path, RECOGNIZER, f"{detail}; {out_shape[1]}-D")
    return PackFile(path, OTHER, detail)


def scan_pack(folder: Path) -> list[PackFile]:
    """Identify every ``*.onnx`` file directly in *folder*, sorted by name."""
    return [identify(p) for p in sorted(Path(folder).glob("*.onnx")) if p.is_file()]


def _choose(files: list[PackFile], folder: Path) -> tuple[PackFile, PackFile]:
    """The pack's detector and recogniser, or :class:`PackError` listing the files."""

    def listing() -> str:
        if not files:
            return "no *.onnx files"
        return "; ".join(str(f) for f in files)

    detectors = [f for f in files if f.role == SCRFD] or [f for f in files if f.role == YUNET]
    recognizers = [f for f in files if f.role == RECOGNIZER]
    problems = []
    if not detectors:
        problems.append("no face detector with five landmarks (SCRFD or YuNet)")
    elif len(detectors) > 1:
        problems.append("several detectors: keep one")
    if not recognizers:
        problems.append("no recogniser (one input Nx3x112x112, one output NxD)")
    elif len(recognizers) > 1:
        problems.append("several recognisers: keep one")
    if problems:
        raise PackError(f"face model pack {folder}: {' and '.join(problems)}. Found: {listing()}")
    return detectors[0], recognizers[0]


class _ScrfdDetector:
    """insightface's SCRFD on an explicit file: RGB in, :class:`Detection` list out."""

    def __init__(self, path: Path, det_size: int, nms_threshold: float, threads: int) -> None:
        from insightface.model_zoo import SCRFD

        session = onnx_session(path.resolve(), threads)
        self._model = SCRFD(model_file=str(path), session=session)
        self._model.nms_thresh = float(nms_threshold)
        self._size = (int(det_size), int(det_size))
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray, threshold: float) -> list[Detection]:
        height, width = image.shape[:2]
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        with self._lock:
            boxes, kpss = self._model.detect(bgr, input_size=self._size, det_thresh=float(threshold))
        dets = []
        for i, row in enumerate(np.asarray(boxes, dtype=np.float64)):
            x1, y1, x2, y2, score = row[:5]
            if score < threshold or kpss is None:
                continue
            dets.append(Detection(box=(x1, y1, x2 - x1, y2 - y1), landmarks=kpss[i], score=score))
        return order_detections(dets, width, height)


class InsightFacePackModel(FaceModel):
    """Detector + ArcFace recogniser from an insightface model pack folder.

    Parameters
    ----------
    folder : path-like
        The unpacked pack (e.g. ``~/models/buffalo_l``).
    min_score : float
        Default detection threshold of :meth:`detect`.
    det_size : int
        Side of the square SCRFD input (the image is letterboxed into it).
    nms_threshold : float
        IoU above which overlapping boxes are merged.
    threads : int
        onnxruntime intra-op threads per session.
    input_mean, input_std : float, optional
        Override the recogniser's pixel normalisation read from its graph.

    Raises
    ------
    PackError
        if the folder lacks a usable detector or recogniser (the message
        lists every ONNX file and what it was identified as).
    """

    crop_size = 112

    def __init__(
        self,
        folder: str | Path,
        min_score: float = 0.5,
        det_size: int = 640,
        nms_threshold: float = 0.4,
        threads: int = 1,
        input_mean: float | None = None,
        input_std: float | None = None,
    ) -> None:
        from insightface.model_zoo import ArcFaceONNX

        self.folder = Path(folder).expanduser().resolve()
        if not self.folder.is_dir():
            raise PackError(f"face model pack {folder}: not a folder")
        self.files = scan_pack(self.folder)
        detector, recognizer = _choose(self.files, self.folder)
        self._detector_file, self._recognizer_file = detector, recognizer
        self.default_min_score = float(min_score)
        self.name = f"pack:{self.folder.name}"

        if detector.role == SCRFD:
            self._detect = _ScrfdDetector(detector.path, det_size, nms_threshold, threads)
            self._detector_kind = "scrfd"
        else:
            from bids_app.face.sface import YuNetDetector

            self._detect = YuNetDetector(detector.path, nms_threshold)
            self._detector_kind = "yunet"

        session = onnx_session(recognizer.path, int(threads))
        self._recognizer = ArcFaceONNX(model_file=str(recognizer.path), session=session)
        summary = summarize_graph(recognizer.path)
        embedded = bool(set(summary.input_ops) & _NORMALISING_OPS)
        mean, std = (0.0, 1.0) if embedded else (127.5, 127.5)
        self._recognizer.input_mean = float(mean if input_mean is None else input_mean)
        self._recognizer.input_std = float(std if input_std is None else input_std)
        self.dim = int(summary.outputs[0][1][1])  # type: ignore[arg-type]

    def _describe(self) -> dict[str, Any]:
        rec = self._recognizer
        return {
            "Name": self.name,
            "Detector": self._detector_kind,
            "Recognizer": "arcface",
            "Files": {
                "detector": file_record(self._detector_file.path),
                "recognizer": file_record(self._recognizer_file.path),
            },
            "Dimension": self.dim,
            "Preprocessing": (
                f"{self._detector_kind.upper()} 5-point landmarks; similarity alignment onto the "
                "ArcFace 112x112 template (bilinear, black border); RGB float32 "
                f"(x - {rec.input_mean:g}) / {rec.input_std:g}, NCHW; output L2-normalised"
            ),
            "Pack": str(self.folder),
        }

    def detect(self, image: np.ndarray, min_score: float | None = None) -> list[Detection]:
        image = check_image(image)
        threshold = self.default_min_score if min_score is None else float(min_score)
        return self._detect(image, threshold)

    def embed_crop(self, crop: np.ndarray) -> np.ndarray:
        crop = check_image(crop)
        if crop.shape[:2] != (self.crop_size, self.crop_size):
            raise ValueError(f"ArcFace takes 112x112 aligned crops, got {crop.shape[:2]}")
        bgr = np.ascontiguousarray(crop[:, :, ::-1])  # insightface swaps back to RGB
        vec = np.asarray(self._recognizer.get_feat(bgr), dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm == 0.0:
            raise RuntimeError(f"{self._recognizer_file.path.name} returned a zero or non-finite embedding")
        return vec / np.float32(norm)
