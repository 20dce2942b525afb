"""Is there a face? 3D checks of what a face detector found on the renders.

A face detector trained on photographs also fires on the shading of
face-less surfaces (the flat cut of a defaced scan, the gyri of a
skull-stripped brain). Every render carries a depth map and its exact
camera, so each detection can be checked in 3D: its five landmarks (eyes,
nose tip, mouth corners) are cast onto the surface the render shows, and
the nose must stand out of the face in millimetres, whatever the view.

Two steps, pure functions on arrays:

1. :func:`landmarks_3d` casts pixels onto the surface (world mm), and
   :func:`face_geometry` measures one detection there: how far the nose
   tip stands out of the face ring around it (above a robust plane fitted
   to the ring), the eye distance and the eye-to-mouth distance, in mm.
2. :func:`scan_decision` pools the detections of one scan's renders: the
   scan has a face when enough renders find a nose in 3D at one place of
   the head; then every render whose detection puts its nose at that place
   counts as a render with a face, even when its own relief is weaker (a
   landmark off the tip, a grazing light). A scan with too few such
   renders but at least one is marked for review by eye. Thresholds and
   the measured distributions behind them: :data:`MIN_RELIEF_MM`,
   :data:`EYE_DISTANCE_MM`, :data:`MIN_SUPPORT_FRACTION`,
   :data:`SAME_PLACE_MM`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FaceGeometry", "FeatureShape", "ScanDecision", "face_geometry", "feature_shape", "landmarks_3d",
           "min_support",
           "profile_grid", "scan_decision"]


def camera_axes(pose: Mapping[str, Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Camera position and its forward, right and up unit vectors (world, RAS+ mm)."""
    position = np.asarray(pose["Position"], float)
    forward = np.asarray(pose["FocalPoint"], float) - position
    forward /= np.linalg.norm(forward)
    up = np.asarray(pose["ViewUp"], float)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return position, forward, right, up


def unproject(pixels: np.ndarray, depth_mm: np.ndarray, pose: Mapping[str, Sequence[float]],
              view_angle: float, size: Sequence[int]) -> np.ndarray:
    """World points (mm) seen at image ``pixels`` (x, y; y down) at camera-plane distance ``depth_mm``.

    ``size`` is (width, height) of the render and ``view_angle`` the
    camera's vertical view angle in degrees (a perspective camera, as
    :func:`bids_app.render.render_views` uses).
    """
    position, forward, right, up = camera_axes(pose)
    width, height = size
    focal = 0.5 * height / np.tan(np.deg2rad(view_angle) / 2.0)  # pixels
    xy = np.asarray(pixels, float).reshape(-1, 2)
    z = np.asarray(depth_mm, float).reshape(-1)
    dx = (xy[:, 0] + 0.5 - 0.5 * width) / focal  # pixel centres at x + 0.5
    dy = (0.5 * height - xy[:, 1] - 0.5) / focal
    return position + z[:, None] * (forward + dx[:, None] * right + dy[:, None] * up)


@dataclass(frozen=True)
class FaceGeometry:
    """One detection measured on the surface (mm; NaN where not measurable)."""

    relief: float
    """How far the nose tip stands out of the face around it (see :func:`face_geometry`)."""
    eye_distance: float
    """Between the two eye landmarks."""
    eye_mouth: float
    """From the middle of the eyes to the middle of the mouth corners."""
    nose: np.ndarray
    """World position of the nose tip found near the nose landmark."""
    eye_nose: float = float("nan")
    """From the middle of the eyes to that nose tip."""
    nose_over_cheeks: float = float("nan")
    """How far the nose tip stands out of the surface beside it: its height minus the mean height
    of the two points :data:`CHEEK_OFFSET` eye distances to either side along the eye line (NaN
    where either lies off the surface)."""

    def to_json(self) -> dict[str, object]:
        def mm(x: float) -> float | None:
            return round(float(x), 1) if np.isfinite(x) else None
        return {"NoseReliefMm": mm(self.relief), "EyeDistanceMm": mm(self.eye_distance),
                "EyeMouthMm": mm(self.eye_mouth), "EyeNoseMm": mm(self.eye_nose),
                "NoseOverCheeksMm": mm(self.nose_over_cheeks),
                "Nose3D": [round(float(v), 1) for v in self.nose] if np.isfinite(self.nose).all() else None}


NAN_GEOMETRY = FaceGeometry(float("nan"), float("nan"), float("nan"), nose=np.full(3, np.nan))

