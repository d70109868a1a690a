"""Array and recording importers: NPY/NPZ arrays, WAV/FLAC audio and WFDB records."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from sigdiff.data.importers._common import (
    _MAX_LABEL,
    _SNIFF_BYTES,
    Imported,
    _float32,
    _format_hint,
    _rate,
    _read_bytes,
    _reason,
    _sniff,
)
from sigdiff.data.store import (
    PathLike,
    StoreError,
)

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
