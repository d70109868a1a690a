"""Property-based fuzzing of the importers: random shapes, dtypes, NaN/Inf placement, encodings,
line endings and truncated files. Every input either imports exactly (checked against the values
read back from the store) or raises a `StoreError` that names the file; never another exception.
Inputs that are plainly valid must import.

The strategies draw mostly valid inputs and then damage some of them (poisoned values, a junk
field, another encoding, a truncated file), so both halves of the property are exercised.
"""

from __future__ import annotations

import gzip
import io
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import scipy.io.wavfile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sigdiff.data.importers import import_file
from sigdiff.data.store import StoreError

FUZZ = settings(max_examples=25, deadline=None)  # the five tests take a few seconds together
T = TypeVar("T")

NUMERIC = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]
OTHER = ["complex64", "<U3", "datetime64[s]"]
SPECIAL = [math.nan, math.inf, -math.inf, 1e39]  # 1e39 overflows float32
SPECIAL_TOKENS = ["nan", "NaN", "inf", "-Infinity", "1e400", "1e39"]
JUNK = ["x", "", "1.2.3", "é", "--", "0x10"]


def sometimes(strategy: st.SearchStrategy[T], *, one_in: int) -> st.SearchStrategy[T | None]:
    """`strategy` in about one draw of `one_in`, else None."""
    return st.integers(0, one_in - 1).flatmap(lambda k: strategy if k == 0 else st.none())


@dataclass(frozen=True)
class Loaded:
    x: np.ndarray
    labels: np.ndarray | None
    sampling_rate: float


def attempt(write: Callable[[Path], Path], *, must_import: bool, **kwargs: Any) -> Loaded | None:
    """Write the input into a fresh folder and import it; None when it was refused cleanly."""
    with tempfile.TemporaryDirectory() as tmp:
        src = write(Path(tmp))
        out = Path(tmp) / "out.zarr"
        try:
            store = import_file(src, out, **kwargs)
        except StoreError as err:
            assert src.name in str(err) or out.name in str(err), str(err)
            assert "\n" not in str(err) and "pickle" not in str(err)
            assert sorted(p.name for p in Path(tmp).iterdir()) == [src.name]
            if must_import:
                raise AssertionError(f"a valid input was refused: {err}") from err
            return None
        return Loaded(store.read(), store.labels, store.sampling_rate)  # before the folder goes


def keep_finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x).reshape(len(x), -1).all(axis=1)]


def storable(x: np.ndarray) -> bool:
    """At least one row, all finite, no constant channel: what `write_store` accepts."""
    return (
        x.size > 0
        and bool(np.isfinite(x).all())
        and bool((x.astype(np.float64).std(axis=(0, *range(2, x.ndim))) > 0).all())
    )


def to_float32(wide: np.ndarray) -> np.ndarray | None:
    """`wide` as float32, or None when a finite value overflows (the importers refuse it)."""
    with np.errstate(over="ignore"):
        x = wide.astype(np.float32)
    return None if (np.isinf(x) & np.isfinite(wide)).any() else x


def truncate(data: bytes, cut: float | None) -> bytes:
    return data if cut is None else data[: int(cut * len(data))]


# ---------------------------------------------------------------------------------- numpy


