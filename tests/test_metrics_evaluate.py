"""`evaluate`, its outputs and the `sigdiff eval` command on stores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sigdiff.cli.eval import eval_cmd

from sigdiff.data.store import write_store
from sigdiff.metrics.evaluate import evaluate

FS = 100.0
FAST = {"mmd_permutations": 20, "extras": (), "progress": False}


def _beats(n: int, seed: int, channels: int = 1, length: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    centre = rng.uniform(0.3, 0.7, size=(n, channels, 1))
    width = rng.uniform(0.03, 0.08, size=(n, channels, 1))
    x = np.exp(-((t - centre) ** 2) / (2 * width**2)) + 0.05 * rng.normal(size=(n, channels, length))
    return x.astype(np.float32)


def test_copying_generator_against_floor(tmp_path: Path) -> None:
    train, holdout = _beats(200, 0), _beats(80, 1)
    copies = train[np.random.default_rng(2).integers(0, 200, 100)]
    rep = evaluate(train, holdout, copies, sampling_rate=FS, out_dir=tmp_path,
                   **{**FAST, "extras": ("alpha_beta",)})
    mem = rep["memorization"]
    assert mem["memorized_fraction"]["generated"] == 1.0
    assert mem["memorized_fraction"]["floor"] < 0.1
    assert mem["dcr"]["median_dcr_generated"] == 0.0 and mem["dcr"]["median_dcr_holdout"] > 0
    assert rep["alignment_vs_train"]["authenticity"]["generated"] == 0.0
    assert set(rep["alignment_vs_holdout"]["mmd2"]) == {"generated", "floor"}
    assert rep["meta"]["n_alignment_vs_holdout"] == 100
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["memorization"]["exact_copies"]["generated"] == 100
    table = (tmp_path / "metrics.md").read_text()
    assert "| memorization vs train | memorized fraction (d1/d2 < 0.333) | 1 |" in table
    for png in ("mean_spectrum", "pca_scatter", "dcr_histogram", "nearest_records"):
        assert (tmp_path / f"{png}.png").stat().st_size > 1000


def test_default_extras_and_multichannel() -> None:
    train, holdout, gen = _beats(120, 0, 2), _beats(60, 1, 2), _beats(60, 2, 2)
    rep = evaluate(train, holdout, gen, sampling_rate=FS, mmd_permutations=20, progress=False)
    for key in ("authenticity", "mdd", "discriminative", "predictive_mae", "precision"):
        assert key in rep["alignment_vs_holdout"]
    assert rep["spectral"]["coherence_abs_diff"]["generated"] is not None
    assert rep["memorization"]["memorized_fraction"]["generated"] == 0.0


def test_unknown_extra_and_bad_inputs() -> None:
    train = _beats(50, 0)
    with pytest.raises(ValueError, match="valid choices: alpha_beta"):
        evaluate(train, train, train, sampling_rate=FS, extras=("fid",), progress=False)
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
    assert "| memorization vs train | exact copies | 60 |" in res.output
    meta = json.loads((tmp_path / "report" / "metrics.json").read_text())["meta"]
    assert meta["sampling_rate"] == FS and meta["stores"]["samples"] == paths[2]


def test_cli_dry_run_prints_resolved_options(tmp_path: Path) -> None:
    paths = _stores(tmp_path)
    res = CliRunner().invoke(eval_cmd, [*_args(paths, tmp_path / "r"), "--dry-run"])
    assert res.exit_code == 0 and '"permutations": 20' in res.output
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
    clean = evaluate(train, holdout, _beats(100, 4), sampling_rate=FS, extras=("features",),
                     mmd_permutations=20, progress=False)
    dirty = evaluate(train, holdout, noisy, sampling_rate=FS, extras=("features",),
                     mmd_permutations=20, progress=False)
    f_clean = clean["alignment_vs_holdout"]["frechet_learned"]["generated"]
    assert dirty["alignment_vs_holdout"]["frechet_learned"]["generated"] > 3 * f_clean
    assert len(list((tmp_path / "encoders").glob("*.safetensors"))) == 1
