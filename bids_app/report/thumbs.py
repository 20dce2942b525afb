"""Report thumbnails, made once where the images are made: at the participant level.

For every render ``sub-<label>/[ses-<label>/]anat/<stem>.png`` and aligned
photo crop ``.../photo/<stem>.png``, :func:`write_thumbnails` writes
``sub-<label>/[ses-<label>/]figures/<stem>_thumb-full.jpg`` and
``<stem>_thumb-blurred.jpg``: JPEG, longest side :data:`THUMB_PX`, no
metadata. The participant level calls it once, before its completion record
(so the thumbnails are listed in ``Outputs``); the participant levels run in
parallel, and the group report then only reads these small files
(:func:`thumbnail_uri`) instead of decoding and re-encoding every image.

A report meant to be shared (``--report-images blurred``) can only ever
receive a ``_thumb-blurred`` file or an image blurred here: the mode selects
the file name, and nothing else is read for it. Outputs of an older
participant level without thumbnails still get a report: the thumbnail is
then made from the image at report time (slower, same bytes).
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from bids_app.io import atomic_write_bytes

from .images import _to_image, pixelate

__all__ = ["FIGURES", "MODES", "THUMB_PX", "thumbnail_bytes", "thumbnail_path", "thumbnail_uri",
           "write_thumbnails"]

#: Longest side of a thumbnail (the participant pages show them at this size, the group table smaller).
THUMB_PX = 200
#: JPEG quality of the thumbnails.
QUALITY = 85
#: The ``--report-images`` modes that have a thumbnail (``none`` shows no image).
MODES = ("full", "blurred")
#: Folder, beside ``anat/`` and ``photo/``, that holds a participant's thumbnails.
FIGURES = "figures"
#: The images a report shows: renders and aligned photo crops.
_SHOWN = re.compile(r"_desc-(render|photo)\d+_[A-Za-z0-9]+\.png$")


def thumbnail_path(image: Path, mode: str) -> Path:
    """Where the ``mode`` thumbnail of ``image`` lives: ``../figures/<stem>_thumb-<mode>.jpg``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    image = Path(image)
    return image.parent.parent / FIGURES / f"{image.stem}_thumb-{mode}.jpg"


def thumbnail_bytes(src, mode: str) -> bytes:
    """JPEG bytes of the ``mode`` thumbnail of an image (a path, an array or a PIL image).

    The image is shrunk to :data:`THUMB_PX`; ``blurred`` then pixelates it
    to :data:`~bids_app.report.images.BLUR_CELLS` cells across and blurs it,
    so that the face's layout is visible and its identity is not. Pillow
    re-encodes the pixels only: no EXIF or other metadata is kept.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return _encoded(_shrunk(src), mode)


def _shrunk(src) -> Image.Image:
    """An image (a path, an array or a PIL image) shrunk to :data:`THUMB_PX`, RGB."""
    im = _to_image(src).convert("RGB")
    im.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
    return im


def _encoded(small: Image.Image, mode: str) -> bytes:
    """The JPEG bytes of the ``mode`` thumbnail from the shrunk image (left unchanged)."""
    im = pixelate(small) if mode == "blurred" else small
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=QUALITY)
    return buf.getvalue()


def shown_images(folder: Path) -> list[Path]:
    """The renders and photo crops under a participant folder, sorted."""
    return sorted(p for p in Path(folder).rglob("*.png") if _SHOWN.search(p.name) and p.parent.name != FIGURES)


def _remove_orphans(folder: Path) -> None:
    """Remove thumbnails whose image is gone (an earlier run with other renders or photos)."""
    for thumb in Path(folder).rglob(f"{FIGURES}/*_thumb-*.jpg"):
        stem = thumb.name.rsplit("_thumb-", 1)[0]
        if not any((thumb.parent.parent / kind / f"{stem}.png").is_file() for kind in ("anat", "photo")):
            thumb.unlink(missing_ok=True)


def write_thumbnails(folder: Path, pixels: Mapping[Path, np.ndarray] | None = None) -> list[Path]:
    """Write both thumbnails of every render and photo crop under ``folder`` (a participant's).

    Returns the files written. Each image is decoded once; thumbnails of
    images no longer there are removed. ``pixels`` holds images the caller
    has just written, by path, as RGB arrays: those are not read back (a
    PNG holds these very pixels, so the thumbnails are the same bytes).
    """
    _remove_orphans(folder)
    pixels = pixels or {}
    written = []
    for image in shown_images(folder):
        # decoded and shrunk once for both modes, as thumbnail_bytes(image, mode) does: the same bytes
        small = _shrunk(pixels[image] if image in pixels else image)
        for mode in MODES:
            written.append(atomic_write_bytes(thumbnail_path(image, mode), _encoded(small, mode)))
    return written


def thumbnail_uri(image: Path | None, mode: str, made: list[int] | None = None) -> str | None:
    """A ``data:`` URI of the ``mode`` thumbnail of ``image`` (None for ``none`` or no image).

    Reads the participant level's thumbnail file; when there is none, makes
    the same thumbnail from ``image`` (counted in ``made[0]``). Raises
    ``OSError`` or ``ValueError`` when neither can be read.
    """
    if image is None or mode == "none":
        return None
    prepared = thumbnail_path(image, mode)
    try:
        data = prepared.read_bytes()
    except FileNotFoundError:
        data = thumbnail_bytes(image, mode)
        if made is not None:
            made[0] += 1
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
