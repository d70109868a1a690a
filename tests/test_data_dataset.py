"""Torch datasets: exact store → xarray → batch round trip, normalisation inverse, crops,
deterministic chunk-blocked shuffling, rank sharding and DataLoader workers; the training loop's
step batches are the same items (one pipeline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch.utils.data import DataLoader

from sigdiff.data.dataset import (
    ChunkedSignalDataset,
    Normalizer,
    SignalDataset,
    StepBatches,
    epoch_order,
)
from sigdiff.data.importers import import_file
from sigdiff.data.store import SignalStore, write_store


@pytest.fixture
def store(tmp_path: Path) -> SignalStore:
    x = np.random.default_rng(0).normal(size=(103, 2, 32)) * [[3.0], [0.5]] + [[1.0], [-2.0]]
    return write_store(
        tmp_path / "s.zarr",
        x.astype(np.float32),
        sampling_rate=50.0,
        labels=np.arange(103),
        chunk_samples=10,
    )


def test_import_store_xarray_batch_denormalised_round_trip(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(20, 1, 16)).astype(np.float32) * 4 + 7
    np.save(tmp_path / "x.npy", x)
    store = import_file(tmp_path / "x.npy", tmp_path / "x.zarr", sampling_rate=10.0)
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "x.zarr")["signals"].values, x)
    raw = next(iter(DataLoader(SignalDataset(store, normalize=False), batch_size=20)))["x"]
    np.testing.assert_array_equal(raw.numpy(), x)  # exact without normalisation
    ds = SignalDataset(store)
    batch = next(iter(DataLoader(ds, batch_size=20)))["x"]  # (B, C, L)
    assert batch.dtype == torch.float32
    assert abs(float(batch.mean())) < 1e-5 and float(batch.std()) == pytest.approx(1.0, rel=0.02)
    assert ds.normalizer is not None
    back = ds.normalizer.denormalize(batch).numpy()
    np.testing.assert_allclose(back, x, rtol=0, atol=4 * np.spacing(np.float32(np.abs(x).max())))


def test_normalizer_inverse_broadcasts_over_batch() -> None:
    norm = Normalizer(
        torch.tensor([1.0, -2.0], dtype=torch.float64),
        torch.tensor([3.0, 0.5], dtype=torch.float64),
    )
    x = torch.randn(4, 2, 8, dtype=torch.float64)
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x)
    torch.testing.assert_close(norm.normalize(x)[:, 1], (x[:, 1] + 2.0) / 0.5)


def test_crops_deterministic_and_contiguous(store: SignalStore) -> None:
    ds = SignalDataset(store, crop=8, normalize=False, seed=3)
    full = store.read([5])[0]
    a = ds[5]["x"].numpy()
    starts = [s for s in range(25) if np.array_equal(full[:, s : s + 8], a)]
    assert len(starts) == 1 and int(ds[5]["label"]) == 5
    np.testing.assert_array_equal(SignalDataset(store, crop=8, normalize=False, seed=3)[5]["x"], a)
    epochs = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        epochs.add(ds[5]["x"].numpy().tobytes())
    assert len(epochs) > 1


def test_epoch_order_is_chunk_blocked_permutation() -> None:
    order = epoch_order(103, chunk=10, buffer_chunks=3, seed=0, epoch=0)
    np.testing.assert_array_equal(np.sort(order), np.arange(103))
    position = np.argsort(order)  # where each sample appears
    for c in range(11):  # a chunk's samples all lie in one buffer of at most 3 chunks = 30 rows
        where = position[c * 10 : (c + 1) * 10]
        assert where.max() - where.min() < 30
    np.testing.assert_array_equal(
        order, epoch_order(103, chunk=10, buffer_chunks=3, seed=0, epoch=0)
    )
    assert not np.array_equal(order, epoch_order(103, chunk=10, buffer_chunks=3, seed=0, epoch=1))


def test_ranks_disjoint_and_equal(store: SignalStore) -> None:
    orders = [
        ChunkedSignalDataset(store, rank=r, world_size=3, seed=1).rank_order() for r in range(3)
    ]
    assert {len(o) for o in orders} == {34}
    allidx = np.concatenate(orders)
    assert len(np.unique(allidx)) == 102


def test_chunked_with_workers_covers_epoch_once(store: SignalStore) -> None:
    ds = ChunkedSignalDataset(store, normalize=False, seed=2, buffer_chunks=2)
    loader = DataLoader(ds, batch_size=16, num_workers=2)
    labels = torch.cat([b["label"] for b in loader]).numpy()
    np.testing.assert_array_equal(np.sort(labels), np.arange(103))
    single = torch.cat([b["x"] for b in DataLoader(ds, batch_size=16)])
    ref = store.read(ds.rank_order())
    np.testing.assert_array_equal(single.numpy(), ref)  # single worker yields rank_order exactly


def test_chunked_items_match_map_style(store: SignalStore) -> None:
    chunked = ChunkedSignalDataset(store, crop=12, seed=5, shuffle=False)
    mapped = SignalDataset(store, crop=12, seed=5)
    for i, item in zip(range(15), chunked):
        torch.testing.assert_close(item["x"], mapped[i]["x"])


def test_step_batches_are_the_datasets_items(store: SignalStore) -> None:
    """Training's batches are SignalDataset items (same normalisation, same crop windows) in the
    order of the epoch permutations; held in memory or streamed from the store alike."""
    rows = np.array([3, 7, 11, 20, 21, 40, 41, 42, 77, 90, 101])  # a train_subset
    kwargs = {"batch_size": 4, "seed": 9, "indices": rows, "crop": 12}
    batches = StepBatches(store, **kwargs)
    streamed = StepBatches(store, **kwargs, memory_limit=0)
    assert streamed._signals is None and batches._signals is not None
    items = SignalDataset(store, crop=12, seed=9, indices=rows)
    seen: dict[int, list[int]] = {}
    for step in range(9):  # 36 draws: three epochs of 11 and a batch straddling two of them
        x, y = batches.batch(step)
        epochs, idx = batches.positions(step)
        assert x.shape == (4, 2, 12) and y is not None
        for row, label, e, i in zip(x, y, epochs.tolist(), idx.tolist()):
            items.set_epoch(e)
            item = items[i]
            torch.testing.assert_close(row, item["x"], rtol=0, atol=0)
            assert batches.classes[int(label)] == int(item["label"]) == rows[i]
            seen.setdefault(e, []).append(i)
        xs, ys = streamed.batch(step)
        torch.testing.assert_close(xs, x, rtol=0, atol=0)
        assert ys is not None and torch.equal(ys, y)
        for source in (batches, streamed):  # a data-parallel rank's slice reads only its items
            for rank in range(3):
                xr, yr = source.batch(step, part=slice(rank, None, 3))
                torch.testing.assert_close(xr, x[rank::3], rtol=0, atol=0)
                assert yr is not None and torch.equal(yr, y[rank::3])
    for e in (0, 1):  # every record exactly once per epoch
        assert sorted(seen[e]) == list(range(len(rows)))
    assert batches.classes == sorted(rows.tolist())


def test_step_batches_depend_on_seed_and_step_only(store: SignalStore) -> None:
    a = StepBatches(store, batch_size=8, seed=1)
    b = StepBatches(store, batch_size=8, seed=1)
    for step in (5, 0, 12, 5):  # any order: no iterator state (exact resume)
        torch.testing.assert_close(a.batch(step)[0], b.batch(step)[0], rtol=0, atol=0)
    assert not torch.equal(a.batch(0)[0], StepBatches(store, batch_size=8, seed=2).batch(0)[0])
    full = a.normalizer.normalize(torch.from_numpy(store.read(np.arange(103))))
    x, _ = a.batch(3)
    torch.testing.assert_close(x, full[a.positions(3)[1]], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"crop 40 must be in 1\.\.32"):
        StepBatches(store, batch_size=8, crop=40)
    with pytest.raises(ValueError, match="no records"):
        StepBatches(store, batch_size=8, indices=np.array([], dtype=int))
