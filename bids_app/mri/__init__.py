"""MRI side of facerisk: read a head image, segment it, extract the skin surface.

``load_head`` reads files; ``head_mask``, ``head_surface`` and ``face_frame``
are pure functions of arrays and meshes::

    vol = load_head("sub-01_T1w.nii.gz")
    mask = head_mask(vol.data, vol.zooms)
    surf = head_surface(mask, vol.affine)
    frame = face_frame(surf)
"""

from .load import HeadVolume, ImageError, load_head
from .mask import head_mask
from .surface import FaceFrame, face_frame, head_surface

__all__ = [
    "FaceFrame",
    "HeadVolume",
    "ImageError",
    "face_frame",
    "head_mask",
    "head_surface",
    "load_head",
]
