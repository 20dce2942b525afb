"""Finding and reading participants' face photos.

BIDS has no place for photographs in ``anat``, so photos live in their own
tree (``--photos-dir``)::

    photos_dir/
      sub-<label>/
        *.jpg|*.jpeg|*.png              photos of any session
        ses-<label>/*.jpg|*.jpeg|*.png  photos of one session

By default that tree is ``<bids_dir>/derivatives/photos`` or
``<bids_dir>/sourcedata/photos``.

:func:`read_photo` turns whatever a camera, phone or scanner produced into an
upright ``H x W x 3`` ``uint8`` RGB array of bounded size, or raises
:class:`PhotoError` with a one-line reason.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "PHOTO_EXTENSIONS",
    "PhotoError",
    "default_photos_dir",
    "find_photos",
    "read_photo",
]

#: File name endings taken as photos (compared case-insensitively).
PHOTO_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")


class PhotoError(ValueError):
    """A file that cannot be used as a photo; the message names file and reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())  # one line
        super().__init__(f"{self.path}: {self.reason}")


def _strip_prefix(label: str, prefix: str) -> str:
    label = str(label)
    return label[len(prefix) :] if label.startswith(prefix) else label


def _photos_in(folder: Path) -> list[Path]:
    """Photo files directly inside *folder* (hidden files skipped)."""
    if not folder.is_dir():
        return []
    return [
        entry
        for entry in folder.iterdir()
        if not entry.name.startswith(".")
        and entry.suffix.lower() in PHOTO_EXTENSIONS
        and entry.is_file()
    ]


def find_photos(photos_dir: Path, subject: str, session: str | None = None) -> list[Path]:
    """Photos of one participant, sorted by path.

    Parameters
    ----------
    photos_dir : Path
        Root of the photo tree.
    subject : str
        Participant label, with or without ``sub-``.
    session : str, optional
        Session label, with or without ``ses-``. If given, only
        ``sub-<subject>/ses-<session>/`` is searched; if None, photos directly
        under ``sub-<subject>/`` and in all its ``ses-*/`` folders.

    Returns
    -------
    list of Path
        Files ending in one of :data:`PHOTO_EXTENSIONS` (any case); empty if
        the folder does not exist. Hidden files (``.*``) are ignored.
    """
    subject_dir = Path(photos_dir) / f"sub-{_strip_prefix(subject, 'sub-')}"
    if session is not None:
        return sorted(_photos_in(subject_dir / f"ses-{_strip_prefix(session, 'ses-')}"))
    found = _photos_in(subject_dir)
    if subject_dir.is_dir():
        for sub in subject_dir.glob("ses-*"):
            if sub.is_dir():
                found.extend(_photos_in(sub))
    return sorted(found)


def default_photos_dir(bids_dir: Path) -> Path | None:
    """``<bids_dir>/derivatives/photos`` or ``<bids_dir>/sourcedata/photos``.

    The first of the two that is a folder (derivatives first), or None.
    """
    for candidate in (Path(bids_dir) / "derivatives" / "photos", Path(bids_dir) / "sourcedata" / "photos"):
        if candidate.is_dir():
            return candidate
    return None


def _to_uint8(array: np.ndarray, full_scale: float | None) -> np.ndarray:
    """Scale a one-channel integer or float array to 0-255 (not clip)."""
    data = array.astype(np.float64)
    if full_scale is None:  # float data: 0-1 if it fits, else its own range
        lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
        if lo >= 0.0 and hi <= 1.0:
            lo, hi = 0.0, 1.0
        full_scale = hi - lo if hi > lo else 1.0
        data = data - lo
    return np.clip(np.rint(data * (255.0 / full_scale)), 0, 255).astype(np.uint8)


def _convert_icc_to_srgb(image: Image.Image) -> Image.Image:
    """Convert RGB/CMYK with an embedded ICC profile to sRGB (RGB); best effort."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "CMYK"):
        return image
    try:
        import io

        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(image, source, target, outputMode="RGB")
    except Exception:  # no littlecms, or a broken profile: plain conversion below
        return image


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow image as ``H x W x 3`` uint8 RGB; transparency onto white."""
    mode = image.mode
    if mode.startswith("I;16"):  # 16-bit greyscale
        grey = _to_uint8(np.asarray(image), 65535.0)
        return np.repeat(grey[:, :, np.newaxis], 3, axis=2)
    if mode == "I":  # 32-bit int; 16-bit PNGs opened by older Pillow
        data = np.asarray(image)
        full = 65535.0 if data.min() >= 0 and data.max() <= 65535 else None
        if full is None:
            data = data.astype(np.float64) - float(data.min())
            full = float(data.max()) or 1.0
        grey = _to_uint8(data, full)
        return np.repeat(grey[:, :, np.newaxis], 3, axis=2)
    if mode == "F":
        grey = _to_uint8(np.nan_to_num(np.asarray(image)), None)
        return np.repeat(grey[:, :, np.newaxis], 3, axis=2)

    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba).convert("RGB")
    else:
        image = _convert_icc_to_srgb(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)


def read_photo(
    path: str | os.PathLike[str],
    max_pixels: int = 50_000_000,
    max_side: int = 2048,
) -> np.ndarray:
    """Read a photo as an upright ``H x W x 3`` ``uint8`` RGB array.

    Parameters
    ----------
    path : path-like
        Any image Pillow reads (JPEG, PNG, ...), whatever its extension.
    max_pixels : int
        Refuse images with more pixels than this (decompression bombs),
        checked from the header before decoding.
    max_side : int
        Downscale (Lanczos) so that the longest side is at most this.

    Returns
    -------
    ndarray
        ``H x W x 3`` uint8 RGB, EXIF orientation applied, transparency
        composited onto white, greyscale / palette / CMYK / 16-bit converted
        (16-bit scaled to 8-bit, not clipped).

    Raises
    ------
    PhotoError
        if the file is missing, not an image, truncated, or too large.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # we enforce our own pixel limit below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as err:
        raise PhotoError(path, f"refused: image too large ({err})") from None
    except UnidentifiedImageError:
        raise PhotoError(path, "not an image Pillow can read") from None
    except OSError as err:
        raise PhotoError(path, f"cannot open ({err.strerror or err})") from None

    with image:
        width, height = image.size
        if width < 1 or height < 1:
            raise PhotoError(path, f"empty image ({width}x{height})")
        if width * height > max_pixels:
            raise PhotoError(
                path,
                f"refused: {width}x{height} = {width * height} pixels exceeds the limit of "
                f"{max_pixels} (possible decompression bomb)",
            )
        try:
            longest = max(width, height)
            if longest > max_side and image.format == "JPEG":
                # let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still
                # leaves at least max_side pixels on the longest side
                factor = max_side / longest
                image.draft(None, (math.ceil(width * factor), math.ceil(height * factor)))
            image.load()
            upright = ImageOps.exif_transpose(image)
            if upright is None:  # pragma: no cover - only with in_place=True
                upright = image
            rgb = _to_rgb(upright)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise PhotoError(path, f"cannot decode ({err})") from None

    height, width = rgb.shape[:2]
    longest = max(width, height)
    if longest > max_side:
        scale = max_side / longest
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
    return np.ascontiguousarray(rgb, dtype=np.uint8)
