"""What every importer shares: the `Imported` record, rate resolution, file sniffing for error
hints, text decoding and float/label conversion with located errors."""

from __future__ import annotations

import codecs
import gzip
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sigdiff.data.store import (
    StoreError,
)

_SPLIT = re.compile(r"[,\s]+")
_RATE_RTOL = 1e-6
_SNIFF_BYTES = 512  # bytes read to tell what a file really is, for error hints
_HEADER_SNIFF_ROWS = 20  # data rows compared with the first line to tell a header from data
_MAX_LABEL = 2**53  # float labels beyond this are not exact integers
_MAX_REASON = 120  # characters of a third-party error message quoted in ours
_F32_MAX = float(np.finfo(np.float32).max)
#: file suffix -> format name (`.gz` ignored), for `infer_format` and error hints
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
    row_lines: np.ndarray | None = None  # (N,) file line of each row (text formats), for messages


def _rate(
    given: float | None, in_file: float | None, *, where: str, what: str
) -> tuple[float, str]:
    """Resolve the sampling rate: the file's wins, a contradicting user value is an error."""
    if given is not None and not (math.isfinite(given) and given > 0):
        raise StoreError(f"{where}: --sampling-rate must be a positive number of Hz, got {given}")
    if in_file is not None and not (math.isfinite(in_file) and in_file > 0):
        raise StoreError(f"{where}: the {what} states a sampling rate of {in_file} Hz, which is "
                         "not a positive rate; fix the file")
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


def _read_bytes(path: Path, size: int = -1) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except IsADirectoryError:
        raise StoreError(f"{path}: is a folder, not a file; give the file to import") from None
    except OSError as err:
        raise StoreError(f"{path}: cannot read the file ({err.strerror or err})") from None


def _sniff(head: bytes) -> str:
    """What a file's first bytes say it is ("text", "a NumPy .npy file", ...), for hints."""
    magics = (
        (b"\x93NUMPY", "a NumPy .npy file"), (b"PK\x03\x04", "a zip archive (.npz)"),
        (b"RIFF", "a WAV file"), (b"fLaC", "a FLAC file"), (b"\x1f\x8b", "gzip data"),
        (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
        (b"\xff\xfe", "UTF-16 text"), (b"\xfe\xff", "UTF-16 text"),
    )
    for magic, what in magics:
        if head.startswith(magic):
            return what
    if not head:
        return "an empty file"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "binary data"
    return "binary data" if b"\x00" in head else "text"


def _format_hint(path: Path, accepted: Sequence[str]) -> str:
    """How to pick the right importer for a file the chosen one cannot read."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    by_suffix = _SUFFIXES.get(suffixes[-1] if suffixes else "")
    if by_suffix is not None and by_suffix not in accepted:
        return f"its suffix says {by_suffix}: pass --format {by_suffix} or leave --format out"
    return "check the file, or pass --format with its real format"


def _reason(err: BaseException) -> str:
    """The first line of a third-party error message, short."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:_MAX_REASON]


def _open_text(path: Path) -> str:
    data = _read_bytes(path)
    if path.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise StoreError(f"{path}: not valid gzip data ({_reason(err)}); re-compress the "
                             "file, or drop the .gz suffix if it is plain text") from None
    try:
        text = data.decode("utf-8-sig")  # a leading byte-order mark is not part of the header
    except UnicodeDecodeError as err:
        raise StoreError(
            f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}; it looks "
            f"like {_sniff(data[:_SNIFF_BYTES])}); re-save it as UTF-8 text, or "
            f"{_format_hint(path, ('ucr', 'csv'))}"
        ) from None
    if "\x00" in text:
        raise StoreError(f"{path}: contains NUL bytes, so it is not a text table; "
                         f"{_format_hint(path, ('ucr', 'csv'))}")
    return text


def _float32(
    x: np.ndarray | list[list[float]], *, where: str, lines: np.ndarray | None = None
) -> np.ndarray:
    """`x` (N, ...) as float32; a finite value beyond float32's range is an error, not an Inf."""
    wide = np.asarray(x)
    with np.errstate(over="ignore"):
        out = wide.astype(np.float32)
    over = np.isinf(out) & np.isfinite(wide)
    if over.any():
        row = int(np.flatnonzero(over.reshape(len(over), -1).any(axis=1))[0])
        at = f"file line {lines[row]}" if lines is not None else f"row {row}"
        raise StoreError(
            f"{where}: {int(over.sum())} values beyond the float32 range (±{_F32_MAX:.1e}), the "
            f"first at {at}; rescale the data (e.g. change its units)"
        )
    return out


def _lines(text: str) -> list[str]:
    """Lines as a text editor numbers them (\\n, \\r\\n or \\r endings)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


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
        exact = np.isfinite(values) & (np.abs(values) < _MAX_LABEL)
        if np.all(exact) and np.all(values == np.round(values)):
            return values.astype(np.int64), {}
    except ValueError:
        pass
    names = sorted(set(raw))
    lookup = {n: i for i, n in enumerate(names)}
    return np.array([lookup[t] for t in raw], np.int64), {"label_names": names}
