"""Bad input to `sigdiff train` and `sigdiff sample`: every case exits non-zero with a one-line
message naming the problem, no traceback, and leaves no file or folder behind (and `sample`
refuses before it loads or generates what it would throw away)."""

from __future__ import annotations

import fractions
import hashlib
import importlib
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sigdiff.cli.main import cli

from sigdiff._lock import LockError, folder_lock, lock_path
from sigdiff.checkpoint import list_checkpoints
from sigdiff.config import load_config
from sigdiff.data.store import write_store
from sigdiff.sweep import run_sweep, sweep_from_dict
from sigdiff.training import train

generate_mod = importlib.import_module("sigdiff.generate")  # the module; sigdiff.generate is
# also the name of the function the package exports

#: Never in the output of a refused command: a traceback, or torch's advice to load unsafely.
FORBIDDEN = ("Traceback", "weights_only")


@dataclass(frozen=True)
class World:
    """Read-only fixtures shared by every case."""

    root: Path
    store: Path  # labelled (48, 1, 32)
    nolabels: Path
    run: Path  # unconditional, 2 steps
    cond_run: Path  # conditional, classes 0..2


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    t = np.arange(32) / 32
    x = np.sin(2 * np.pi * rng.uniform(1, 3, (48, 1, 1)) * t).astype(np.float32)
    write_store(root / "sines.zarr", x, sampling_rate=32.0, labels=rng.integers(0, 3, 48))
    write_store(root / "nolabels.zarr", x[:8], sampling_rate=32.0)
    base = {"data": str(root / "sines.zarr"), "steps": 2, "checkpoint_every": 2, "log_every": 1,
            "batch_size": 8, "model": {"name": "unet", "preset": "tiny"}}
    train(load_config(overrides=base), run_dir=root / "run", progress=False)
    train(load_config(overrides={**base, "conditional": True, "label_dropout": 0.2}),
          run_dir=root / "cond_run", progress=False)
    return World(root, root / "sines.zarr", root / "nolabels.zarr", root / "run",
                 root / "cond_run")


# --- setups: what a case finds in its own folder before the command runs -----------------------
def _own_run(w: World, tmp: Path) -> Path:
    shutil.copytree(w.run, tmp / "run")
    return list_checkpoints(tmp / "run")[-1]


def _copied_run(w: World, tmp: Path) -> None:
    _own_run(w, tmp)


def _pickled_state(w: World, tmp: Path) -> None:
    # a pickled Python object: weights_only loading refuses it (it could run code)
    torch.save({"optimizer": fractions.Fraction(1, 3), "lr_schedule": {}},
               _own_run(w, tmp) / "train_state.pt")


def _truncated(name: str) -> Callable[[World, Path], None]:
    def setup(w: World, tmp: Path) -> None:
        path = _own_run(w, tmp) / name
        path.write_bytes(path.read_bytes()[:100])

    return setup


def _existing_store(w: World, tmp: Path) -> None:
    write_store(tmp / "exists.zarr", np.ones((2, 1, 4), np.float32) * np.arange(4),
                sampling_rate=1.0)


SETUPS: dict[str, Callable[[World, Path], None]] = {
    "own_run": _copied_run,
    "pickled_state": _pickled_state,
    "truncated_state": _truncated("train_state.pt"),
    "truncated_weights": _truncated("ema.safetensors"),
    "existing_store": _existing_store,
}


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # {store} {nolabels} {run} {cond_run} {tmp} are filled in
    message: str
    setup: str | None = None
    locked: str | None = None  # a folder (under {tmp}) whose lock a live writer holds
    refuse_before: str | None = None  # sample: "load" (nothing loaded) or "generate"


TRAIN = ("train", "--data", "{store}", "--preset", "tiny", "--steps", "2", "--quiet")
SAMPLE = ("sample", "--run", "{run}", "--n", "4", "--steps", "2", "--quiet")

