"""Quality-control pictures of the participant level (pure functions -> RGB arrays).

* :func:`render_mosaic`: the renders in a grid, each with the detected face
  box, its five landmarks and score drawn, or "no face" written in red;
* :func:`mask_overlay`: sagittal and axial slices of the head image with
  the head mask's outline (cyan), the face centre (yellow +), the nose tip
  (magenta x) and the face's axes (anterior, superior) drawn.

Both return ``uint8`` RGB arrays; the workflow writes them as PNGs.
Drawing uses OpenCV (already a dependency of the face models) for the
mosaic and matplotlib's Agg canvas for the slices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

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


def mask_overlay(data: np.ndarray, mask: np.ndarray, affine: np.ndarray, frame=None, *,
                 n_slices: int = 3, dpi: int = 80) -> np.ndarray:
    """Slices of the head image with the head mask and the face marked.

    Shows ``n_slices`` sagittal slices (through the face centre and either
    side) and ``n_slices`` axial slices (through the nose tip, the face
    centre and the eyes), all in world orientation (anterior to the right
    on sagittal, up on axial; radiological-free: left on the left).
    The head mask's outline is cyan; with a :class:`~bids_app.mri.FaceFrame`
    the face centre is a yellow +, the nose tip a magenta x and the face's
    anterior / superior axes yellow / orange arrows (in-plane parts).

    Parameters
    ----------
    data, mask
        Image and boolean head mask on the same grid (``load_head`` order:
        closest RAS+).
    affine
        Their voxel-to-world matrix.
    frame
        Optional :class:`~bids_app.mri.FaceFrame` (world mm).

    Returns
    -------
    numpy.ndarray
        RGB ``uint8`` image.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = np.asarray(data, np.float32)
    mask = np.asarray(mask, bool)
    aff = np.asarray(affine, float)
    inv = np.linalg.inv(aff)
    zooms = np.sqrt((aff[:3, :3] ** 2).sum(0))
    if frame is not None:
        ref = inv @ np.r_[np.asarray(frame.center, float), 1.0]
        tip = inv @ np.r_[np.asarray(frame.nose_tip, float), 1.0]
    else:
        idx = np.argwhere(mask) if mask.any() else np.argwhere(np.ones_like(mask))
        ref = tip = np.r_[idx.mean(0), 1.0]
    vmax = float(np.percentile(data[mask], 99)) if mask.any() else float(data.max() or 1)

    def to_world_vec(v):
        return inv[:3, :3] @ np.asarray(v, float)

    fig = Figure(figsize=(3.0 * n_slices, 6.2), dpi=dpi, facecolor="black")
    FigureCanvasAgg(fig)
    step = 25.0
    offsets = (np.arange(n_slices) - (n_slices - 1) / 2.0) * step
    for row, axis in enumerate((0, 2)):  # sagittal (x fixed), axial (z fixed)
        for col, off in enumerate(offsets):
            ax = fig.add_subplot(2, n_slices, row * n_slices + col + 1)
            ax.set_axis_off()
            centre = tip if axis == 2 else ref
            i = int(np.clip(round(centre[axis] + off / zooms[axis]), 0, data.shape[axis] - 1))
            sl = np.take(data, i, axis=axis)
            ms = np.take(mask, i, axis=axis)
            # display: sagittal -> (y right, z up); axial -> (x right, y up)
            img, msk = sl.T, ms.T
            ax.imshow(img, cmap="gray", origin="lower", vmin=0, vmax=vmax, interpolation="nearest",
                      aspect=float(zooms[2 if axis == 0 else 1] / zooms[1 if axis == 0 else 0]))
            if msk.any() and not msk.all():
                ax.contour(msk.astype(float), levels=[0.5], colors="cyan", linewidths=0.8)
            dims = (1, 2) if axis == 0 else (0, 1)
            if frame is not None:
                ax.plot(ref[dims[0]], ref[dims[1]], "+", color="yellow", ms=12, mew=2)
                ax.plot(tip[dims[0]], tip[dims[1]], "x", color="magenta", ms=9, mew=2)
                for vec, colr in ((frame.anterior, "yellow"), (frame.superior, "orange")):
                    dv = to_world_vec(vec) * 40.0 / zooms  # 40 mm arrow in voxels
                    ax.annotate("", xy=(ref[dims[0]] + dv[dims[0]], ref[dims[1]] + dv[dims[1]]),
                                xytext=(ref[dims[0]], ref[dims[1]]),
                                arrowprops=dict(arrowstyle="->", color=colr, lw=1.5))
            name = "sagittal" if axis == 0 else "axial"
            ax.set_title(f"{name} {off:+.0f} mm", color="white", fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.canvas.draw()
    buf = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(buf[..., :3])
