"""The sigdiff signal store: a zarr v3 group that `xarray.open_zarr` opens with named dimensions.

Layout (real data and generated samples alike)::

    signals   (sample, channel, time)  float32, compressed, chunked along samples
              (sample, channel, height, width) for images: one layout, a second spatial rank
    labels    (sample,)                int64, optional
    time      (time,)                  float64 seconds, coordinate
    channel   (channel,)               str, coordinate
    attrs     sampling_rate, units, channel_names, norm_mean, norm_std, n_samples, ... user attrs

An image store has no time coordinate and records ``sampling_rate`` 1 (one sample per pixel), so
every rank-agnostic reader treats it like a signal store; ``SignalStore.kind`` tells them apart.

Writes are atomic: everything goes to a hidden temporary directory beside the target
(``.NAME.tmp-PID-XXXXXXXX``), which is renamed onto the target name only after the last byte is
written; on any error the temporary directory is removed and nothing appears under the target
name. A local writer holds ``NAME.lock`` (`sigdiff._lock.folder_lock`) while it writes, so a second
writer of the same target is refused; under that lock it removes the temporaries of the same target
left by writers that were killed (their PID is gone), so a crash costs disk space only until the
next write.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import fsspec
import numpy as np
import zarr
from fsspec.core import url_to_fs
from zarr.abc.store import Store

from sigdiff._lock import LockError, folder_lock, pid_alive

__all__ = [
    "DIMS",
    "FORMAT_VERSION",
    "PIXEL_RATE",
    "SignalStore",
    "StoreError",
    "StoreWriter",
    "check_finite",
    "open_store",
    "read_store",
    "split_store",
    "write_image_store",
    "write_store",
]

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


# --------------------------------------------------------------------------------------------
# validation shared by the writers and the importers


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


# --------------------------------------------------------------------------------------------
# location handling: local paths, file://, memory://, and any fsspec URL


@dataclass(frozen=True)
class _Location:
    fs: fsspec.AbstractFileSystem
    path: str  # filesystem path, no protocol
    display: str  # what error messages show

    @classmethod
    def parse(cls, target: PathLike, storage_options: Mapping[str, Any] | None) -> _Location:
        text = os.fspath(target)
        fs, path = url_to_fs(text, **dict(storage_options or {}))
        return cls(fs=fs, path=path.rstrip("/"), display=text)

    @property
    def key(self) -> str:
        """What two spellings of one location share (resolved path for local files)."""
        if self.is_local:
            return os.path.realpath(self.path)
        return str(self.fs.unstrip_protocol(self.path))

    @property
    def is_local(self) -> bool:
        return "file" in _protocols(self.fs)

    def store(self, path: str | None = None, *, read_only: bool) -> Store:
        path = self.path if path is None else path
        if self.is_local:
            return zarr.storage.LocalStore(path, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(
            self.fs.unstrip_protocol(path),
            storage_options=_fs_options(self.fs),
            read_only=read_only,
        )

    def sibling(self, tag: str) -> str:
        """A hidden name beside the target that records the writer's PID: .NAME.TAG-PID-XXXXXXXX"""
        parent, _, name = self.path.rpartition("/")
        return f"{parent}/.{name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def hold_lock(self, stack: contextlib.ExitStack) -> None:
        """Take the target's writer lock into `stack` (local paths only; remote stores are not
        locked); a live writer holding it is a `StoreError`."""
        if not self.is_local:
            return
        try:
            stack.enter_context(folder_lock(self.path, what="store"))
        except LockError as err:
            raise StoreError(str(err)) from None

    def stale_siblings(self, tags: Sequence[str]) -> list[str]:
        """Hidden siblings (`tags` among "tmp", "old") of this target whose writer process is
        gone (local paths only). Call it under `hold_lock`: then no other live writer owns one."""
        parent, _, name = self.path.rpartition("/")
        if not self.is_local or not os.path.isdir(parent or "/"):
            return []
        pattern = re.compile(rf"\.{re.escape(name)}\.(?:{'|'.join(tags)})-(\d+)-[0-9a-f]{{8}}")
        stale = []
        for entry in os.listdir(parent or "/"):
            match = pattern.fullmatch(entry)
            if match and int(match[1]) != os.getpid() and not pid_alive(int(match[1])):
                stale.append(f"{parent}/{entry}")
        return stale


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _fs_options(fs: fsspec.AbstractFileSystem) -> dict[str, Any]:
    return dict(getattr(fs, "storage_options", {}) or {})


