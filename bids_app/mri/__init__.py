"""MRI side of facerisk: read a head image, segment it, extract the skin surface.

``load_head`` reads files; ``head_mask``, ``head_surface`` and ``face_frame``
are pure functions of arrays and meshes::

    vol = load_head("sub-01_T1w.nii.gz")
    mask = head_mask(vol.data, vol.zooms)
    surf = head_surface(mask, vol.affine)
    frame = face_frame(surf)

or all at once, with corrupt slices replaced by their neighbours' mean
(:mod:`bids_app.mri.slices`) and ghosts of the head in the air subtracted first
(:mod:`bids_app.mri.ghosts`) and clutter in front of the upper face removed
(:func:`remove_face_overhangs`): ``reconstruct_head(vol.data, vol.affine, vol.zooms)``.

Nothing assumes how the head sits in the image: the mask is segmented on a
2 mm grid (bias-corrected, threshold from the data, thin clutter opened
away) and refined at full resolution; the surface is contoured at 2 mm
without decimation; ``face_frame`` reads the left-right axis from the
head's mirror symmetry, the nose tip from a depth map and the pitch from
the cranial vault. :mod:`bids_app.mri.augment` makes realistically altered
copies of real heads (contrast, bias, orientation, obliquity, anisotropy,
pose, cut field of view, defacing, skull stripping, noise, clutter) for
the tests.
"""

from .load import HeadVolume, ImageError, load_head
from .mask import head_mask, image_edge_cut
from .overhangs import remove_face_overhangs
from .reconstruct import HeadReconstruction, reconstruct_head
from .surface import FaceFrame, face_frame, face_frame_at, face_frame_in_image, head_surface, turned_frames

__all__ = [
    "FaceFrame",
    "HeadReconstruction",
    "HeadVolume",
    "ImageError",
    "face_frame",
    "face_frame_at",
    "face_frame_in_image",
    "head_mask",
    "head_surface",
    "image_edge_cut",
    "load_head",
    "reconstruct_head",
    "remove_face_overhangs",
    "turned_frames",
]
