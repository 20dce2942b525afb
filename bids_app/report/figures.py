"""Figures and images for the self-contained HTML reports.

Everything returns text that is inlined into the HTML: images become
``data:`` URIs and plots become inline SVG, so a report is one file that
opens offline and references nothing outside itself.

Thumbnails are re-encoded by Pillow without copying metadata: EXIF tags of
participant photos (camera, time, GPS position) do not reach the report.
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image, ImageOps

__all__ = ["cmc_svg", "image_data_uri"]

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


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


def _nice_ticks(n: int, max_ticks: int = 8) -> list[int]:
    """Integer ticks 1, s, 2s, ... <= n with a 1-2-5 step."""
    step = 1
    while math.ceil(n / step) > max_ticks:
        step = _next_125(step)
    ticks = [1] + list(range(step, n + 1, step))
    return sorted(set(t for t in ticks if 1 <= t <= n))


def _next_125(step: int) -> int:
    exp = 10 ** int(math.floor(math.log10(step)))
    lead = step // exp
    return {1: 2, 2: 5, 5: 10}.get(lead, 10) * exp


def cmc_svg(
    cmc: ArrayLike,
    width: int = 460,
    height: int = 300,
    chance: bool = True,
    marks: Sequence[int] = (1, 5),
    title: str = "Cumulative match characteristic",
) -> str:
    """Cumulative match characteristic as an inline SVG element.

    Built by hand (no matplotlib) so the text stays selectable, the file
    small and the output byte-for-byte reproducible. No XML header, no
    external references: paste it straight into HTML.

    Parameters
    ----------
    cmc : array_like, shape (n_gallery,)
        ``cmc[r - 1]`` = fraction of participants whose own MRI ranked <= r
        (see :func:`bids_app.rank.cmc_curve`).
    width, height : int
        Size in CSS pixels (the SVG scales with its container).
    chance : bool
        Draw the chance line ``r / n_gallery``.
    marks : sequence of int
        Ranks to mark with a dot and their value.
    title : str
        Accessible title.

    Returns
    -------
    str
        ``"<svg ...>...</svg>"``, or ``""`` when ``cmc`` is empty or all NaN.
    """
    y = np.asarray(cmc, dtype=np.float64).ravel()
    n = y.size
    if n == 0 or not np.isfinite(y).any():
        return ""
    y = np.nan_to_num(y, nan=0.0)
    left, right, top, bottom = 52, 16, 14, 42
    pw, ph = width - left - right, height - top - bottom

    def px(r: float) -> float:
        return left + (0.5 if n == 1 else (r - 1) / (n - 1)) * pw

    def py(v: float) -> float:
        return top + (1.0 - v) * ph

    out: list[str] = [
        f'<svg class="cmc" role="img" aria-labelledby="cmc-title" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="system-ui, sans-serif" font-size="11">',
        f'<title id="cmc-title">{escape(title)}</title>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>',
    ]
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        yy = py(v)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e3e3e3"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{v:.0%}</text>')
    for t in _nice_ticks(n):
        xx = px(t)
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#666"/>')
        out.append(f'<text x="{xx:.1f}" y="{top + ph + 16}" text-anchor="middle">{t}</text>')
    out.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">'
        f"Rank of own MRI (of {n})</text>"
    )
    out.append(
        f'<text transform="translate(13 {top + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
        "Participants identified</text>"
    )
    if chance:
        out.append(
            f'<line x1="{px(1):.1f}" y1="{py(1 / n):.1f}" x2="{px(n):.1f}" y2="{py(1.0):.1f}" '
            'stroke="#888" stroke-dasharray="4 3"><title>chance</title></line>'
        )
    # step curve: value y[r-1] holds from rank r to r+1
    pts = [f"{px(1):.1f},{py(y[0]):.1f}"]
    for r in range(2, n + 1):
        pts.append(f"{px(r):.1f},{py(y[r - 2]):.1f}")
        pts.append(f"{px(r):.1f},{py(y[r - 1]):.1f}")
    out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#b3261e" stroke-width="2"/>')
    for k in marks:
        if 1 <= k <= n:
            xx, yy = px(k), py(y[k - 1])
            out.append(f'<circle cx="{xx:.1f}" cy="{yy:.1f}" r="3.5" fill="#b3261e"/>')
            anchor_y = yy + 14 if yy < top + 14 else yy - 7
            out.append(
                f'<text x="{xx + 6:.1f}" y="{anchor_y:.1f}" fill="#b3261e">top-{k}: {y[k - 1]:.0%}</text>'
            )
    out.append("</svg>")
    return "\n".join(out)
