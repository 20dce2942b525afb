"""Photo-like off-screen renders of a head surface with random light and view.

Following Schwarz et al. (NEJM 2019), each head is rendered several times
with a randomly jittered viewpoint and lighting, and face recognition is run
on the renders. The randomness is seeded: :func:`sample_view_params` gives
the same list for the same seed, and :func:`camera_pose` turns one
:class:`ViewParams` and a :class:`~bids_app.mri.FaceFrame` into the exact
camera used, so sidecars record what was rendered.

Headless rendering: VTK is told to use EGL (``VTK_DEFAULT_OPENGL_WINDOW``)
unless the environment chose something else; one off-screen plotter is
reused for all views of a head.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import numpy as np  # noqa: E402
import pyvista as pv  # noqa: E402

from .mri.surface import FaceFrame  # noqa: E402

__all__ = [
    "RANGES",
    "SKIN_COLOR",
    "BACKGROUND",
    "ViewParams",
    "sample_view_params",
    "camera_pose",
    "render_views",
]

#: Diffuse skin colour (RGB, 0-1) of the MRI renders.
SKIN_COLOR: tuple[float, float, float] = (0.87, 0.72, 0.62)
#: Plain background colour (RGB, 0-1).
BACKGROUND: tuple[float, float, float] = (0.55, 0.57, 0.60)
#: Camera vertical view angle (degrees).
VIEW_ANGLE = 30.0

#: Ranges (inclusive, uniform) of the random view and light parameters.
RANGES: dict[str, tuple[float, float]] = {
    "yaw": (-20.0, 20.0),  # degrees, turning the head left/right
    "pitch": (-10.0, 10.0),  # degrees, camera above (+) or below (-) the face
    "roll": (-5.0, 5.0),  # degrees, in-plane rotation
    "zoom": (0.92, 1.08),  # multiplies the camera distance
    "key_azimuth": (-50.0, 50.0),  # degrees from the face's front, + to the face's left
    "key_elevation": (0.0, 45.0),  # degrees above the face
    "key_intensity": (0.75, 1.0),
    "fill_intensity": (0.15, 0.35),  # fill light from the mirrored side, below the key
    "ambient": (0.10, 0.22),  # material ambient coefficient
}


@dataclass(frozen=True)
class ViewParams:
    """Random parameters of one render (angles in degrees)."""

    yaw: float
    pitch: float
    roll: float
    zoom: float
    key_azimuth: float
    key_elevation: float
    key_intensity: float
    fill_intensity: float
    ambient: float

    def to_json(self, frame: FaceFrame | None = None) -> dict[str, dict[str, object]]:
        """``{"Camera": {...}, "Light": {...}}`` with plain floats.

        With ``frame``, the camera's ``Position``, ``FocalPoint`` and
        ``ViewUp`` (world mm, RAS+), exactly as :func:`render_views` uses
        them, are added.
        """
        cam: dict[str, object] = {
            "Yaw": round(self.yaw, 4),
            "Pitch": round(self.pitch, 4),
            "Roll": round(self.roll, 4),
            "Zoom": round(self.zoom, 4),
            "ViewAngle": VIEW_ANGLE,
        }
        if frame is not None:
            pose = camera_pose(frame, self)
            cam.update({k: [round(float(x), 3) for x in pose[k]] for k in ("Position", "FocalPoint", "ViewUp")})
        light = {
            "Azimuth": round(self.key_azimuth, 4),
            "Elevation": round(self.key_elevation, 4),
            "Intensity": round(self.key_intensity, 4),
            "FillIntensity": round(self.fill_intensity, 4),
            "Ambient": round(self.ambient, 4),
        }
        return {"Camera": cam, "Light": light}


def sample_view_params(seed: int, n: int) -> list[ViewParams]:
    """Draw ``n`` render parameter sets, uniformly within :data:`RANGES`.

    ``numpy.random.default_rng(seed)`` draws them in a fixed order, so the
    same seed always gives the same list (and the first ``k`` of ``n`` do
    not depend on ``n``).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    names = list(RANGES)
    out = []
    for _ in range(n):
        draw = {k: float(rng.uniform(*RANGES[k])) for k in names}
        out.append(ViewParams(**draw))
    return out


