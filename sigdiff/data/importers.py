"""Importers: UCR/UEA text, CSV, NPY/NPZ, WAV/FLAC and WFDB files into a sigdiff store; a folder
of PNG/JPEG pictures or an NPY array of images into an image store (N, C, H, W).

Every loader says where its sampling rate came from (`rate_source`): read from the file, or given
by the user. A file that states no rate and no user rate is an error, never a guess; a user rate
that contradicts the file's is an error too.

Every bad input is a `StoreError` naming the file, what is wrong and how to fix it; row numbers in
the messages of text formats are file line numbers (1-based, the header line included).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import math
import os
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
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

_SPLIT = re.compile(r"[,\s]+")
_RATE_RTOL = 1e-6
_SNIFF_BYTES = 512  # bytes read to tell what a file really is, for error hints
_HEADER_SNIFF_ROWS = 20  # data rows compared with the first line to tell a header from data
_MAX_LABEL = 2**53  # float labels beyond this are not exact integers
_MAX_REASON = 120  # characters of a third-party error message quoted in ours
_F32_MAX = float(np.finfo(np.float32).max)


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


def parse_ucr(text: str, *, where: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """UCR/UEA univariate text (whitespace, tab or comma separated): label then values per row.

    Returns signals (N, 1, L) float32, labels (N,) int64 and attrs (label names if textual).
    Reference: Dau et al., "The UCR time series archive", IEEE/CAA J. Autom. Sinica 2019.
    """
    signals, labels, attrs, _ = _parse_ucr(text, where=where)
    return signals, labels, attrs


def _parse_ucr(
    text: str, *, where: str
) -> tuple[np.ndarray, np.ndarray, dict[str, Any], np.ndarray]:
    """`parse_ucr` plus the (N,) file line of each row."""
    rows, labels, lines = [], [], []
    for line_no, line in enumerate(_lines(text), start=1):
        tokens = [t for t in _SPLIT.split(line.strip()) if t]
        if not tokens:
            continue
        labels.append(tokens[0])
        lines.append(line_no)
        rows.append(
            [_parse_float(t, where=where, row=line_no, col=j + 2) for j, t in enumerate(tokens[1:])]
        )
    if not rows:
        raise StoreError(f"{where}: empty input (no data rows)")
    _check_ragged([len(r) for r in rows], lines, where=where)
    codes, attrs = _encode_labels(labels, where=where)
    row_lines = np.array(lines, np.int64)
    values = _float32(np.array(rows, np.float64), where=where, lines=row_lines)  # (N, L)
    return values[:, None, :], codes, attrs, row_lines


def _check_ragged(lengths: list[int], lines: list[int], *, where: str) -> None:
    """Every row as long as most rows; `lines` are the rows' file lines, for the message."""
    expected = Counter(lengths).most_common(1)[0][0]  # ties: the first row's length
    bad = [i for i, n in enumerate(lengths) if n != expected]
    if bad:
        raise StoreError(
            f"{where}: ragged rows: row {lines[bad[0]]} has {lengths[bad[0]]} values, "
            f"most rows have {expected} ({len(bad)} rows differ); pad or drop them"
        )
    if expected == 0:
        raise StoreError(f"{where}: rows have a label but no values")


def load_ucr(path: PathLike, *, sampling_rate: float | None = None) -> Imported:
    """UCR/UEA `.txt`/`.tsv` (optionally `.gz`): the format states no rate, so it must be given."""
    p = Path(path)
    signals, labels, attrs, lines = _parse_ucr(_open_text(p), where=str(p))
    rate, source = _rate(sampling_rate, None, where=str(p), what="")
    return Imported(signals, labels, rate, source, str(p), attrs=attrs, row_lines=lines)


Record = tuple[int, list[str]]  # (file line where the record starts, its fields)


