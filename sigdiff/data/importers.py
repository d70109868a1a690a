"""Importers: UCR/UEA text, CSV, NPY/NPZ, WAV/FLAC and WFDB files into a sigdiff store; a folder
of PNG/JPEG pictures or an NPY array of images into an image store (N, C, H, W).

Every loader says where its sampling rate came from (`rate_source`): read from the file, or given
by the user. A file that states no rate and no user rate is an error, never a guess; a user rate
that contradicts the file's is an error too.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sigdiff._utils import choice_error
from sigdiff.data import transforms
from sigdiff.data.store import (
    PIXEL_RATE,
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

_SPLIT = re.compile(r"[,\s]+")
_RATE_RTOL = 1e-6


@dataclass(frozen=True)
class Imported:
    """Loaded signals (N, C, L) or images (N, C, H, W) float32 with labels, rate and its source."""

    signals: np.ndarray
    labels: np.ndarray | None
    sampling_rate: float
    rate_source: str  # "file: ..." or "user"
    source: str
    channel_names: tuple[str, ...] | None = None
    units: str = "a.u."
    attrs: Mapping[str, Any] = field(default_factory=dict)


def _rate(
    given: float | None, in_file: float | None, *, where: str, what: str
) -> tuple[float, str]:
    """Resolve the sampling rate: the file's wins, a contradicting user value is an error."""
    if in_file is not None:
        if given is not None and not math.isclose(given, in_file, rel_tol=_RATE_RTOL):
            raise StoreError(
                f"{where}: --sampling-rate {given} Hz contradicts the {what} "
                f"({in_file} Hz); drop the option or fix the file"
            )
        return float(in_file), f"file: {what}"
    if given is None:
        raise StoreError(
            f"{where}: the file does not state its sampling rate; "
            "pass sampling_rate=HZ (--sampling-rate HZ)"
        )
    return float(given), "user"