def _rotate(v: np.ndarray, axis: np.ndarray, deg: float) -> np.ndarray:
    """Rotate ``v`` about unit ``axis`` by ``deg`` degrees (Rodrigues)."""
    t = np.deg2rad(deg)
    return v * np.cos(t) + np.cross(axis, v) * np.sin(t) + axis * float(axis @ v) * (1 - np.cos(t))


def _direction(frame: FaceFrame, azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector from the face centre, ``azimuth`` about superior, ``elevation`` up."""
    a, s = np.asarray(frame.anterior, float), np.asarray(frame.superior, float)
    d = _rotate(a, s, azimuth)
    right = np.cross(d, s)
    return _rotate(d, right, elevation)


def camera_pose(frame: FaceFrame, params: ViewParams) -> dict[str, np.ndarray]:
    """Camera ``Position``, ``FocalPoint`` and ``ViewUp`` for one view.

    The camera looks at ``frame.center`` from the front, turned by yaw
    about ``frame.superior`` and by pitch about the left-right axis, at a
    distance where ``frame.size`` mm fill the vertical view angle (times
    ``zoom``); view-up is ``frame.superior`` rolled by ``roll``.
    """
    d = _direction(frame, params.yaw, params.pitch)
    dist = 0.5 * frame.size / np.tan(np.deg2rad(VIEW_ANGLE / 2)) * params.zoom
    center = np.asarray(frame.center, float)
    s = np.asarray(frame.superior, float)
    up = s - d * float(s @ d)
    up = _rotate(up / np.linalg.norm(up), -d, params.roll)
    return {"Position": center + dist * d, "FocalPoint": center, "ViewUp": up}


def render_views(
    surf: pv.PolyData,
    frame: FaceFrame,
    params: Sequence[ViewParams],
    size: int = 512,
    *,
    color: Sequence[float] = SKIN_COLOR,
    background: Sequence[float] = BACKGROUND,
    crop_mm: float | None = 120.0,
    with_depth: bool = False,
) -> list[np.ndarray] | tuple[list[np.ndarray], list[np.ndarray]]:
    """Render ``surf`` once per parameter set, with a single reused plotter.

    Material: smooth-shaded skin colour with a weak specular highlight.
    Lights: a white key light (azimuth, elevation and intensity from the
    parameters) and a weak fill light from the mirrored side; no headlight.
    The camera is :func:`camera_pose` (record it with
    ``params[i].to_json(frame)``). Only the surface less than ``crop_mm``
    behind the nose tip (along ``frame.anterior``) is drawn: the back of the
    head is hidden from every view in :data:`RANGES` and costs half the
    drawing time; None draws everything.

    Returns
    -------
    list of numpy.ndarray
        One ``(size, size, 3)`` ``uint8`` RGB image per parameter set.
    list of numpy.ndarray, only with ``with_depth``
        One ``(size, size)`` ``float32`` map per image: the distance (mm)
        from the camera plane to the surface seen in each pixel, NaN on the
        background (see :func:`nose_relief_mm`).
    """
    images: list[np.ndarray] = []
    depths: list[np.ndarray] = []
    if not params:
        return (images, depths) if with_depth else images
    if crop_mm and crop_mm > 0:
        # the back of the head is never seen from the front: drop it (halves the triangles)
        a = np.asarray(frame.anterior, float)
        depth = (np.asarray(surf.points) - np.asarray(frame.nose_tip, float)) @ a
        behind = depth < -float(crop_mm)
        faces = np.asarray(surf.faces)
        if behind.any() and not behind.all() and surf.is_all_triangles and faces.size:
            tri = faces.reshape(-1, 4)
            keep = ~behind[tri[:, 1:]].any(axis=1)
            front = pv.PolyData(surf.points, tri[keep].ravel())
            for name in surf.point_data.keys():
                front.point_data[name] = surf.point_data[name]
            surf = front
    pl = pv.Plotter(off_screen=True, window_size=(int(size), int(size)), lighting="none")
    try:
        pl.set_background(tuple(background))
        actor = pl.add_mesh(
            surf,
            color=tuple(color),
            smooth_shading=True,
            diffuse=0.85,
            specular=0.12,
            specular_power=12.0,
            ambient=0.15,
            scalars=None,
        )
        prop = actor.prop
        center = np.asarray(frame.center, float)
        for p in params:
            pose = camera_pose(frame, p)
            pl.camera.position = tuple(pose["Position"])
            pl.camera.focal_point = tuple(pose["FocalPoint"])
            pl.camera.up = tuple(pose["ViewUp"])
            pl.camera.view_angle = VIEW_ANGLE
            pl.reset_camera_clipping_range()
            # lights follow the yaw of the camera so the key stays near the front
            pl.remove_all_lights()
            key_dir = _direction(frame, p.yaw + p.key_azimuth, p.key_elevation)
            fill_dir = _direction(frame, p.yaw - 0.8 * p.key_azimuth, -0.3 * p.key_elevation)
            for direction, intensity in ((key_dir, p.key_intensity), (fill_dir, p.fill_intensity)):
                light = pv.Light(
                    position=tuple(center + 1000.0 * direction),
                    focal_point=tuple(center),
                    light_type="scene light",
                    intensity=float(intensity),
                )
                light.positional = False
                pl.add_light(light)
            prop.ambient = float(p.ambient)
            pl.render()
            img = pl.screenshot(return_img=True)
            images.append(np.ascontiguousarray(img[..., :3], dtype=np.uint8))
            if with_depth:
                # pyvista gives camera-space z (negative in front of the camera)
                depth = pl.get_image_depth(fill_value=np.nan)
                depths.append(np.ascontiguousarray(-depth, dtype=np.float32))
    finally:
        pl.close()
    return (images, depths) if with_depth else images


def nose_relief_mm(depth: np.ndarray, landmarks: np.ndarray, radius: int = 2) -> float:
    """How far the nose landmark stands in front of the eyes and mouth corners (mm).

    ``depth`` is a depth map from :func:`render_views` and ``landmarks`` the
    five face landmarks (eyes, nose tip, mouth corners) in its pixels.
    Measured on renders of the demo heads (``tests/test_render.py``), the
    nose tip is 14.5-45 mm nearer the camera than the mean of the other four
    points on real faces, and at most 12 mm on face-less surfaces (defaced
    and skull-stripped versions of the same heads), where the detector
    alone still finds face-like shading. A frame left in front of the eyes
    (the pydeface mean head's goggles) also lowers it. Mouth corners that
    fall on the background (a scan cut below the nose) are left out; returns
    NaN when an eye or the nose falls on the background.
    """
    points = np.asarray(landmarks, float).reshape(5, 2)
    height, width = depth.shape
    values = []
    for x, y in np.rint(points).astype(int):
        x = min(max(x, 0), width - 1)
        y = min(max(y, 0), height - 1)
        patch = depth[max(y - radius, 0): y + radius + 1, max(x - radius, 0): x + radius + 1]
        values.append(float(np.nanmedian(patch)) if np.isfinite(patch).any() else np.nan)
    eyes, nose, mouth = values[:2], values[2], values[3:]
    if not np.isfinite([*eyes, nose]).all():
        return float("nan")
    # a field of view that ends below the nose leaves no mouth: compare with the eyes alone
    others = [*eyes, *(v for v in mouth if np.isfinite(v))]
    return float(np.mean(others) - nose)
