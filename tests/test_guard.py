"""The memorization guard: its tests and decision against hand-worked answers and scipy, the
controller's moves, the near-copy filter's guarantee, and guarded training end to end (the
chosen checkpoint kept, exact resume with the controller, the CLI)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from scipy import stats
from sigdiff.cli.main import cli
from sklearn.neighbors import NearestNeighbors

from sigdiff.checkpoint import list_checkpoints
from sigdiff.config import ConfigError, load_config
from sigdiff.data.store import open_store, write_store
from sigdiff.guard import ControllerConfig, GuardEval, decide
from sigdiff.guard.copies import CopyFilterError, copy_threshold, draw_without_copies
from sigdiff.guard.decision import controller_move, copying, fraction_test, wilson_interval
from sigdiff.guard.monitor import GUARD_FILE, choose_checkpoint
from sigdiff.timesteps import TimestepSamplerConfig
from sigdiff.training import train


# --- the tests and the decision -----------------------------------------------------------
def _ev(step: int, p_fraction: float, p_dcr: float, gate: float, *, alpha: float = 0.05,
        level: float = 0.5) -> GuardEval:
    return GuardEval(step=step, n_generated=256, n_floor=100, memorized_generated=0,
                     memorized_floor=1, p_fraction=p_fraction, p_dcr=p_dcr,
                     dcr_median_ratio=1.0, gate_score=gate, gate_se=0.05,
                     gate_passes=gate <= level if math.isfinite(gate) else None, alpha=alpha)


# alignment improves then wobbles (noisy), memorization rises monotonically with training
TRACE = [_ev(100, 1.0, 1.0, 1.5), _ev(200, 0.9, 0.5, 0.6), _ev(300, 0.5, 0.03, 0.45),
         _ev(400, 0.2, 0.01, 0.40), _ev(500, 0.02, 1e-3, 0.42), _ev(600, 1e-3, 1e-5, 0.38)]


def test_decision_on_a_hand_worked_trace() -> None:
    # copying ⇔ min(p) < α/2 = 0.025: step 300 (p_dcr 0.03 < α but not < α/2) is clean,
    # 400-600 copy. Best-aligned clean step: 300 (0.45 < 0.6 < 1.5), which passes (≤ 0.5);
    # the better gates at 400 and 600 are not eligible. Three copying evaluations in a row.
    assert [e.copying for e in TRACE] == [False, False, False, True, True, True]
    d = decide(TRACE, patience=3, mode="stop", level=0.5)
    assert (d.chosen_step, d.passes_gate, d.copying_streak, d.stop) == (300, True, 3, True)
    assert "step 300" in d.reason and "passes" in d.reason
    assert not decide(TRACE, patience=3, mode="monitor", level=0.5).stop
    assert not decide(TRACE, patience=4, mode="stop", level=0.5).stop
    early = decide(TRACE[:5], patience=3, mode="stop", level=0.5)
    assert (early.chosen_step, early.copying_streak, early.stop) == (300, 2, False)
    # a controller move at 500 restarts the streak: only 600 counts
    moved = decide(TRACE, patience=3, mode="stop", level=0.5, last_move_step=500)
    assert (moved.copying_streak, moved.stop) == (1, False)


def test_stop_mode_choice_is_the_decision_where_it_would_have_stopped() -> None:
    from sigdiff.guard.compare import guard_stop_choice

    later = [*TRACE, _ev(700, 1.0, 1.0, 0.1)]  # clean and better aligned, but after the stop
    record = {"config": {"patience": 3, "level": 0.5},
              "evaluations": [e.to_dict() for e in later], "moves": []}
    assert decide(later, patience=3, mode="stop", level=0.5).chosen_step == 700
    assert guard_stop_choice(record) == 300  # stopped at 600 (three copying in a row)
    record["config"]["patience"] = 4  # never stops: the whole trace decides
    assert guard_stop_choice(record) == 700
    # a controller move at 600 restarts the streak, so it does not stop there either
    record["config"]["patience"] = 3
    record["moves"] = [{"step": 600}]
    assert guard_stop_choice(record) == 700


def test_decision_ties_unusable_gate_and_all_copying() -> None:
    tie = [_ev(100, 1, 1, 0.7), _ev(200, 1, 1, 0.7), _ev(300, 1, 1, 0.9)]
    d = decide(tie, patience=2, mode="stop", level=0.5)
    assert (d.chosen_step, d.passes_gate) == (100, False)  # the earlier of equal scores
    assert "does not pass" in d.reason
    nan = decide([_ev(100, 1, 1, float("nan")), _ev(200, 1, 1, 2.0)], patience=2, mode="stop",
                 level=0.5)
    assert nan.chosen_step == 200  # a finite score beats an unusable gate
    bad = decide([_ev(100, 0.001, 1, 0.3), _ev(200, 1, 0.001, 0.2)], patience=2, mode="stop",
                 level=0.5)
    assert bad.chosen_step is None and bad.stop and "every evaluation" in bad.reason
    with pytest.raises(ValueError, match="ordered by step"):
        decide([_ev(200, 1, 1, 1), _ev(100, 1, 1, 1)], patience=1, mode="stop", level=0.5)


@pytest.mark.parametrize(("k", "n", "kf", "nf"), [(0, 256, 1, 100), (14, 256, 1, 100),
                                                   (5, 50, 5, 50), (30, 200, 2, 384)])
def test_fraction_test_is_the_hypergeometric_tail(k: int, n: int, kf: int, nf: int) -> None:
    # Fisher's one-sided p: P(X ≥ k) for X ~ Hypergeom(population n + nf, successes k + kf, draws n)
    oracle = stats.hypergeom.sf(k - 1, n + nf, k + kf, n)
    assert fraction_test(k, n, kf, nf) == pytest.approx(oracle, rel=1e-9)


def test_wilson_interval_closed_forms() -> None:
    z = stats.norm.ppf(0.975)
    lo, hi = wilson_interval(0, 50)
    assert lo == pytest.approx(0, abs=1e-12) and hi == pytest.approx(z * z / (50 + z * z))  # k = 0
    lo2, hi2 = wilson_interval(50, 50)
    assert (lo2, hi2) == pytest.approx((1 - hi, 1.0))  # symmetry k ↔ n − k
    lo3, hi3 = wilson_interval(13, 40)
    assert lo3 < 13 / 40 < hi3
    assert copying(0.024, 1.0, 0.05) and not copying(0.025, 0.9, 0.05)


def test_controller_moves_towards_its_limit_and_stops_there() -> None:
    ts = TimestepSamplerConfig(name="ci_gaussian", floor=1.0, params={"center": 0.8, "width": 0.6})
    c = ControllerConfig(param="floor", by=-0.35, limit=0.3)
    seen = []
    while (move := controller_move(ts, c)) is not None:
        ts, _before, after = move
        seen.append(round(after, 10))
    assert seen == [0.65, 0.3] and ts.floor == 0.3 and ts.params["center"] == 0.8
    up = controller_move(TimestepSamplerConfig(name="ci_gaussian", params={"center": 0.5,
                                                                          "width": 0.3}),
                         ControllerConfig(param="center", by=0.2, limit=0.8))
    assert up is not None and up[0].params["center"] == pytest.approx(0.7)


def test_guard_config_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(overrides={"data": "x", "guard": {"patients": 3}})
    with pytest.raises(ConfigError, match="could never move"):
        load_config(overrides={"data": "x", "guard": {"controller": {"param": "floor",
                                                                     "by": -0.3, "limit": 0.3}}})
    with pytest.raises(ConfigError, match="has no such parameter"):
        load_config(overrides={"data": "x", "guard": {"controller": {"param": "center",
                                                                     "by": 0.1, "limit": 0.9}}})
    with pytest.raises(ConfigError, match="crop_length"):
        load_config(overrides={"data": "x", "crop_length": 16, "guard": {}})
    with pytest.raises(ConfigError, match="guard mode"):
        load_config(overrides={"data": "x", "guard": {"mode": "halt"}})


# --- the near-copy filter -------------------------------------------------------------------
def _dcr_oracle(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    nn = NearestNeighbors(n_neighbors=1).fit(train.reshape(len(train), -1))
    return nn.kneighbors(x.reshape(len(x), -1))[0][:, 0]


def _real(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(30, 2, 16)).astype(np.float32),
            rng.normal(size=(40, 2, 16)).astype(np.float32))


def _copier(train: np.ndarray, copy_rate: float):
    calls: list[int] = []

    def draw(n: int, seed: int) -> np.ndarray:
        calls.append(seed)
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, 2, 16)).astype(np.float32)
        copies = rng.random(n) < copy_rate
        x[copies] = train[rng.integers(0, len(train), copies.sum())] + 0.01 * x[copies]
        return x

    return draw, calls


def test_reject_copies_never_emits_a_near_copy() -> None:
    train, holdout = _real()
    draw, calls = _copier(train, 0.4)
    calls_n: list[int] = []

    def counted(n: int, seed: int) -> np.ndarray:
        calls_n.append(n)
        return draw(n, seed)

    out, rep = draw_without_copies(counted, n=50, seed=3, train=train, holdout=holdout,
                                   quantile=0.05, max_rounds=10)
    threshold = np.quantile(_dcr_oracle(holdout, train), 0.05)
    assert rep.threshold == pytest.approx(threshold, rel=1e-5)
    assert out.shape == (50, 2, 16)
    assert _dcr_oracle(out, train).min() >= threshold * (1 - 1e-5)
    assert rep.rejected >= 1 and rep.rounds == len(calls) >= 2
    assert rep.drawn == sum(calls_n) and calls_n[0] == 50 and all(k <= 50 for k in calls_n)
    assert calls[0] == 3 and len(set(calls)) == len(calls)  # round 0 is the seed itself
    # with nothing to reject the output is plain sampling with the same seed
    clean, _ = _copier(train, 0.0)
    plain, rep0 = draw_without_copies(clean, n=20, seed=5, train=train, holdout=holdout,
                                      quantile=0.01)
    np.testing.assert_array_equal(plain, clean(20, 5))
    assert rep0.rounds == 1


def test_reject_copies_gives_up_after_bounded_rounds_with_a_clear_error() -> None:
    train, holdout = _real()
    draw, calls = _copier(train, 1.0)
    with pytest.raises(CopyFilterError, match=r"only 0 of 20 records .* after 4 rounds"):
        draw_without_copies(draw, n=20, seed=0, train=train, holdout=holdout, max_rounds=4)
    assert len(calls) == 4
    with pytest.raises(CopyFilterError, match="at least 10 held-out"):
        copy_threshold(train, holdout[:5], 0.05)
    with pytest.raises(CopyFilterError, match="must lie in"):
        copy_threshold(train, holdout, 1.5)


# --- guarded training -------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(sines_store: Path) -> Path:
    return sines_store


def _cfg(store: Path, **over: object):
    base = {"data": str(store), "steps": 12, "checkpoint_every": 3, "log_every": 3,
            "batch_size": 8, "train_subset": 24, "keep_last": 1,
            "model": {"name": "unet", "preset": "tiny"}, "optim": {"warmup_steps": 2},
            "guard": {"n_samples": 16, "sampler_steps": 4, "patience": 10}}
    base.update(over)
    return load_config(overrides=base)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = list_checkpoints(run)[-1]
    return {**load_file(str(ckpt / "model.safetensors")),
            **{f"ema.{k}": v for k, v in load_file(str(ckpt / "ema.safetensors")).items()}}


def test_guarded_resume_with_controller_is_bit_identical(tmp_path: Path, store: Path) -> None:
    # "held-out" records far from the data (shifted by 50) make every evaluation look copying
    # (generated records sit closer to the training records), so the controller moves
    far = tmp_path / "far.zarr"
    s = open_store(store)
    write_store(far, s.read(np.arange(24)) + 50.0, sampling_rate=32.0)
    cfg = _cfg(store, diffusion={"parameterization": "v"}, timesteps={"name": "ci_gaussian", "floor": 1.0,
                                 "params": {"center": 0.8, "width": 0.6}},
               guard={"n_samples": 16, "sampler_steps": 4, "patience": 10, "mode": "monitor",
                      "holdout": str(far),
                      "controller": {"param": "floor", "by": -0.4, "limit": 0.2}})
    train(cfg, run_dir=tmp_path / "a", progress=False)
    record = json.loads((tmp_path / "a" / GUARD_FILE).read_text())
    assert [m["to"] for m in record["moves"]] == [pytest.approx(0.6), 0.2]  # then at its limit
    assert [m["step"] for m in record["moves"]] == [3, 6]
    assert [e["step"] for e in record["evaluations"]] == [3, 6, 9, 12]
    # killed after step 7: checkpoint 6 (with the guard's trace and moves) is where it resumes
    train(cfg, run_dir=tmp_path / "b", progress=False, stop_after=7)
    train(cfg, run_dir=tmp_path / "b", resume=True, progress=False)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "b" / GUARD_FILE).read_text()) == record


def test_guard_keeps_its_chosen_checkpoint_and_sample_uses_it(tmp_path: Path, store: Path
                                                              ) -> None:
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, [
        "train", "--data", str(store), "--out", str(run), "--preset", "tiny", "--steps", "12",
        "--checkpoint-every", "3", "--batch-size", "8", "--quiet", "--set", "train_subset=24",
        "--set", "keep_last=1", "--guard", "--guard-samples", "16", "--guard-mode", "monitor",
        "--set", "guard.sampler_steps=4"])
    assert res.exit_code == 0, res.output
    record = json.loads((run / GUARD_FILE).read_text())
    chosen = record["decision"]["chosen_step"]
    assert chosen is not None and "guard:" in res.output and (run / "guard.png").is_file()
    names = [p.name for p in list_checkpoints(run)]
    assert f"step_{chosen:08d}" in names and "step_00000012" in names  # kept despite keep_last=1
    # the held-out records are the store's records outside the 24-record training subset
    assert record["n_train"] == 24 and record["n_holdout"] == 24
    assert choose_checkpoint(run)[0].name == f"step_{chosen:08d}"
    assert choose_checkpoint(run, latest=True)[0].name == "step_00000012"
    out = tmp_path / "s.zarr"
    res = CliRunner().invoke(cli, ["sample", "--run", str(run), "--n", "12", "--out", str(out),
                                   "--steps", "4", "--quiet", "--reject-copies",
                                   "--dcr-quantile", "0.1"])
    assert res.exit_code == 0, res.output
    assert "using the guard's choice" in res.output and "reject-copies: rejected" in res.output
    s = open_store(out)
    prov = s.attrs["provenance"]
    assert prov["step"] == chosen and prov["reject_copies"]["n_holdout"] == 24
    train_x = open_store(store).read(np.asarray(record["holdout"]["rows"]))  # held-out rows
    rows = np.setdiff1d(np.arange(48), record["holdout"]["rows"])
    dcr = _dcr_oracle(s.read(np.arange(12)), open_store(store).read(rows))
    assert dcr.min() >= prov["reject_copies"]["threshold"] * (1 - 1e-5)
    assert len(train_x) == 24


def test_guard_cli_errors_are_clear(tmp_path: Path, store: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["train", "--data", str(store), "--out", str(tmp_path / "r"),
                              "--preset", "tiny", "--holdout", str(store)])
    assert res.exit_code != 0 and "add --guard" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["train", "--data", str(store), "--out", str(tmp_path / "r2"),
                              "--preset", "tiny", "--guard", "--holdout",
                              str(tmp_path / "missing.zarr")])
    assert res.exit_code != 0 and "missing.zarr" in res.output
    assert not (tmp_path / "r2").exists()  # refused before the run folder was created
    res = runner.invoke(cli, ["sample", "--run", str(tmp_path), "--n", "4", "--out",
                              str(tmp_path / "o.zarr"), "--dcr-quantile", "0.2"])
    assert res.exit_code != 0 and "--reject-copies" in res.output


def test_a_sweep_guards_its_cells(tmp_path: Path, store: Path) -> None:
    """`guard = {...}` in a sweep's [train] guards every cell: its run folder gets guard.json,
    with the store's records outside the cell's training subset held out."""
    from sigdiff.data.store import split_store
    from sigdiff.guard.compare import guard_stop_choice, select_checkpoints
    from sigdiff.report import load_results, write_report
    from sigdiff.sweep import load_sweep, run_sweep

    split_store(store, holdout=0.25, seed=0, out_train=tmp_path / "tr.zarr",
                out_holdout=tmp_path / "ho.zarr")
    (tmp_path / "sweep.toml").write_text(f"""
