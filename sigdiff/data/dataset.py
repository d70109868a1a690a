"""The data pipeline: normalised (C, L) items, crops, labels, rank sharding, over a sigdiff store.

One normalisation (`Normalizer`) and one crop rule (`crop_start`: a window drawn from
(seed, epoch, index)) serve every consumer:

- `StepBatches`: what `sigdiff.training` trains on: the batch of optimizer step s is a pure
  function of (seed, s), so a resumed run sees exactly the batches it would have seen and every
  rank of a data-parallel run draws the same global batch. Its rows are the items of
  `SignalDataset(store, indices=records, crop=crop, seed=seed)` at the batch's epoch.
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

from sigdiff._utils import step_generator
from sigdiff.data.store import PathLike, SignalStore, open_store

__all__ = ["ChunkedSignalDataset", "Normalizer", "SignalDataset", "StepBatches", "crop_start",
           "epoch_order"]

Item = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Normalizer:
    """Per-channel affine normalisation `(x − mean) / std` and its inverse, for (..., C, *spatial).

    `normalize` computes in the data's dtype (float32 records: float32 statistics, the arithmetic
    training has always used); `denormalize` computes in float64 and returns the input's dtype.
    """

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
        return (x - mean.to(x.dtype)) / std.to(x.dtype)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return (x.double() * std + mean).to(x.dtype)


def crop_start(seed: int, epoch: int, index: int, length: int, crop: int) -> int:
    """First sample of item ``index``'s crop window in ``epoch``: uniform on 0..length − crop,
    drawn from (seed, epoch, index), so any reader (map-style, streamed, step batches, any worker
    split) cuts the same window."""
    rng = np.random.default_rng([seed, epoch, index])
    return int(rng.integers(0, length - crop + 1))


@dataclass(frozen=True)
class _ItemMaker:
    """Turns raw rows into items: random crop (seeded by (seed, epoch, index)), normalise, label."""

    normalizer: Normalizer | None
    crop: int | None
    seed: int

    def __call__(self, row: np.ndarray, label: int | None, *, index: int, epoch: int) -> Item:
        if self.crop is not None:
            start = crop_start(self.seed, epoch, index, row.shape[-1], self.crop)
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


class StepBatches:
    """Step-indexed batches of ``indices`` (store rows; default all) for a training loop.

    Epoch e visits the records in a permutation drawn from (seed, e); step s takes positions
    s·B … s·B + B − 1 of the epochs laid end to end (a batch may straddle two epochs). Rows are
    normalised with the store's statistics and, with ``crop``, cut by `crop_start` at their epoch
    and position in ``indices``: the same items as `SignalDataset` with the same arguments.
    Labels come back as class indices into `classes` (the records' distinct labels, sorted), what
    a conditional network embeds. Records are held in memory, normalised, when they take at most
    ``memory_limit`` bytes; otherwise each batch is read from the store in store order (chunk
    friendly) and put back in batch order.
    """

    def __init__(
        self,
        store: SignalStore | PathLike,
        *,
        batch_size: int,
        seed: int = 0,
        indices: Sequence[int] | np.ndarray | None = None,
        crop: int | None = None,
        memory_limit: int = 4 * 2**30,
    ) -> None:
        self.store = _as_store(store)
        self.records = (np.arange(self.store.n_samples) if indices is None
                        else np.asarray(indices, dtype=np.int64))
        self.n = len(self.records)
        if self.n < 1:
            raise ValueError(f"{self.store.path}: no records to draw batches from")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size, self.seed, self.crop = batch_size, seed, crop
        self.normalizer = Normalizer.from_store(self.store)
        self._make = _maker(self.store, crop=crop, normalize=True, seed=seed)  # checks crop
        nbytes = self.n * self.store.n_channels * int(np.prod(self.store.spatial_shape)) * 4
        self._signals = (self.normalizer.normalize(torch.from_numpy(self.store.read(self.records)))
                         if nbytes <= memory_limit else None)
        raw = self.store.labels[self.records] if self.store.labels is not None else None
        self.classes: list[int] = sorted(int(v) for v in np.unique(raw)) if raw is not None else []
        lookup = {c: i for i, c in enumerate(self.classes)}
        self.labels = (torch.tensor([lookup[int(v)] for v in raw], dtype=torch.long)
                       if raw is not None else None)
        self._perm: tuple[int, torch.Tensor] | None = None

    def permutation(self, epoch: int) -> torch.Tensor:
        """The order of epoch ``epoch``: positions into ``indices``."""
        if self._perm is None or self._perm[0] != epoch:
            g = step_generator(self.seed, epoch, stream=1)
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return self._perm[1]

    def positions(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(epoch, position into ``indices``) of every item of step ``step``'s batch: (B,), (B,)."""
        pos = step * self.batch_size + torch.arange(self.batch_size)
        epochs, offsets = pos // self.n, pos % self.n
        idx = torch.empty(self.batch_size, dtype=torch.long)
        for e in torch.unique(epochs).tolist():  # at most two epochs when B ≤ n
            here = epochs == e
            idx[here] = self.permutation(int(e))[offsets[here]]
        return epochs, idx

    def batch(self, step: int, part: slice | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Step ``step``'s batch: normalised records (B, C, L) or (B, C, H, W), and class indices
        (B,) or None. ``part`` selects items of it (a data-parallel rank's ``[rank::world]``):
        only those are read, and they equal the same items of the whole batch."""
        epochs, idx = self.positions(step)
        if part is not None:
            epochs, idx = epochs[part], idx[part]
        if self._signals is not None:
            x = self._signals[idx]
        else:
            order = torch.argsort(idx)  # read in store order (chunk-friendly), then restore
            rows = torch.from_numpy(self.store.read(self.records[idx[order].numpy()]))
            x = self.normalizer.normalize(rows)[torch.argsort(order)]
        if self.crop is not None:
            crop, windows = self.crop, []
            for row, epoch, index in zip(x, epochs, idx):
                start = crop_start(self.seed, int(epoch), int(index), row.shape[-1], crop)
                windows.append(row[:, start : start + crop])
            x = torch.stack(windows)
        return x, (self.labels[idx] if self.labels is not None else None)


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
