"""Quality-control pictures of the participant level (pure functions -> RGB arrays).

* :func:`render_mosaic`: the renders in a grid, each with the detected face
  box, its five landmarks and score drawn, or "no face" written in red;
* :func:`mask_overlay`: sagittal and axial slices of the head image with
  the head mask's outline (cyan), the face centre (yellow +), the nose tip
  (magenta x) and the face's axes (anterior, superior) drawn.

Both return ``uint8`` RGB arrays; the workflow writes them as PNGs.
Drawing uses OpenCV (already a dependency of the face models) on numpy
arrays: a few tens of milliseconds per participant, where matplotlib took
half a second to import and draw the slices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from nibabel.affines import voxel_sizes

__all__ = ["render_mosaic", "mask_overlay"]

_LANDMARK_COLORS = [(255, 0, 0), (0, 160, 255), (0, 220, 0), (255, 0, 255), (255, 200, 0)]


def _face_dict(face) -> Mapping | None:
    """Accept a sidecar ``Face`` dict, a Detection, or None."""
    if face is None:
        return None
    if hasattr(face, "to_json"):
        return {"Detected": True, **face.to_json()}
    return face


def render_mosaic(images: Sequence[np.ndarray], faces: Sequence[Mapping | None] | None = None, *,
                  columns: int = 5, tile: int = 256) -> np.ndarray:
    """Grid of renders with the detected face drawn on each.

    Parameters
    ----------
    images
        RGB ``uint8`` renders (any equal or unequal sizes; each is scaled to
        ``tile`` x ``tile``).
    faces
        One entry per image: a render sidecar's ``Face`` dict (``Detected``,
        ``Score``, ``Box`` [x, y, w, h], ``Landmarks`` 5 x [x, y]), a
        :class:`~bids_app.face.base.Detection`, or None (no face).
    columns, tile
        Grid width and tile size in pixels.

    Returns
    -------
    numpy.ndarray
        ``(rows * tile, columns * tile, 3)`` ``uint8`` RGB.
    """
    import cv2

    n = len(images)
    faces = list(faces) if faces is not None else [None] * n
    if len(faces) != n:
        raise ValueError(f"{n} images but {len(faces)} face records")
    columns = max(1, min(columns, n)) if n else 1
    rows = max(1, -(-n // columns))
    out = np.full((rows * tile, columns * tile, 3), 40, np.uint8)
    for k, (img, face) in enumerate(zip(images, faces)):
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        h, w = img.shape[:2]
        sx, sy = tile / w, tile / h
        t = cv2.resize(np.ascontiguousarray(img[..., :3], dtype=np.uint8), (tile, tile),
                       interpolation=cv2.INTER_AREA)
        face = _face_dict(face)
        if face and face.get("Detected", True) and face.get("Box") is not None:
            x, y, bw, bh = [float(v) for v in face["Box"]]
            cv2.rectangle(t, (int(x * sx), int(y * sy)), (int((x + bw) * sx), int((y + bh) * sy)),
                          (0, 255, 0), 2)
            for (lx, ly), col in zip(face.get("Landmarks") or [], _LANDMARK_COLORS):
                cv2.circle(t, (int(lx * sx), int(ly * sy)), 3, col, -1)
            score = face.get("Score")
            label = f"{k + 1}: {score:.2f}" if score is not None else f"{k + 1}: face"
            color = (0, 255, 0)
        else:
            label, color = f"{k + 1}: no face", (255, 60, 60)
        cv2.putText(t, label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(t, label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, color, 1, cv2.LINE_AA)
        r, c = divmod(k, columns)
        out[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = t
    return out


#: Colours (RGB) of the slice overlay.
_CYAN, _YELLOW, _MAGENTA, _ORANGE, _WHITE = (0, 255, 255), (255, 255, 0), (255, 0, 255), (255, 165, 0), (255, 255, 255)


def _slice_indices(ref: np.ndarray, tip: np.ndarray, zooms: np.ndarray, shape: Sequence[int],
                   n_slices: int, step_mm: float) -> list[tuple[int, int, float]]:
    """``(axis, index, offset_mm)`` of the slices shown, sagittal row first.

    Sagittal slices (x fixed) are centred on the face centre ``ref``, axial
    ones (z fixed) on the nose tip ``tip`` (both voxel coordinates), ``step_mm``
    apart.
    """
    offsets = (np.arange(n_slices) - (n_slices - 1) / 2.0) * step_mm
    out = []
    for axis, centre in ((0, ref), (2, tip)):
        for off in offsets:
            i = int(np.clip(round(centre[axis] + off / zooms[axis]), 0, shape[axis] - 1))
            out.append((axis, i, float(off)))
    return out


def _display(plane: np.ndarray) -> np.ndarray:
    """A slice in display order: first remaining voxel axis to the right, second up."""
    return plane.T[::-1]


def _panel_xy(voxel: np.ndarray, right: int, up: int, shape: Sequence[int],
              size: tuple[int, int]) -> tuple[int, int]:
    """Pixel ``(x, y)`` of the voxel coordinates ``voxel`` on a slice panel.

    The panel shows voxel axis ``right`` to the right and ``up`` upwards,
    the slice's ``shape[right]`` x ``shape[up]`` voxels scaled to ``size``
    (width, height) pixels, rows top first (see :func:`_display`).
    """
    width, height = size
    x = (voxel[right] + 0.5) * width / shape[right] - 0.5
    y = (shape[up] - 0.5 - voxel[up]) * height / shape[up] - 0.5
    return int(round(x)), int(round(y))


def mask_overlay(data: np.ndarray, mask: np.ndarray, affine: np.ndarray, frame=None, *,
                 n_slices: int = 3, panel: int = 256) -> np.ndarray:
    """Slices of the head image with the head mask and the face marked.

    Shows ``n_slices`` sagittal slices (through the face centre and either
    side) and ``n_slices`` axial slices (through the nose tip and either
    side), 25 mm apart, all in world orientation (anterior to the right on
    sagittal, up on axial; left on the left), each titled with its offset.
    The head mask's outline is cyan; with a :class:`~bids_app.mri.FaceFrame`
    the face centre is a yellow +, the nose tip a magenta x and the face's
    anterior / superior axes yellow / orange arrows (in-plane parts, 40 mm).

    Parameters
    ----------
    data, mask
        Image and boolean head mask on the same grid (``load_head`` order:
        closest RAS+).
    affine
        Their voxel-to-world matrix.
    frame
        Optional :class:`~bids_app.mri.FaceFrame` (world mm).
    n_slices
        Slices per row.
    panel
        Side (pixels) of the square each slice is fitted into, at true
        millimetre proportions.

    Returns
    -------
    numpy.ndarray
        RGB ``uint8`` image, ``2 * (panel + 18)`` x ``n_slices * panel``.
    """
    import cv2

    data = np.asarray(data)
    mask = np.asarray(mask, bool)
    aff = np.asarray(affine, float)
    inv = np.linalg.inv(aff)
    zooms = voxel_sizes(aff)
    if frame is not None:
        ref = (inv @ np.r_[np.asarray(frame.center, float), 1.0])[:3]
        tip = (inv @ np.r_[np.asarray(frame.nose_tip, float), 1.0])[:3]
    else:
        idx = np.argwhere(mask) if mask.any() else np.argwhere(np.ones_like(mask))
        ref = tip = idx.mean(0)
    slices = _slice_indices(ref, tip, zooms, data.shape, n_slices, step_mm=25.0)
    # basic indexing gives views (np.take copies, slowly, along a strided axis)
    planes = [(data[(slice(None),) * axis + (i,)], mask[(slice(None),) * axis + (i,)]) for axis, i, _ in slices]
    # grey scale from the head voxels on show: the 99th percentile is white
    shown = np.concatenate([np.asarray(plane, np.float32)[m] for plane, m in planes])
    vmax = float(np.percentile(shown, 99)) if shown.size else float(np.max(data) or 1.0)
    vmax = vmax if vmax > 0 else 1.0

    title_h = 18
    extent = float(max(n * z for n, z in zip(data.shape, zooms)))  # mm that fill a panel
    out = np.zeros((2 * (panel + title_h), n_slices * panel, 3), np.uint8)
    for k, ((axis, _, off), (plane, plane_mask)) in enumerate(zip(slices, planes)):
        row, col = divmod(k, n_slices)
        right, up = (1, 2) if axis == 0 else (0, 1)  # sagittal: y right, z up; axial: x right, y up
        width = max(1, int(round(panel * data.shape[right] * zooms[right] / extent)))
        height = max(1, int(round(panel * data.shape[up] * zooms[up] / extent)))
        grey = np.clip(_display(np.asarray(plane, np.float32)) * (255.0 / vmax), 0, 255).astype(np.uint8)
        tile = cv2.cvtColor(cv2.resize(grey, (width, height), interpolation=cv2.INTER_LINEAR), cv2.COLOR_GRAY2RGB)
        outline = cv2.resize(_display(plane_mask).astype(np.uint8), (width, height),
                             interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(outline, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, contours, -1, _CYAN, 1)

        if frame is not None:
            centre = _panel_xy(ref, right, up, data.shape, (width, height))
            for vec, colour in ((frame.anterior, _YELLOW), (frame.superior, _ORANGE)):
                arrow = inv[:3, :3] @ np.asarray(vec, float) * 40.0  # 40 mm, in voxels
                end = _panel_xy(ref + arrow, right, up, data.shape, (width, height))
                cv2.arrowedLine(tile, centre, end, colour, 2, cv2.LINE_AA, tipLength=0.25)
            cv2.drawMarker(tile, centre, _YELLOW, cv2.MARKER_CROSS, 14, 2)
            cv2.drawMarker(tile, _panel_xy(tip, right, up, data.shape, (width, height)), _MAGENTA,
                           cv2.MARKER_TILTED_CROSS, 10, 2)
        top = row * (panel + title_h) + title_h + (panel - height) // 2
        left = col * panel + (panel - width) // 2
        out[top:top + height, left:left + width] = tile
        name = "sagittal" if axis == 0 else "axial"
        cv2.putText(out, f"{name} {off:+.0f} mm", (col * panel + 6, row * (panel + title_h) + 13),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.42, _WHITE, 1, cv2.LINE_AA)
    return out
