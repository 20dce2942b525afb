"""Five-point face alignment onto the ArcFace 112 x 112 template.

The recognisers we use (SFace, ArcFace) were trained on crops made by a
similarity transform (rotation, uniform scale, translation; no shear) that
maps the five detected landmarks as closely as possible, in the least-squares
sense, onto fixed template positions. This module estimates that transform
(Umeyama, 1991) and applies it with OpenCV.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["ARCFACE_TEMPLATE", "similarity_transform", "norm_crop"]

#: Landmark positions of the ArcFace / SFace 112 x 112 crop, in the order
#: right eye, left eye, nose tip, right mouth corner, left mouth corner
#: (the person's right appears on the image's left).
ARCFACE_TEMPLATE: np.ndarray = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_TEMPLATE.setflags(write=False)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform taking points *src* onto *dst*.

    Parameters
    ----------
    src, dst : ndarray, shape (N, 2)
        Corresponding points, N >= 2.

    Returns
    -------
    ndarray, shape (2, 3)
        Affine matrix ``[s R | t]`` with ``dst ~ s R src + t``, ready for
        :func:`cv2.warpAffine`.

    Notes
    -----
    Umeyama's closed form: with centred point sets, the rotation comes from
    the SVD of their cross-covariance (with a sign fix that excludes
    reflections) and the scale from the singular values over the source
    variance.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (N, 2) point sets, got {src.shape} and {dst.shape}")
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    cov = dst_c.T @ src_c / len(src)
    u, sing, vt = np.linalg.svd(cov)
    signs = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[-1] = -1.0
    rot = u @ np.diag(signs) @ vt
    var_src = (src_c**2).sum(axis=1).mean()
    if var_src <= 0:
        raise ValueError("source points are all identical")
    scale = float((sing * signs).sum() / var_src)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_dst - scale * rot @ mu_src
    return matrix


def norm_crop(
    image: np.ndarray,
    landmarks: np.ndarray,
    template: np.ndarray = ARCFACE_TEMPLATE,
    size: int = 112,
) -> np.ndarray:
    """Warp *image* so that *landmarks* land on *template* in a ``size x size`` crop.

    Bilinear interpolation; pixels outside the source image are black (as in
    the recogniser's training data).
    """
    matrix = similarity_transform(np.asarray(landmarks).reshape(-1, 2), template)
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
