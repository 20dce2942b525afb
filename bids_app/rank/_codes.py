"""Argument checks shared by the ranking modules: 2-D float arrays and integer code vectors."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

TiePolicy = Literal["max", "min", "average"]
TIE_POLICIES = ("max", "min", "average")


def as_2d(name: str, arr: ArrayLike) -> NDArray[np.float64]:
    """``arr`` as a 2-D float64 array (ValueError otherwise)."""
    out = np.asarray(arr, dtype=np.float64)
    if out.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {out.shape}")
    return out


def as_codes(name: str, arr: ArrayLike, length: int, upper: int, allow_missing: bool = False) -> NDArray[np.intp]:
    """``arr`` as 1-D integer codes in ``[0, upper)`` (or ``-1`` with ``allow_missing``)."""
    codes = np.asarray(arr)
    if codes.ndim != 1 or codes.shape[0] != length:
        raise ValueError(f"{name} must be 1-D of length {length}, got shape {codes.shape}")
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise TypeError(f"{name} must hold integer codes, got dtype {codes.dtype}")
    codes = codes.astype(np.intp, copy=False)
    low = -1 if allow_missing else 0
    if codes.size and (codes.min() < low or codes.max() >= upper):
        raise ValueError(f"{name} codes must lie in [{low}, {upper - 1}]")
    return codes


def check_ties(ties: str) -> None:
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be 'max', 'min' or 'average', got {ties!r}")


def check_top_k(top_k: int | None) -> None:
    if top_k is not None and top_k < 1:
        raise ValueError("top_k must be >= 1 or None")


def row_segments(rows: NDArray[np.intp], n_rows: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """For row-sorted entries: start offset of each row's run and each entry's position in it."""
    starts = np.searchsorted(rows, np.arange(n_rows))
    return starts, np.arange(rows.size) - starts[rows]
