"""Training loop: exact resume, DDP equivalence, atomic checkpoints, clear errors; sampling."""

from __future__ import annotations

import fractions
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
from click.testing import CliRunner
from safetensors.torch import load_file
from sigdiff.cli.main import cli

from sigdiff.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from sigdiff.config import ConfigError, load_config
from sigdiff.data.store import open_store, write_store
from sigdiff.generate import generate, load_model
from sigdiff.training import TrainingError, read_run_config, train


@pytest.fixture(scope="module")
def store(sines_store: Path) -> Path:
    return sines_store


def _cfg(store: Path, **over: object):
    base = {"data": str(store), "steps": 6, "checkpoint_every": 3, "log_every": 2,
            "batch_size": 8, "model": {"name": "unet", "preset": "tiny"},
            "optim": {"warmup_steps": 2}, "timesteps": {"name": "uniform"}}
    base.update(over)
    return load_config(overrides=base)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = list_checkpoints(run)[-1]
    return {**load_file(str(ckpt / "model.safetensors")),
            **{f"ema.{k}": v for k, v in load_file(str(ckpt / "ema.safetensors")).items()}}


def _log_steps(run: Path) -> list[int]:
    return [json.loads(r)["step"] for r in (run / "train_log.jsonl").read_text().splitlines()]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("sampler", ["uniform", "loss_aware"])
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path: Path, store: Path,
                                                          sampler: str) -> None:
    cfg = _cfg(store, timesteps={"name": sampler}, model={"name": "unet", "preset": "tiny",
                                                          "overrides": {"dropout": 0.1}})
    train(cfg, run_dir=tmp_path / "a", progress=False)
    # "killed" after step 4: the checkpoint at step 3 survives, step 4 is lost and redone
    partial = train(cfg, run_dir=tmp_path / "b", progress=False, stop_after=4)
    assert partial.step == 4 and list_checkpoints(tmp_path / "b")[-1].name == "step_00000003"
    resumed = train(cfg, run_dir=tmp_path / "b", resume=True, progress=False)
    assert resumed.step == 6
    _assert_same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    # the row logged at step 4 (after checkpoint 3) is dropped on resume, not duplicated
    assert _log_steps(tmp_path / "b") == _log_steps(tmp_path / "a") == [2, 4, 6]


def test_sigkill_mid_run_then_resume_matches(tmp_path: Path, store: Path) -> None:
    """A real SIGKILL of `sigdiff train`; the resumed run ends with the uninterrupted weights."""
    args = ["--data", str(store), "--preset", "tiny", "--steps", "40", "--checkpoint-every", "5",
            "--batch-size", "8", "--quiet", "--set", "keep_last=20"]
    runner = CliRunner()
    ref = runner.invoke(cli, ["train", "--out", str(tmp_path / "ref"), *args])
    assert ref.exit_code == 0, ref.output
    cmd = [sys.executable, "-m", "sigdiff.cli.main", "train", "--out", str(tmp_path / "k"), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list_checkpoints(tmp_path / "k")) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list_checkpoints(tmp_path / "k")
    assert done and done[-1].name != "step_00000040", "kill came too late to test anything"
    res = runner.invoke(cli, ["train", "--out", str(tmp_path / "k"), "--resume", "--quiet"])
    assert res.exit_code == 0, res.output
    _assert_same(_weights(tmp_path / "ref"), _weights(tmp_path / "k"))