def load_csv(
    path: PathLike,
    *,
    sampling_rate: float | None = None,
    layout: str = "rows",
    time_column: str = "time",
    label_column: str | None = None,
    header: bool | None = None,
) -> Imported:
    """CSV. layout="rows": one sample per row (optional label column); layout="columns": one
    recording, a time column in seconds plus one column per channel.

    `header`: True when the first line names the columns; False when it is data (columns are
    then named 1, 2, ... by position); None detects it: the first line is a header when one of
    its fields is text where the rows below hold numbers. `attrs["csv_header"]` records which.
    """
    p = Path(path)
    if layout not in ("rows", "columns"):
        raise choice_error("CSV layout", layout, ["rows", "columns"])
    records = _csv_records(p)
    if not records:
        raise StoreError(f"{p}: empty input (no rows)")
    present = _detect_header(records) if header is None else header
    how = "detected" if header is None else "given"
    if present:
        names, body = [h.strip() for h in records[0][1]], records[1:]
    else:
        names, body = [str(i + 1) for i in range(len(records[0][1]))], records
    if not body:
        raise StoreError(f"{p}: empty input (needs a header row and at least one data row)")
    _check_ragged([len(f) for _, f in records], [n for n, _ in records], where=str(p))
    table = _Table(p, names, body, header=present)
    if layout == "rows":
        data = _csv_rows(table, sampling_rate=sampling_rate, label_column=label_column)
    else:
        data = _csv_columns(table, sampling_rate=sampling_rate, time_column=time_column)
    return replace(data, attrs={**data.attrs, "csv_header": {"present": present, "how": how}})


def describe_csv_header(record: Mapping[str, Any]) -> str:
    """A sentence for `attrs["csv_header"]`: which header was used and how it was chosen."""
    if record["how"] == "given":
        return "line 1 (--header)" if record["present"] else "none (--no-header)"
    if record["present"]:
        return "line 1 (detected: it names the columns; pass --no-header if it is data)"
    return "none (detected: line 1 is data; pass --header if it names the columns)"


def _csv_records(p: Path) -> list[Record]:
    """Non-blank CSV records with the file line each starts on."""
    reader = csv.reader(io.StringIO(_open_text(p), newline=""))
    records, start = [], 1
    try:
        for fields in reader:
            if any(f.strip() for f in fields):
                records.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as err:
        raise StoreError(f"{p}: line {start}: not valid CSV ({err}); fix that line") from None
    return records


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _detect_header(records: list[Record]) -> bool:
    """The first line is a header when a field of it is text where a row below holds a number
    (a text label column, text in every row, does not make it one)."""
    first = records[0][1]
    words = [i for i, f in enumerate(first) if f.strip() and not _is_number(f)]
    below = [fields for _, fields in records[1 : 1 + _HEADER_SNIFF_ROWS]]
    if not below:
        return bool(words)
    return any(i < len(r) and _is_number(r[i]) for i in words for r in below)


@dataclass(frozen=True)
class _Table:
    path: Path
    names: list[str]
    body: list[Record]
    header: bool

    @property
    def where(self) -> str:
        return str(self.path)

    def column(self, name: str) -> int:
        if name not in self.names:
            how = "" if self.header else " (the file has no header line: name columns 1, 2, ...)"
            raise StoreError(f"{self.where}: no column {name!r}; columns are {self.names}{how}")
        return self.names.index(name)

    def numeric(self, cols: list[int]) -> np.ndarray:
        """(rows, len(cols)) float64; a bad field is named by file line and 1-based column."""
        return np.array(
            [[_parse_float(r[c], where=self.where, row=n, col=c + 1) for c in cols]
             for n, r in self.body],
            np.float64,
        ).reshape(len(self.body), len(cols))

    @property
    def lines(self) -> np.ndarray:
        return np.array([n for n, _ in self.body], np.int64)


def _csv_rows(
    table: _Table, *, sampling_rate: float | None, label_column: str | None
) -> Imported:
    label_idx = None if label_column is None else table.column(label_column)
    cols = [i for i in range(len(table.names)) if i != label_idx]
    values = _float32(table.numeric(cols), where=table.where, lines=table.lines)[:, None, :]
    labels, attrs = (
        (None, {})
        if label_idx is None
        else _encode_labels([r[label_idx].strip() for _, r in table.body], where=table.where)
    )
    rate, source = _rate(sampling_rate, None, where=table.where, what="")
    return Imported(values, labels, rate, source, table.where, attrs=attrs,
                    row_lines=table.lines)


