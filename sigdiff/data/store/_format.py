"""The store format: its constants, error type and the validation writers and importers share."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

FORMAT_VERSION = 1
_MARKER = "sigdiff_store"  # attrs key whose presence makes a zarr group a sigdiff store
_TARGET_CHUNK_BYTES = 4 * 2**20  # default chunk ≈ 4 MiB of float32 samples
_MAX_LISTED = 5  # how many bad locations an error message lists
_REQUIRED_ATTRS = ("sampling_rate", "norm_mean", "norm_std")  # what every reader relies on
#: Dimension names by spatial rank: 1 = signals (N, C, L), 2 = images (N, C, H, W).
DIMS: dict[int, tuple[str, ...]] = {
    1: ("sample", "channel", "time"),
    2: ("sample", "channel", "height", "width"),
}
KINDS = {1: "signal", 2: "image"}
#: The `sampling_rate` an image store records: one sample per pixel.
PIXEL_RATE = 1.0

PathLike = str | os.PathLike[str]


class StoreError(ValueError):
    """Bad input or a bad store; the message names the path/row/channel and what to do."""




def check_finite(
    signals: np.ndarray, *, where: str, lines: Sequence[int] | np.ndarray | None = None
) -> None:
    """Raise `StoreError` listing how many values are NaN/Inf and in which (row, channel); rows
    count from 0. `lines` (N,) gives each row's file line, named too when the data came from text."""
    bad = ~np.isfinite(signals)
    if not bad.any():
        return
    rows, chans = np.nonzero(bad.reshape(*bad.shape[:2], -1).any(axis=2))
    spots = ", ".join(f"row {r} channel {c}" for r, c in zip(rows[:_MAX_LISTED], chans))
    more = f" and {len(rows) - _MAX_LISTED} more rows" if len(rows) > _MAX_LISTED else ""
    at = ""
    if lines is not None:
        bad_lines = np.unique(np.asarray(lines)[rows])
        shown = ", ".join(str(n) for n in bad_lines[:_MAX_LISTED])
        extra = f" and {len(bad_lines) - _MAX_LISTED} more" if len(bad_lines) > _MAX_LISTED else ""
        at = f" on file line{'s' if len(bad_lines) > 1 else ''} {shown}{extra}"
    raise StoreError(
        f"{where}: {int(bad.sum())} NaN/Inf values in {len(np.unique(rows))} rows "
        f"({spots}{more}){at}; "
        "fix the data or import with drop_nonfinite=True (--drop-nonfinite) to skip those rows"
    )


def _as_signals(signals: np.ndarray, *, where: str) -> np.ndarray:
    """Validate dtype and rank; return a float32 (N, C, L) or (N, C, H, W) array."""
    arr = np.asarray(signals)
    if arr.dtype.kind not in "fiub":
        raise StoreError(f"{where}: signals must be numeric, got dtype {arr.dtype}")
    if arr.ndim - 2 not in DIMS:
        raise StoreError(
            f"{where}: signals must have shape (N, C, L) = (sample, channel, time) or images "
            f"(N, C, H, W), got {arr.ndim} dims {arr.shape}; add a channel axis with "
            "x[:, None] for 1-channel data"
        )
    if 0 in arr.shape:
        raise StoreError(f"{where}: signals are empty, shape {arr.shape}")
    return arr.astype(np.float32, copy=False)


def _auto_chunk(n_channels: int, length: int) -> int:
    """Samples per chunk; `length` is the number of values per channel (L or H·W)."""
    return max(1, _TARGET_CHUNK_BYTES // (4 * n_channels * length))


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays inside attrs to plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
