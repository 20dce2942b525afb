"""The interface every face backend implements, and the detection record.

A backend bundles three steps that must agree with one another:

1. *detection*: boxes, a confidence score and five landmarks per face;
2. *alignment*: a similarity transform of the five landmarks onto the
   recogniser's template, giving a small square crop;
3. *embedding*: the recogniser's feature vector for that crop, L2-normalised,
   so that the dot product of two embeddings is their cosine similarity.

Images are always ``H x W x 3`` ``uint8`` arrays in **RGB** order; backends
convert to whatever their networks expect.

Landmarks follow the insightface / ArcFace five-point order::

    0 right eye          (the person's right: image-left on a frontal face)
    1 left eye
    2 nose tip
    3 right mouth corner
    4 left mouth corner
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bids_app.face.align import ARCFACE_TEMPLATE, norm_crop

__all__ = [
    "LANDMARK_NAMES",
    "Detection",
    "FaceModel",
    "border_colour",
    "check_image",
    "order_detections",
]

#: Names of the five landmarks, in the order of :attr:`Detection.landmarks`.
LANDMARK_NAMES: tuple[str, ...] = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "right_mouth_corner",
    "left_mouth_corner",
)


@dataclass(frozen=True, eq=False)
class Detection:
    """One detected face, in pixel coordinates of the image it was found in.

    Parameters
    ----------
    box : tuple of 4 floats
        ``(x, y, w, h)``: top-left corner, width and height in pixels. It may
        extend beyond the image border.
    landmarks : array-like, shape (5, 2)
        ``(x, y)`` of the five landmarks in the order of
        :data:`LANDMARK_NAMES`. Stored as a read-only ``float64`` array.
    score : float
        Detector confidence in ``[0, 1]``.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    def __post_init__(self) -> None:
        box = tuple(float(v) for v in self.box)
        if len(box) != 4:
            raise ValueError(f"box must have 4 values (x, y, w, h), got {len(box)}")
        lmk = np.array(self.landmarks, dtype=np.float64).reshape(-1, 2)
        if lmk.shape != (5, 2):
            raise ValueError(f"landmarks must be 5 (x, y) points, got shape {lmk.shape}")
        lmk.setflags(write=False)
        # frozen dataclass: bypass __setattr__ to store the normalised values
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "landmarks", lmk)
        object.__setattr__(self, "score", float(self.score))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Detection):
            return NotImplemented
        return (
            self.box == other.box
            and self.score == other.score
            and np.array_equal(self.landmarks, other.landmarks)
        )

    def __hash__(self) -> int:
        return hash((self.box, self.score, self.landmarks.tobytes()))

    def __repr__(self) -> str:
        x, y, w, h = self.box
        return f"Detection(box=({x:.1f}, {y:.1f}, {w:.1f}, {h:.1f}), score={self.score:.3f})"

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return self.box[2] * self.box[3]

    @property
    def center(self) -> tuple[float, float]:
        """Centre ``(x, y)`` of the box."""
        x, y, w, h = self.box
        return (x + w / 2.0, y + h / 2.0)

    def to_json(self) -> dict[str, Any]:
        """Plain-Python form for JSON sidecars: ``{"Score", "Box", "Landmarks"}``."""
        return {
            "Score": float(self.score),
            "Box": [float(v) for v in self.box],
            "Landmarks": [[float(x), float(y)] for x, y in self.landmarks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Detection:
        """Inverse of :meth:`to_json`."""
        return cls(box=tuple(data["Box"]), landmarks=data["Landmarks"], score=data["Score"])

    def shifted(self, dx: float, dy: float) -> Detection:
        """The same face with box and landmarks moved by ``(dx, dy)`` pixels."""
        x, y, w, h = self.box
        return Detection(
            box=(x + dx, y + dy, w, h),
            landmarks=self.landmarks + np.array([dx, dy]),
            score=self.score,
        )


def check_image(image: Any) -> np.ndarray:
    """Return *image* as a C-contiguous ``H x W x 3`` ``uint8`` array, or raise.

    Raises
    ------
    TypeError
        if *image* is not a ``uint8`` numpy array.
    ValueError
        if it is not ``H x W x 3`` or is empty.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be H x W x 3 (RGB), got shape {image.shape}")
    return np.ascontiguousarray(image)


def border_colour(image: np.ndarray) -> tuple[int, int, int]:
    """Median RGB colour of the one-pixel frame around *image* (its background)."""
    frame = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]], axis=0)
    return tuple(int(v) for v in np.median(frame, axis=0))  # type: ignore[return-value]


def order_detections(dets: Sequence[Detection], width: int, height: int) -> list[Detection]:
    """Sort detections so that the largest, most central face comes first.

    The key is the box area minus twice the squared distance of the box
    centre from the image centre (the heuristic insightface uses to keep the
    main face); ties are broken by score.
    """
    cx, cy = width / 2.0, height / 2.0

    def key(d: Detection) -> tuple[float, float]:
        dx, dy = d.center[0] - cx, d.center[1] - cy
        return (d.area - 2.0 * (dx * dx + dy * dy), d.score)

    return sorted(dets, key=key, reverse=True)


class FaceModel(abc.ABC):
    """A face detector, aligner and recogniser behind one small interface.

    Subclasses set :attr:`name` and :attr:`dim` and implement
    :meth:`detect`, :meth:`embed_crop` and :attr:`info`. The default
    :meth:`align` warps the five landmarks onto the 112 x 112 ArcFace
    template, which suits ArcFace-style recognisers (SFace, insightface
    packs); backends with another template override it.
    """

    #: Registry name of the model, e.g. ``"sface"``.
    name: str = ""
    #: Length of the embedding vectors.
    dim: int = 0
    #: Side of the square aligned crop the recogniser takes.
    crop_size: int = 112
    #: Default minimum detection score of :meth:`detect`.
    default_min_score: float = 0.5

    @property
    def info(self) -> dict[str, Any]:
        """Provenance for sidecars.

        ``{"Name", "Detector", "Recognizer", "Files": {role: {"Name",
        "SHA256"}}, "Dimension", "Preprocessing"}``, JSON-serialisable.
        Built once by :meth:`_describe` (hashing model files is slow); each
        call returns a fresh copy, since callers add keys to their sidecars.
        """
        cached = self.__dict__.get("_info")
        if cached is None:
            cached = self.__dict__["_info"] = self._describe()
        return {**cached, "Files": {role: dict(entry) for role, entry in cached["Files"].items()}}

    @abc.abstractmethod
    def _describe(self) -> dict[str, Any]:
        """The provenance returned by :attr:`info` (computed once per model)."""

    @abc.abstractmethod
    def detect(self, image: np.ndarray, min_score: float | None = None) -> list[Detection]:
        """Find faces in an RGB image.

        Parameters
        ----------
        image : ndarray, ``H x W x 3`` uint8, RGB
        min_score : float, optional
            Keep faces scoring at least this; :attr:`default_min_score` if
            None.

        Returns
        -------
        list of Detection
            Largest and most central face first; empty if none.
        """

    @abc.abstractmethod
    def embed_crop(self, crop: np.ndarray) -> np.ndarray:
        """Embed an aligned crop (as returned by :meth:`align`).

        Returns a ``float32`` vector of length :attr:`dim` with unit L2 norm.
        """

    def detect_with_fallback(
        self,
        image: np.ndarray,
        min_score: float | None = None,
        fallback_min_score: float | None = None,
        pad: float = 0.25,
    ) -> tuple[list[Detection], int]:
        """Detect, and if nothing is found, try once more with context and a lower threshold.

        Meant for renders: a synthetic face on a plain background, often
        framed tightly, with no hair or skin texture, on which detectors
        trained on photos score lower than on photos.

        Pass 1 is :meth:`detect` with *min_score*. If it finds nothing, pass 2
        pads the image on every side by ``pad`` times its longer side with its
        own background colour (the median of its border pixels), so that a
        face filling the frame is seen with the margin detectors were trained
        with, and detects with *fallback_min_score*. Boxes and landmarks of
        pass 2 are mapped back to the coordinates of *image*.

        Parameters
        ----------
        image : ndarray, ``H x W x 3`` uint8, RGB
        min_score : float, optional
            Threshold of pass 1; :attr:`default_min_score` if None.
        fallback_min_score : float, optional
            Threshold of pass 2; ``0.6 * min_score`` if None (never above
            *min_score*).
        pad : float
            Margin added on each side in pass 2, as a fraction of the longer
            image side; 0 keeps the image as it is (threshold only).

        Returns
        -------
        detections : list of Detection
            As :meth:`detect` returns them, in *image* coordinates; empty if
            neither pass found a face.
        pass_number : int
            1 or 2, the pass that found the faces; 0 if none did.
        """
        image = check_image(image)
        first = self.default_min_score if min_score is None else float(min_score)
        dets = self.detect(image, min_score=first)
        if dets:
            return dets, 1
        second = 0.6 * first if fallback_min_score is None else float(fallback_min_score)
        second = min(second, first)
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        height, width = image.shape[:2]
        margin = int(round(pad * max(height, width)))
        padded = image
        if margin:
            padded = np.empty((height + 2 * margin, width + 2 * margin, 3), np.uint8)
            padded[...] = border_colour(image)
            padded[margin : margin + height, margin : margin + width] = image
        dets = [d.shifted(-margin, -margin) for d in self.detect(padded, min_score=second)]
        if not dets:
            return [], 0
        return order_detections(dets, width, height), 2

    def align(self, image: np.ndarray, det: Detection) -> np.ndarray:
        """The aligned ``crop_size x crop_size x 3`` uint8 RGB crop the recogniser sees."""
        image = check_image(image)
        template = ARCFACE_TEMPLATE * (self.crop_size / 112.0)
        return norm_crop(image, det.landmarks, template, self.crop_size)

    def embed(self, image: np.ndarray, det: Detection) -> np.ndarray:
        """Embedding of the face *det* in *image*: ``float32`` (dim,), unit norm."""
        return self.embed_crop(self.align(image, det))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} dim={self.dim}>"
