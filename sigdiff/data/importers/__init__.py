"""Importers: UCR/UEA text, CSV, NPY/NPZ, WAV/FLAC and WFDB files into a sigdiff store; a folder
of PNG/JPEG pictures or an NPY array of images into an image store (N, C, H, W).

Every loader says where its sampling rate came from (`rate_source`): read from the file, or given
by the user. A file that states no rate and no user rate is an error, never a guess; a user rate
that contradicts the file's is an error too.

Every bad input is a `StoreError` naming the file, what is wrong and how to fix it; row numbers in
the messages of text formats are file line numbers (1-based, the header line included).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sigdiff._utils import choice_error
from sigdiff.data import transforms
from sigdiff.data.importers._common import _SUFFIXES, Imported
from sigdiff.data.importers.arrays import load_audio, load_numpy, load_wfdb
from sigdiff.data.importers.images import load_image_numpy, load_images
from sigdiff.data.importers.text import describe_csv_header, load_csv, load_ucr, parse_ucr
from sigdiff.data.store import (
    PathLike,
    SignalStore,
    StoreError,
    check_finite,
    write_store,
)

__all__ = [
    "IMPORTERS",
    "Imported",
    "Segmenting",
    "describe_csv_header",
    "import_file",
    "infer_format",
    "load_audio",
    "load_csv",
    "load_image_numpy",
    "load_images",
    "load_numpy",
    "load_ucr",
    "load_wfdb",
    "parse_ucr",
    "prepare",
]

Loader = Callable[..., Imported]
IMPORTERS: dict[str, Loader] = {
    "ucr": load_ucr,
    "csv": load_csv,
    "npy": load_numpy,
    "npz": load_numpy,
    "wav": load_audio,
    "flac": load_audio,
    "wfdb": load_wfdb,
    "images": load_images,
    "image-npy": load_image_numpy,
}


def infer_format(path: PathLike) -> str:
    """Format name from the file suffix (`.gz` ignored), "images" for a folder; unknown suffixes
    are an error."""
    if Path(path).is_dir():
        return "images"
    suffixes = [s.lower() for s in Path(path).suffixes if s.lower() != ".gz"]
    fmt = _SUFFIXES.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise StoreError(
            f"{path}: cannot tell the format from the suffix; pass --format, one of "
            f"{', '.join(sorted(IMPORTERS))}"
        )
    return fmt


def _drop_nonfinite(data: Imported) -> Imported:
    keep = np.isfinite(data.signals).reshape(len(data.signals), -1).all(axis=1)
    if keep.all():
        return data
    if not keep.any():
        raise StoreError(f"{data.source}: every row has NaN/Inf values; nothing left to import")
    labels = None if data.labels is None else data.labels[keep]
    attrs = {**data.attrs, "dropped_nonfinite_rows": np.flatnonzero(~keep).tolist()}
    lines = None
    if data.row_lines is not None:
        lines = data.row_lines[keep]
        attrs["dropped_nonfinite_lines"] = data.row_lines[~keep].tolist()
    return replace(data, signals=data.signals[keep], labels=labels, attrs=attrs, row_lines=lines)


@dataclass(frozen=True)
class Segmenting:
    """How rows become training samples: fixed windows (length, hop), ECG beats, or as they are."""

    window: int | None = None
    hop: int | None = None
    beats: bool = False
    resample_to: float | None = None
    band: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.beats and self.window is not None:
            raise ValueError("choose windows or beat segments, not both")


def prepare(data: Imported, seg: Segmenting, *, drop_nonfinite: bool = False) -> Imported:
    """Finite check (or drop), then resample, band-pass, and segment every row."""
    data = _drop_nonfinite(data) if drop_nonfinite else data
    check_finite(data.signals, where=data.source, lines=data.row_lines)
    if data.signals.ndim == 4 and seg != Segmenting():
        raise StoreError(f"{data.source}: resampling, band-pass and windows apply to 1D signals, "
                         "not images")
    x, rate = data.signals, data.sampling_rate
    try:
        if seg.resample_to is not None:
            x = transforms.resample(x, orig_rate=rate, new_rate=seg.resample_to)
            rate = seg.resample_to
        if seg.band is not None:
            x = transforms.bandpass(x, sampling_rate=rate, low=seg.band[0], high=seg.band[1])
        x, labels = _segment(x, data.labels, seg, rate=rate)
    except ValueError as err:  # the transforms' messages say what is wrong, not which file
        raise StoreError(f"{data.source}: {err}") from None
    lines = data.row_lines if len(x) == len(data.signals) else None  # windows: rows are not lines
    return replace(data, signals=x, labels=labels, sampling_rate=float(rate), row_lines=lines)


def _segment(
    x: np.ndarray, labels: np.ndarray | None, seg: Segmenting, *, rate: float
) -> tuple[np.ndarray, np.ndarray | None]:
    if seg.window is None and not seg.beats:
        return x, labels
    parts = [
        transforms.beat_segments(row, sampling_rate=rate)
        if seg.beats
        else transforms.windows(row, length=seg.window or 0, hop=seg.hop)
        for row in x
    ]
    counts = [len(p) for p in parts]
    out_labels = None if labels is None else np.repeat(labels, counts)
    return np.concatenate(parts), out_labels


def import_file(
    path: PathLike,
    out: PathLike,
    *,
    format: str | None = None,
    sampling_rate: float | None = None,
    segmenting: Segmenting | None = None,
    drop_nonfinite: bool = False,
    overwrite: bool = False,
    loader_options: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> SignalStore:
    """Load `path` with the named (or inferred) importer, prepare it, and write the store `out`."""
    fmt = format or infer_format(path)
    if fmt not in IMPORTERS:
        raise choice_error("import format", fmt, IMPORTERS)
    if not os.path.exists(path):
        raise StoreError(f"{path}: no such file")
    data = IMPORTERS[fmt](path, sampling_rate=sampling_rate, **dict(loader_options or {}))
    data = prepare(data, segmenting or Segmenting(), drop_nonfinite=drop_nonfinite)
    meta = {
        "provenance": {
            "source": os.fspath(path),
            "format": fmt,
            "sampling_rate_source": data.rate_source,
        },
        **data.attrs,
        **(attrs or {}),
    }
    return write_store(
        out,
        data.signals,
        sampling_rate=data.sampling_rate,
        labels=data.labels,
        units=data.units,
        channel_names=data.channel_names,
        attrs=meta,
        overwrite=overwrite,
    )
