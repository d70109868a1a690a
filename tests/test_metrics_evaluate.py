"""`evaluate`, its outputs and the `sigdiff eval` command on stores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sigdiff.cli.eval import eval_cmd

from sigdiff.data.store import write_store
from sigdiff.metrics.evaluate import EvalConfig, evaluate

FS = 100.0
FAST = {"config": EvalConfig(mmd_permutations=20, extras=()), "progress": False}


def _beats(n: int, seed: int, channels: int = 1, length: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    centre = rng.uniform(0.3, 0.7, size=(n, channels, 1))
    width = rng.uniform(0.03, 0.08, size=(n, channels, 1))
    x = np.exp(-((t - centre) ** 2) / (2 * width**2)) + 0.05 * rng.normal(size=(n, channels, length))
    return x.astype(np.float32)


def test_copying_generator_against_floor_and_references(tmp_path: Path) -> None:
    train, holdout = _beats(200, 0), _beats(80, 1)
    copies = train[np.random.default_rng(2).integers(0, 200, 40)]
    rep = evaluate(train, holdout, copies, sampling_rate=FS, out_dir=tmp_path,
                   config=EvalConfig(mmd_permutations=20, extras=("alpha_beta",)), progress=False)
    mem = rep["memorization"]
    assert mem["memorized_fraction"]["generated"] == 1.0
    assert mem["memorized_fraction"]["copier"] == 1.0  # the copier reference, built independently
    assert mem["memorized_fraction"]["floor"] < 0.1
    assert mem["exact_copies"]["generated"] == 40 and mem["dcr_median_ratio"]["generated"] == 0.0
    assert set(rep["alignment_vs_holdout"]["mmd2"]) == {"generated", *rep["meta"]["references"]}
    # no pool: the holdout's halves are the target and the floor; compared sets are equally sized
    assert rep["meta"]["real_split"] == "holdout halves" and rep["meta"]["n_target"] == 40
    assert rep["meta"]["n_compared"] == 40 and rep["gate"]["n"] == 40
    assert rep["ranking"]["memorization.memorized_fraction"]["floor_beats_copier"] is True
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["memorization"]["exact_copies"]["generated"] == 40
    table = (tmp_path / "metrics.md").read_text()
    assert "| memorization | memorized_fraction | 1 |" in table and "Alignment gate" in table
    for png in ("mean_spectrum", "pca_scatter", "dcr_histogram", "nearest_records"):
        assert (tmp_path / f"{png}.png").stat().st_size > 1000


def test_default_extras_and_multichannel() -> None:
    train, holdout, gen = _beats(120, 0, 2), _beats(60, 1, 2), _beats(30, 2, 2)
    rep = evaluate(train, holdout, gen, sampling_rate=FS, config=EvalConfig(mmd_permutations=20),
                   progress=False)
    for key in ("authenticity", "mdd", "discriminative", "predictive_mae"):
        assert key in rep["alignment_vs_holdout"]
        assert rep["alignment_vs_holdout"][key]["copier"] is None  # extras: generated and floor
    assert rep["alignment_vs_holdout"]["precision"]["copier"] is not None  # core: every set
    assert rep["spectral"]["coherence_abs_diff"]["generated"] is not None
    assert rep["memorization"]["memorized_fraction"]["generated"] == 0.0


def test_unknown_extra_and_bad_inputs() -> None:
    train = _beats(50, 0)
    with pytest.raises(ValueError, match="valid choices: alpha_beta"):
        EvalConfig(extras=("fid",))
    with pytest.raises(ValueError, match=r"evaluate: train.zarr has \(C, L\) = \(1, 64\) but s.zarr"):
        evaluate(train, train, _beats(5, 1, 2), sampling_rate=FS, progress=False,
                 names=("train.zarr", "h.zarr", "s.zarr"))
    with pytest.raises(ValueError, match=r"evaluate \(PRDC\): k = 5 .*s.zarr has \(n = 4"):
        evaluate(train, train, train[:4], sampling_rate=FS, progress=False,
                 names=("train.zarr", "h.zarr", "s.zarr"))
    bad = train.copy()
    bad[3, 0, 5] = np.nan
    with pytest.raises(ValueError, match="evaluate: samples contains NaN"):
        evaluate(train, train, bad, sampling_rate=FS, progress=False)


def _stores(tmp_path: Path, *, sample_rate: float = FS) -> list[str]:
    paths = [str(tmp_path / f"{n}.zarr") for n in ("train", "holdout", "samples")]
    train = _beats(150, 0)
    write_store(paths[0], train, sampling_rate=FS)
    write_store(paths[1], _beats(60, 1), sampling_rate=FS)
    write_store(paths[2], train[:60], sampling_rate=sample_rate)
    return paths


def _args(paths: list[str], out: Path) -> list[str]:
    return ["--train", paths[0], "--holdout", paths[1], "--samples", paths[2], "--out", str(out),
            "--permutations", "20", "--extras", "", "--no-progress"]


def test_cli_runs_on_stores(tmp_path: Path) -> None:
    paths = _stores(tmp_path)
    res = CliRunner().invoke(eval_cmd, _args(paths, tmp_path / "report"))
    assert res.exit_code == 0, res.output
    assert "| memorization | exact_copies | 60 |" in res.output  # memorization: every sample
    meta = json.loads((tmp_path / "report" / "metrics.json").read_text())["meta"]
    assert meta["sampling_rate"] == FS and meta["stores"]["samples"] == paths[2]


def test_cli_refuses_to_overwrite_a_report_and_multichannel_plots(tmp_path: Path) -> None:
    paths = _stores(tmp_path)
    assert CliRunner().invoke(eval_cmd, _args(paths, tmp_path / "r")).exit_code == 0
    before = (tmp_path / "r" / "metrics.json").read_text()
    res = CliRunner().invoke(eval_cmd, _args(paths, tmp_path / "r"))
    assert res.exit_code == 1 and "already holds a report" in res.output
    assert "Traceback" not in res.output and (tmp_path / "r" / "metrics.json").read_text() == before
    res = CliRunner().invoke(eval_cmd, [*_args(paths, tmp_path / "r"), "--overwrite",
                                        "--permutations", "0"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert "mmd2_p" not in report["alignment_vs_holdout"]  # no p-value from zero permutations
    train, holdout, gen = _beats(60, 0, 3), _beats(40, 1, 3), _beats(20, 2, 3)
    evaluate(train, holdout, gen, sampling_rate=FS, out_dir=tmp_path / "mc", **FAST)
    assert (tmp_path / "mc" / "nearest_records.png").stat().st_size > 1000


def test_cli_dry_run_prints_resolved_options(tmp_path: Path) -> None:
    paths = _stores(tmp_path)
    res = CliRunner().invoke(eval_cmd, [*_args(paths, tmp_path / "r"), "--dry-run"])
    assert res.exit_code == 0 and '"mmd_permutations": 20' in res.output
    assert not (tmp_path / "r").exists()


def test_cli_errors_name_the_stores(tmp_path: Path) -> None:
    paths = _stores(tmp_path, sample_rate=50.0)
    res = CliRunner().invoke(eval_cmd, _args(paths, tmp_path / "r"))
    assert res.exit_code != 0 and "sampling rates differ" in res.output
    assert paths[2] in res.output
    res = CliRunner().invoke(eval_cmd, [*_args(paths, tmp_path / "r"), "--extras", "bogus"])
    assert res.exit_code == 2 and "valid choices" in res.output


@pytest.mark.slow
def test_learned_frechet_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGDIFF_CACHE", str(tmp_path))
    train, holdout = _beats(200, 0), _beats(100, 1)
    noisy = _beats(100, 2) + np.float32(0.5) * np.random.default_rng(3).normal(
        size=(100, 1, 64)).astype(np.float32)
    cfg = EvalConfig(extras=("features",), mmd_permutations=20)
    clean = evaluate(train, holdout, _beats(100, 4), sampling_rate=FS, config=cfg, progress=False)
    dirty = evaluate(train, holdout, noisy, sampling_rate=FS, config=cfg, progress=False)
    f_clean = clean["alignment_vs_holdout"]["frechet_learned"]["generated"]
    assert dirty["alignment_vs_holdout"]["frechet_learned"]["generated"] > 3 * f_clean
    assert len(list((tmp_path / "encoders").glob("*.safetensors"))) == 1
