"""Reading a store: `SignalStore` (lazy, validated on open), `open_store`, `read_store`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from sigdiff.data.store._format import _MARKER, _REQUIRED_ATTRS, DIMS, KINDS, PathLike, StoreError
from sigdiff.data.store._location import _Location


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