def _open_text(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")


def _parse_float(token: str, *, where: str, row: int, col: int) -> float:
    try:
        return float(token)
    except ValueError:
        raise StoreError(
            f"{where}: row {row} column {col}: non-numeric field {token!r}; fix or remove that row"
        ) from None


def _encode_labels(raw: list[str], *, where: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Integer-valued labels stay as they are; other labels map to 0..k-1 (names kept in attrs)."""
    try:
        values = np.array([float(t) for t in raw])
        if np.all(values == np.round(values)):
            return values.astype(np.int64), {}
    except ValueError:
        pass
    names = sorted(set(raw))
    lookup = {n: i for i, n in enumerate(names)}
    return np.array([lookup[t] for t in raw], np.int64), {"label_names": names}


def parse_ucr(text: str, *, where: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """UCR/UEA univariate text (whitespace, tab or comma separated): label then values per row.

    Returns signals (N, 1, L) float32, labels (N,) int64 and attrs (label names if textual).
    Reference: Dau et al., "The UCR time series archive", IEEE/CAA J. Autom. Sinica 2019.
    """
    rows, labels = [], []
    for i, line in enumerate(text.splitlines()):
        tokens = [t for t in _SPLIT.split(line.strip()) if t]
        if not tokens:
            continue
        labels.append(tokens[0])
        rows.append(
            [_parse_float(t, where=where, row=i + 1, col=j + 2) for j, t in enumerate(tokens[1:])]
        )
    if not rows:
        raise StoreError(f"{where}: empty input (no data rows)")
    _check_ragged([len(r) for r in rows], where=where)
    codes, attrs = _encode_labels(labels, where=where)
    return np.array(rows, np.float32)[:, None, :], codes, attrs


def _check_ragged(lengths: list[int], *, where: str) -> None:
    expected = max(set(lengths), key=lengths.count)
    bad = [i for i, n in enumerate(lengths) if n != expected]
    if bad:
        raise StoreError(
            f"{where}: ragged rows: row {bad[0] + 1} has {lengths[bad[0]]} values, "
            f"most rows have {expected} ({len(bad)} rows differ); pad or drop them"
        )
    if expected == 0:
        raise StoreError(f"{where}: rows have a label but no values")


def load_ucr(path: PathLike, *, sampling_rate: float | None = None) -> Imported:
    """UCR/UEA `.txt`/`.tsv` (optionally `.gz`): the format states no rate, so it must be given."""
    p = Path(path)
    signals, labels, attrs = parse_ucr(_open_text(p), where=str(p))
    rate, source = _rate(sampling_rate, None, where=str(p), what="")
    return Imported(signals, labels, rate, source, str(p), attrs=attrs)


def load_csv(
    path: PathLike,
    *,
    sampling_rate: float | None = None,
    layout: str = "rows",
    time_column: str = "time",
    label_column: str | None = None,
) -> Imported:
    """CSV with a header. layout="rows": one sample per row (optional label column);
    layout="columns": one recording, a time column in seconds plus one column per channel."""
    p = Path(path)
    with io.StringIO(_open_text(p)) as fh:
        table = list(csv.reader(fh))
    if len(table) < 2:
        raise StoreError(f"{p}: empty input (needs a header row and at least one data row)")
    header, body = [h.strip() for h in table[0]], [r for r in table[1:] if r]
    _check_ragged([len(r) for r in [header, *body]], where=str(p))
    if layout == "rows":
        return _csv_rows(p, header, body, sampling_rate=sampling_rate, label_column=label_column)
    if layout == "columns":
        return _csv_columns(p, header, body, sampling_rate=sampling_rate, time_column=time_column)
    raise choice_error("CSV layout", layout, ["rows", "columns"])


def _numeric(body: list[list[str]], cols: list[int], *, where: str) -> np.ndarray:
    return np.array(
        [
            [_parse_float(r[c], where=where, row=i + 2, col=c + 1) for c in cols]
            for i, r in enumerate(body)
        ],
        np.float64,
    )


def _csv_rows(
    p: Path,
    header: list[str],
    body: list[list[str]],
    *,
    sampling_rate: float | None,
    label_column: str | None,
) -> Imported:
    label_idx = None if label_column is None else _column(header, label_column, where=str(p))
    cols = [i for i in range(len(header)) if i != label_idx]
    values = _numeric(body, cols, where=str(p)).astype(np.float32)[:, None, :]
    labels, attrs = (
        (None, {})
        if label_idx is None
        else _encode_labels([r[label_idx].strip() for r in body], where=str(p))
    )
    rate, source = _rate(sampling_rate, None, where=str(p), what="")
    return Imported(values, labels, rate, source, str(p), attrs=attrs)


def _csv_columns(
    p: Path,
    header: list[str],
    body: list[list[str]],
    *,
    sampling_rate: float | None,
    time_column: str,
) -> Imported:
    t_idx = _column(header, time_column, where=str(p))
    cols = [i for i in range(len(header)) if i != t_idx]
    table = _numeric(body, [t_idx, *cols], where=str(p))
    step = np.diff(table[:, 0])
    if step.size == 0 or np.any(step <= 0) or np.ptp(step) > 1e-3 * np.median(step):
        raise StoreError(
            f"{p}: time column {time_column!r} is not uniformly increasing; "
            "resample the recording onto a regular grid first"
        )
    rate, source = _rate(
        sampling_rate, float(1.0 / np.mean(step)), where=str(p), what=f"time column {time_column!r}"
    )
    names = tuple(header[i] for i in cols)
    return Imported(table[:, 1:].T[None].astype(np.float32), None, rate, source, str(p), names)


def _column(header: list[str], name: str, *, where: str) -> int:
    if name not in header:
        raise StoreError(f"{where}: no column {name!r}; columns are {header}")
    return header.index(name)


def load_numpy(path: PathLike, *, sampling_rate: float | None = None) -> Imported:
    """`.npy` array (L,), (N, L) or (N, C, L); `.npz` with `signals` and optional `labels`,
    `sampling_rate` (a rate stored in the npz is the file's rate)."""
    p = Path(path)
    labels, in_file = None, None
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if "signals" not in z:
                raise StoreError(f"{p}: npz has no 'signals' array; keys are {sorted(z.keys())}")
            arr = z["signals"]
            labels = z["labels"].astype(np.int64) if "labels" in z else None
            in_file = float(z["sampling_rate"]) if "sampling_rate" in z else None
    else:
        arr = np.load(p, allow_pickle=False)
    if arr.dtype.kind not in "fiub":
        raise StoreError(f"{p}: array dtype {arr.dtype} is not numeric")
    if arr.ndim not in (1, 2, 3):
        raise StoreError(f"{p}: expected an array (L,), (N, L) or (N, C, L), got shape {arr.shape}")
    shaped = arr.reshape((1, 1, -1) if arr.ndim == 1 else (arr.shape[0], -1, arr.shape[-1]))
    rate, source = _rate(sampling_rate, in_file, where=str(p), what="npz 'sampling_rate'")
    return Imported(shaped.astype(np.float32), labels, rate, source, str(p))


def load_audio(path: PathLike, *, sampling_rate: float | None = None) -> Imported:
    """WAV/FLAC (anything libsndfile reads) as one recording (1, C, T); rate from the header."""
    p = Path(path)
    try:
        import soundfile
    except ImportError:
        if p.suffix.lower() != ".wav":
            raise StoreError(f"{p}: reading {p.suffix} needs the 'soundfile' package") from None
        import scipy.io.wavfile

        rate_in, data = scipy.io.wavfile.read(p)
    else:
        data, rate_in = soundfile.read(p, dtype="float32", always_2d=True)
    frames = np.asarray(data, np.float32).reshape(len(data), -1)  # (T, C)
    rate, source = _rate(sampling_rate, float(rate_in), where=str(p), what="audio header")
    return Imported(frames.T[None].copy(), None, rate, source, str(p))


def load_wfdb(path: PathLike, *, sampling_rate: float | None = None) -> Imported:
    """A PhysioNet WFDB record (`rec.hea` + `rec.dat`) as one recording; needs the `wfdb` package.
    Reference: Goldberger et al., PhysioBank, PhysioToolkit and PhysioNet, Circulation 2000."""
    try:
        import wfdb
    except ImportError:
        raise StoreError(
            f"{path}: WFDB import needs the 'wfdb' package (pip install wfdb)"
        ) from None
    record_name = str(path).removesuffix(".hea").removesuffix(".dat")
    rec = wfdb.rdrecord(record_name)
    rate, source = _rate(sampling_rate, float(rec.fs), where=str(path), what="WFDB header")
    units = ",".join(sorted(set(rec.units))) if rec.units else "a.u."
    return Imported(
        np.asarray(rec.p_signal, np.float32).T[None].copy(),
        None,
        rate,
        source,
        str(path),
        tuple(rec.sig_name),
        units,
    )


_PIXEL_SOURCE = "images: one sample per pixel"


def _no_rate(sampling_rate: float | None, *, where: str) -> None:
    if sampling_rate is not None:
        raise StoreError(f"{where}: images have no sampling rate; drop --sampling-rate")


def load_images(path: PathLike, *, sampling_rate: float | None = None, size: Any = None,
                mode: str = "rgb") -> Imported:
    """A folder of PNG/JPEG pictures as (N, C, H, W) float32 in [0, 1], in sorted file order.

    Pictures directly in the folder are unlabelled; a folder holding only class subfolders
    (`cats/`, `dogs/`, ...) gives labels 0..k-1 in sorted subfolder order (names in attrs).
    `size` (N, "HxW" or (H, W)) resizes each picture to cover that size and centre-crops it;
    without it every picture must have the same size. `mode` is "gray" or "rgb".
    """
    from sigdiff.image import IMAGE_MODES, ImageError, parse_size, read_image

    root = Path(path)
    _no_rate(sampling_rate, where=str(root))
    if not root.is_dir():
        raise StoreError(f"{root}: the images importer reads a folder of PNG/JPEG files")
    files, labels, attrs = _image_files(root)
    try:
        hw = parse_size(size)
        pictures = [read_image(f, mode=mode, size=hw) for f in files]
    except ImageError as err:
        raise StoreError(str(err)) from err
    first = pictures[0].shape[1:]
    for f, pic in zip(files, pictures):
        if pic.shape[1:] != first:
            raise StoreError(
                f"{f}: image size {pic.shape[2]}x{pic.shape[1]} (WxH) differs from "
                f"{files[0].name} ({first[1]}x{first[0]}); pass size (--size N or HxW) to resize "
                "and centre-crop every image"
            )
    attrs = {**attrs, "image_mode": mode, "n_files": len(files),
             "resized_to": list(hw) if hw else None}
    return Imported(np.stack(pictures), labels, PIXEL_RATE, _PIXEL_SOURCE, str(root),
                    channel_names=IMAGE_MODES[mode][1], units="intensity [0, 1]", attrs=attrs)


def _image_files(root: Path) -> tuple[list[Path], np.ndarray | None, dict[str, Any]]:
    """Picture files of `root` (flat, or one subfolder per class) with their labels."""
    from sigdiff.image import IMAGE_SUFFIXES

    def pictures(folder: Path) -> list[Path]:
        return sorted(f for f in folder.iterdir() if f.is_file()
                      and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES)

    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    flat = pictures(root)
    if flat or not classes:
        if not flat:
            raise StoreError(f"{root}: no {'/'.join(IMAGE_SUFFIXES)} files in this folder")
        return flat, None, {}
    per_class = [pictures(d) for d in classes]
    empty = [d.name for d, fs in zip(classes, per_class) if not fs]
    if empty:
        raise StoreError(f"{root}: class subfolders {empty} hold no images; remove them")
    labels = np.repeat(np.arange(len(classes)), [len(fs) for fs in per_class])
    return [f for fs in per_class for f in fs], labels, {"label_names": [d.name for d in classes]}


def load_image_numpy(path: PathLike, *, sampling_rate: float | None = None) -> Imported:
    """`.npy` images (N, H, W) or (N, C, H, W), or `.npz` with `images` and optional `labels`.
    Values are stored as they are (no rescaling); channels-last arrays must be transposed first."""
    p = Path(path)
    _no_rate(sampling_rate, where=str(p))
    labels = None
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if "images" not in z:
                raise StoreError(f"{p}: npz has no 'images' array; keys are {sorted(z.keys())}")
            arr = z["images"]
            labels = z["labels"].astype(np.int64) if "labels" in z else None
    else:
        arr = np.load(p, allow_pickle=False)
    if arr.dtype.kind not in "fiub" or arr.ndim not in (3, 4):
        raise StoreError(f"{p}: expected numeric images (N, H, W) or (N, C, H, W), got "
                         f"{arr.dtype} {arr.shape}")
    images = arr[:, None] if arr.ndim == 3 else arr
    return Imported(images.astype(np.float32), labels, PIXEL_RATE, _PIXEL_SOURCE, str(p))


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
_SUFFIXES = {
    ".txt": "ucr",
    ".tsv": "ucr",
    ".csv": "csv",
    ".npy": "npy",
    ".npz": "npz",
    ".wav": "wav",
    ".flac": "flac",
    ".hea": "wfdb",
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
    return replace(data, signals=data.signals[keep], labels=labels, attrs=attrs)


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
    check_finite(data.signals, where=data.source)
    if data.signals.ndim == 4 and seg != Segmenting():
        raise StoreError(f"{data.source}: resampling, band-pass and windows apply to 1D signals, "
                         "not images")
    x, rate = data.signals, data.sampling_rate
    if seg.resample_to is not None:
        x, rate = transforms.resample(x, orig_rate=rate, new_rate=seg.resample_to), seg.resample_to
    if seg.band is not None:
        x = transforms.bandpass(x, sampling_rate=rate, low=seg.band[0], high=seg.band[1])
    x, labels = _segment(x, data.labels, seg, rate=rate)
    return replace(data, signals=x, labels=labels, sampling_rate=float(rate))


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
