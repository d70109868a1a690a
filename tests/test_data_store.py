"""Contract tests for the sigdiff store: exact round trips, xarray layout, atomicity, errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigdiff.data.store import (
    StoreError,
    StoreWriter,
    open_store,
    read_store,
    split_store,
    write_store,
)


def _signals(n: int = 40, c: int = 2, length: int = 33, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, c, length)).astype(np.float32)


class TestRoundTrip:
    def test_write_open_read_exact(self, tmp_path: Path) -> None:
        x, y = _signals(), np.arange(40) % 3
        store = write_store(
            tmp_path / "s.zarr",
            x,
            sampling_rate=250.0,
            labels=y,
            channel_names=["ii", "v1"],
            units="mV",
            chunk_samples=7,
        )
        assert (store.n_samples, store.n_channels, store.length) == (40, 2, 33)
        np.testing.assert_array_equal(store.read(), x)
        np.testing.assert_array_equal(store.labels, y)
        np.testing.assert_array_equal(store.read([9, 2, 9, -1]), x[[9, 2, 9, -1]])
        assert store.sampling_rate == 250.0 and store.attrs["units"] == "mV"
        assert store.chunk_samples == 7

    def test_norm_stats_match_numpy(self, tmp_path: Path) -> None:
        x = _signals(n=100) * np.array([1.0, 5.0], np.float32)[:, None] + 3
        store = write_store(tmp_path / "s.zarr", x, sampling_rate=1.0, chunk_samples=9)
        np.testing.assert_allclose(
            store.norm_mean, x.astype(np.float64).mean(axis=(0, 2)), rtol=1e-12
        )
        np.testing.assert_allclose(
            store.norm_std, x.astype(np.float64).std(axis=(0, 2)), rtol=1e-10
        )

    def test_xarray_opens_with_named_dims_and_time(self, tmp_path: Path) -> None:
        x = _signals()
        write_store(
            tmp_path / "s.zarr",
            x,
            sampling_rate=100.0,
            labels=np.zeros(40, np.int64),
            channel_names=["a", "b"],
        )
        ds = xr.open_zarr(tmp_path / "s.zarr")
        assert ds["signals"].dims == ("sample", "channel", "time")
        np.testing.assert_allclose(ds["time"].values, np.arange(33) / 100.0)
        assert list(ds["channel"].values) == ["a", "b"]
        np.testing.assert_array_equal(ds["signals"].values, x)
        assert ds["labels"].dims == ("sample",) and ds.attrs["sampling_rate"] == 100.0

    def test_read_store_and_urls(self, tmp_path: Path) -> None:
        x = _signals()
        write_store(tmp_path / "s.zarr", x, sampling_rate=8.0)
        arr, attrs = read_store(f"file://{tmp_path / 's.zarr'}")
        np.testing.assert_array_equal(arr, x)
        assert attrs["sampling_rate"] == 8.0
        url = f"memory://sigdiff-test-{uuid.uuid4().hex}/s.zarr"
        write_store(url, x, sampling_rate=8.0)
        np.testing.assert_array_equal(open_store(url).read(), x)

    def test_streaming_writer_equals_one_shot(self, tmp_path: Path) -> None:
        x, y = _signals(n=50), np.arange(50)
        with StoreWriter(
            tmp_path / "w.zarr",
            n_channels=2,
            length=33,
            sampling_rate=4.0,
            with_labels=True,
            chunk_samples=8,
        ) as w:
            for i in range(0, 50, 13):
                w.append(x[i : i + 13], labels=y[i : i + 13])
        one = write_store(tmp_path / "o.zarr", x, sampling_rate=4.0, labels=y)
        streamed = open_store(tmp_path / "w.zarr")
        np.testing.assert_array_equal(streamed.read(), x)
        np.testing.assert_array_equal(streamed.labels, y)
        np.testing.assert_allclose(streamed.norm_std, one.norm_std, rtol=1e-12)


class TestAtomicAndErrors:
    def test_failure_leaves_nothing(self, tmp_path: Path) -> None:
        target = tmp_path / "s.zarr"
        with (
            pytest.raises(RuntimeError),
            StoreWriter(target, n_channels=1, length=4, sampling_rate=1.0) as w,
        ):
            w.append(np.ones((3, 1, 4)) * np.arange(4))
            raise RuntimeError("interrupted")
        assert list(tmp_path.iterdir()) == []

    def test_refuses_overwrite(self, tmp_path: Path) -> None:
        x = _signals()
        write_store(tmp_path / "s.zarr", x, sampling_rate=1.0)
        with pytest.raises(StoreError, match="already exists"):
            write_store(tmp_path / "s.zarr", x, sampling_rate=1.0)
        write_store(tmp_path / "s.zarr", x[:5], sampling_rate=1.0, overwrite=True)
        assert open_store(tmp_path / "s.zarr").n_samples == 5
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]

    def test_nonfinite_reports_rows(self, tmp_path: Path) -> None:
        x = _signals()
        x[3, 1, 5] = np.nan
        x[7, 0, 0] = np.inf
        with pytest.raises(
            StoreError, match=r"2 NaN/Inf values in 2 rows \(row 3 channel 1, row 7"
        ):
            write_store(tmp_path / "s.zarr", x, sampling_rate=1.0)
        assert not (tmp_path / "s.zarr").exists()

    def test_constant_channel(self, tmp_path: Path) -> None:
        x = _signals()
        x[:, 1] = 2.0
        with pytest.raises(StoreError, match=r"channels \[1\].*constant"):
            write_store(tmp_path / "s.zarr", x, sampling_rate=1.0)
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize("bad", [np.zeros((3, 4)), np.zeros((0, 1, 4)), np.array([["a"]])])
    def test_bad_shapes(self, tmp_path: Path, bad: np.ndarray) -> None:
        with pytest.raises(StoreError):
            write_store(tmp_path / "s.zarr", bad, sampling_rate=1.0)

    def test_not_a_store(self, tmp_path: Path) -> None:
        with pytest.raises(StoreError, match="not a sigdiff store"):
            open_store(tmp_path / "missing.zarr")
        import zarr

        zarr.open_group(tmp_path / "plain.zarr", mode="w")
        with pytest.raises(StoreError, match="not a sigdiff store"):
            open_store(tmp_path / "plain.zarr")


class TestSplit:
    def test_stratified_split_partitions_rows(self, tmp_path: Path) -> None:
        x = _signals(n=100)
        y = np.repeat([1, 2, 3, 4], [60, 25, 10, 5])
        src = tmp_path / "s.zarr"
        write_store(src, x, sampling_rate=1.0, labels=y, chunk_samples=16)
        tr, ho = split_store(
            src,
            holdout=0.2,
            seed=3,
            out_train=tmp_path / "tr.zarr",
            out_holdout=tmp_path / "ho.zarr",
        )
        assert (tr.n_samples, ho.n_samples) == (80, 20)
        np.testing.assert_array_equal(np.bincount(ho.labels), [0, 12, 5, 2, 1])
        tr_idx = xr.open_zarr(tmp_path / "tr.zarr")["source_index"].values
        ho_idx = xr.open_zarr(tmp_path / "ho.zarr")["source_index"].values
        np.testing.assert_array_equal(np.sort(np.concatenate([tr_idx, ho_idx])), np.arange(100))
        np.testing.assert_array_equal(ho.read(), x[ho_idx])
        np.testing.assert_array_equal(tr.labels, y[tr_idx])
        assert ho.split == {
            "source": str(src),
            "seed": 3,
            "holdout": 0.2,
            "stratified": True,
            "role": "holdout",
            "n_samples": 20,
        }

    def test_split_deterministic_by_seed(self, tmp_path: Path) -> None:
        write_store(tmp_path / "s.zarr", _signals(n=30), sampling_rate=1.0)
        runs = []
        for k in range(2):
            _, ho = split_store(
                tmp_path / "s.zarr",
                holdout=0.3,
                seed=1,
                out_train=tmp_path / f"t{k}",
                out_holdout=tmp_path / f"h{k}",
            )
            runs.append(ho.read())
        np.testing.assert_array_equal(runs[0], runs[1])


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 3), st.integers(2, 17)),
    chunk=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_round_trip_property(
    tmp_path: Path, shape: tuple[int, int, int], chunk: int, seed: int
) -> None:
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32) * 1e3
    target = tmp_path / f"p{uuid.uuid4().hex}.zarr"
    store = write_store(target, x, sampling_rate=3.0, chunk_samples=chunk)
    np.testing.assert_array_equal(store.read(), x)
    np.testing.assert_array_equal(xr.open_zarr(target)["signals"].values, x)


def test_time_coordinate_has_units(tmp_path: Path) -> None:
    write_store(tmp_path / "s.zarr", _signals(), sampling_rate=50.0)
    time = xr.open_zarr(tmp_path / "s.zarr")["time"]
    assert time.attrs["units"] == "s" and time.attrs["long_name"]
    assert time.dtype == np.float64  # "s" is not decoded as a timedelta


class TestSplitChecksFirst:
    """Every output is checked before any is written: a refused split leaves nothing."""

    @pytest.fixture
    def src(self, tmp_path: Path) -> Path:
        write_store(tmp_path / "s.zarr", _signals(n=20), sampling_rate=1.0)
        return tmp_path / "s.zarr"

    @pytest.mark.parametrize(
        ("train", "hold", "message"),
        [
            ("tr.zarr", "s.zarr", "the holdout output is the input store"),
            ("./s.zarr/", "ho.zarr", "the train output is the input store"),
            ("same.zarr", "./same.zarr", "the train and holdout outputs are the same store"),
            ("tr.zarr", "exists.zarr", "already exists"),
        ],
    )
    def test_refused_before_writing(
        self, src: Path, train: str, hold: str, message: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tmp = src.parent
        monkeypatch.chdir(tmp)
        write_store(tmp / "exists.zarr", _signals(n=3), sampling_rate=1.0)
        before = sorted(p.name for p in tmp.iterdir())
        with pytest.raises(StoreError, match=message):
            split_store(src, holdout=0.2, seed=0, out_train=train, out_holdout=hold)
        assert sorted(p.name for p in tmp.iterdir()) == before
        assert open_store(src).n_samples == 20

    def test_overwrite_replaces_both(self, src: Path) -> None:
        tmp = src.parent
        kw = {"holdout": 0.25, "seed": 0, "out_train": tmp / "t.zarr", "out_holdout": tmp / "h.zarr"}
        split_store(src, **kw)
        with pytest.raises(StoreError, match="already exists"):
            split_store(src, **kw)
        _, ho = split_store(src, overwrite=True, **kw)
        assert ho.n_samples == 5
        assert sorted(p.name for p in tmp.iterdir()) == ["h.zarr", "s.zarr", "t.zarr"]

    def test_failed_holdout_write_removes_the_new_train_store(
        self, src: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import sigdiff.data.store.split as store_mod

        real = store_mod._copy_rows
        calls = []

        def flaky(*args: object, **kwargs: object) -> None:
            calls.append(1)
            if len(calls) == 2:
                raise OSError("disk full")
            real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store_mod, "_copy_rows", flaky)
        with pytest.raises(OSError, match="disk full"):
            split_store(src, holdout=0.2, seed=0, out_train=src.parent / "t.zarr",
                        out_holdout=src.parent / "h.zarr")
        assert sorted(p.name for p in src.parent.iterdir()) == ["s.zarr"]


class TestWriterLockAndTemps:
    def _lock(self, target: Path, pid: int) -> Path:
        lock = Path(str(target) + ".lock")
        lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "token": "t"}))
        return lock

    def test_temp_name_holds_the_pid_and_the_lock_is_held(self, tmp_path: Path) -> None:
        with StoreWriter(tmp_path / "s.zarr", n_channels=1, length=4, sampling_rate=1.0) as w:
            names = sorted(p.name for p in tmp_path.iterdir())
            w.append(np.arange(8.0).reshape(2, 1, 4))
        assert names[0].startswith(f".s.zarr.tmp-{os.getpid()}-") and names[1] == "s.zarr.lock"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]

    def test_second_writer_is_refused_while_the_first_is_alive(self, tmp_path: Path) -> None:
        lock = self._lock(tmp_path / "s.zarr", os.getppid())  # a live process on this host
        with pytest.raises(StoreError, match=rf"s\.zarr is being written by process {os.getppid()}"
                           r"; wait for it or choose another output"):
            write_store(tmp_path / "s.zarr", _signals(), sampling_rate=1.0)
        assert sorted(p.name for p in tmp_path.iterdir()) == [lock.name]

    def test_stale_lock_is_taken_over(self, tmp_path: Path) -> None:
        self._lock(tmp_path / "s.zarr", _dead_pid())
        write_store(tmp_path / "s.zarr", _signals(), sampling_rate=1.0)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]

    def test_stale_temps_of_the_same_target_only_are_removed(self, tmp_path: Path) -> None:
        dead, live = _dead_pid(), os.getppid()
        names = {
            "dead": f".s.zarr.tmp-{dead}-0123abcd",
            "dead_old": f".s.zarr.old-{dead}-0123abcd",
            "live": f".s.zarr.tmp-{live}-0123abcd",
            "other_target": f".t.zarr.tmp-{dead}-0123abcd",
            "legacy": ".s.zarr.tmp-0123abcd",  # no PID: cannot tell, so kept
        }
        for name in names.values():
            (tmp_path / name).mkdir()
            (tmp_path / name / "zarr.json").write_text("{}")
        write_store(tmp_path / "s.zarr", _signals(), sampling_rate=1.0)
        left = {p.name for p in tmp_path.iterdir()}
        assert left == {"s.zarr", names["live"], names["other_target"], names["legacy"]}

    def test_old_copy_of_a_killed_overwrite_survives_a_failed_write(self, tmp_path: Path) -> None:
        old = tmp_path / f".s.zarr.old-{_dead_pid()}-0123abcd"
        write_store(old, _signals(), sampling_rate=1.0)  # target gone, old copy aside
        (tmp_path / f".s.zarr.tmp-{_dead_pid()}-89abcdef").mkdir()
        constant = np.ones((4, 1, 8), np.float32)
        with pytest.raises(StoreError, match="constant"):
            write_store(tmp_path / "s.zarr", constant, sampling_rate=1.0)
        assert sorted(p.name for p in tmp_path.iterdir()) == [old.name]  # stale temp gone
        write_store(tmp_path / "s.zarr", _signals(), sampling_rate=1.0)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]

    def test_a_failed_write_leaves_no_new_parent_folder(self, tmp_path: Path) -> None:
        with pytest.raises(StoreError, match="constant"):
            write_store(tmp_path / "a" / "b" / "s.zarr", np.ones((2, 1, 4)), sampling_rate=1.0)
        assert list(tmp_path.iterdir()) == []


def test_damaged_store_is_named(tmp_path: Path) -> None:
    import zarr

    write_store(tmp_path / "s.zarr", _signals(), sampling_rate=1.0)
    group = zarr.open_group(tmp_path / "s.zarr", mode="r+")
    del group.attrs["norm_std"]
    with pytest.warns(UserWarning, match="Consolidated metadata"):
        zarr.consolidate_metadata(group.store)
    with pytest.raises(StoreError, match=r"damaged sigdiff store \(attrs lack \['norm_std'\]\)"):
        open_store(tmp_path / "s.zarr")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