def _publish(loc: _Location, tmp: str, *, overwrite: bool) -> None:
    """Move the finished temporary store onto the target name (rename on local disks)."""
    trash = None
    if loc.fs.exists(loc.path):
        if not overwrite:
            raise StoreError(f"{loc.display}: already exists; pass overwrite=True (--overwrite)")
        trash = loc.sibling("old")
        _move(loc, loc.path, trash)
    _move(loc, tmp, loc.path)
    if trash is not None:
        loc.fs.rm(trash, recursive=True)


def _move(loc: _Location, src: str, dst: str) -> None:
    if loc.is_local:
        os.replace(src, dst)
    else:
        loc.fs.mv(src, dst, recursive=True)


def _discard(loc: _Location, tmp: str) -> None:
    if loc.fs.exists(tmp):
        loc.fs.rm(tmp, recursive=True)


def _discard_stale(loc: _Location, tags: Sequence[str]) -> None:
    """Remove what killed writers of this target left behind (call under the target's lock).

    Temporaries ("tmp") go before a write; an old copy set aside by a killed overwrite ("old")
    goes only once a new store is in place, since it may be the only copy left."""
    for path in loc.stale_siblings(tags):
        _discard(loc, path)


# --------------------------------------------------------------------------------------------
# running per-channel statistics (Chan et al. 1979 pairwise merge of mean and M2)


@dataclass
class _RunningStats:
    count: int = 0
    mean: np.ndarray | None = None  # (C,) float64
    m2: np.ndarray | None = None  # (C,) sum of squared deviations

    def update(self, batch: np.ndarray) -> None:
        x = np.moveaxis(batch.astype(np.float64), 1, 0).reshape(batch.shape[1], -1)  # (C, n·S)
        n_b, mean_b = x.shape[1], x.mean(axis=1)
        m2_b = ((x - mean_b[:, None]) ** 2).sum(axis=1)
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / n
        self.m2 = self.m2 + m2_b + delta**2 * self.count * n_b / n
        self.count = n

    def std(self) -> np.ndarray:
        assert self.m2 is not None
        return np.sqrt(self.m2 / self.count)


# --------------------------------------------------------------------------------------------
# writing


