"""Acquisition: contrast remap, pads, scanner pose, voxel grid, slice profile, bias, noise and
the defacing region."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from .deface import cut_region, deface_method, mask_region
from .heads import BaseHead
from .participant import Participant
from .settings import CONTRAST_NODES, CONTRASTS, SUPERFICIAL


def _orientation_affine(codes: str, zooms: tuple[float, float, float], lo: np.ndarray,
                        hi: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of a grid covering world box [lo, hi] stored in ``codes`` order."""
    world_axis = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    aff = np.zeros((4, 4))
    aff[3, 3] = 1
    shape = []
    origin = np.zeros(3)
    for j, code in enumerate(codes):
        k, sign = world_axis[code]
        aff[k, j] = sign * zooms[j]
        n = int(np.ceil((hi[k] - lo[k]) / zooms[j])) + 1
        shape.append(n)
        origin[k] = lo[k] if sign > 0 else lo[k] + (n - 1) * zooms[j]
    aff[:3, 3] = origin
    return aff, tuple(shape)  # type: ignore[return-value]


def _rotation(deg: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = np.deg2rad(deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx

#: The mask defacing region (kept here for callers of the scanner module).
_deface_region = mask_region


def head_to_scanner(part: Participant, base: BaseHead) -> np.ndarray:
    """4x4 from head world (``base.affine`` mm) to scanner world: the participant's pose,
    x = R (p - c) + c + t about the head's centroid c."""
    rot = _rotation(part.rotation_deg)
    centre = base.affine[:3, :3] @ base.center + base.affine[:3, 3]
    shift = np.asarray(part.shift_mm)
    to_scanner = np.eye(4)
    to_scanner[:3, :3] = rot
    to_scanner[:3, 3] = centre + shift - rot @ centre
    return to_scanner


def to_base_grid(nii: nib.Nifti1Image, part: Participant, base: BaseHead,
                 order: int = 1) -> np.ndarray:
    """An acquired image of ``part`` resampled back onto ``base``'s 1 mm grid (float32), so
    that scans of participants of one base head can be compared voxel by voxel."""
    m = np.linalg.inv(nii.affine) @ head_to_scanner(part, base) @ base.affine
    data = np.asarray(nii.dataobj, dtype=np.float32)
    return ndi.affine_transform(data, m[:3, :3], m[:3, 3], output_shape=base.data.shape,
                                order=order, mode="constant", cval=0.0).astype(np.float32)


def _slice_profile(thickness: float) -> np.ndarray:
    """Box slice profile ``thickness`` mm wide as weights on the 1 mm grid (sum 1)."""
    half = thickness / 2.0
    n = int(np.ceil(half))
    offsets = np.arange(-n, n + 1, dtype=float)
    w = np.clip(np.minimum(offsets + 0.5, half) - np.maximum(offsets - 0.5, -half), 0.0, None)
    return (w / w.sum()).astype(np.float32)


def acquire(part: Participant, base: BaseHead, head: np.ndarray, *,
            deface: bool | str = False, rng: np.random.Generator) -> nib.Nifti1Image:
    """Scan a (deformed, contrast-mapped) head: pose, grid, orientation, bias, noise.

    ``deface``: "mask" (or True) or "plane" zero their region after the noise
    (see :mod:`.deface`); "reface" is done on ``head`` before (``reface_head``).
    """
    method = deface_method(deface)
    zooms = tuple(float(z) for z in part.voxel_size)
    to_scanner = head_to_scanner(part, base)
    rot = np.ascontiguousarray(to_scanner[:3, :3])
    idx = np.array(np.nonzero(base.mask[::4, ::4, ::4])) * 4.0
    pts = idx.T @ base.affine[:3, :3].T + base.affine[:3, 3]
    pts = pts @ rot.T + to_scanner[:3, 3]
    margin = rng.uniform(8.0, 20.0, 3)
    lo, hi = pts.min(axis=0) - margin, pts.max(axis=0) + margin
    out_aff, out_shape = _orientation_affine(part.orientation, zooms, lo, hi)
    # partial-volume blur along thick axes (rotation ignored: small)
    sigma = np.zeros(3)
    world_axis = {"R": 0, "L": 0, "A": 1, "P": 1, "S": 2, "I": 2}
    if part.mode == "hard":  # thick slices: a box slice profile, averaged over the thickness
        vol = head
        for j, code in enumerate(part.orientation):
            if zooms[j] > 1.0:
                vol = ndi.convolve1d(vol, _slice_profile(zooms[j]), axis=world_axis[code],
                                     mode="nearest")
    else:
        for j, code in enumerate(part.orientation):
            sigma[world_axis[code]] = np.sqrt(max(zooms[j] ** 2 - 1.0, 0.0)) / 2.355
        vol = ndi.gaussian_filter(head, sigma) if sigma.any() else head
    # output voxel -> scanner world -> head world -> base voxel
    m = np.linalg.inv(base.affine) @ np.linalg.inv(to_scanner) @ out_aff
    img = ndi.affine_transform(vol, m[:3, :3], m[:3, 3], output_shape=out_shape, order=1,
                               mode="constant", cval=0.0)
    # smooth bias field: exp of a quadratic in normalised scanner coordinates
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in out_shape]
    c = part.bias_coefs
    b = (c[0] * axes[0][:, None, None] + c[1] * axes[1][None, :, None] + c[2] * axes[2][None, None, :]
         + c[3] * axes[0][:, None, None] ** 2 + c[4] * axes[1][None, :, None] ** 2
         + c[5] * axes[2][None, None, :] ** 2
         + c[6] * axes[0][:, None, None] * axes[1][None, :, None]
         + c[7] * axes[1][None, :, None] * axes[2][None, None, :]
         + c[8] * axes[0][:, None, None] * axes[2][None, None, :])
    img = (img * np.exp(np.clip(b, -0.3, 0.3))).astype(np.float32)
    # Rician noise; sigma relative to the brightest brain tissue of this contrast
    sigma = np.float32(part.noise * max(part.contrast_nodes[2:5]))
    img += sigma * rng.standard_normal(out_shape, dtype=np.float32)
    img = np.sqrt(img ** 2 + (sigma * rng.standard_normal(out_shape, dtype=np.float32)) ** 2)
    if method in ("mask", "plane"):
        cut = ndi.affine_transform(cut_region(base, method).astype(np.uint8), m[:3, :3], m[:3, 3],
                                   output_shape=out_shape, order=0, mode="constant", cval=0)
        img[cut > 0] = 0.0
    scaled = np.clip(np.round(img * 1000.0), 0, 32767).astype(np.int16)
    nii = nib.Nifti1Image(scaled, out_aff)
    nii.header.set_xyzt_units("mm", "sec")
    nii.header.set_qform(out_aff, code=1)
    nii.header.set_sform(out_aff, code=1)
    return nii


def _contrast_map(head: np.ndarray, nodes: list[float], contrast: str = "T1w",
                  deep: np.ndarray | None = None) -> np.ndarray:
    """T1 intensities -> ``contrast``: :data:`SUPERFICIAL` near the skin, ``nodes`` deeper."""
    brain = np.interp(head, CONTRAST_NODES, np.asarray(nodes)).astype(np.float32)
    if deep is None or contrast not in SUPERFICIAL:
        return brain
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.asarray(nodes) / CONTRASTS[contrast]  # the participant's jitter
    skin_nodes = SUPERFICIAL[contrast] * np.where(np.isfinite(scale), scale, 1.0)
    skin = np.interp(head, CONTRAST_NODES, skin_nodes).astype(np.float32)
    return (deep * brain + (1.0 - deep) * skin).astype(np.float32)


def _add_pads(part: Participant, base: BaseHead, head: np.ndarray, mask: np.ndarray) -> None:
    """Visible pad blocks beside the cheeks, in air only (in place)."""
    if part.pad_visible <= 0:
        return
    t = base.tip
    x = np.arange(head.shape[0]) - t[0]
    y = np.arange(head.shape[1]) - t[1]
    z = np.arange(head.shape[2]) - t[2]
    zsel = (z > -25) & (z < 35)
    ysel = (y > -75) & (y < -15)
    for side in (1.0, -1.0):
        # lateral skin position at cheek level, then a 12 mm block outside it
        sub = mask[:, ysel][:, :, zsel]
        cols = np.nonzero(sub.any(axis=(1, 2)))[0]
        if cols.size == 0:
            continue
        edge = x[cols.min()] if side > 0 else x[cols.max()]  # side +1: u>0 is -x (left of array)
        xsel = (x > edge - 12) & (x <= edge + 1) if side > 0 else (x >= edge - 1) & (x < edge + 12)
        block = np.zeros(head.shape, bool)
        block[np.ix_(xsel, ysel, zsel)] = True
        block &= ~mask
        head[block] = np.maximum(head[block], part.pad_visible)
