"""Images for the self-contained HTML reports: thumbnails as ``data:`` URIs.

Thumbnails are re-encoded by Pillow without copying metadata: EXIF tags of
participant photos (camera, time, GPS position) do not reach the report.
``--report-images blurred`` pixelates and blurs them (:func:`pixelate`, applied to
the thumbnails of :mod:`bids_app.report.thumbs`).
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = ["image_data_uri", "pixelate"]

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
#: ``blurred``: the image is first reduced to this many cells across (a face's layout, not its identity).
BLUR_CELLS = 12


def _to_image(src: str | os.PathLike[str] | np.ndarray | Image.Image) -> Image.Image:
    if isinstance(src, Image.Image):
        return src
    if isinstance(src, (str, os.PathLike)):
        with Image.open(Path(src)) as im:
            im.load()
            # honour the camera's orientation tag, then forget all metadata
            return ImageOps.exif_transpose(im)
    arr = np.asarray(src)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if np.issubdtype(np.asarray(src).dtype, np.floating) and np.nanmax(arr, initial=0.0) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr))


def image_data_uri(
    src: str | os.PathLike[str] | np.ndarray | Image.Image,
    max_side: int = 160,
    fmt: str = "JPEG",
    quality: int = 85,
) -> str:
    """Encode an image as a base64 ``data:`` URI, shrunk to ``max_side``.

    Parameters
    ----------
    src : path, ndarray or PIL.Image.Image
        A file Pillow can read, or an array: ``uint8`` as is, floats in
        ``[0, 1]`` scaled to ``[0, 255]`` (other floats clipped). Grey,
        RGB and RGBA are accepted.
    max_side : int, default 160
        Longest side of the thumbnail in pixels; images are never enlarged.
    fmt : {"JPEG", "PNG", "WEBP"}
        Output format. JPEG has no alpha: transparency is flattened on white.
    quality : int, default 85
        JPEG/WEBP quality.

    Returns
    -------
    str
        ``"data:image/jpeg;base64,..."`` (or png/webp).
    """
    fmt = fmt.upper().replace("JPG", "JPEG")
    if fmt not in _MIME:
        raise ValueError(f"fmt must be one of {sorted(_MIME)}, got {fmt!r}")
    im = _to_image(src).copy()
    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if fmt == "JPEG" and im.mode not in ("RGB", "L"):
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        im = flat
    buf = io.BytesIO()
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {"optimize": True}
    im.save(buf, format=fmt, **kwargs)
    return f"data:{_MIME[fmt]};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def pixelate(im: Image.Image) -> Image.Image:
    """``--report-images blurred``: ``im`` reduced to :data:`BLUR_CELLS` cells across, enlarged
    back and blurred, so that a face's layout is visible and its identity is not."""
    from PIL import ImageFilter

    w, h = im.size
    small = im.resize((BLUR_CELLS, max(1, round(BLUR_CELLS * h / w))), Image.Resampling.BILINEAR)
    return small.resize((w, h), Image.Resampling.NEAREST).filter(ImageFilter.GaussianBlur(radius=max(w, h) / 24))