class StoreWriter:
    """Streaming, atomic store writer: `append` chunks of (n, C, L); the store appears on exit.

    Give `length` for signals, or `spatial_shape` (L,) or (H, W) for either rank.

    Use as a context manager; if the block raises, the temporary store is deleted and nothing
    is left under the target name. Memory use is bounded by one chunk of samples.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        n_channels: int,
        length: int | None = None,
        sampling_rate: float,
        spatial_shape: Sequence[int] | None = None,
        units: str = "a.u.",
        channel_names: Sequence[str] | None = None,
        attrs: Mapping[str, Any] | None = None,
        chunk_samples: int | None = None,
        with_labels: bool = False,
        overwrite: bool = False,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._loc = _Location.parse(path, storage_options)
        if (length is None) == (spatial_shape is None):
            raise StoreError(f"{self._loc.display}: give exactly one of length and spatial_shape")
        spatial = (int(length),) if length is not None else tuple(int(n) for n in spatial_shape or ())
        if len(spatial) not in DIMS or min(spatial) < 1:
            raise StoreError(f"{self._loc.display}: spatial_shape {spatial} must be (L,) or (H, W)")
        if not sampling_rate > 0 or not np.isfinite(sampling_rate):
            raise StoreError(
                f"{self._loc.display}: sampling_rate must be > 0 Hz, got {sampling_rate}"
            )
        names = (
            [f"ch{i}" for i in range(n_channels)] if channel_names is None else list(channel_names)
        )
        if len(names) != n_channels:
            raise StoreError(
                f"{self._loc.display}: {len(names)} channel_names for {n_channels} channels"
            )
        if self._loc.fs.exists(self._loc.path) and not overwrite:
            raise StoreError(
                f"{self._loc.display}: already exists; pass overwrite=True (--overwrite)"
            )
        self.n_channels, self.sampling_rate = n_channels, float(sampling_rate)
        self.spatial_shape: tuple[int, ...] = spatial
        self.length = spatial[0] if len(spatial) == 1 else None  # signals only
        self._overwrite, self._with_labels = overwrite, with_labels
        self._chunk = chunk_samples or _auto_chunk(n_channels, int(np.prod(spatial)))
        self._meta = {"units": units, "channel_names": names, **_jsonable(dict(attrs or {}))}
        self._stats = _RunningStats()
        self._n = 0
        self._tmp: str | None = None
        self._group: zarr.Group | None = None
        self._held = contextlib.ExitStack()

    # -- context manager ------------------------------------------------------------------
    def __enter__(self) -> StoreWriter:
        self._loc.hold_lock(self._held)
        try:
            _discard_stale(self._loc, ("tmp",))
            self._tmp = self._loc.sibling("tmp")
            self._group = zarr.open_group(self._loc.store(self._tmp, read_only=False), mode="w")
            self._create_arrays(self._group)
        except BaseException:
            if self._tmp is not None:
                _discard(self._loc, self._tmp)
            self._held.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tmp is not None
        try:
            if exc_type is None:
                self._finish()
                _publish(self._loc, self._tmp, overwrite=self._overwrite)
                _discard_stale(self._loc, ("tmp", "old"))
        finally:
            try:
                _discard(self._loc, self._tmp)
            finally:
                self._held.close()

    # -- writing ----------------------------------------------------------------------------
    def _create_arrays(self, g: zarr.Group) -> None:
        c, spatial = self.n_channels, self.spatial_shape
        g.create_array(
            "signals",
            shape=(0, c, *spatial),
            chunks=(self._chunk, c, *spatial),
            dtype="float32",
            dimension_names=DIMS[len(spatial)],
        )
        if self._with_labels:
            g.create_array(
                "labels",
                shape=(0,),
                chunks=(max(self._chunk, 4096),),
                dtype="int64",
                dimension_names=("sample",),
            )
        if self.length is not None:  # signals: the time coordinate in seconds
            time = g.create_array("time", shape=(self.length,), dtype="float64",
                                  dimension_names=("time",))
            time[:] = np.arange(self.length) / self.sampling_rate
            time.attrs.update({"units": "s", "long_name": "time from the start of each sample"})
        chan = g.create_array("channel", shape=(c,), dtype=str, dimension_names=("channel",))
        chan[:] = np.array(self._meta["channel_names"], dtype=object)

    def append(self, signals: np.ndarray, *, labels: np.ndarray | None = None) -> None:
        """Append a batch of (n, C, L) signals or (n, C, H, W) images (and its (n,) integer labels
        when the store has them)."""
        if self._group is None:
            raise RuntimeError("StoreWriter.append outside its `with` block")
        where = f"{self._loc.display} (rows {self._n}..)"
        batch = _as_signals(signals, where=where)
        if batch.shape[1:] != (self.n_channels, *self.spatial_shape):
            raise StoreError(
                f"{where}: batch shape {batch.shape[1:]} != store (C, {_axes(self.spatial_shape)}) = "
                f"{(self.n_channels, *self.spatial_shape)}"
            )
        check_finite(batch, where=where)
        n0, n1 = self._n, self._n + len(batch)
        sig = self._group["signals"]
        assert isinstance(sig, zarr.Array)
        sig.resize((n1, self.n_channels, *self.spatial_shape))
        sig[n0:n1] = batch
        self._append_labels(labels, n0, n1, where=where)
        self._stats.update(batch)
        self._n = n1

    def _append_labels(self, labels: np.ndarray | None, n0: int, n1: int, *, where: str) -> None:
        if (labels is None) == self._with_labels:
            want = "needs labels (with_labels=True)" if self._with_labels else "has no labels"
            raise StoreError(f"{where}: this store {want}; pass labels consistently")
        if labels is None:
            return
        lab = np.asarray(labels)
        if lab.shape != (n1 - n0,) or lab.dtype.kind not in "iub":
            raise StoreError(
                f"{where}: labels must be ({n1 - n0},) integers, got {lab.shape} {lab.dtype}"
            )
        arr = self._group["labels"]  # type: ignore[index]
        assert isinstance(arr, zarr.Array)
        arr.resize((n1,))
        arr[n0:n1] = lab.astype(np.int64)

    def _finish(self) -> None:
        assert self._group is not None
        if self._n == 0:
            raise StoreError(f"{self._loc.display}: no signals were written (empty input)")
        std = self._stats.std()
        flat = np.flatnonzero(~(std > 0))
        if flat.size:
            names = [self._meta["channel_names"][i] for i in flat]
            raise StoreError(
                f"{self._loc.display}: channels {flat.tolist()} {names} are constant "
                "(std 0) so normalisation would divide by zero; drop those channels"
            )
        self._group.attrs.update(
            {
                _MARKER: FORMAT_VERSION,
                "sampling_rate": self.sampling_rate,
                "n_samples": self._n,
                "norm_mean": _jsonable(self._stats.mean),
                "norm_std": _jsonable(std),
                **self._meta,
            }
        )
        with warnings.catch_warnings():  # consolidated metadata is a zarr-python v3 extension
            warnings.simplefilter("ignore", category=UserWarning)
            zarr.consolidate_metadata(self._group.store)


def _axes(spatial: Sequence[int]) -> str:
    return "L" if len(spatial) == 1 else "H, W"


def write_store(
    path: PathLike,
    signals: np.ndarray,
    *,
    sampling_rate: float,
    labels: np.ndarray | None = None,
    units: str = "a.u.",
    channel_names: Sequence[str] | None = None,
    attrs: Mapping[str, Any] | None = None,
    chunk_samples: int | None = None,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> SignalStore:
    """Write (N, C, L) signals or (N, C, H, W) images (and optional (N,) labels) as a sigdiff
    store, atomically."""
    arr = _as_signals(signals, where=os.fspath(path))
    writer = StoreWriter(
        path,
        n_channels=arr.shape[1],
        spatial_shape=arr.shape[2:],
        sampling_rate=sampling_rate,
        units=units,
        channel_names=channel_names,
        attrs=attrs,
        chunk_samples=chunk_samples,
        with_labels=labels is not None,
        overwrite=overwrite,
        storage_options=storage_options,
    )
    with writer:
        writer.append(arr, labels=labels)
    return open_store(path, storage_options=storage_options)


def write_image_store(
    path: PathLike,
    images: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    units: str = "a.u.",
    channel_names: Sequence[str] | None = None,
    attrs: Mapping[str, Any] | None = None,
    chunk_samples: int | None = None,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> SignalStore:
    """Write (N, C, H, W) images as a store with dims (sample, channel, height, width)."""
    arr = np.asarray(images)
    if arr.ndim != 4:
        raise StoreError(
            f"{os.fspath(path)}: images must have shape (N, C, H, W), got {arr.shape}; "
            "add a channel axis with x[:, None] for grayscale (N, H, W)"
        )
    return write_store(path, arr, sampling_rate=PIXEL_RATE, labels=labels, units=units,
                       channel_names=channel_names, attrs=attrs, chunk_samples=chunk_samples,
                       overwrite=overwrite, storage_options=storage_options)


# --------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class SignalStore:
    """An opened store: lazy `signals` (N, C, L) or images (N, C, H, W) plus metadata.

    Build it with `open_store`. Rank-agnostic code reads `spatial_shape` and `kind`; `length` is
    the signal length and raises for an image store.
    """

    path: str
    signals: zarr.Array
    labels: np.ndarray | None
    sampling_rate: float
    attrs: dict[str, Any] = field(repr=False)

    @property
    def n_samples(self) -> int:
        return int(self.signals.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.signals.shape[1])

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """(L,) for signals, (H, W) for images."""
        return tuple(int(n) for n in self.signals.shape[2:])

    @property
    def kind(self) -> str:
        """"signal" or "image"."""
        return KINDS[len(self.spatial_shape)]

    @property
    def length(self) -> int:
        if self.kind != "signal":
            raise StoreError(f"{self.path}: an image store {self.spatial_shape} has no signal "
                             "length; use spatial_shape")
        return int(self.signals.shape[2])

    @property
    def norm_mean(self) -> np.ndarray:
        return np.asarray(self.attrs["norm_mean"], dtype=np.float64)

    @property
    def norm_std(self) -> np.ndarray:
        return np.asarray(self.attrs["norm_std"], dtype=np.float64)

    @property
    def split(self) -> dict[str, Any] | None:
        """The split record written by `split_store` (role, source, seed, ...), or None."""
        return self.attrs.get("split")

    @property
    def chunk_samples(self) -> int:
        return int(self.signals.chunks[0])

    def read(self, indices: Sequence[int] | np.ndarray | slice | None = None) -> np.ndarray:
        """Signals as float32 (n, C, L) or (n, C, H, W); `indices` in any order, repeats allowed."""
        if indices is None:
            return np.asarray(self.signals[:], dtype=np.float32)
        if isinstance(indices, slice):
            return np.asarray(self.signals[indices], dtype=np.float32)
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + self.n_samples, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_samples):
            raise IndexError(f"{self.path}: index out of range for {self.n_samples} samples")
        uniq, inverse = np.unique(idx, return_inverse=True)
        if uniq.size == 0:
            return np.empty((0, self.n_channels, *self.spatial_shape), np.float32)
        rest = (slice(None),) * (self.signals.ndim - 1)
        block = self.signals.get_orthogonal_selection((uniq, *rest))
        return np.asarray(block, dtype=np.float32)[inverse]


def open_store(path: PathLike, *, storage_options: Mapping[str, Any] | None = None) -> SignalStore:
    """Open a sigdiff store by path or fsspec URL (`file://`, `memory://`, `s3://`, ...)."""
    loc = _Location.parse(path, storage_options)
    hint = "create one with `sigdiff data import`/`make` or sigdiff.data.write_store"
    try:
        group = zarr.open_group(loc.store(read_only=True), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError) as err:
        raise StoreError(
            f"{loc.display}: not a sigdiff store (no zarr group: {err}); {hint}"
        ) from err
    attrs = dict(group.attrs)
    if _MARKER not in attrs or "signals" not in group:
        raise StoreError(
            f"{loc.display}: not a sigdiff store (zarr group without "
            f"'{_MARKER}' attribute or 'signals' array); {hint}"
        )
    missing = [k for k in _REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise StoreError(f"{loc.display}: damaged sigdiff store (attrs lack {missing}); "
                         f"re-create it: {hint}")
    signals = group["signals"]
    if not isinstance(signals, zarr.Array):
        raise StoreError(f"{loc.display}: damaged sigdiff store ('signals' is not an array); "
                         f"re-create it: {hint}")
    if signals.ndim - 2 not in DIMS:
        raise StoreError(f"{loc.display}: 'signals' has {signals.ndim} dims; a sigdiff store holds "
                         "(N, C, L) signals or (N, C, H, W) images")
    labels = None
    if "labels" in group:
        arr = group["labels"]
        assert isinstance(arr, zarr.Array)
        labels = np.asarray(arr[:], dtype=np.int64)
    return SignalStore(
        path=loc.display,
        signals=signals,
        labels=labels,
        sampling_rate=float(attrs["sampling_rate"]),  # type: ignore[arg-type]
        attrs=attrs,
    )


def read_store(
    path: PathLike, *, storage_options: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """All signals as float32 (N, C, L) or (N, C, H, W) plus the store's attrs."""
    store = open_store(path, storage_options=storage_options)
    return store.read(), dict(store.attrs)