CASES = [
    # train: config, data and model problems (nothing may be created)
    Case("unknown-model-preset", (*TRAIN, "--out", "{tmp}/r", "--model-preset", "nope"),
         "unknown unet preset 'nope'"),
    Case("unknown-model", (*TRAIN, "--out", "{tmp}/r", "--model", "nope"), "unknown model 'nope'"),
    Case("crop-longer-than-signal", (*TRAIN, "--out", "{tmp}/r", "--set", "crop_length=64"),
         "crop_length 64 exceeds the signal length 32"),
    Case("conditional-unlabelled", ("train", "--data", "{nolabels}", "--preset", "tiny",
                                    "--out", "{tmp}/r", "--conditional"),
         "needs a store with labels"),
    Case("missing-store", ("train", "--data", "{tmp}/nope.zarr", "--out", "{tmp}/r",
                           "--preset", "tiny"), "nope.zarr"),
    Case("store-is-a-plain-file", ("train", "--data", "{tmp}/file.txt", "--out", "{tmp}/r",
                                   "--preset", "tiny"), "not a sigdiff store"),
    Case("unknown-key", (*TRAIN, "--out", "{tmp}/r", "--set", "bogus=1"), "unknown key"),
    Case("no-data", ("train", "--out", "{tmp}/r"), "no training data"),
    Case("unknown-sampler", (*TRAIN, "--out", "{tmp}/r", "--sampler", "nope"), "valid"),
    Case("zero-steps", (*TRAIN, "--out", "{tmp}/r", "--steps", "0"),
         "steps must be a positive integer"),
    Case("zero-batch", (*TRAIN, "--out", "{tmp}/r", "--batch-size", "0"),
         "batch_size must be a positive integer"),
    Case("unknown-device", (*TRAIN, "--out", "{tmp}/r", "--device", "banana"),
         "unknown device 'banana'"),
    Case("subset-larger-than-store", (*TRAIN, "--out", "{tmp}/r", "--set", "train_subset=99"),
         "train_subset 99 exceeds the 48 records"),
    Case("model-of-other-rank", (*TRAIN, "--out", "{tmp}/r", "--set", "model.overrides.dims=2"),
         "the data are 1D signals"),
    Case("missing-config-file", (*TRAIN, "--out", "{tmp}/r", "--config", "{tmp}/nope.toml"),
         "does not exist"),
    Case("bad-toml", (*TRAIN, "--out", "{tmp}/r", "--config", "{tmp}/file.txt"),
         "not valid TOML"),
    # train: run folder problems (an existing folder must be left exactly as it was)
    Case("out-under-a-file", (*TRAIN, "--out", "{tmp}/file.txt/r"), "file.txt is a file"),
    Case("out-is-a-file", (*TRAIN, "--out", "{tmp}/file.txt"), "is a file"),
    Case("resume-nothing", (*TRAIN, "--out", "{tmp}/r", "--resume"), "nothing to resume"),
    Case("existing-run", ("train", "--data", "{store}", "--out", "{tmp}/run", "--steps", "2",
                          "--set", "checkpoint_every=2", "--set", "log_every=1",
                          "--batch-size", "8", "--set", "model.preset=tiny"),
         "already holds a run", setup="own_run"),
    Case("resume-other-config", ("train", "--out", "{tmp}/run", "--resume", "--seed", "5"),
         "cannot resume with a different config (changed: seed)", setup="own_run"),
    Case("resume-pickled-state", ("train", "--out", "{tmp}/run", "--resume", "--steps", "4"),
         "not a plain tensor file", setup="pickled_state"),
    Case("resume-truncated-state", ("train", "--out", "{tmp}/run", "--resume", "--steps", "4"),
         "corrupt or truncated", setup="truncated_state"),
    Case("run-folder-in-use", (*TRAIN, "--out", "{tmp}/busy"),
         "run folder {tmp}/busy is being written by", locked="busy"),
    # sample: options (refused before the checkpoint is even read)
    Case("batch-size-0", (*SAMPLE, "--out", "{tmp}/s.zarr", "--batch-size", "0"),
         "batch_size must be a positive integer, got 0", refuse_before="load"),
    Case("batch-size-negative", (*SAMPLE, "--out", "{tmp}/s.zarr", "--batch-size", "-1"),
         "batch_size must be a positive integer, got -1", refuse_before="load"),
    Case("n-0", ("sample", "--run", "{run}", "--n", "0", "--out", "{tmp}/s.zarr"),
         "n must be a positive integer", refuse_before="load"),
    Case("steps-0", (*SAMPLE, "--out", "{tmp}/s.zarr", "--steps", "0"),
         "steps must be a positive integer", refuse_before="load"),
    Case("unknown-sampler-sample", (*SAMPLE, "--out", "{tmp}/s.zarr", "--sampler", "nope"),
         "unknown sampler 'nope'", refuse_before="load"),
    Case("unknown-grid", (*SAMPLE, "--out", "{tmp}/s.zarr", "--grid", "nope"),
         "unknown sigma grid 'nope'", refuse_before="load"),
    Case("guidance-nan", (*SAMPLE, "--out", "{tmp}/s.zarr", "--guidance", "nan"),
         "guidance must be a finite number", refuse_before="load"),
    Case("unknown-device-sample", (*SAMPLE, "--out", "{tmp}/s.zarr", "--device", "banana"),
         "unknown device 'banana'", refuse_before="load"),
    # sample: the output (refused before loading or generating anything)
    Case("out-exists", (*SAMPLE, "--out", "{tmp}/exists.zarr"),
         "exists.zarr: already exists; pass --overwrite", setup="existing_store",
         refuse_before="load"),
    Case("out-is-a-file-overwrite", (*SAMPLE, "--out", "{tmp}/file.txt", "--overwrite"),
         "is not a sigdiff store", refuse_before="load"),
    Case("out-under-a-file-sample", (*SAMPLE, "--out", "{tmp}/file.txt/s.zarr"),
         "file.txt is a file", refuse_before="load"),
    Case("out-is-the-run", ("sample", "--run", "{tmp}/run", "--n", "4", "--out", "{tmp}/run",
                            "--overwrite"), "the run being sampled", setup="own_run",
         refuse_before="load"),
    Case("out-in-use", (*SAMPLE, "--out", "{tmp}/busy.zarr"),
         "output store {tmp}/busy.zarr is being written by", locked="busy.zarr",
         refuse_before="generate"),
    # sample: the run, and options this model cannot honour (refused before generating)
    Case("run-missing", ("sample", "--run", "{tmp}/none", "--n", "2", "--out", "{tmp}/s.zarr"),
         "does not exist", refuse_before="generate"),
    Case("run-is-a-store", ("sample", "--run", "{store}", "--n", "2", "--out", "{tmp}/s.zarr"),
         "holds no checkpoint", refuse_before="generate"),
    Case("run-weights-truncated", ("sample", "--run", "{tmp}/run", "--n", "2",
                                   "--out", "{tmp}/s.zarr"),
         "corrupt or truncated weights file", setup="truncated_weights",
         refuse_before="generate"),
    Case("guidance-unconditional", (*SAMPLE, "--out", "{tmp}/s.zarr", "--guidance", "3"),
         "guidance 3 needs a class-conditional model", refuse_before="generate"),
    Case("guidance-without-label", ("sample", "--run", "{cond_run}", "--n", "4",
                                    "--out", "{tmp}/s.zarr", "--guidance", "3"),
         "pass --label", refuse_before="generate"),
    Case("label-unconditional", (*SAMPLE, "--out", "{tmp}/s.zarr", "--label", "1"),
         "trained unconditionally", refuse_before="generate"),
    Case("label-unknown", ("sample", "--run", "{cond_run}", "--n", "4", "--out", "{tmp}/s.zarr",
                           "--label", "9"),
         "not one of the training classes", refuse_before="generate"),
    Case("steps-beyond-schedule", (*SAMPLE, "--out", "{tmp}/s.zarr", "--steps", "5000"),
         "cannot exceed the schedule's num_timesteps", refuse_before="generate"),
]


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a digest of its bytes ("dir" for folders)."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else
            hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))}


