"""Photo-like off-screen renders of a head surface with random light and view.

Following Schwarz et al. (NEJM 2019), each head is rendered several times
with a randomly jittered viewpoint and lighting, and face recognition is run
on the renders. The randomness is seeded: :func:`sample_view_params` gives
the same list for the same seed, and :func:`camera_pose` turns one
:class:`ViewParams` and a :class:`~bids_app.mri.FaceFrame` into the exact
camera used, so sidecars record what was rendered.

Headless rendering: VTK is told to use EGL (``VTK_DEFAULT_OPENGL_WINDOW``)
unless the environment chose something else; one off-screen render window
is reused for all views of a head.

The scene is built with VTK directly rather than through a
``pyvista.Plotter``: importing pyvista's plotting layer pulls in matplotlib
(about half a second per process), and its depth read-back renders the
scene a second time. The VTK pipeline below is the one the plotter used to
build (same window, material, normals and 8-bit colours), so the images are
pixel for pixel the same.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import numpy as np  # noqa: E402
import pyvista as pv  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
import vtkmodules.vtkRenderingOpenGL2  # noqa: E402, F401  (registers the OpenGL render window, EGL included)
from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: E402
from vtkmodules.vtkCommonCore import vtkFloatArray, vtkUnsignedCharArray  # noqa: E402
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals  # noqa: E402
from vtkmodules.vtkRenderingCore import (  # noqa: E402
    vtkActor,
    vtkLight,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkRenderWindow,
)

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
#: Multisample anti-aliasing samples per pixel of the render window.
MULTI_SAMPLES = 8

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


def _direction(frame: FaceFrame, azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector from the face centre, ``azimuth`` about superior, ``elevation`` up."""
    a, s = np.asarray(frame.anterior, float), np.asarray(frame.superior, float)
    d = Rotation.from_rotvec(azimuth * s, degrees=True).apply(a)
    right = np.cross(d, s)  # unit: d is a turned about s, so d is orthogonal to s
    return Rotation.from_rotvec(elevation * right, degrees=True).apply(d)


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
    up = Rotation.from_rotvec(-params.roll * d, degrees=True).apply(up / np.linalg.norm(up))
    return {"Position": center + dist * d, "FocalPoint": center, "ViewUp": up}


def _front_part(surf: pv.PolyData, frame: FaceFrame, crop_mm: float | None) -> pv.PolyData:
    """The triangles of ``surf`` less than ``crop_mm`` behind the nose tip.

    The back of the head is never seen from the views in :data:`RANGES`;
    dropping it halves the triangles to draw. Only points and triangles
    are kept (the renderer computes its own normals, see
    :func:`_with_point_normals`). ``surf`` comes back unchanged when
    ``crop_mm`` is None or 0, when nothing or everything lies behind, or
    when it is not a triangle mesh.
    """
    if not crop_mm or crop_mm <= 0:
        return surf
    a = np.asarray(frame.anterior, float)
    depth = (np.asarray(surf.points) - np.asarray(frame.nose_tip, float)) @ a
    behind = depth < -float(crop_mm)
    faces = np.asarray(surf.faces)
    if not behind.any() or behind.all() or not surf.is_all_triangles or not faces.size:
        return surf
    tri = faces.reshape(-1, 4)
    keep = ~behind[tri[:, 1:]].any(axis=1)
    return pv.PolyData(surf.points, tri[keep].ravel())


def _with_point_normals(mesh: pv.PolyData) -> pv.PolyData:
    """``mesh`` with point normals for smooth (Phong) shading.

    A mesh that already has active point normals is used as it is;
    otherwise they are computed with :class:`vtkPolyDataNormals` with
    consistent ordering and no splitting, the settings of pyvista's
    ``smooth_shading``, so the renders match those made through pyvista.
    """
    if mesh.GetPointData().GetNormals() is not None:
        return mesh
    normals = vtkPolyDataNormals()
    normals.SetComputePointNormals(True)
    normals.SetComputeCellNormals(False)
    normals.SetSplitting(False)
    normals.SetConsistency(True)
    normals.SetAutoOrientNormals(False)
    normals.SetNonManifoldTraversal(True)
    normals.SetInputData(mesh)
    normals.Update()
    return pv.wrap(normals.GetOutput())


def _color8(color: Sequence[float]) -> tuple[float, float, float]:
    """``color`` (RGB, 0-1) rounded to 8 bits per channel, as pyvista stores colours."""
    return tuple(round(255 * float(c)) / 255 for c in color)  # type: ignore[return-value]


