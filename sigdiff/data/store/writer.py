"""Writing a store: `StoreWriter` (incremental, atomic, running per-channel statistics) and the
one-call `write_store` / `write_image_store`."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import zarr

from sigdiff.data.store._format import (
    _MARKER,
    DIMS,
    FORMAT_VERSION,
    PIXEL_RATE,
    PathLike,
    StoreError,
    _as_signals,
    _auto_chunk,
    _jsonable,
    check_finite,
)
from sigdiff.data.store._location import _discard, _discard_stale, _Location, _publish
from sigdiff.data.store.reader import SignalStore, open_store


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
                # a rename on local disks; on object storage (no rename) a copy whose root
                # zarr.json goes last, so no reader ever opens a half-published store
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