@st.composite
def numeric_arrays(draw: st.DrawFn, dtypes: list[str], shape: tuple[int, ...]) -> np.ndarray:
    """An array of bounded values, some float entries replaced by NaN/Inf/overflowing values."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    elements = (st.floats(-1e4, 1e4, width=8 * dtype.itemsize) if dtype.kind == "f" else None)
    arr = draw(hnp.arrays(dtype, shape, elements=elements, fill=st.nothing()))  # no constant fill
    if dtype.kind == "f" and arr.size:
        spots = st.lists(st.tuples(st.integers(0, arr.size - 1), st.sampled_from(SPECIAL)),
                         min_size=1, max_size=2)
        for spot, value in draw(sometimes(spots, one_in=3)) or []:
            with np.errstate(over="ignore"):
                arr.flat[spot] = value
    return arr


@st.composite
def npy_cases(draw: st.DrawFn) -> tuple[np.ndarray, bytes]:
    ndim = draw(st.sampled_from([1, 2, 2, 3, 3, 3, 0, 4]))
    shape = [draw(st.integers(1, 5)) for _ in range(ndim)]
    if shape and draw(st.integers(0, 7)) == 0:
        shape[draw(st.integers(0, ndim - 1))] = 0
    if draw(st.integers(0, 7)) == 0:
        arr = draw(hnp.arrays(st.sampled_from(OTHER), tuple(shape)))
    else:
        arr = draw(numeric_arrays(NUMERIC, tuple(shape)))
    buf = io.BytesIO()
    np.save(buf, arr)
    return arr, truncate(buf.getvalue(), draw(sometimes(st.floats(0, 0.999), one_in=5)))


@FUZZ
@given(case=npy_cases(), drop=st.booleans())
def test_npy(case: tuple[np.ndarray, bytes], drop: bool) -> None:
    arr, data = case

    def write(tmp: Path) -> Path:
        (tmp / "a.npy").write_bytes(data)
        return tmp / "a.npy"

    expected = None
    if arr.dtype.kind in "fiub" and arr.ndim in (1, 2, 3) and arr.size:
        shaped = arr.reshape((1, 1, -1) if arr.ndim == 1 else (arr.shape[0], -1, arr.shape[-1]))
        expected = to_float32(shaped)
        expected = keep_finite(expected) if drop and expected is not None else expected
    whole = len(data) == len(_saved(arr))
    got = attempt(write, must_import=whole and expected is not None and storable(expected),
                  sampling_rate=10.0, drop_nonfinite=drop)
    if got is not None:
        assert whole and expected is not None  # a truncated .npy never loads
        np.testing.assert_array_equal(got.x, expected)


def _saved(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@FUZZ
@given(
    signals=st.tuples(st.integers(1, 4), st.integers(1, 2), st.integers(2, 6)).flatmap(
        lambda shape: numeric_arrays(["float32", "float64", "int16"], shape)),
    labels=sometimes(hnp.arrays(st.sampled_from(["int64", "int64", "float64", "<U2"]),
                                st.integers(1, 5)), one_in=2),
    rate=sometimes(hnp.arrays("float64", st.sampled_from([(), (), (2,)]),
                              elements=st.floats(-10, 1e5)), one_in=2),
    cut=sometimes(st.floats(0, 0.999), one_in=5),
)
def test_npz(
    signals: np.ndarray, labels: np.ndarray | None, rate: np.ndarray | None, cut: float | None
) -> None:
    arrays = {"signals": signals}
    arrays.update({k: v for k, v in (("labels", labels), ("sampling_rate", rate)) if v is not None})
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    data = truncate(buf.getvalue(), cut)

    def write(tmp: Path) -> Path:
        (tmp / "a.npz").write_bytes(data)
        return tmp / "a.npz"

    expected = to_float32(signals)
    good_labels = labels is None or (
        labels.dtype.kind in "if" and len(labels) == len(signals)
        and bool(np.all((labels == np.round(labels)) & (np.abs(labels) < 2**53)))
    )
    good_rate = rate is None or (rate.size == 1 and float(rate.reshape(())) > 0)
    must = (cut is None and expected is not None and storable(expected) and good_labels
            and good_rate)
    got = attempt(write, must_import=must, sampling_rate=None if rate is not None else 5.0)
    if got is not None:
        assert expected is not None
        np.testing.assert_array_equal(got.x, expected)
        if labels is not None:
            np.testing.assert_array_equal(got.labels, labels.astype(np.int64))
        assert got.sampling_rate == (5.0 if rate is None else float(rate.reshape(())))


# ------------------------------------------------------------------------------- text tables

_FORMATS: list[Callable[[float], str]] = [repr, "{:.3e}".format, "{:g}".format, " {} ".format]
_TOKENS = st.one_of(
    st.tuples(st.floats(-1e6, 1e6), st.sampled_from(_FORMATS)).map(lambda vf: vf[1](vf[0])),
    st.integers(-10**6, 10**6).map(str),
)
_ENCODINGS = ["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Any]:
    """Rows of number tokens, some poisoned (NaN/Inf/overflow) or junk, in some encoding."""
    n, m = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    rows = [[draw(_TOKENS) for _ in range(m)] for _ in range(n)]
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        rows[draw(st.integers(0, n - 1))][draw(st.integers(0, m - 1))] = draw(
            st.sampled_from(SPECIAL_TOKENS))
    junk = draw(st.integers(0, 7)) == 0
    if junk:
        rows[draw(st.integers(0, n - 1))][draw(st.integers(0, m - 1))] = draw(st.sampled_from(JUNK))
    return {
        "rows": rows,
        "junk": junk,
        "encoding": draw(st.sampled_from(_ENCODINGS)),
        "newline": draw(st.sampled_from(["\n", "\r\n", "\r"])),
        "blank": draw(st.integers(0, n)),  # a blank line goes before this data row
        "cut": draw(sometimes(st.floats(0, 0.999), one_in=5)),
        "drop": draw(st.booleans()),
    }


def encode(lines: list[str], case: dict[str, Any]) -> bytes:
    return (case["newline"].join(lines) + case["newline"]).encode(case["encoding"])


def expect(rows: list[list[str]], drop: bool) -> np.ndarray | None:
    """What the store must hold (N, 1, L), or None when the importers must refuse it."""
    x = to_float32(np.array([[float(t) for t in r] for r in rows], np.float64))
    if x is None:
        return None
    return keep_finite(x[:, None]) if drop else x[:, None]


@FUZZ
@given(case=tables(), header=st.booleans(), mode=st.sampled_from([None, None, True, False]))
def test_csv(case: dict[str, Any], header: bool, mode: bool | None) -> None:
    rows: list[list[str]] = case["rows"]
    lines = [",".join(r) for r in rows]
    lines.insert(case["blank"], "")
    if header:
        lines.insert(0, ",".join(f"c{i}" for i in range(len(rows[0]))))
    data = truncate(encode(lines, case), case["cut"])

    def write(tmp: Path) -> Path:
        (tmp / "d.csv").write_bytes(data)
        return tmp / "d.csv"

    body = rows[1:] if (mode is True and not header) else rows  # a forced header eats a row
    clean = (case["cut"] is None and not case["junk"] and mode in (None, header) and len(body) > 0
             and case["encoding"] in ("utf-8", "utf-8-sig", "latin-1"))
    expected = expect(body, case["drop"]) if clean else None
    got = attempt(write, must_import=expected is not None and storable(expected),
                  sampling_rate=2.0, drop_nonfinite=case["drop"],
                  loader_options={} if mode is None else {"header": mode})
    if got is not None and expected is not None:
        np.testing.assert_array_equal(got.x, expected)
    if case["encoding"] == "utf-16":
        assert got is None  # never silently misread


@FUZZ
@given(
    case=tables(),
    labels=st.lists(st.sampled_from(["1", "2", "-3", "a", "b", "1.5"]), min_size=5, max_size=5),
    sep=st.sampled_from([" ", "\t", ","]),
    gz=st.booleans(),
)
def test_ucr(case: dict[str, Any], labels: list[str], sep: str, gz: bool) -> None:
    rows: list[list[str]] = [[t.strip() or "0" for t in r] for r in case["rows"]]
    lines = [sep.join([lab, *r]) for lab, r in zip(labels, rows)]
    lines.insert(case["blank"], "")
    data = encode(lines, case)
    data = truncate(gzip.compress(data) if gz else data, case["cut"])

    def write(tmp: Path) -> Path:
        path = tmp / ("d.txt.gz" if gz else "d.txt")
        path.write_bytes(data)
        return path

    clean = (case["cut"] is None and not case["junk"]
             and case["encoding"] in ("utf-8", "utf-8-sig", "latin-1"))
    expected = expect(rows, case["drop"]) if clean else None
    got = attempt(write, must_import=expected is not None and storable(expected),
                  sampling_rate=3.0, drop_nonfinite=case["drop"])
    if got is not None and expected is not None:
        np.testing.assert_array_equal(got.x, expected)
        assert got.labels is not None and len(got.labels) == len(expected)


# ------------------------------------------------------------------------------------- audio


@FUZZ
@given(
    audio=st.tuples(st.integers(0, 300), st.integers(1, 3)).flatmap(
        lambda shape: numeric_arrays(["int16", "float32"], shape)),
    rate=st.integers(1, 48000),
    cut=sometimes(st.integers(1, 200), one_in=4),
)
def test_wav(audio: np.ndarray, rate: int, cut: int | None) -> None:
    buf = io.BytesIO()
    scipy.io.wavfile.write(buf, rate, audio)
    data = buf.getvalue()
    data = data if cut is None else data[: max(0, len(data) - cut)]

    def write(tmp: Path) -> Path:
        (tmp / "a.wav").write_bytes(data)
        return tmp / "a.wav"

    scale = np.float32(2.0**15 if audio.dtype == np.int16 else 1.0)
    with np.errstate(over="ignore"):
        frames = (audio.astype(np.float32) / scale).T[None]  # (1, C, T)
    got = attempt(write, must_import=cut is None and storable(frames))
    if got is not None:
        assert got.sampling_rate == rate
        n = got.x.shape[-1]  # a truncated file may still yield its whole frames
        assert n <= frames.shape[-1] and (cut is not None or n == frames.shape[-1])
        np.testing.assert_array_equal(got.x, frames[..., :n])