@contextmanager
def held_elsewhere(path: Path) -> Iterator[None]:
    """Hold ``path``'s lock from another thread, as a live second writer would."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with folder_lock(path, what="test holder"):
            taken.set()
            release.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_cleanly(case: Case, world: World, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = tmp_path / "work"
    tmp.mkdir()
    (tmp / "file.txt").write_text("steps = [\n")
    if case.setup:
        SETUPS[case.setup](world, tmp)
    fill = {"store": world.store, "nolabels": world.nolabels, "run": world.run,
            "cond_run": world.cond_run, "tmp": tmp}
    argv = [a.format(**fill) for a in case.argv]

    def refuse(stage: str) -> Callable[..., None]:
        def fail(*_: object, **__: object) -> None:
            raise AssertionError(f"{stage} ran before the bad input was refused")

        return fail

    if case.refuse_before == "load":
        monkeypatch.setattr(generate_mod, "load_model", refuse("load_model"))
    if case.refuse_before in ("load", "generate"):
        monkeypatch.setattr(generate_mod, "generate", refuse("generate"))
    before, fixtures = _snapshot(tmp), _snapshot(world.root)
    with held_elsewhere(tmp / case.locked) if case.locked else nullcontext():
        res = CliRunner().invoke(cli, argv)
    assert res.exit_code != 0, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)  # handled, not a crash
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and case.message.format(**fill) in last, res.output
    for word in FORBIDDEN:
        assert word not in res.output, res.output
    assert _snapshot(tmp) == before  # nothing created, nothing changed
    assert _snapshot(world.root) == fixtures
    assert not Path(lock_path(tmp / "run")).exists()


def test_sweep_into_a_folder_in_use_is_refused_before_writing(world: World,
                                                              tmp_path: Path) -> None:
    sweep = sweep_from_dict({
        "name": "busy", "seeds": [0], "train_subsets": [8],
        "data": {"train": str(world.store), "holdout": str(world.store)},
        "train": {"steps": 2, "batch_size": 8, "checkpoint_every": 2,
                  "model": {"name": "unet", "preset": "tiny"}},
        "arm": [{"label": "uniform"}]})
    with held_elsewhere(tmp_path / "sweep"), pytest.raises(LockError, match="sweep folder"):
        run_sweep(sweep, tmp_path / "sweep", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
