"""Torch datasets over a sigdiff store: normalised (C, L) items, crops, labels, rank sharding.

- `SignalDataset`: map-style, reads the store once into memory; for stores that fit in RAM.
- `ChunkedSignalDataset`: iterable, chunk-aware; memory bounded by `buffer_chunks` chunks, so a
  store larger than memory trains without loading it whole. Shuffles chunk order and samples
  within a buffer of chunks (the shard-then-buffer shuffle of WebDataset-style loaders), with a
  deterministic order per (seed, epoch), equal sample counts on every rank, and DataLoader
  workers splitting each rank's blocks.

Items are dicts: `{"x": (C, L) float32, "label": () int64}`; "label" is present exactly when the
store has labels. Normalisation uses the store's per-channel mean/std; `Normalizer.denormalize`
maps generated samples back to data units.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from sigdiff.data.store import PathLike, SignalStore, open_store

__all__ = ["ChunkedSignalDataset", "Normalizer", "SignalDataset", "epoch_order"]

Item = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Normalizer:
    """Per-channel affine normalisation `(x − mean) / std` and its inverse, for (..., C, *spatial)."""

    mean: torch.Tensor  # (C,)
    std: torch.Tensor  # (C,)
    spatial_rank: int = 1  # 1 for signals (C, L), 2 for images (C, H, W)

    @classmethod
    def from_store(cls, store: SignalStore) -> Normalizer:
        return cls(
            torch.as_tensor(store.norm_mean, dtype=torch.float64),
            torch.as_tensor(store.norm_std, dtype=torch.float64),
            len(store.spatial_shape),
        )

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # (C,) -> (C, 1, ...): broadcasts over (..., C, *spatial) for signals and images alike
        shape = (len(self.mean),) + (1,) * self.spatial_rank
        return self.mean.to(x.device).reshape(shape), self.std.to(x.device).reshape(shape)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return ((x.double() - mean) / std).to(x.dtype)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return (x.double() * std + mean).to(x.dtype)


@dataclass(frozen=True)
class _ItemMaker:
    """Turns raw rows into items: random crop (seeded by (seed, epoch, index)), normalise, label."""

    normalizer: Normalizer | None
    crop: int | None
    seed: int

    def __call__(self, row: np.ndarray, label: int | None, *, index: int, epoch: int) -> Item:
        if self.crop is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            start = int(rng.integers(0, row.shape[-1] - self.crop + 1))
            row = row[:, start : start + self.crop]
        x = torch.from_numpy(np.ascontiguousarray(row, dtype=np.float32))  # (C, L)
        item = {"x": self.normalizer.normalize(x) if self.normalizer else x}
        if label is not None:
            item["label"] = torch.tensor(label, dtype=torch.int64)
        return item


def _maker(store: SignalStore, *, crop: int | None, normalize: bool, seed: int) -> _ItemMaker:
    if crop is not None and not 0 < crop <= store.length:
        raise ValueError(f"{store.path}: crop {crop} must be in 1..{store.length}")
    return _ItemMaker(Normalizer.from_store(store) if normalize else None, crop, seed)


def _as_store(store: SignalStore | PathLike) -> SignalStore:
    return store if isinstance(store, SignalStore) else open_store(store)


class SignalDataset(Dataset[Item]):
    """Map-style dataset holding the store (or `indices` of it) in memory."""

    def __init__(
        self,
        store: SignalStore | PathLike,
        *,
        crop: int | None = None,
        normalize: bool = True,
        seed: int = 0,
        indices: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        self.store = _as_store(store)
        self.normalizer = Normalizer.from_store(self.store) if normalize else None
        self._make = _maker(self.store, crop=crop, normalize=normalize, seed=seed)
        idx = np.arange(self.store.n_samples) if indices is None else np.asarray(indices)
        self._signals = self.store.read(idx)  # (N, C, L)
        self._labels = None if self.store.labels is None else self.store.labels[idx]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Crops are drawn from (seed, epoch, index): call once per epoch for fresh crops."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._signals)

    def __getitem__(self, index: int) -> Item:
        label = None if self._labels is None else int(self._labels[index])
        return self._make(self._signals[index], label, index=index, epoch=self.epoch)


def epoch_order(
    n_samples: int, *, chunk: int, buffer_chunks: int, seed: int, epoch: int
) -> np.ndarray:
    """Chunk-blocked shuffle of range(n): chunks in random order, grouped `buffer_chunks` at a
    time, samples shuffled within each group; deterministic in (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    chunks = rng.permutation(-(-n_samples // chunk))
    groups = [chunks[i : i + buffer_chunks] for i in range(0, len(chunks), buffer_chunks)]
    order = [
        rng.permutation(
            np.concatenate([np.arange(c * chunk, min((c + 1) * chunk, n_samples)) for c in g])
        )
        for g in groups
    ]
    return np.concatenate(order)


class ChunkedSignalDataset(IterableDataset[Item]):
    """Iterable, chunk-aware dataset for stores larger than memory (see module docstring)."""

    def __init__(
        self,
        store: SignalStore | PathLike,
        *,
        crop: int | None = None,
        normalize: bool = True,
        seed: int = 0,
        shuffle: bool = True,
        buffer_chunks: int = 4,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.store = _as_store(store)
        self.normalizer = Normalizer.from_store(self.store) if normalize else None
        self._make = _maker(self.store, crop=crop, normalize=normalize, seed=seed)
        self.seed, self.shuffle, self.buffer_chunks = seed, shuffle, buffer_chunks
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """Samples this rank yields per epoch (all ranks equal; the remainder is dropped)."""
        return self.store.n_samples // self.world_size

    def rank_order(self) -> np.ndarray:
        """This rank's sample indices for the current epoch, in yield order (single worker)."""
        n = self.store.n_samples
        order = (
            epoch_order(
                n,
                chunk=self.store.chunk_samples,
                buffer_chunks=self.buffer_chunks,
                seed=self.seed,
                epoch=self.epoch,
            )
            if self.shuffle
            else np.arange(n)
        )
        return order[self.rank : len(self) * self.world_size : self.world_size]

    def __iter__(self) -> Iterator[Item]:
        info = get_worker_info()
        worker, n_workers = (0, 1) if info is None else (info.id, info.num_workers)
        seq = self.rank_order()
        block = max(1, self.store.chunk_samples * self.buffer_chunks // self.world_size)
        for start in range(worker * block, len(seq), n_workers * block):
            yield from self._read_block(seq[start : start + block])

    def _read_block(self, indices: np.ndarray) -> Iterator[Item]:
        rows = self.store.read(indices)  # (n, C, L): touches at most buffer_chunks chunks
        labels = self.store.labels
        for i, row in zip(indices.tolist(), rows):
            label = None if labels is None else int(labels[i])
            yield self._make(row, label, index=i, epoch=self.epoch)