#: Half-side (pixels) of the patch whose median depth stands for a landmark.
PATCH_RADIUS = 2
#: The nose tip is the most prominent surface point within this fraction of
#: the eye distance (in pixels) of the nose landmark: detectors place that
#: landmark within a few pixels of the tip, not always on it.
NOSE_SEARCH = 0.2
#: The face around the nose: the ring between these fractions of the eye
#: distance (in pixels) around the nose landmark. On a face it holds the
#: eyes, cheeks, upper lip and mouth; the nose itself (up to ~0.4 eye
#: distances wide at the nostrils) stays inside it.
FACE_RING = (0.45, 0.85)
#: Fewest surface pixels of the ring for a measure (a face cut by the field of view keeps more).
MIN_RING_PIXELS = 20
#: The cheeks beside the nose: this fraction of the eye distance (in pixels) to either side of
#: the nose tip, along the eye line (on a face, just outside the nostrils).
CHEEK_OFFSET = 0.4


def _patch_depth(depth: np.ndarray, point: np.ndarray, radius: int = PATCH_RADIUS) -> float:
    height, width = depth.shape
    x, y = (int(v) for v in np.rint(point))
    if not (0 <= x < width and 0 <= y < height):
        return float("nan")
    patch = depth[max(y - radius, 0): y + radius + 1, max(x - radius, 0): x + radius + 1]
    finite = patch[np.isfinite(patch)]
    return float(np.median(finite)) if finite.size else float("nan")


def landmarks_3d(depth: np.ndarray, landmarks: np.ndarray, pose: Mapping[str, Sequence[float]],
                 view_angle: float) -> np.ndarray:
    """World points (mm) of image ``landmarks`` (N x 2) on the surface a render shows.

    Each point's depth is the median of the depth map in a small patch
    around it; a point outside the image or on the background is NaN.
    """
    points = np.asarray(landmarks, float).reshape(-1, 2)
    z = np.array([_patch_depth(depth, p) for p in points])
    height, width = depth.shape
    return unproject(points, z, pose, view_angle, (width, height))


#: The plane of the face ring is fitted again to the points whose distance
#: to a first fit is within this quantile: holes (orbits, nostrils, a mouth
#: opened by a cut) and rims then do not tilt it.
PLANE_KEEP = 0.8


def _plane_normal(offsets: np.ndarray) -> np.ndarray:
    """Unit normal of the least-squares plane through points given as ``offsets`` from their mean.

    The direction of least spread: the eigenvector of the smallest
    eigenvalue of the 3 x 3 scatter matrix, which is the last right-singular
    vector of ``offsets`` (the same plane, to float rounding) without an
    SVD of the whole N x 3 array (tens of thousands of points per face disc).
    """
    return np.linalg.eigh(offsets.T @ offsets)[1][:, 0]