def _csv_columns(
    table: _Table, *, sampling_rate: float | None, time_column: str
) -> Imported:
    t_idx = table.column(time_column)
    cols = [i for i in range(len(table.names)) if i != t_idx]
    values = table.numeric([t_idx, *cols])  # (T, 1 + C)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():  # one recording: a bad line cannot be dropped as a sample
        lines = table.lines[bad]
        raise StoreError(
            f"{table.where}: NaN/Inf values on {bad.sum()} lines ({_listed(lines)}); this layout "
            "holds one recording, so fix or remove those lines (or resample onto a regular grid)"
        )
    step = np.diff(values[:, 0])
    if step.size == 0 or np.any(step <= 0) or np.ptp(step) > 1e-3 * np.median(step):
        raise StoreError(
            f"{table.where}: time column {time_column!r} is not uniformly increasing; "
            "resample the recording onto a regular grid first"
        )
    rate, source = _rate(
        sampling_rate, float(1.0 / np.mean(step)), where=table.where,
        what=f"time column {time_column!r}",
    )
    names = tuple(table.names[i] for i in cols)
    signals = _float32(values[:, 1:], where=table.where, lines=table.lines).T[None]  # (1, C, T)
    return Imported(signals, None, rate, source, table.where,
                    names)


def _listed(lines: np.ndarray, most: int = 5) -> str:
    """"line 3, line 9 and 4 more" for a message."""
    shown = ", ".join(f"line {n}" for n in lines[:most])
    return shown + (f" and {len(lines) - most} more" if len(lines) > most else "")


_NUMPY_MAGICS = (b"\x93NUMPY", b"PK\x03\x04")  # .npy header, zip archive (.npz)


