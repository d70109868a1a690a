"""Text importers: UCR/UEA (label then values per row) and CSV (rows or columns, header
detection, label and time columns)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sigdiff._utils import choice_error
from sigdiff.data.importers._common import (
    _HEADER_SNIFF_ROWS,
    _SPLIT,
    Imported,
    _encode_labels,
    _float32,
    _lines,
    _open_text,
    _parse_float,
    _rate,
)
from sigdiff.data.store import (
    PathLike,
    StoreError,
)


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
