"""`kill -9` of `sigdiff train` and `sigdiff sample` at exact points (the ``SIGDIFF_KILL_AT``
hook of `sigdiff._faults.kill_point`): the resumed run is bit-identical to an uninterrupted one,
no partial output is visible, and the killed process's lock is taken over. A second live writer
into the same run folder is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from safetensors.torch import load_file
from sigdiff.cli.main import cli

from sigdiff._faults import ENV as KILL_AT
from sigdiff._lock import lock_path
from sigdiff.checkpoint import list_checkpoints
from sigdiff.data.store import open_store, write_store

TRAIN_ARGS = ("--preset", "tiny", "--steps", "6", "--checkpoint-every", "3", "--batch-size", "8",
              "--set", "log_every=1", "--set", "keep_last=20", "--quiet")
SAMPLE_ARGS = ("--n", "8", "--batch-size", "4", "--steps", "2", "--quiet")
KILLED = -signal.SIGKILL


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(1)
    t = np.arange(32) / 32
    x = np.sin(2 * np.pi * rng.uniform(1, 3, (48, 1, 1)) * t + rng.uniform(0, 6, (48, 1, 1)))
    path = tmp_path_factory.mktemp("data") / "sines.zarr"
    write_store(path, x.astype(np.float32), sampling_rate=32.0)
    return path


@pytest.fixture(scope="module")
def reference(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run, and its samples (``ref/samples.zarr``)."""
    ref = tmp_path_factory.mktemp("ref")
    _ok(_cli("train", "--data", str(store), "--out", str(ref / "run"), *TRAIN_ARGS))
    _ok(_cli("sample", "--run", str(ref / "run"), "--out", str(ref / "samples.zarr"),
             *SAMPLE_ARGS))
    return ref


def _cli(*argv: str) -> Result:
    return CliRunner().invoke(cli, list(argv))


def _ok(res: Result) -> None:
    assert res.exit_code == 0, res.output


def _killed_at(point: str, *argv: str) -> None:
    """Run ``sigdiff ARGV`` in a subprocess that SIGKILLs itself at ``point``."""
    env = {**os.environ, KILL_AT: point}
    proc = subprocess.run([sys.executable, "-m", "sigdiff.cli.main", *argv], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == KILLED, (point, proc.returncode, proc.stderr[-2000:])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = list_checkpoints(run)[-1]
    return {**load_file(str(ckpt / "model.safetensors")),
            **{f"ema.{k}": v for k, v in load_file(str(ckpt / "ema.safetensors")).items()}}


def _log_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()]


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


@pytest.mark.parametrize("point, visible, resume", [
    # after step 5: checkpoint 3 on disk, log rows 4 and 5 must not be logged twice
    ("training.step_done:5", ["step_00000003"], True),
    # checkpoint 6 fully written to its temporary folder but not yet renamed into place
    ("checkpoint.unpublished:2", ["step_00000003"], True),
    # the lock taken, nothing written yet: the same command (no --resume) takes the lock over
    ("training.locked", [], False),
])
def test_killed_train_resumes_bit_identical(point: str, visible: list[str], resume: bool,
                                            store: Path, reference: Path,
                                            tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ("train", "--data", str(store), "--out", str(run), *TRAIN_ARGS)
    _killed_at(point, *argv)
    assert [p.name for p in list_checkpoints(run)] == visible  # nothing partial under a name
    assert Path(lock_path(run)).exists()  # the dead writer's lock
    _ok(_cli(*argv, "--resume") if resume else _cli(*argv))
    assert not Path(lock_path(run)).exists()  # taken over, then released
    assert _hidden(run) == []  # no temporary checkpoint or log left
    ref = _weights(reference / "run")
    got = _weights(run)
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert _log_steps(run) == _log_steps(reference / "run") == list(range(1, 7))


@pytest.mark.parametrize("point", ["generate.batch_done", "generate.before_write"])
def test_killed_sample_leaves_no_output_and_rerun_matches(point: str, reference: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "samples.zarr"
    argv = ("sample", "--run", str(reference / "run"), "--out", str(out), *SAMPLE_ARGS)
    _killed_at(point, *argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.zarr.lock"]
    _ok(_cli(*argv))  # no --overwrite needed: nothing was published
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.zarr"]
    want = open_store(reference / "samples.zarr").read(np.arange(8))
    assert np.array_equal(open_store(out).read(np.arange(8)), want)


def test_second_writer_is_refused_then_takes_over_from_a_killed_one(store: Path,
                                                                    tmp_path: Path) -> None:
    run = tmp_path / "shared"
    first = subprocess.Popen(
        [sys.executable, "-m", "sigdiff.cli.main", "train", "--data", str(store), "--out",
         str(run), "--preset", "tiny", "--steps", "100000", "--checkpoint-every", "2",
         "--batch-size", "8", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while not list_checkpoints(run) and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert list_checkpoints(run), first.stderr.read().decode() if first.stderr else ""
        config = (run / "config.json").read_bytes()
        for extra in ((), ("--resume",)):
            res = _cli("train", "--data", str(store), "--out", str(run), "--preset", "tiny",
                       "--steps", "60", "--seed", "7", *extra)
            assert res.exit_code != 0
            assert f"is being written by process {first.pid}" in res.output, res.output
            assert "Traceback" not in res.output
        assert (run / "config.json").read_bytes() == config  # the first run's, untouched
    finally:
        first.kill()
        first.wait()
    step = int(list_checkpoints(run)[-1].name[5:])
    _ok(_cli("train", "--out", str(run), "--resume", "--steps", str(step + 1), "--quiet"))
    assert not Path(lock_path(run)).exists()
    assert _log_steps(run)[-1] == step + 1
