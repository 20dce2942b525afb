"""From a head image to the face surface the renders are made of.

One function, :func:`reconstruct_head`, chains the steps every caller needs
in the same order (the participant workflow and the benchmarks): an air stored
below zero (signed, z-scored) brought to zero, corrupt slices (a plate of
garbage, a dropped slice) replaced by their neighbours' mean, ghosts of
the head in the air taken out where there are any (or, where the background is
noise as bright as the head, as in an MP2RAGE UNI image, the mask made from how
smooth the image is instead of its intensities), head mask, skin surface,
face frame, and, where clutter stands in front of the upper face with air
behind it, its removal followed by a second surface pass. Where the image's
edge cuts off the front of the head (a field of view that ends inside the
face), the cut is measured.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyvista as pv

from bids_app.presence import MIN_FACE_CUT_MM2

from .background import (
    MIN_SHELL_FILLED, NOISY_BACKGROUND_ROUGHNESS, air_offset, background_roughness, inversion_level, quiet_background,
    shell_filled, shell_quartiles,
)
from .ghosts import Ghost, find_ghosts, remove_ghosts
from .mask import head_mask, image_edge_cut
from .overhangs import remove_face_overhangs
from .slices import CorruptSlice, find_corrupt_slices, repair_slices
from .surface import FaceFrame, face_frame_in_image, head_surface

__all__ = ["HeadReconstruction", "reconstruct_head"]


@dataclass(frozen=True)
class HeadReconstruction:
    """The head mask, its skin surface and where the face is on it."""

    mask: np.ndarray
    surface: pv.PolyData
    frame: FaceFrame
    clutter_voxels: int
    """Voxels removed by :func:`remove_face_overhangs` (0 on the heads of
    people without anything in front of their face)."""
    ghosts: tuple[Ghost, ...] = ()
    """Ghosts of the head found in the air and subtracted before masking
    (:mod:`bids_app.mri.ghosts`; empty on a scan without them)."""
    face_cut_mm2: float = 0.0
    """Area (mm^2) of the head on the image's edge in front of the face
    (:func:`~bids_app.mri.mask.image_edge_cut` along the frame's anterior axis)."""
    background_roughness: float = 0.0
    """:func:`~bids_app.mri.background.background_roughness` of the image (near 0 for a dark
    background)."""
    air_offset: float = 0.0
    """The air's level in the image where it was below zero (signed storage, z-scored
    intensities; :func:`~bids_app.mri.background.air_offset`), subtracted before masking; 0
    otherwise."""
    inverted_about: float = 0.0
    """Where the image was stored inverted (the air its brightest part;
    :func:`~bids_app.mri.background.inversion_level`), the level its intensities were mirrored
    about before masking (its maximum); 0 otherwise."""
    corrupt_slices: tuple[CorruptSlice, ...] = ()
    """Slices far brighter or blanker than their neighbours on both sides, replaced by the mean of
    the nearest intact ones before masking (:mod:`bids_app.mri.slices`; empty on an intact scan)."""
    smoothness_mask: bool = False
    """The air is noise as bright as the head (an MP2RAGE UNI image: rough, and the intensity mask
    filled the image's outer shell), so the mask was made from
    :func:`~bids_app.mri.background.quiet_background`."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of the ``"mask"`` and ``"surface"`` stages (the clutter
    removal and second surface pass count as ``"surface"``)."""

    @property
    def face_cut(self) -> bool:
        """The image's edge cuts off the front of the head (:data:`bids_app.presence.MIN_FACE_CUT_MM2`)."""
        return self.face_cut_mm2 >= MIN_FACE_CUT_MM2

    @property
    def noisy_background(self) -> bool:
        """The background is rough (:data:`bids_app.presence.NOISY_BACKGROUND_ROUGHNESS`: an MP2RAGE
        UNI image, or a very noisy scan): the skin found in it, by either mask, is less certain."""
        return self.background_roughness >= NOISY_BACKGROUND_ROUGHNESS


def reconstruct_head(data: np.ndarray, affine: np.ndarray, zooms: Sequence[float], *,
                     smoothness_mask: bool | None = None) -> HeadReconstruction:
    """Mask, surface and face frame of one head image (see :mod:`bids_app.mri`).

    ``smoothness_mask``: mask the head from the image's smoothness
    (:func:`~bids_app.mri.background.quiet_background`) or from its intensities; by default
    the smoothness where the background is rough and the intensity mask fills the image's outer
    shell (:data:`bids_app.presence.MIN_SHELL_FILLED`).

    Raises
    ------
    ValueError
        If no head or no face can be found.
    """
    start = time.perf_counter()
    quartiles = shell_quartiles(data)  # the air's, for both checks below
    offset = air_offset(data, quartiles=quartiles)
    if offset:  # the air stored below zero (signed, z-scored): brought to zero, as in magnitude images
        data = np.asarray(data, dtype=np.float32) - np.float32(offset)
    # an air brought to zero is not the brightest part: the check is for images with no offset
    inverted = 0.0 if offset else inversion_level(data, quartiles=quartiles)
    if inverted:  # the air stored as the brightest part: the intensities mirrored
        data = np.float32(inverted) - np.asarray(data, dtype=np.float32)
    corrupt = tuple(find_corrupt_slices(data))
    if corrupt:
        data = repair_slices(data, corrupt)
    roughness = background_roughness(data)
    ghosts: tuple[Ghost, ...] = ()
    mask = None  # the intensity mask, where it was made to choose between the masks
    smooth = smoothness_mask
    if smooth is None:
        # a rough background: noise as bright as the head (the intensity mask fills the image), or
        # a very noisy scan whose air is still dark enough for the intensities
        smooth = False
        if roughness >= NOISY_BACKGROUND_ROUGHNESS:
            mask = head_mask(data, zooms)
            smooth = shell_filled(mask) >= MIN_SHELL_FILLED
    if smooth:
        data, mask = quiet_background(data, zooms), None
    else:
        ghosts = tuple(find_ghosts(data, zooms))
        if ghosts:
            data, mask = remove_ghosts(data, ghosts), None
    if mask is None:
        mask = head_mask(data, zooms)
    masked = time.perf_counter()
    surface = head_surface(mask, affine)
    frame = face_frame_in_image(surface, affine)
    mask, clutter = remove_face_overhangs(mask, affine, frame.nose_tip, frame.anterior, frame.superior)
    if clutter:
        surface = head_surface(mask, affine)
        frame = face_frame_in_image(surface, affine)
    cut_mm2, _ = image_edge_cut(mask, affine, frame.anterior, nose_tip=frame.nose_tip, superior=frame.superior)
    seconds = {"mask": masked - start, "surface": time.perf_counter() - masked}
    return HeadReconstruction(mask=mask, surface=surface, frame=frame, clutter_voxels=clutter,
                              ghosts=ghosts, face_cut_mm2=cut_mm2, background_roughness=roughness,
                              air_offset=offset, inverted_about=inverted, corrupt_slices=corrupt,
                              smoothness_mask=smooth, seconds=seconds)