def _robust_plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and unit normal of a plane through ``points``: least squares, refitted without outliers."""
    kept = points  # first fit: all of them
    for refit in (False, True):
        centre = kept.mean(axis=0)
        normal = _plane_normal(kept - centre)
        if refit:
            break
        distance = np.abs((points - centre) @ normal)
        kept = points[distance <= np.quantile(distance, PLANE_KEEP)]
    return centre, normal


def face_geometry(depth: np.ndarray, landmarks: np.ndarray, pose: Mapping[str, Sequence[float]],
                  view_angle: float) -> FaceGeometry:
    """Measure one detection's five landmarks on the surface of its render (see :class:`FaceGeometry`).

    The nose *relief* is measured on the surface points the render shows,
    in mm and square to the face, so that it does not depend on the view
    (yaw, pitch, distance): a plane is fitted (least squares, refitted
    without the farthest fifth, :data:`PLANE_KEEP`) to the points
    of the ring :data:`FACE_RING` around the nose landmark, and the relief
    is the height above that plane of the highest point within
    :data:`NOSE_SEARCH` eye distances of the landmark, minus the median
    height of the ring. The ring's median is robust to the parts of it
    that dip (eye sockets, the mouth) or rise (cheekbones), and the plane
    takes out a slope (a yawed view, a slanted defacing cut). Measures at
    single landmark points were not: on a defaced scan whose cut opens the
    orbits and sinuses, eye landmarks placed in the holes put the "nose"
    between them 18-22 mm in front of the "eyes".

    Returns :data:`NAN_GEOMETRY` when a landmark lies outside the image, an
    eye or the nose landmark on the background, or too little of the ring
    on the surface.
    """
    points = np.asarray(landmarks, float).reshape(5, 2)
    height, width = depth.shape
    if not ((points >= 0) & (points < [width, height])).all():
        return NAN_GEOMETRY
    world = landmarks_3d(depth, points, pose, view_angle)
    eyes, mouth = world[:2], world[3:]
    if not np.isfinite(world[:3]).all():
        return NAN_GEOMETRY
    eye_distance = float(np.linalg.norm(eyes[1] - eyes[0]))
    eye_mouth = float(np.linalg.norm(mouth.mean(axis=0) - eyes.mean(axis=0)))  # NaN if a corner is off

    gap = float(np.linalg.norm(points[1] - points[0]))  # pixels
    reach = int(np.ceil(FACE_RING[1] * gap)) + 1
    cx, cy = (int(v) for v in np.rint(points[2]))
    ys, xs = np.mgrid[max(cy - reach, 0): min(cy + reach + 1, height),
                      max(cx - reach, 0): min(cx + reach + 1, width)]
    r = np.hypot(xs - points[2, 0], ys - points[2, 1]) / max(gap, 1.0)
    z = depth[ys, xs].astype(float)
    seen = np.isfinite(z)
    ring = seen & (r >= FACE_RING[0]) & (r <= FACE_RING[1])
    tip = seen & (r <= NOSE_SEARCH)
    if ring.sum() < MIN_RING_PIXELS or not tip.any():
        return NAN_GEOMETRY
    size = (width, height)
    ring_points = unproject(np.stack([xs[ring], ys[ring]], axis=1), z[ring], pose, view_angle, size)
    tip_points = unproject(np.stack([xs[tip], ys[tip]], axis=1), z[tip], pose, view_angle, size)
    centre, normal = _robust_plane(ring_points)
    _, forward, _, _ = camera_axes(pose)
    if normal @ forward > 0:  # towards the camera
        normal = -normal
    tip_heights = (tip_points - centre) @ normal
    top = int(np.argmax(tip_heights))
    relief = float(tip_heights[top] - np.median((ring_points - centre) @ normal))
    nose = tip_points[top]
    # the surface beside the tip, along the eye line: a nose falls away to the cheeks within a
    # few centimetres, a bump on a dome (a gyrus of a skull-stripped brain) hardly does. Only
    # where the surface around the tip is whole: a face that a cut or the field of view ends
    # at the nose keeps no nose to compare with its cheeks (nor does a fragmented lower face)
    tip_pixel = np.array([xs[tip][top], ys[tip][top]], float)
    around_tip = np.hypot(xs - tip_pixel[0], ys - tip_pixel[1]) <= CHEEK_OFFSET * gap
    over_cheeks = float("nan")
    inside = ((tip_pixel >= CHEEK_OFFSET * gap).all()
              and (tip_pixel + CHEEK_OFFSET * gap < [width, height]).all())  # the disc in the window
    if inside and seen[around_tip].all():
        along = (points[1] - points[0]) / max(gap, 1.0)
        beside = [tip_pixel + side * CHEEK_OFFSET * gap * along for side in (-1.0, 1.0)]
        cheeks = landmarks_3d(depth, np.array(beside), pose, view_angle)
        over_cheeks = float(tip_heights[top] - np.mean((cheeks - centre) @ normal))  # NaN if one is off
    return FaceGeometry(relief=relief, eye_distance=eye_distance, eye_mouth=eye_mouth, nose=nose,
                        eye_nose=float(np.linalg.norm(nose - eyes.mean(axis=0))),
                        nose_over_cheeks=over_cheeks)


#: A detection whose nose stands at least this far out of the face around
#: it (mm, :func:`face_geometry`) supports a face. Measured on development
#: data (first detection per render, ``benchmarks/detection.py``; README,
#: "Face present or not"): scans with a face 1st/5th percentile 10.4/18.5
#: mm, median 27; defaced and skull-stripped scans median 1.2, 95th/99th
#: percentile 9.4/14.9, at most 19. A lone render is never trusted (see
#: :data:`MIN_SUPPORT_FRACTION`), so the threshold sits low, for flat noses.
MIN_RELIEF_MM = 8.0
#: Eye distances (mm, between the eye landmarks on the surface) a face can
#: have: faces measured 24-76 mm (1st percentile 32), shading on gyri makes
#: "faces" of 2-20 mm (median 20 over all face-less detections).
EYE_DISTANCE_MM = (25.0, 90.0)
#: Farthest (mm) the nose tip found in 3D may be from the middle of the eyes. A
#: detector that frames a whole face-less head (a defacing cut with bone or noise
#: below it) puts its "eyes" at the brow and its "nose" on a fragment far below:
#: measured on development data (``benchmarks/detection.py``, first supporting
#: detection per render, 1,456 renders of 148 scans), faces at most 64 mm (real heads
#: 58), such detections on face-less scans 15-101 mm (median 38: most are dropped by
#: other checks). No lower bound: a small, flattened face (17 mm) and the bony orbits
#: of a defaced scan (17-20 mm) overlap there.
MAX_EYE_NOSE_MM = 75.0
#: Farthest (mm) the middle of the mouth corners may be from the middle of the eyes,
#: where both lie on the surface (a face cut below the nose has no mouth to measure):
#: faces at most 109 mm (99th percentile 74; 146 of 859 real-head renders without a
#: mouth to measure), face-less detections framing a whole head 116-134 mm.
MAX_EYE_MOUTH_MM = 115.0
#: Least median, over a scan's supporting detections where both cheek points were seen, of the
#: nose tip's height over the cheeks beside it (:attr:`FaceGeometry.nose_over_cheeks`, mm). A
#: plane fitted to the ring around a point of a convex surface lies below the point, so a bump
#: on a dome (a gyrus of a skull-stripped brain that the detector frames as a whole face, a bone
#: fragment at the edge of a plane cut) gets a "relief" of 9-15 mm; the surface beside it,
#: though, is hardly lower. Pooled over the scan, as a single render of a flattened or
#: fragmented nose can fall to 0.
MIN_NOSE_OVER_CHEEKS_MM = 6.0
#: Widest median eye distance (mm) of a scan's supporting detections. A detector that frames a
#: whole face-less head (a plane cut below the brow, the "eyes" on the forehead and the "nose" on
#: a fragment at the cut) finds eyes far wider apart than any face's. Measured on development
#: data (``benchmarks/detection.py``, scans with enough support; real heads x alterations, seeds
#: 3, 6161 and 7373 hard, 2027 and 6161 default): faces 29-70 mm over 276 scans (the landmarks sit
#: on the closed lids, a median 55-57 mm apart, about 0.9 of an adult's interpupillary distance of
#: 63 mm), plane cuts framed whole 60-82 mm over 7 scans. At 76 mm: a margin of 6 mm (8%) over the
#: widest face; 3 of those 7 plane cuts are above it, 2 of the others fail the other checks.
MAX_MEDIAN_EYE_DISTANCE_MM = 76.0
#: Fraction of the scan's renders (rounded up, at least one) that must
#: support a face before the scan is said to show one. At 8 mm, supporting
#: renders out of 10 were 6-10 on all 186 development scans with a face and
#: 0-2 on all 99 without one: 4 leaves two renders of margin on either side.
MIN_SUPPORT_FRACTION = 0.4
#: Once the scan shows a face, a render's detection counts when its nose tip
#: is this close (mm) to the scan's nose, and its own relief is at least
#: half of the threshold (a landmark off the tip, a grazing light, a
#: detection with an eye distance outside the range).
SAME_PLACE_MM = 12.0


#: A head counts as cut by the image's edge in front (:attr:`bids_app.mri.HeadReconstruction.face_cut`)
#: from this much of it (mm^2) on the image's anterior edge (:func:`bids_app.mri.image_edge_cut`).
#: Measured (``README``, "Faces cut by the field of view"; development data): 0 mm^2 on 7 of the 8
#: real heads (Colin27, whose image ends at its nose: 447) and on 359 of 360 simulated scans,
#: intact and defaced (the other: 28); on images without a face cropped to the head, 0-302 mm^2
#: for skull-stripped brains cropped to their non-zero voxels (61: 8 real heads, 53 simulated) and
#: 207-508 for real defaced heads cut at their front; on faces whose field of view ends 15 mm
#: inside them, up to 11,933 mm^2 (68), and of the 14 that only the lower nose thresholds below
#: found, the smallest 545 and 734, the others 3,211 or more. 400 lies above every cropped brain
#: (whose gyri the lower thresholds can take for a nose: one at 254 mm^2 did) and below those faces.
MIN_FACE_CUT_MM2 = 400.0
#: A background counts as noise over the whole intensity range (an MP2RAGE UNI image) from this
#: roughness (:func:`bids_app.mri.background.background_roughness`); the head is then masked from
#: :func:`~bids_app.mri.background.quiet_background`, and a scan with no face decided is ``Review``.
#: Measured (``README``, "Backgrounds of noise"): on the 8 real heads 0.000-0.009 as stored,
#: FLAIR-like or with the field of view ending inside the face, 0.022-0.025 and 0.043-0.048 with
#: Rician noise of 4% and 8% of the 99th percentile added (very noisy scans); 0.008-0.031 on 160
#: simulated scans (seed 2468: hard and default mode, intact and defaced); as MP2RAGE UNI
#: images (:func:`bids_app.mri.augment.mp2rage_uni`) 0.222-0.282, and 0.101 for the one whose air
#: is partly smooth signal (the ROBEX atlas at 1% noise). 0.075 is 1.5 times the noisiest
#: ordinary scan and 0.75 times the lowest UNI image.
NOISY_BACKGROUND_ROUGHNESS = 0.075
#: On a rough background (:data:`NOISY_BACKGROUND_ROUGHNESS`) the intensity mask is kept unless it
#: fills at least this fraction of the image's outer shell
#: (:func:`bids_app.mri.background.shell_filled`: the threshold took the noise for head).
#: Measured on the 8 real heads (``python benchmarks/background.py``): as MP2RAGE UNI images
#: 0.90-1.00 (also cropped 15 mm into the face); with Rician noise of 15% of the 99th percentile
#: 0.01-0.31 (roughness 0.076-0.084; the intensity mask finds the face), 25% 0.13-0.70, 35%
#: 0.42-0.82.
MIN_SHELL_FILLED = 0.5
#: Where the image's edge cuts off the front of the head (``cut_by_edge`` of :func:`scan_decision`),
#: the nose may be cut with it: its relief and its height over the cheeks need only this fraction
#: of their thresholds, and a scan with no face decided is marked ``Review``. Measured: with the
#: field of view ending 15 mm inside the face, faces found on 7 of 8 real heads (6 with the full
#: thresholds) and 59 of 60 simulated ones (47); unchanged on every face-less scan.
EDGE_CUT_FRACTION = 0.5

#: When a scan's renders find a nose in too few of them (``FacePresence.Review``), the participant
#: workflow's cameras look again aimed this many mm higher
#: (:meth:`~bids_app.mri.surface.FaceFrame.aimed_higher`).
#: Measured (``README``, "Face present or not"): a simulated hard-mode face whose frame took its
#: protruding lips for a flattened nose (renders of the mouth and chin, 2 of 10 supporting) had 6
#: of 10 aimed 30 mm higher; of 85 face-less scans with 1-9 supporting renders, one plane cut
#: became "face" on its second look.
SECOND_LOOK_MM = 30.0
#: Once a scan shows a face, the participant workflow aims its cameras again at the nose that the
#: renders agree on (``ScanDecision.nose``; the frame's pitch is fitted again from it) when that
#: moves the frame's nose tip more than :data:`REAIM_MM` or turns its axes more than
#: :data:`REAIM_DEG` (:func:`reaim_needed`). A face frame whose tip is not on the nose (the chin
#: or lips below a flattened nose, a point of the nasal bridge above it) aims off the face and,
#: pitched from that point, can look up at the face from below, while the photos it is matched
#: against are frontal. Measured on development seed 7373 (hard mode, 29 faces): the frame's tip
#: was 1-12 mm from the renders' nose on 21 faces and 20-64 mm on 6 (on two 50-64 mm below it, at
#: the chin; on four 20-27 mm above it), and on two more the re-fitted axes turned 19 and 28
#: degrees (seen from below); re-aimed, all 8 were framed frontally with their whole face.
REAIM_MM = 15.0
REAIM_DEG = 10.0


def frame_change(before, after) -> tuple[float, float]:
    """How far (mm) the nose tip of face frame ``after`` is from that of ``before``, and by how
    many degrees its anterior axis is turned from theirs."""
    moved = float(np.linalg.norm(np.asarray(after.nose_tip) - np.asarray(before.nose_tip)))
    turned = float(np.degrees(np.arccos(np.clip(np.dot(after.anterior, before.anterior), -1.0, 1.0))))
    return moved, turned


def reaim_needed(before, after) -> bool:
    """Whether the face frame ``after`` (aimed at the renders' nose) differs enough from ``before``."""
    moved, turned = frame_change(before, after)
    return moved > REAIM_MM or turned > REAIM_DEG


def reaim_kept(first: "ScanDecision", reaimed: "ScanDecision") -> bool:
    """Whether the re-aimed look replaces the first: it shows the face in at least as many renders."""
    return bool(reaimed.face and reaimed.support >= first.support)


#: Share of the renders that must support a face for a turned look (cameras in the head's own
#: axes, the header's orientation overruled) to be kept. Higher than a first look's 40%: the
#: header is trusted unless the other orientation shows the face clearly. Measured on the real
#: heads (`benchmarks/detection.py --heads`, headers turned face-up, upside-down, sideways, and
#: defaced or skull-stripped heads, turned or not): faces found by a turned look had 8-10
#: supporting renders of 10 (20 scans); the one face-less scan a turned look found a "face" on
#: (the ROBEX atlas skull-stripped, seen from below: the brainstem taken for a nose) had 4.
TURNED_MIN_SUPPORT_FRACTION = 0.6


def turned_kept(turned: "ScanDecision", n_renders: int) -> bool:
    """Whether a turned look replaces the first: a face in :data:`TURNED_MIN_SUPPORT_FRACTION` of the renders."""
    return bool(turned.face and turned.support >= _renders_needed(TURNED_MIN_SUPPORT_FRACTION, n_renders))


def min_support(n_renders: int) -> int:
    """Supporting renders needed for a face among ``n_renders`` (:data:`MIN_SUPPORT_FRACTION`)."""
    return _renders_needed(MIN_SUPPORT_FRACTION, n_renders)


def _renders_needed(fraction: float, n_renders: int) -> int:
    """``fraction`` of ``n_renders``, rounded up, at least one."""
    return max(int(np.ceil(fraction * n_renders - 1e-9)), 1)


@dataclass(frozen=True)
class ScanDecision:
    """Whether one scan's renders show a face, and which detection counts in each render."""

    face: bool
    support: int
    """Renders with a detection of a nose in 3D (relief and eye distance in range)."""
    nose: np.ndarray
    """The scan's nose tip (median of the supporting detections' noses), NaN without a face."""
    chosen: list[int | None]
    """Per render, the index of the detection that counts, or None."""
    reason: str
    min_relief: float = MIN_RELIEF_MM
    need: int = 1
    """Supporting renders that were needed."""
    over_cheeks: float = float("nan")
    """Median height (mm) of the supporting detections' nose tips over the cheeks beside them."""
    eye_distance: float = float("nan")
    """Median eye distance (mm) of the supporting detections."""
    cut_by_edge: bool = False
    """The image's edge cuts off the front of the head (thresholds scaled by :data:`EDGE_CUT_FRACTION`)."""
    min_over_cheeks: float = MIN_NOSE_OVER_CHEEKS_MM
    """The nose's height over the cheeks that was needed (mm)."""

    @property
    def review(self) -> bool:
        """No face decided, but some render found a nose in 3D, or the image's edge cuts off the
        front of the head: a person should look at the renders.

        Measured: 14 of 99 development scans without a face had 1-2 such renders, and one held-out
        simulated face (a dim, fragmented lower face, the detector framing the brow) had 3 of 10.
        """
        return not self.face and (self.support > 0 or self.cut_by_edge)

    def to_json(self) -> dict[str, object]:
        return {"FacePresent": self.face, "Support": self.support, "Review": self.review,
                "Nose3D": [round(float(v), 1) for v in self.nose] if self.face else None,
                "Reason": self.reason,
                "NoseOverCheeksMm": round(float(self.over_cheeks), 1) if np.isfinite(self.over_cheeks) else None,
                "MinReliefMm": self.min_relief, "EyeDistanceMm": list(EYE_DISTANCE_MM),
                "MinNoseOverCheeksMm": self.min_over_cheeks, "CutByImageEdge": self.cut_by_edge,
                "MedianEyeDistanceMm": round(float(self.eye_distance), 1) if np.isfinite(self.eye_distance) else None,
                "MaxMedianEyeDistanceMm": MAX_MEDIAN_EYE_DISTANCE_MM,
                "MaxEyeNoseMm": MAX_EYE_NOSE_MM, "MaxEyeMouthMm": MAX_EYE_MOUTH_MM,
                "MinSupport": self.need, "SamePlaceMm": SAME_PLACE_MM}


def _plausible(g: FaceGeometry) -> bool:
    """Eyes, nose and mouth where a face has them: a human eye distance, and the nose and the
    mouth (where measured) not farther from the eyes than on any face (:data:`MAX_EYE_NOSE_MM`,
    :data:`MAX_EYE_MOUTH_MM`)."""
    return bool(EYE_DISTANCE_MM[0] <= g.eye_distance <= EYE_DISTANCE_MM[1]
                and not g.eye_nose > MAX_EYE_NOSE_MM and not g.eye_mouth > MAX_EYE_MOUTH_MM)


def scan_decision(geometries: Sequence[Sequence[FaceGeometry]], *,
                  min_relief: float = MIN_RELIEF_MM, cut_by_edge: bool = False) -> ScanDecision:
    """Pool the detections of one scan's renders into a face / no-face decision.

    ``geometries[i]`` holds :func:`face_geometry` of render ``i``'s
    detections, best first. A detection *supports* a face when its relief is
    at least ``min_relief`` and its eye distance is human
    (:data:`EYE_DISTANCE_MM`). The scan shows a face when at least
    :func:`min_support` of its renders have a supporting detection and the
    median height of their nose tips over the cheeks beside them (where seen)
    is at least :data:`MIN_NOSE_OVER_CHEEKS_MM`, and their median eye distance at most
    :data:`MAX_MEDIAN_EYE_DISTANCE_MM`. Then each render counts its
    first detection that supports a face, or failing that, its first one
    with a human eye distance, a relief of at least ``min_relief / 2`` and
    a nose within :data:`SAME_PLACE_MM` of the scan's nose. ``min_relief <= 0`` turns the 3D check off: every render
    with a detection counts (``support`` counts them). ``cut_by_edge`` (the image's edge cuts off
    the front of the head, the nose perhaps with it): where the thresholds find no face, the
    relief and the height over the cheeks need :data:`EDGE_CUT_FRACTION` of them (lower
    thresholds only add faces: weaker detections could pull the median height over the cheeks
    down), and no face decided is a ``Review``.
    """
    n = len(geometries)
    if min_relief <= 0:
        chosen = [0 if gs else None for gs in geometries]
        support = sum(c is not None for c in chosen)
        return ScanDecision(face=support > 0, support=support, nose=np.full(3, np.nan), chosen=chosen,
                            reason="3D check turned off", min_relief=0.0, need=1)
    if cut_by_edge:
        full = _pooled(geometries, min_relief, MIN_NOSE_OVER_CHEEKS_MM, cut_by_edge=True)
        if full.face:
            return full
        return _pooled(geometries, EDGE_CUT_FRACTION * min_relief, EDGE_CUT_FRACTION * MIN_NOSE_OVER_CHEEKS_MM,
                       cut_by_edge=True)
    return _pooled(geometries, min_relief, MIN_NOSE_OVER_CHEEKS_MM, cut_by_edge=False)


def _pooled(geometries: Sequence[Sequence[FaceGeometry]], min_relief: float, min_over_cheeks: float, *,
            cut_by_edge: bool) -> ScanDecision:
    """:func:`scan_decision` with these thresholds of the nose's relief and height over the cheeks."""
    n = len(geometries)
    edge = dict(cut_by_edge=cut_by_edge, min_over_cheeks=min_over_cheeks)
    cut_note = ("; the image's edge cuts off the front of the head: a face cut by the image's edge can "
                "still be recognisable, check the renders by eye" if cut_by_edge else "")
    strong = [next((j for j, g in enumerate(gs) if g.relief >= min_relief and _plausible(g)), None)
              for gs in geometries]
    support = sum(s is not None for s in strong)
    need = min_support(n)
    if support < need:
        why = (f"{support} of {n} renders show a nose standing {min_relief:g} mm out of a face "
               f"of human size; {need} needed"
               + (cut_note or ("; check the renders by eye" if support else "")))
        return ScanDecision(face=False, support=support, nose=np.full(3, np.nan), chosen=[None] * n,
                            reason=why, min_relief=min_relief, need=need, **edge)
    supporting = [geometries[i][j] for i, j in enumerate(strong) if j is not None]
    seen = [g.nose_over_cheeks for g in supporting if np.isfinite(g.nose_over_cheeks)]
    over_cheeks = float(np.median(seen)) if seen else float("nan")
    eye_distance = float(np.median([g.eye_distance for g in supporting]))
    evidence = dict(min_relief=min_relief, need=need, over_cheeks=over_cheeks, eye_distance=eye_distance, **edge)
    found = f"{support} of {n} renders show a nose standing {min_relief:g} mm out of a face of human size"
    if eye_distance > MAX_MEDIAN_EYE_DISTANCE_MM:
        why = (f"{found}, but their eyes lie a median {eye_distance:.1f} mm apart (at most "
               f"{MAX_MEDIAN_EYE_DISTANCE_MM:g} on a face): the detector framed the whole head; "
               "check the renders by eye" + cut_note)
        return ScanDecision(face=False, support=support, nose=np.full(3, np.nan), chosen=[None] * n,
                            reason=why, **evidence)
    if over_cheeks < min_over_cheeks:
        why = (f"{found}, but it stands a median {over_cheeks:.1f} mm above the cheeks beside it "
               f"({min_over_cheeks:g} needed): a bump on a rounded surface; check the renders by eye" + cut_note)
        return ScanDecision(face=False, support=support, nose=np.full(3, np.nan), chosen=[None] * n,
                            reason=why, **evidence)
    nose = np.median(np.stack([g.nose for g in supporting]), axis=0)
    chosen: list[int | None] = []
    for gs, s in zip(geometries, strong):
        if s is None:
            s = next((j for j, g in enumerate(gs) if _plausible(g) and g.relief >= min_relief / 2
                      and np.linalg.norm(g.nose - nose) <= SAME_PLACE_MM), None)
        chosen.append(s)
    return ScanDecision(face=True, support=support, nose=nose, chosen=chosen,
                        reason=f"{support} of {n} renders show a nose in 3D at one place"
                        + ("; the image's edge cuts off the front of the head" if cut_by_edge else ""),
                        **evidence)


# --------------------------------------------------------------------------- per-feature evidence

#: Half-side of the patch around each feature landmark (eyes, nose tip,
#: mouth centre), as a fraction of the eye distance in pixels.
FEATURE_PATCH = 0.25
#: A surface point lies "on the plane" of a patch when it is within this
#: distance (mm) of the patch's robust plane. A plane cut (a defacing plane,
#: a clipped field of view) is flat to well under this, skin features are not.
FLAT_MM = 1.0
#: The face disc whose flat fraction tells a plane cut: all surface points
#: within this many eye distances (pixels) of the middle of the landmarks.
FACE_DISC = 0.9


@dataclass(frozen=True)
class FeatureShape:
    """How much skin of a feature's shape each landmark of one detection hits (raw measures).

    ``seen``: fraction of the patch around the landmark that is surface (not
    background); ``flat``: fraction of those surface points within
    :data:`FLAT_MM` of the patch's robust plane (1 on a plane cut, lower on
    an eye socket, a nose or lips); ``face_flat``: the same over the whole
    face disc (:data:`FACE_DISC`): a large planar patch where a face should
    be is the sign of a cut. The verdicts (:mod:`bids_app.audit`) set the
    thresholds on these.
    """

    seen: dict[str, float]
    flat: dict[str, float]
    face_flat: float

    def to_json(self) -> dict[str, object]:
        def r(x: float) -> float | None:
            return round(float(x), 3) if np.isfinite(x) else None
        return {"Seen": {k: r(v) for k, v in self.seen.items()},
                "Flat": {k: r(v) for k, v in self.flat.items()},
                "FaceFlat": r(self.face_flat)}


FEATURES = ("EyeLeft", "EyeRight", "Nose", "Mouth")
NAN_SHAPE = FeatureShape({k: float("nan") for k in FEATURES}, {k: float("nan") for k in FEATURES}, float("nan"))


def _patch_points(depth, centre, radius, pose, view_angle):
    height, width = depth.shape
    cx, cy = (int(v) for v in np.rint(centre))
    r = int(np.ceil(radius))
    ys, xs = np.mgrid[max(cy - r, 0): min(cy + r + 1, height), max(cx - r, 0): min(cx + r + 1, width)]
    inside = np.hypot(xs - centre[0], ys - centre[1]) <= radius
    total = int(inside.sum())
    z = depth[ys, xs].astype(float)
    keep = inside & np.isfinite(z)
    points = unproject(np.stack([xs[keep], ys[keep]], axis=1), z[keep], pose, view_angle, (width, height))
    return points, total


def _flat_fraction(points: np.ndarray) -> float:
    if len(points) < MIN_RING_PIXELS:
        return float("nan")
    centre, normal = _robust_plane(points)
    return float(np.mean(np.abs((points - centre) @ normal) <= FLAT_MM))


def feature_shape(depth: np.ndarray, landmarks: np.ndarray, pose: Mapping[str, Sequence[float]],
                  view_angle: float) -> FeatureShape:
    """Measure, for one detection, whether skin of a feature's shape lies under each landmark.

    Pure measures for the per-feature evidence of :mod:`bids_app.audit`
    (see :class:`FeatureShape`); NaN where the landmarks leave the image.
    """
    points = np.asarray(landmarks, float).reshape(5, 2)
    height, width = depth.shape
    if not ((points >= 0) & (points < [width, height])).all():
        return NAN_SHAPE
    gap = max(float(np.linalg.norm(points[1] - points[0])), 4.0)
    centres = {"EyeLeft": points[0], "EyeRight": points[1], "Nose": points[2], "Mouth": points[3:].mean(axis=0)}
    seen, flat = {}, {}
    for name, centre in centres.items():
        found, total = _patch_points(depth, centre, FEATURE_PATCH * gap, pose, view_angle)
        seen[name] = len(found) / total if total else float("nan")
        flat[name] = _flat_fraction(found)
    disc, _ = _patch_points(depth, points.mean(axis=0), FACE_DISC * gap, pose, view_angle)
    return FeatureShape(seen, flat, _flat_fraction(disc))


# --------------------------------------------------------------------------- the face's 3D profile

#: Grid of the face profile in the face frame (mm from the nose tip): right, superior.
PROFILE_RIGHT_MM = (-36.0, 36.0)
PROFILE_SUPERIOR_MM = (-48.0, 40.0)
PROFILE_STEP_MM = 4.0
#: Along the anterior axis, the surface is searched from this far in front of the nose tip
#: to this far behind it (mm).
PROFILE_DEPTH_MM = (30.0, -90.0)


def profile_grid() -> tuple[np.ndarray, np.ndarray]:
    """The columns (right, mm) and rows (superior, mm) of :func:`face_profile`, from the nose tip."""
    xs = np.arange(PROFILE_RIGHT_MM[0], PROFILE_RIGHT_MM[1] + 1e-6, PROFILE_STEP_MM)
    zs = np.arange(PROFILE_SUPERIOR_MM[0], PROFILE_SUPERIOR_MM[1] + 1e-6, PROFILE_STEP_MM)
    return xs, zs


def face_profile(mask: np.ndarray, affine: np.ndarray, frame) -> np.ndarray:
    """The face's relief on a regular grid of the face frame (mm; NaN where no surface).

    For each grid point (right, superior) around the nose tip, the anterior
    coordinate (relative to the nose tip) of the first head-mask voxel met
    coming from the front. Two scans of one surface (a refacing tool's
    template face pasted on several participants) give the same profile
    up to a tilt; two people do not (see :mod:`bids_app.audit`).
    """
    anterior = np.asarray(frame.anterior, float)
    anterior /= np.linalg.norm(anterior)
    superior = np.asarray(frame.superior, float) - (np.asarray(frame.superior, float) @ anterior) * anterior
    superior /= np.linalg.norm(superior)
    right = np.cross(anterior, superior)
    xs, zs = profile_grid()
    ds = np.arange(PROFILE_DEPTH_MM[0], PROFILE_DEPTH_MM[1] - 1e-6, -1.0)
    z, x, d = np.meshgrid(zs, xs, ds, indexing="ij")
    points = (np.asarray(frame.nose_tip, float) + x[..., None] * right + z[..., None] * superior
              + d[..., None] * anterior)
    vox = np.rint(points @ np.linalg.inv(affine)[:3, :3].T + np.linalg.inv(affine)[:3, 3]).astype(int)
    inside = ((vox >= 0) & (vox < np.asarray(mask.shape))).all(axis=-1)
    hit = np.zeros(inside.shape, bool)
    v = vox[inside]
    hit[inside] = mask[v[:, 0], v[:, 1], v[:, 2]]
    first = np.argmax(hit, axis=-1)
    profile = ds[first].astype(float)
    profile[~hit.any(axis=-1)] = np.nan
    return profile