def _depth_from_zbuffer(zbuffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """Distance (mm) from the camera plane per pixel, NaN on the background.

    ``zbuffer`` holds OpenGL window depths (0 at the near clipping plane, 1
    at the far one) of a perspective camera with clipping range
    ``near``-``far``; the mapping back to eye-space distance is
    ``2 n f / (n + f - (2 z - 1)(f - n))``. Pixels at (or beyond) the far
    plane saw no surface.
    """
    z = np.asarray(zbuffer, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = 2.0 * near * far / (near + far - (2.0 * z - 1.0) * (far - near))
    background = ~(depth < far) | np.isclose(depth, far)
    depth[background] = np.nan
    return depth.astype(np.float32)


class _Scene:
    """One off-screen window with the surface, a key and a fill light, and a camera.

    Built once per head and drawn once per view (see :func:`render_views`
    for the material and lights). The window settings (8-sample
    anti-aliasing, an alpha channel) are those of the pyvista plotter the
    renders were first made with.
    """

    def __init__(self, mesh: pv.PolyData, size: int, color: Sequence[float],
                 background: Sequence[float]) -> None:
        self.size = int(size)
        self.window = vtkRenderWindow()
        self.window.SetOffScreenRendering(True)
        self.window.SetSize(self.size, self.size)
        self.window.SetMultiSamples(MULTI_SAMPLES)
        self.window.SetAlphaBitPlanes(True)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(*_color8(background))
        self.renderer.SetAutomaticLightCreation(False)
        self.window.AddRenderer(self.renderer)

        mapper = vtkPolyDataMapper()
        mapper.SetInputData(_with_point_normals(mesh))
        mapper.ScalarVisibilityOff()
        actor = vtkActor()
        actor.SetMapper(mapper)
        self.prop = actor.GetProperty()
        self.prop.SetColor(*_color8(color))
        self.prop.SetInterpolationToPhong()
        self.prop.SetDiffuse(0.85)
        self.prop.SetSpecular(0.12)
        self.prop.SetSpecularPower(12.0)
        self.prop.SetAmbient(0.15)
        self.renderer.AddActor(actor)

        self.key, self.fill = vtkLight(), vtkLight()
        for light in (self.key, self.fill):
            light.SetLightTypeToSceneLight()
            light.SetPositional(False)
            self.renderer.AddLight(light)

    def render(self, frame: FaceFrame, params: ViewParams) -> None:
        """Draw one view: camera from :func:`camera_pose`, lights following the yaw."""
        pose = camera_pose(frame, params)
        camera = self.renderer.GetActiveCamera()
        camera.SetPosition(*pose["Position"])
        camera.SetFocalPoint(*pose["FocalPoint"])
        camera.SetViewUp(*pose["ViewUp"])
        camera.SetViewAngle(VIEW_ANGLE)
        self.renderer.ResetCameraClippingRange()
        # lights follow the yaw of the camera so the key stays near the front
        center = np.asarray(frame.center, float)
        key_dir = _direction(frame, params.yaw + params.key_azimuth, params.key_elevation)
        fill_dir = _direction(frame, params.yaw - 0.8 * params.key_azimuth, -0.3 * params.key_elevation)
        for light, direction, intensity in ((self.key, key_dir, params.key_intensity),
                                            (self.fill, fill_dir, params.fill_intensity)):
            light.SetPosition(*(center + 1000.0 * direction))
            light.SetFocalPoint(*center)
            light.SetIntensity(float(intensity))
        self.prop.SetAmbient(float(params.ambient))
        self.window.Render()

    def rgb(self) -> np.ndarray:
        """The last render as a ``(size, size, 3)`` ``uint8`` RGB image, top row first.

        Read from the front buffer, where the multisampled image has been
        resolved (what pyvista's screenshot returns).
        """
        n = self.size - 1
        pixels = vtkUnsignedCharArray()
        self.window.GetPixelData(0, 0, n, n, True, pixels, False)
        return np.ascontiguousarray(vtk_to_numpy(pixels).reshape(self.size, self.size, 3)[::-1])

    def depth(self) -> np.ndarray:
        """Depth map (mm) of the last render, top row first (see :func:`_depth_from_zbuffer`).

        Read straight from the z-buffer of the frame just drawn (pyvista's
        ``get_image_depth``, used before, drew the scene a second time
        first; its maps agree with these within 1e-4 mm on 99 % of the
        face pixels and 0.06 mm at most, at silhouette edges).
        """
        n = self.size - 1
        zbuffer = vtkFloatArray()
        self.window.GetZbufferData(0, 0, n, n, zbuffer)
        near, far = self.renderer.GetActiveCamera().GetClippingRange()
        return _depth_from_zbuffer(vtk_to_numpy(zbuffer).reshape(self.size, self.size)[::-1], near, far)

    def close(self) -> None:
        """Release the window and its OpenGL context."""
        self.window.Finalize()


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
    """Render ``surf`` once per parameter set, in a single reused window.

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
        background (see :func:`bids_app.presence.face_geometry`).
    """
    images: list[np.ndarray] = []
    depths: list[np.ndarray] = []
    if not params:
        return (images, depths) if with_depth else images
    scene = _Scene(_front_part(surf, frame, crop_mm), size, color, background)
    try:
        for p in params:
            scene.render(frame, p)
            images.append(scene.rgb())
            if with_depth:
                depths.append(scene.depth())
    finally:
        scene.close()
    return (images, depths) if with_depth else images