def _read_numpy(p: Path, *, main: str, extras: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The `main` array of a .npy file, or `main` and the present `extras` of a .npz archive
    (told apart by content, not suffix). Never unpickles."""
    head = _read_bytes(p, _SNIFF_BYTES)
    formats = ("npy", "npz", "image-npy")
    if not head:
        raise StoreError(f"{p}: the file is empty (0 bytes); re-save the array with numpy.save")
    if not head.startswith(_NUMPY_MAGICS):
        raise StoreError(f"{p}: not a NumPy .npy/.npz file (it looks like {_sniff(head)}); "
                         f"{_format_hint(p, formats)}")
    try:
        loaded = np.load(p, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return {main: np.asarray(loaded)}
        with loaded as z:
            if main not in z.files:
                raise StoreError(f"{p}: npz has no {main!r} array; keys are {sorted(z.files)}")
            return {k: np.asarray(z[k]) for k in (main, *extras) if k in z.files}
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as err:
        if "pickle" in str(err):  # numpy's advice names an unsafe option: give our own
            raise StoreError(
                f"{p}: holds Python objects (dtype object), not numbers; save a numeric array "
                "(e.g. x.astype(np.float32)) with numpy.save"
            ) from None
        raise StoreError(f"{p}: the NumPy file is truncated or corrupt ({_reason(err)}); "
                         "re-save the array with numpy.save") from None


def _check_array(arr: np.ndarray, *, where: str, what: str, shapes: str, ranks: tuple[int, ...],
                 name: str = "array") -> None:
    """A numeric, non-empty array of one of `ranks`; `shapes` spells them for the message."""
    if arr.dtype.kind not in "fiub":
        raise StoreError(f"{where}: {name} dtype {arr.dtype} is not numeric; save numbers "
                         "(e.g. x.astype(np.float32))")
    if arr.ndim not in ranks:
        raise StoreError(f"{where}: expected {what} {shapes}, got shape {arr.shape}")
    if arr.size == 0:
        raise StoreError(f"{where}: the {name} is empty, shape {arr.shape}; it needs at least "
                         "one sample with at least one value")


def _labels(raw: np.ndarray | None, n: int, *, where: str) -> np.ndarray | None:
    """Stored labels as (n,) int64: integers, or floats holding whole numbers."""
    if raw is None:
        return None
    if raw.shape != (n,):
        raise StoreError(f"{where}: 'labels' has shape {raw.shape}, expected ({n},): one integer "
                         "per sample")
    whole = raw.dtype.kind in "iub" or (
        raw.dtype.kind == "f"
        and bool(np.all(np.isfinite(raw) & (np.abs(raw) < _MAX_LABEL) & (raw == np.round(raw))))
    )
    if not whole:
        raise StoreError(f"{where}: 'labels' must be whole numbers (below 2**53 as floats), got "
                         f"dtype {raw.dtype}; encode classes as 0..k-1")
    return raw.astype(np.int64)


def _stored_rate(raw: np.ndarray | None, *, where: str) -> float | None:
    if raw is None:
        return None
    if raw.size != 1 or raw.dtype.kind not in "fiu":
        raise StoreError(f"{where}: npz 'sampling_rate' must be one number in Hz, got "
                         f"{raw.dtype} {raw.shape}")
    return float(raw.reshape(()))


def load_numpy(path: PathLike, *, sampling_rate: float | None = None) -> Imported:
    """`.npy` array (L,), (N, L) or (N, C, L); `.npz` with `signals` and optional `labels`,
    `sampling_rate` (a rate stored in the npz is the file's rate)."""
    p = Path(path)
    z = _read_numpy(p, main="signals", extras=("labels", "sampling_rate"))
    arr = z["signals"]
    _check_array(arr, where=str(p), what="an array", shapes="(L,), (N, L) or (N, C, L)",
                 ranks=(1, 2, 3))
    shaped = arr.reshape((1, 1, -1) if arr.ndim == 1 else (arr.shape[0], -1, arr.shape[-1]))
    labels = _labels(z.get("labels"), len(shaped), where=str(p))
    in_file = _stored_rate(z.get("sampling_rate"), where=str(p))
    rate, source = _rate(sampling_rate, in_file, where=str(p), what="npz 'sampling_rate'")
    return Imported(_float32(shaped, where=str(p)), labels, rate, source, str(p))


def _read_audio(p: Path) -> tuple[np.ndarray, float]:
    """(frames (T, C), rate) via soundfile, or via scipy for WAV when soundfile is missing."""
    try:
        import soundfile
    except ImportError:
        if p.suffix.lower() != ".wav":
            raise StoreError(f"{p}: reading {p.suffix} needs the 'soundfile' package") from None
        import scipy.io.wavfile

        rate, data = scipy.io.wavfile.read(p)
        return np.asarray(data), float(rate)
    data, rate = soundfile.read(p, dtype="float32", always_2d=True)
    return data, float(rate)


def load_audio(path: PathLike, *, sampling_rate: float | None = None) -> Imported:
    """WAV/FLAC (anything libsndfile reads) as one recording (1, C, T); rate from the header."""
    p = Path(path)
    head = _read_bytes(p, _SNIFF_BYTES)
    try:
        data, rate_in = _read_audio(p)
    except StoreError:
        raise
    except (RuntimeError, ValueError, EOFError, OSError) as err:  # LibsndfileError: RuntimeError
        reason = getattr(err, "error_string", None) or _reason(err)
        raise StoreError(
            f"{p}: not a readable audio file ({reason}; it looks like {_sniff(head)}); "
            f"{_format_hint(p, ('wav', 'flac'))}"
        ) from None
    if np.size(data) == 0:
        raise StoreError(f"{p}: the audio file holds no samples; record or export it again")
    frames = _float32(np.asarray(data), where=str(p)).reshape(len(data), -1)  # (T, C)
    rate, source = _rate(sampling_rate, rate_in, where=str(p), what="audio header")
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
    try:
        rec = wfdb.rdrecord(record_name)
    except Exception as err:  # wfdb's parser raises anything on a malformed header
        raise StoreError(
            f"{path}: not a readable WFDB record ({type(err).__name__}: {_reason(err)}); it needs "
            "NAME.hea with its NAME.dat beside it"
        ) from None
    if rec.p_signal is None or np.size(rec.p_signal) == 0:
        raise StoreError(f"{path}: the WFDB record holds no samples")
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
    z = _read_numpy(p, main="images", extras=("labels",))
    arr = z["images"]
    if arr.dtype.kind not in "fiub" or arr.ndim not in (3, 4):
        raise StoreError(f"{p}: expected numeric images (N, H, W) or (N, C, H, W), got "
                         f"{arr.dtype} {arr.shape}")
    _check_array(arr, where=str(p), what="images", shapes="(N, H, W) or (N, C, H, W)",
                 ranks=(3, 4), name="images array")
    images = arr[:, None] if arr.ndim == 3 else arr
    labels = _labels(z.get("labels"), len(images), where=str(p))
    return Imported(_float32(images, where=str(p)), labels, PIXEL_RATE, _PIXEL_SOURCE, str(p))


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