def test_checkpoint_is_self_describing_and_loads_without_pickle(tmp_path: Path,
                                                                store: Path) -> None:
    cfg = _cfg(store)
    train(cfg, run_dir=tmp_path / "r", progress=False)
    ckpt = load_checkpoint(tmp_path / "r", with_train_state=True)
    assert ckpt.step == 6 and ckpt.config["train"]["data"] == str(store)
    assert ckpt.meta["n_channels"] == 1 and ckpt.meta["length"] == 32
    model = load_model(tmp_path / "r")  # rebuilt from the checkpoint alone
    a = generate(model, n=5, seed=3, sampler="ddim", steps=4, progress=False)
    b = generate(model, n=5, seed=3, sampler="ddim", steps=4, progress=False)
    assert a.shape == (5, 1, 32) and np.array_equal(a, b)
    assert len(list_checkpoints(tmp_path / "r")) == 2  # steps 3 and 6, keep_last = 3
    log = (tmp_path / "r" / "train_log.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in log]
    assert [r["step"] for r in recs] == [2, 4, 6]
    assert all("samples_per_s" in r and any(k.startswith("loss_q") for k in r) for r in recs)


def test_corrupt_or_foreign_checkpoint_gives_clear_error(tmp_path: Path, store: Path) -> None:
    train(_cfg(store), run_dir=tmp_path / "r", progress=False)
    last = list_checkpoints(tmp_path / "r")[-1]
    data = (last / "model.safetensors").read_bytes()
    (last / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(tmp_path / "r", use_ema=False)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing")
    (last / "model.safetensors").write_bytes(data)
    # weights of another architecture under this config
    train(_cfg(store, model={"name": "unet", "preset": "tiny",
                             "overrides": {"base_channels": 16}}),
          run_dir=tmp_path / "other", progress=False)
    other = list_checkpoints(tmp_path / "other")[-1]
    (last / "ema.safetensors").write_bytes((other / "ema.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "r")
    # a pickled training state is refused as such, never retried with unsafe loading
    torch.save({"optimizer": fractions.Fraction(1, 3), "lr_schedule": {}},
               last / "train_state.pt")
    with pytest.raises(CheckpointError, match=r"not a plain tensor file.*fractions\.Fraction") as err:
        load_checkpoint(tmp_path / "r", with_train_state=True)
    assert "weights_only" not in str(err.value)
    (last / "train_state.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(CheckpointError, match="corrupt or truncated") as err:
        load_checkpoint(tmp_path / "r", with_train_state=True)
    assert "weights_only" not in str(err.value)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, store: Path) -> None:
    cfg = _cfg(store, optim={"lr": 1e30, "warmup_steps": 0, "grad_clip": 0.0}, steps=40)
    with pytest.raises(TrainingError, match="non-finite loss"):
        train(cfg, run_dir=tmp_path / "r", progress=False)
    for ckpt in list_checkpoints(tmp_path / "r"):
        assert all(torch.isfinite(v).all() for v in load_file(str(ckpt / "model.safetensors")).values())


def test_existing_run_is_never_overwritten(tmp_path: Path, store: Path) -> None:
    train(_cfg(store), run_dir=tmp_path / "r", progress=False)
    before = _weights(tmp_path / "r")
    with pytest.raises(TrainingError, match="already holds a run"):
        train(_cfg(store), run_dir=tmp_path / "r", progress=False)
    with pytest.raises(TrainingError, match="different config"):
        train(_cfg(store, seed=5), run_dir=tmp_path / "r", resume=True, progress=False)
    _assert_same(before, _weights(tmp_path / "r"))


def test_config_errors_name_the_problem(tmp_path: Path, store: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key.*'stepz'.*valid keys"):
        load_config(overrides={"stepz": 3})
    with pytest.raises(ConfigError, match=r"unknown key.*\[optim\]"):
        load_config(overrides={"optim": {"learning_rate": 1.0}})
    with pytest.raises(ConfigError, match="training preset"):
        load_config(preset="huge")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(toml_path=bad)


def test_store_that_does_not_fit_the_run(tmp_path: Path, store: Path) -> None:
    with pytest.raises(TrainingError, match="crop_length 64 exceeds"):
        train(_cfg(store, crop_length=64), run_dir=tmp_path / "r", progress=False)
    write_store(tmp_path / "nolabels.zarr", np.zeros((4, 1, 8), np.float32) + np.arange(8),
                sampling_rate=1.0)
    with pytest.raises(TrainingError, match="needs a store with labels"):
        train(_cfg(tmp_path / "nolabels.zarr", conditional=True), run_dir=tmp_path / "c",
              progress=False)


def test_cli_train_sample_end_to_end_and_user_errors(tmp_path: Path, store: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(cli, ["train", "--data", str(store), "--out", str(run), "--preset", "tiny",
                              "--steps", "4", "--sampler", "ci_gaussian", "--param", "center=0.2",
                              "--param", "width=0.3", "--conditional", "--set",
                              "label_dropout=0.2", "--quiet"])
    assert res.exit_code == 0, res.output
    assert '"name": "ci_gaussian"' in res.output
    out = tmp_path / "s.zarr"
    res = runner.invoke(cli, ["sample", "--run", str(run), "--n", "6", "--out", str(out),
                              "--steps", "5", "--label", "1", "--guidance", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    s = open_store(out)
    assert (s.n_samples, s.n_channels, s.length) == (6, 1, 32)
    assert s.sampling_rate == 32.0 and s.attrs["provenance"]["sampler"] == "dpmpp_2m"
    dry = runner.invoke(cli, ["train", "--data", str(store), "--out", str(tmp_path / "d"),
                              "--preset", "tiny", "--dry-run"])
    assert dry.exit_code == 0 and not (tmp_path / "d").exists()
    for argv, msg in [
        (["train", "--data", str(store), "--out", str(tmp_path / "x"), "--set", "bogus=1"],
         "unknown key"),
        (["train", "--out", str(tmp_path / "y")], "no training data"),
        (["train", "--data", str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "z"),
          "--preset", "tiny"], "nope.zarr"),
        (["sample", "--run", str(tmp_path / "none"), "--n", "2", "--out", str(tmp_path / "o")],
         "does not exist"),
        (["sample", "--run", str(run), "--n", "2", "--out", str(out)], "exists"),
        (["sample", "--run", str(run), "--n", "2", "--out", str(tmp_path / "q"), "--label", "9"],
         "not one of the training classes"),
        (["train", "--data", str(store), "--out", str(tmp_path / "w"), "--sampler", "nope"],
         "valid"),
    ]:
        r = runner.invoke(cli, argv)
        assert r.exit_code != 0, argv
        assert msg in r.output, (argv, r.output)
        assert "Traceback" not in r.output


def _ddp_script(tmp_path: Path, store: Path, out: Path, world: int, accum: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={world}", "-m", "sigdiff.cli.main", "train", "--data", str(store),
            "--out", str(out), "--preset", "tiny", "--steps", "3", "--batch-size", "8",
            "--quiet", "--set", "ema_decay=0.0", "--set", f"optim.grad_accum={accum}"]


def test_world_size_and_grad_accumulation_keep_the_global_batch_exact(tmp_path: Path,
                                                                      store: Path) -> None:
    """The global batch of 8 as 1 process × 1 micro-batch of 8 (the reference), 2 processes × 4,
    2 processes × 2 micro-batches of 2, and 1 process × 4 micro-batches of 2: the same weights
    after 3 AdamW steps (every rank draws the global batch and keeps its slice; the loss is summed
    over micro-batches and divided by the global batch)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    layouts = [(1, 1), (2, 1), (2, 2), (1, 4)]
    for world, accum in layouts:
        res = subprocess.run(_ddp_script(tmp_path, store, tmp_path / f"w{world}a{accum}", world,
                                         accum), capture_output=True, text=True, env=env,
                             timeout=240)
        assert res.returncode == 0, res.stderr[-3000:]
    ref = load_file(str(list_checkpoints(tmp_path / "w1a1")[-1] / "model.safetensors"))
    ref_log = json.loads((tmp_path / "w1a1" / "train_log.jsonl").read_text().splitlines()[-1])
    for world, accum in layouts[1:]:
        # AdamW hides a constant factor on the gradient; the logged gradient norm does not
        log = json.loads((tmp_path / f"w{world}a{accum}" / "train_log.jsonl").read_text()
                         .splitlines()[-1])
        for key in ("loss", "grad_norm"):
            assert log[key] == pytest.approx(ref_log[key], rel=1e-5), (world, accum, key)
        got = load_file(str(list_checkpoints(tmp_path / f"w{world}a{accum}")[-1] /
                            "model.safetensors"))
        assert got.keys() == ref.keys()
        for k in ref:
            # averaged gradients equal the single-process gradient up to float summation order
            torch.testing.assert_close(got[k], ref[k], atol=1e-5, rtol=1e-4,
                                       msg=lambda m, w=world, a=accum, k=k: f"{w}×{a} {k}: {m}")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["unet", "dit"])
def test_compiled_training_matches_eager_to_float32_tolerance(tmp_path: Path, store: Path,
                                                              model: str) -> None:
    """`compile = true` (torch.compile, inductor) trains the same run as eager mode: fused
    kernels round differently, so weights agree to float32 tolerance after 6 AdamW steps, and a
    compiled run resumed from its checkpoint is bit-identical to an uninterrupted compiled run."""
    over = {"model": {"name": model, "preset": "tiny"}, "checkpoint_every": 3}
    train(_cfg(store, **over), run_dir=tmp_path / "eager", progress=False)
    train(_cfg(store, compile=True, **over), run_dir=tmp_path / "compiled", progress=False)
    eager, compiled = _weights(tmp_path / "eager"), _weights(tmp_path / "compiled")
    assert eager.keys() == compiled.keys()
    for k in eager:
        torch.testing.assert_close(compiled[k], eager[k], atol=2e-5, rtol=1e-4)
    assert read_run_config(tmp_path / "compiled")["compile"] is True
    train(_cfg(store, compile=True, **over), run_dir=tmp_path / "resumed", progress=False, stop_after=3)
    train(_cfg(store, compile=True, **over), run_dir=tmp_path / "resumed", resume=True, progress=False)
    _assert_same(_weights(tmp_path / "resumed"), compiled)