name = "guarded"
seeds = [0]
train_subsets = [12]
[data]
train = "{tmp_path / 'tr.zarr'}"
holdout = "{tmp_path / 'ho.zarr'}"
[train]
steps = 6
batch_size = 8
checkpoint_every = 3
model = {{ name = "unet", preset = "tiny" }}
optim = {{ warmup_steps = 2 }}
guard = {{ n_samples = 12, sampler_steps = 3, mode = "monitor" }}
[eval]
n_samples = 12
sampler_steps = 3
[[arm]]
label = "uniform"
""")
    sweep = load_sweep(tmp_path / "sweep.toml")
    cell = sweep.cells[0]
    assert cell.config.guard is not None and cell.config.guard.n_samples == 12
    out = tmp_path / "out"
    run_sweep(sweep, out, progress=False)
    found = sorted(p.relative_to(out) for p in out.rglob(GUARD_FILE))
    assert found == [Path("cells") / cell.id / GUARD_FILE, Path("cells") / cell.id / "run" /
                     GUARD_FILE]  # the evidence is kept beside the cell's rows
    record = json.loads((out / found[0]).read_text())
    assert [e["step"] for e in record["evaluations"]] == [3, 6]
    assert record["n_train"] == 12 and record["n_holdout"] == 36 - 12
    # the stopping rules read the same rows: final = last step, guard = its stop-mode choice
    df, _ = load_results(out)
    sel = select_checkpoints(out, df).set_index("rule")
    assert sel.at["final", "step"] == 6
    assert sel.at["guard", "step"] == guard_stop_choice(record)
    rows = df.set_index("step")
    for rule in ("final", "guard"):
        assert sel.at[rule, "memorized_fraction"] == rows.at[sel.at[rule, "step"],
                                                            "memorization.memorized_fraction"]
    md = (write_report(out, out / "report")).read_text()
    assert "### Stopping rules" in md