# --------------------------------------------------------------------------------------------
# splitting


def _stratified_holdout(labels: np.ndarray, holdout: float, rng: np.random.Generator) -> np.ndarray:
    """Holdout indices, per-class counts by largest remainder so the total is round(holdout·N)."""
    classes, counts = np.unique(labels, return_counts=True)
    quota = holdout * counts
    take = np.floor(quota).astype(np.int64)
    short = round(holdout * len(labels)) - int(take.sum())
    order = np.lexsort((rng.random(len(classes)), -(quota - take)))  # largest remainder first
    take[order[:short]] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picked))


def split_store(
    path: PathLike,
    *,
    holdout: float,
    seed: int,
    out_train: PathLike,
    out_holdout: PathLike,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[SignalStore, SignalStore]:
    """Split a store into train/holdout stores (stratified by labels when present).

    Each output records `attrs["split"]` = {role, source, seed, holdout, stratified} and an
    int64 array `source_index` (sample,) giving each row's index in the source store.
    """
    src = open_store(path, storage_options=storage_options)
    if not 0 < holdout < 1:
        raise StoreError(f"{src.path}: holdout must be a fraction in (0, 1), got {holdout}")
    rng = np.random.default_rng(seed)
    n = src.n_samples
    if src.labels is not None:
        hold = _stratified_holdout(src.labels, holdout, rng)
    else:
        hold = np.sort(rng.permutation(n)[: round(holdout * n)])
    train = np.setdiff1d(np.arange(n), hold)
    if hold.size == 0 or train.size == 0:
        raise StoreError(f"{src.path}: holdout {holdout} of {n} samples leaves an empty side")
    record = {
        "source": src.path,
        "seed": int(seed),
        "holdout": float(holdout),
        "stratified": src.labels is not None,
    }
    locs = _check_outputs(path, {"train": out_train, "holdout": out_holdout},
                          overwrite=overwrite, storage_options=storage_options)
    jobs = (("train", train, out_train), ("holdout", hold, out_holdout))
    with contextlib.ExitStack() as held:
        for loc in locs:  # both outputs are ours before either is written
            loc.hold_lock(held)
        existed = [loc.fs.exists(loc.path) for loc in locs]
        try:
            for role, rows, out in jobs:
                split = {**record, "role": role, "n_samples": int(rows.size)}
                _copy_rows(
                    src, rows, out, split=split, overwrite=overwrite,
                    storage_options=storage_options,
                )
        except BaseException:
            for loc, was_there in zip(locs, existed):  # no half split: drop a new train store
                if not was_there:
                    _discard(loc, loc.path)
            raise
    outs = [open_store(out, storage_options=storage_options) for _, _, out in jobs]
    return outs[0], outs[1]


def _check_outputs(
    source: PathLike,
    outs: Mapping[str, PathLike],
    *,
    overwrite: bool,
    storage_options: Mapping[str, Any] | None,
) -> list[_Location]:
    """Refuse outputs that coincide with each other or with the source, or that exist without
    `overwrite`, before anything is written."""
    src = _Location.parse(source, storage_options)
    locs = {role: _Location.parse(out, storage_options) for role, out in outs.items()}
    seen: dict[str, str] = {}
    for role, loc in locs.items():
        key = loc.key
        if key == src.key:
            raise StoreError(f"{loc.display}: the {role} output is the input store; choose "
                             f"another --out-{role} path")
        if key in seen:
            raise StoreError(f"{loc.display}: the {seen[key]} and {role} outputs are the same "
                             f"store; give --out-{seen[key]} and --out-{role} different paths")
        seen[key] = role
        if loc.fs.exists(loc.path) and not overwrite:
            raise StoreError(f"{loc.display}: already exists; pass overwrite=True (--overwrite)")
    return list(locs.values())


def _copy_rows(
    src: SignalStore,
    rows: np.ndarray,
    out: PathLike,
    *,
    split: dict[str, Any],
    overwrite: bool,
    storage_options: Mapping[str, Any] | None,
) -> None:
    """Stream `rows` of `src` into a new store, one source chunk's worth at a time."""
    keep = {
        k: v
        for k, v in src.attrs.items()
        if k
        not in {
            _MARKER,
            "sampling_rate",
            "n_samples",
            "norm_mean",
            "norm_std",
            "units",
            "channel_names",
            "split",
        }
    }
    writer = StoreWriter(
        out,
        n_channels=src.n_channels,
        spatial_shape=src.spatial_shape,
        sampling_rate=src.sampling_rate,
        units=src.attrs.get("units", "a.u."),
        channel_names=src.attrs.get("channel_names"),
        attrs={**keep, "split": split},
        chunk_samples=src.chunk_samples,
        with_labels=src.labels is not None,
        overwrite=overwrite,
        storage_options=storage_options,
    )
    step = src.chunk_samples
    with writer:
        for i in range(0, rows.size, step):
            part = rows[i : i + step]
            labels = None if src.labels is None else src.labels[part]
            writer.append(src.read(part), labels=labels)
        group = writer._group
        assert group is not None
        group.create_array("source_index", data=rows.astype(np.int64), dimension_names=("sample",))
