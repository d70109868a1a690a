"""`kill -9` of a `sigdiff data import` at a few points: no partial store is ever visible at the
target, a live writer's temp and lock are respected, and the next successful run removes what the
killed one left behind.

The child process runs the real command with one store step patched to announce itself and wait,
so the test kills it at a known point instead of racing a timer.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sigdiff.cli.data import data

from sigdiff.data.store import StoreError, open_store

_PAUSING_IMPORT = r"""
import sys, time
import sigdiff.data.store as store
import sigdiff.data.store._location as location
import sigdiff.data.store.writer as writer

def pause(*args, **kwargs):
    print("paused", flush=True)
    time.sleep(600)

stage = sys.argv[1]
if stage == "append":  # temp store created, no rows written yet
    store.StoreWriter.append = pause
elif stage == "publish":  # every row written and consolidated, not yet renamed into place
    writer._publish = pause
elif stage == "swap":  # --overwrite: the old store moved aside, the new one not yet in place
    move = location._move
    def swap(loc, src, dst):
        if ".tmp-" in src:
            pause()
        move(loc, src, dst)
    location._move = swap
from sigdiff.cli.data import data
data(sys.argv[2:], prog_name="sigdiff data")
"""
_GIVE_UP_S = 120  # a child that never pauses is killed so the test fails instead of hanging


def _import_args(tmp: Path, *extra: str) -> list[str]:
    return ["import", str(tmp / "d.csv"), "--out", str(tmp / "x.zarr"), "--sampling-rate", "10",
            *extra]


def _start_paused(tmp: Path, stage: str, *extra: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _PAUSING_IMPORT, stage, *_import_args(tmp, *extra)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp,
    )
    guard = threading.Timer(_GIVE_UP_S, child.kill)
    guard.start()
    seen = []
    assert child.stdout is not None
    for line in child.stdout:  # wait for the condition, not for a duration
        seen.append(line)
        if line.strip() == "paused":
            break
    guard.cancel()
    assert seen and seen[-1].strip() == "paused", "".join(seen)
    return child


def _names(tmp: Path) -> set[str]:
    return {p.name for p in tmp.iterdir()}


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    rows = np.random.default_rng(0).normal(size=(12, 32))
    (tmp_path / "d.csv").write_text("".join(",".join(map(repr, r)) + "\n" for r in rows.tolist()))
    return tmp_path


@pytest.mark.parametrize("stage", ["append", "publish", "swap"])
def test_kill_9_leaves_no_visible_store_and_the_next_run_cleans_up(tmp: Path, stage: str) -> None:
    runner = CliRunner()
    extra: tuple[str, ...] = ()
    if stage == "swap":
        assert runner.invoke(data, _import_args(tmp)).exit_code == 0  # the store to overwrite
        extra = ("--overwrite",)
    child = _start_paused(tmp, stage, *extra)
    try:
        live_temp = f".x.zarr.tmp-{child.pid}-"
        assert any(n.startswith(live_temp) for n in _names(tmp)), _names(tmp)
        assert "x.zarr.lock" in _names(tmp)

        # while the writer lives: a second writer of the target is refused, its temp untouched
        second = runner.invoke(data, _import_args(tmp, "--overwrite"))
        assert second.exit_code == 1
        assert f"x.zarr is being written by process {child.pid}" in second.output
        assert "Traceback" not in second.output
        # ... and a writer of another target leaves the live temp alone
        other = runner.invoke(data, [*_import_args(tmp)[:3], str(tmp / "y.zarr"),
                                     "--sampling-rate", "10"])
        assert other.exit_code == 0, other.output
        assert any(n.startswith(live_temp) for n in _names(tmp))
    finally:
        child.kill()  # SIGKILL: no cleanup can run
        child.wait()

    left = _names(tmp)
    assert any(n.startswith(live_temp) for n in left) and "x.zarr.lock" in left
    if stage == "swap":  # the old store was set aside; the target is missing, never half-written
        assert "x.zarr" not in left and any(n.startswith(f".x.zarr.old-{child.pid}-") for n in left)
    else:
        assert "x.zarr" not in left
        with pytest.raises(StoreError):
            open_store(tmp / "x.zarr")

    again = runner.invoke(data, _import_args(tmp, *extra))
    assert again.exit_code == 0, again.output
    assert _names(tmp) == {"d.csv", "x.zarr", "y.zarr"}  # stale temp, old copy and lock gone
    assert open_store(tmp / "x.zarr").n_samples == 12

