"""Read a head image and bring it to RAS+ voxel order.

This is the only module of :mod:`bids_app.mri` that touches files; the mask
and surface steps are pure functions of arrays.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from typing import NamedTuple

import nibabel as nib
import numpy as np

__all__ = ["HeadVolume", "ImageError", "load_head"]

LOGGER = logging.getLogger("facerisk")

#: Voxel sizes (mm) an image of a head can have: from a 7 T or ex vivo grid to a thick 2D slice.
#: Outside this range the header's units are wrong (metres or micrometres written as millimetres).
VOXEL_MM = (0.05, 20.0)
#: The longest side (mm) of a head image's field of view can be at most this (a whole body is 2 m).
MAX_FIELD_OF_VIEW_MM = 3000.0
#: Millimetres per unit of the NIfTI header's spatial units (``xyzt_units``).
_MM_PER_UNIT = {"meter": 1000.0, "micron": 0.001}


class ImageError(ValueError):
    """An anatomical image cannot be used to reconstruct a head surface.

    The message names the file and the reason, so that the command line can
    print it as a one-line error.
    """


class HeadVolume(NamedTuple):
    """A head image in closest-canonical (RAS+) voxel order.

    Unpacks as ``data, affine, zooms = load_head(path)``.
    """

    data: np.ndarray
    """3D ``float32`` intensities, axes ordered R, A, S (as near as the grid allows)."""
    affine: np.ndarray
    """4x4 voxel-to-world (scanner RAS+, mm) matrix of :attr:`data`."""
    zooms: tuple[float, float, float]
    """Voxel size in mm along the three axes of :attr:`data`."""


def _is_annex_pointer(name: str) -> bool:
    """Whether the file is a git-annex pointer (a short text naming an annex object)."""
    try:
        with open(name, "rb") as handle:
            head = handle.read(1024)
    except OSError:
        return False
    return len(head) < 1024 and b"/annex/objects/" in head


def _read_misnamed(name: str):
    """A NIfTI file whose name says the wrong compression (gzipped data named ``.nii``, or plain
    data named ``.nii.gz``), read from its bytes, with a warning; None where it is not one."""
    try:
        with open(name, "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    gzipped = raw[:2] == b"\x1f\x8b"
    if gzipped == name.endswith(".gz"):
        return None  # named right: the file itself is what is wrong
    try:
        data = gzip.decompress(raw) if gzipped else raw
    except (OSError, EOFError, zlib.error):
        return None
    for kind in (nib.Nifti1Image, nib.Nifti2Image):
        try:
            img = kind.from_bytes(data)
        except Exception:
            continue
        LOGGER.warning("%s: the file is %s but named %s; read as it is", name,
                       "gzip-compressed" if gzipped else "not compressed", ".nii.gz" if name.endswith(".gz") else
                       os.path.splitext(name)[1] or "without an extension")
        return img
    return None


def _intensities(raw: np.ndarray, name: str, *, warn: bool = True) -> np.ndarray:
    """``float32`` intensities of the voxel values ``raw`` as stored.

    Complex values (a complex MR image, as some reconstructions export it)
    become their magnitude: the phase varies across a head, so the real part
    alone crosses zero inside it. Colour voxels (an RGB or RGBA NIfTI) become
    the mean of their red, green and blue channels. A warning says either.
    """
    if np.iscomplexobj(raw):
        if warn:
            LOGGER.warning("%s: complex voxel values: their magnitude is used", name)
        return np.abs(raw).astype(np.float32)
    if raw.dtype.names:  # structured: RGB(A) voxels
        channels = [c for c in raw.dtype.names if c.upper() in ("R", "G", "B")] or list(raw.dtype.names)
        if warn:
            LOGGER.warning("%s: colour voxels (%s): the mean of %s is used as the intensity", name,
                           "".join(raw.dtype.names), "".join(channels))
        return np.mean([raw[c].astype(np.float32) for c in channels], axis=0, dtype=np.float32)
    return np.asarray(raw, dtype=np.float32)


def _special_voxels(img) -> bool:
    """Whether the image stores complex or colour voxels (read through :func:`_intensities`)."""
    dtype = np.dtype(img.get_data_dtype())
    return dtype.kind == "c" or dtype.names is not None


def _brightest_of_volumes(img, name: str) -> np.ndarray:
    """Voxel-wise maximum of a 4D image's volumes, each scaled to the first's 99th percentile of |x|.

    Volumes of one file (repeats, echoes, a copy defaced and one not) all
    show the same head, at different intensity scales; the maximum keeps
    whatever any of them shows, and on identical volumes it is the first.
    """
    def volume(t: int) -> np.ndarray:
        try:
            data = _intensities(np.asanyarray(img.dataobj[..., t]), name, warn=t == 0)
        except Exception as exc:
            raise ImageError(f"{name}: cannot read volume {t + 1} ({exc})") from None
        return np.where(np.isfinite(data), data, np.float32(0))

    def scale(data: np.ndarray) -> float:
        return float(np.percentile(np.abs(data), 99))

    out = volume(0)
    reference = scale(out)
    for t in range(1, img.shape[3]):
        data = volume(t)
        level = scale(data)
        if level > 0 and reference > 0:
            np.maximum(out, data * np.float32(reference / level), out=out)
    return out


def _plausible_grid(zooms, shape) -> bool:
    """Whether voxels of ``zooms`` mm on a grid of ``shape`` can hold a head (:data:`VOXEL_MM`,
    :data:`MAX_FIELD_OF_VIEW_MM`)."""
    zooms = np.asarray(zooms, float)
    return bool(np.all((zooms >= VOXEL_MM[0]) & (zooms <= VOXEL_MM[1]))
                and np.max(zooms * np.asarray(shape, float)) <= MAX_FIELD_OF_VIEW_MM)


def _in_millimetres(img, name: str):
    """``img`` with its affine in millimetres, or :class:`ImageError` where it cannot be.

    Scanners and converters write millimetres, and most tools read the affine as millimetres
    whatever the header's units say. A header whose voxel sizes are impossible in millimetres
    (micrometres or kilometres of head) is converted where its units field says metres or
    micrometres and that gives possible ones (a warning is logged); otherwise it is refused, with
    the sizes found, rather than reconstructed at a scale where every anatomical length of the
    face search is wrong (or a grid of thousands of voxels a side is allocated).
    """
    shape = img.shape[:3]
    zooms = np.sqrt((np.asarray(img.affine[:3, :3], float) ** 2).sum(axis=0))
    if _plausible_grid(zooms, shape):
        return img
    units = img.header.get_xyzt_units()[0] if hasattr(img.header, "get_xyzt_units") else "unknown"
    scale = _MM_PER_UNIT.get(units)
    sizes = " x ".join(f"{z:g}" for z in zooms)
    if scale is not None and _plausible_grid(zooms * scale, shape):
        LOGGER.warning("%s: voxel sizes %s in the header's units (%s) are read as %s mm", name, sizes, units,
                       " x ".join(f"{z * scale:g}" for z in zooms))
        affine = np.array(img.affine, float)
        affine[:3, :] *= scale
        converted = nib.Nifti1Image(np.asanyarray(img.dataobj), affine)
        converted.header.set_xyzt_units("mm")
        return converted
    raise ImageError(f"{name}: voxel sizes {sizes} (header units: {units}) give a field of view of "
                     f"{float(np.max(zooms * np.asarray(shape, float))):g} mm: not a head in millimetres "
                     f"(voxels of {VOXEL_MM[0]:g}-{VOXEL_MM[1]:g} mm expected; is the header's scale wrong?)")


def load_head(path: str | os.PathLike[str]) -> HeadVolume:
    """Load a 3D head image and reorient it to the closest canonical (RAS+) order.

    Parameters
    ----------
    path
        Any image nibabel reads (NIfTI-1/2, gzipped or not, ...).

    Returns
    -------
    HeadVolume
        ``(data, affine, zooms)``. A 4D or 5D image whose axes beyond the
        third have length 1 is squeezed to 3D; a 4D image with several
        volumes (repeated or multi-echo acquisitions stored in one file)
        becomes their voxel-wise maximum, each volume scaled to the first's
        99th percentile, and a warning is logged: a face that any volume shows
        (one copy defaced, another not) is kept. Non-finite voxels (NaN, Inf)
        are set to 0. An image with no intensity above zero is negated (a
        warning is logged). Complex voxels are read as their magnitude and
        colour (RGB) voxels as the mean of their channels, with a warning.

    Raises
    ------
    ImageError
        If the file cannot be read, is not 3D or 4D, holds only zeros,
        one value or only non-finite values, or has a degenerate affine or
        voxel sizes no head image has (after reading the header's units,
        where it says metres or micrometres: see :func:`_in_millimetres`).
    """
    name = os.fspath(path)
    try:
        img = nib.load(name)
    except FileNotFoundError:
        if os.path.islink(name):
            raise ImageError(f"{name}: a broken symbolic link to {os.readlink(name)} (a DataLad / "
                             "git-annex file whose content is not here? `datalad get` it)") from None
        raise ImageError(f"{name}: file not found") from None
    except Exception as exc:  # nibabel raises many kinds for corrupt files
        misnamed = _read_misnamed(name)
        if misnamed is not None:
            img = misnamed
        elif _is_annex_pointer(name):
            raise ImageError(f"{name}: a git-annex pointer, not the image (a DataLad file whose "
                             "content is not here? `datalad get` it)") from None
        else:
            raise ImageError(f"{name}: cannot be read as an image ({exc})") from None

    shape = tuple(int(n) for n in img.shape)
    while len(shape) > 3 and shape[-1] == 1:  # 4D or 5D with one volume (some converters write (x, y, z, 1, 1))
        img = img.slicer[..., 0]
        shape = shape[:-1]
    if len(shape) == 4:
        LOGGER.warning("%s: %d volumes in one image (shape %s): their voxel-wise maximum is used, so that a "
                       "face any of them shows is seen", name, shape[3], shape)
        img = nib.Nifti1Image(_brightest_of_volumes(img, name), img.affine)
        shape = shape[:3]
    if len(shape) != 3:
        raise ImageError(f"{name}: expected a 3D image (or 4D: its volumes are combined), got shape {shape}")
    if min(shape) < 8:
        raise ImageError(f"{name}: image too small to hold a head, shape {shape}")
    if not np.all(np.isfinite(img.affine)) or abs(np.linalg.det(img.affine[:3, :3])) < 1e-9:
        raise ImageError(f"{name}: affine is degenerate or non-finite")

    img = _in_millimetres(img, name)

    try:
        if _special_voxels(img):  # complex or colour: made intensities before anything reads them as numbers
            img = nib.Nifti1Image(_intensities(np.asanyarray(img.dataobj), name), img.affine, img.header)
            img.set_data_dtype(np.float32)
        img = nib.as_closest_canonical(img)
        data = np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)
    except Exception as exc:
        raise ImageError(f"{name}: cannot read the voxel data ({exc})") from None

    finite = np.isfinite(data)
    if not finite.any():
        raise ImageError(f"{name}: every voxel is NaN or infinite")
    if not finite.all():
        data = np.where(finite, data, np.float32(0))
    if not np.any(data != 0):
        raise ImageError(f"{name}: image is empty (all voxels are zero)")
    if float(data.max()) == float(data.min()):
        raise ImageError(f"{name}: every voxel has the same value ({float(data.flat[0]):g}): no head to find")
    if float(data.max()) <= 0:  # stored negated (every intensity at or below zero): the head is its magnitude
        LOGGER.warning("%s: no intensity is above zero (a negated image?): its magnitude is used", name)
        data = np.negative(data)

    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return HeadVolume(data, np.asarray(img.affine, dtype=float), zooms)  # type: ignore[arg-type]
