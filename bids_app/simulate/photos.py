"""Stand-in portrait "photos" of a head surface: one renderer, the draws beside it.

:func:`render_views` is the renderer: a head surface (world mm), a face
frame (:func:`bids_app.mri.face_frame`) and one :class:`View` per photo
(perspective camera, plain or gradient background, directional lights
placed in the face frame, skin colour) give RGB images. Who calls it draws
the views:

- :func:`render_photos`, the simulated cohort's photos (camera, light,
  background and skin drawn per participant from :data:`PHOTO`, see the
  package docstring);
- ``scripts/make_demo_dataset.py``, the bundled demo's stand-in photos
  (three fixed yaws, warm and cool lights, gradient backgrounds).

The renderer does not draw anything random, so the same views give the
same images (up to the OpenGL implementation).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .participant import Participant

#: Stand-in photo camera and light. Yaw: the photos' yaw spans +-``yaw``
#: degrees (evenly, plus +-``yaw_jitter``), like passport-to-social-media
#: portraits; profiles are rare in such photos and are where face recognisers
#: (SFace, dlib) are weakest. ``fill``: fraction of the frame height the face
#: fills; ``light_tint``: 0 white light, 1 strongly warm or cool;
#: ``background_colour``: saturation of the backgrounds.
PHOTO: dict[str, Any] = {
    "yaw": 18.0, "yaw_jitter": 4.0, "pitch": (-6.0, 10.0), "roll": (-5.0, 5.0),
    "fill": (0.5, 0.68), "light_tint": 0.5, "background_colour": 0.15,
}

#: Distance of the directional lights from the face centre (mm): far enough
#: to be only a direction (they are not positional).
LIGHT_DISTANCE_MM = 1000.0


@dataclass
class View:
    """One photo: camera (world mm), background, lights and skin colour.

    ``lights``: (azimuth, elevation, colour, intensity) of directional
    lights; azimuth in degrees from the face's anterior axis towards its
    right, elevation in degrees towards its superior axis (the face frame
    given to :func:`render_views`). ``background_top``: the top colour of a
    vertical gradient whose bottom is ``background``; None for a plain one.
    """

    position: Any
    focal_point: Any
    up: Any
    view_angle: float
    background: tuple[float, float, float]
    background_top: tuple[float, float, float] | None
    lights: list[tuple[float, float, tuple[float, float, float], float]]
    colour: tuple[float, float, float]


def view_direction(frame: Any, yaw: float, pitch: float) -> np.ndarray:
    """Unit vector from the face towards a camera at ``yaw`` (to the face's right) and ``pitch``
    (up) degrees from the face's anterior axis."""
    a, s = frame.anterior, frame.superior
    right = np.cross(s, a)
    t = np.deg2rad(yaw)
    d = np.cos(t) * a + np.sin(t) * right
    return np.cos(np.deg2rad(pitch)) * d + np.sin(np.deg2rad(pitch)) * s


def render_views(surf: Any, frame: Any, views: Iterable[View], *, size: tuple[int, int],
                 material: dict[str, Any]) -> Iterator[np.ndarray]:
    """Render ``surf`` once per view; yields (height, width, 3) uint8 RGB images.

    ``material``: :meth:`pyvista.Plotter.add_mesh` keywords (``color``,
    ``diffuse``, ``specular``, ``specular_power``, ``ambient``); the mesh is
    smooth-shaded. ``views`` is consumed lazily, one view per image, so a
    caller may draw each view after the previous image is saved.
    """
    import pyvista as pv

    a, s = frame.anterior, frame.superior
    right = np.cross(s, a)
    pl = pv.Plotter(off_screen=True, window_size=size, lighting="none")
    try:
        actor = pl.add_mesh(surf, smooth_shading=True, **material)
        for view in views:
            pl.camera.position = tuple(view.position)
            pl.camera.focal_point = tuple(view.focal_point)
            pl.camera.up = tuple(view.up)
            pl.camera.view_angle = view.view_angle
            pl.reset_camera_clipping_range()
            if view.background_top is None:
                pl.set_background(view.background)
            else:
                pl.set_background(view.background, top=view.background_top)
            pl.remove_all_lights()
            for az, el, col, inten in view.lights:
                ld = np.cos(np.deg2rad(az)) * a + np.sin(np.deg2rad(az)) * right
                ld = np.cos(np.deg2rad(el)) * ld + np.sin(np.deg2rad(el)) * s
                light = pv.Light(position=tuple(frame.center + LIGHT_DISTANCE_MM * ld),
                                 focal_point=tuple(frame.center), color=col,
                                 intensity=float(inten), light_type="scene light")
                light.positional = False
                pl.add_light(light)
            actor.prop.color = view.colour
            pl.render()
            yield np.ascontiguousarray(pl.screenshot(return_img=True)[..., :3])
    finally:
        pl.close()


def render_photos(part: Participant, mask: np.ndarray, affine: np.ndarray, outdir: Path,
                  frame: Any, *, size: tuple[int, int] | None = None) -> list[Path]:
    """Portrait "photos" of the clean deformed head (see the package docstring).

    ``frame`` is the base head's face frame (:func:`bids_app.mri.face_frame`
    of the whole head): the photo surface is the front of the face only, and
    a frame read from that partial surface tilts about 20 degrees (the
    missing back of the skull biases its pitch) and misjudges the face size,
    which cut chins off the pictures.
    """
    from PIL import Image

    from bids_app.mri import head_surface

    rng = np.random.default_rng(part.photo_seed)
    surf = head_surface(mask, affine, blur_vox=1.5, resolution_mm=1.0, max_triangles=300_000,
                        smooth_iter=30, pass_band=0.05)
    a, s = frame.anterior, frame.superior
    right = np.cross(s, a)
    light_t = float(rng.uniform())  # skin: light to dark
    skin = (1 - light_t) * np.array([0.96, 0.80, 0.70]) + light_t * np.array([0.42, 0.27, 0.18])
    skin = np.clip(skin * rng.uniform(0.94, 1.06, 3), 0, 1)
    portrait = bool(rng.uniform() < 0.4)
    wsize = size or ((480, 640) if portrait else (640, 480))
    outdir.mkdir(parents=True, exist_ok=True)
    ymax, yjit = PHOTO["yaw"], PHOTO["yaw_jitter"]
    yaws = np.linspace(-ymax, ymax, part.n_photos) + rng.uniform(-yjit, yjit, part.n_photos)
    rng.shuffle(yaws)
    # the draw order is that of the photos' first renderer: the material, then per photo the
    # camera, background, lights and colour, then (after the image) the file format
    material = {"color": tuple(skin), "diffuse": float(rng.uniform(0.8, 0.95)),
                "specular": float(rng.uniform(0.1, 0.35)),
                "specular_power": float(rng.uniform(10, 40)), "ambient": float(rng.uniform(0.12, 0.22))}

    def views() -> Iterator[View]:
        for k in range(part.n_photos):
            yaw, pitch, roll = float(yaws[k]), float(rng.uniform(*PHOTO["pitch"])), float(rng.uniform(*PHOTO["roll"]))
            d = view_direction(frame, yaw, pitch)
            angle = float(rng.uniform(18, 28))
            fill = float(rng.uniform(*PHOTO["fill"]))  # fraction of the frame height the face fills
            dist = frame.size * 0.8 / fill / (2 * np.tan(np.deg2rad(angle / 2)))
            focal = frame.center + s * float(rng.uniform(-5, 15)) + right * float(rng.uniform(-10, 10))
            up = s - d * float(s @ d)
            up /= np.linalg.norm(up)
            r = np.deg2rad(roll)
            up = np.cos(r) * up + np.sin(r) * np.cross(d, up)
            # muted backgrounds: a grey level plus a little colour
            top = np.clip(rng.uniform(0.25, 0.85) + rng.uniform(-1, 1, 3) * PHOTO["background_colour"], 0, 1)
            if rng.uniform() < 0.5:
                background, background_top = tuple(top * rng.uniform(0.3, 0.8)), tuple(top)
            else:
                background, background_top = tuple(top), None
            kelvin = rng.uniform(-1, 1) * PHOTO["light_tint"]  # warm (+) or cool (-) key light
            key_col = (1.0 - 0.1 * max(-kelvin, 0), 1.0 - 0.12 * abs(kelvin), 1.0 - 0.3 * max(kelvin, 0))
            key_col = tuple(float(np.clip(c, 0, 1)) for c in key_col)
            fill_col = tuple(float(c) for c in 1.0 - rng.uniform(0, 1, 3) * PHOTO["light_tint"] * 0.3)
            lights = [(rng.uniform(-50, 50), rng.uniform(5, 40), key_col, rng.uniform(0.8, 1.0)),
                      (rng.uniform(-80, 80), rng.uniform(-15, 15), fill_col, rng.uniform(0.35, 0.6))]
            if rng.uniform() < 0.5:
                lights.append((rng.choice([-1, 1]) * rng.uniform(110, 150), rng.uniform(10, 40),
                               (1.0, 1.0, 1.0), rng.uniform(0.2, 0.5)))
            colour = tuple(np.clip(skin * rng.uniform(0.97, 1.03, 3), 0, 1))
            yield View(position=focal + dist * d, focal_point=focal, up=up, view_angle=angle,
                       background=background, background_top=background_top, lights=lights,
                       colour=colour)

    paths: list[Path] = []
    images = render_views(surf, frame, views(), size=wsize, material=material)
    for k, img in enumerate(images):
        if rng.uniform() < 0.5:
            path = outdir / f"sub-{part.label}_photo{k + 1:02d}.jpg"
            Image.fromarray(img).save(path, quality=int(rng.integers(85, 96)))
        else:
            path = outdir / f"sub-{part.label}_photo{k + 1:02d}.png"
            Image.fromarray(img).save(path)
        paths.append(path)
    return paths
