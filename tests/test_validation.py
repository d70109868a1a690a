"""`validate_metrics`: separations of the floor from the references, their intervals, verdicts,
outputs, and the `sigdiff validate` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats
from sigdiff.cli.validate import validate_cmd

import sigdiff.metrics.validation as validation
from sigdiff.data.store import write_store
from sigdiff.metrics.evaluate import EvalConfig
from sigdiff.metrics.validation import judge_metric, t_interval, validate_metrics, write_validation

FS = 100.0
FAST = EvalConfig(extras=(), mmd_permutations=0)
REFS = ("copier", "noisy_copy@0.1", "residual_noise", "smoothed")


def _bumps(n: int, seed: int, length: int = 64) -> np.ndarray:
    """Smooth random bumps with a little noise: (n, 1, length)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    centre = rng.uniform(0.3, 0.7, size=(n, 1, 1))
    width = rng.uniform(0.03, 0.08, size=(n, 1, 1))
    x = np.exp(-((t - centre) ** 2) / (2 * width**2)) + 0.05 * rng.normal(size=(n, 1, length))
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return validate_metrics(_bumps(60, 0), _bumps(40, 1), sampling_rate=FS, train_subset=20,
                            n=40, repeats=3, config=FAST, progress=False)


def test_copier_is_memorized(result: dict[str, Any]) -> None:
    e = result["metrics"]["memorization.memorized_fraction"]
    sep = e["separations"]["copier"]
    assert sep["n"] == 3 and sep["low"] > 0 and e["separates_copier"] is True
    # the copier's memorized fraction is 1 by construction, so Δ = 1 − floor in every repeat
    np.testing.assert_allclose(sep["values"], [1 - f for f in e["floor"]["values"]])
    assert e["usable_for_gate"] is None and not e["flagged"]
    assert "residual_noise" not in e["required"] and "noisy_copy@0.4" in e["required"]
    assert result["meta"]["n_compared"] == 40 and result["meta"]["train_subset"] == 20


def test_interval_is_scipys(result: dict[str, Any]) -> None:
    sep = result["metrics"]["alignment_vs_holdout.mmd2"]["separations"]["noisy_copy@0.4"]
    values = [v for v in sep["values"] if v is not None]
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                                 scale=stats.sem(values))
    assert sep["se"] > 0
    np.testing.assert_allclose([sep["low"], sep["high"]], [low, high], rtol=1e-12)
    np.testing.assert_allclose(sep["se"], stats.sem(values), rtol=1e-12)


def test_paper_metric_is_noted(result: dict[str, Any]) -> None:
    e = result["metrics"]["alignment_vs_train.pca_wasserstein"]
    assert e["note"] == "rewards copying by construction"
    assert e["usable_for_gate"] is False and e["passes"] is None and e["required"] == []
    # no permutations in this config: no p-value at all; what has no reference value is listed
    assert "alignment_vs_holdout.mmd2_p" not in result["metrics"]
    assert result["meta"]["not_validated"] == {"spectral.coherence_abs_diff":
                                               "no value for this data"}


def test_each_repeat_trains_on_a_subset_and_draws_the_floor_from_the_rest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    prepare = validation.prepare

    def spy(train: np.ndarray, holdout: np.ndarray, **kw: Any) -> Any:
        calls.append({"train": train, **kw})
        return prepare(train, holdout, **kw)

    monkeypatch.setattr(validation, "prepare", spy)
    train = _bumps(60, 0)
    validate_metrics(train, _bumps(40, 1), sampling_rate=FS, train_subset=20, n=40, repeats=2,
                     config=FAST, progress=False)
    rows = {r.tobytes() for r in train}
    for c in calls:
        assert len(c["train"]) == 20 and len(c["pool"]) == 40
        together = [r.tobytes() for r in (*c["train"], *c["pool"])]
        assert set(together) == rows and len(together) == len(rows)  # a partition of train
    assert calls[0]["config"].seed != calls[1]["config"].seed
    assert not np.array_equal(calls[0]["train"], calls[1]["train"])


def test_t_interval_against_scipy() -> None:
    values = [0.3, -0.1, 0.4, 0.25, 0.05]
    iv = t_interval(values)
    expected = stats.t.interval(0.95, 4, loc=np.mean(values), scale=stats.sem(values))
    np.testing.assert_allclose([iv["low"], iv["high"]], expected, rtol=1e-12)
    assert iv["n"] == 5 and iv["t"] == pytest.approx(np.mean(values) / stats.sem(values))
    assert t_interval([1.0])["low"] is None
    assert t_interval([2.0, 2.0, 2.0])["low"] == 2.0  # zero spread: a point interval


def _draws(floor: list[float], **refs: list[float]) -> dict[str, list[float | None]]:
    out: dict[str, list[float | None]] = {"floor": list(floor)}
    out.update({r: list(refs.get(r, [f + 1.0 for f in floor])) for r in REFS})
    return out


def test_blind_metric_is_flagged_and_not_gated() -> None:
    floor = [0.2, 0.3, 0.25, 0.22]
    blind = _draws(floor, copier=[0.3, 0.2, 0.22, 0.25])  # the copier scores like real data
    e = judge_metric("alignment_vs_holdout.pca_wasserstein", blind)
    assert e["separates_copier"] is False and e["flagged"] and e["usable_for_gate"] is False
    assert e["missed"] == ["copier"] and e["passes"] is False
    assert "cannot separate the copier" in e["verdict"]
    good = judge_metric("alignment_vs_holdout.pca_wasserstein", _draws(floor))
    assert good["passes"] and good["usable_for_gate"] and good["verdict"] == "passes"
    # "higher is better": a reference scoring higher than the floor is the wrong way round
    wrong = judge_metric("alignment_vs_holdout.precision", _draws(floor))
    assert wrong["separations"]["copier"]["mean"] == pytest.approx(-1.0) and wrong["flagged"]


def test_requirements_by_section() -> None:
    floor = [0.0, 0.05, 0.0]
    same = [0.0, 0.05, 0.0]
    draws = _draws(floor, residual_noise=same, smoothed=same)
    memo = judge_metric("memorization.memorized_fraction", draws)
    assert memo["passes"] and memo["separates_corrupted"]["residual_noise"] is False
    align = judge_metric("alignment_vs_holdout.mmd2", draws)
    assert align["usable_for_gate"] and align["missed"] == ["residual_noise", "smoothed"]
    # the spectral gate metric is anchored on the residual-noise set, as in the gate itself
    gate = judge_metric("gate.log_spectral_distance_db", _draws(floor, copier=same),
                        gate_anchors={"log_spectral_distance_db": "residual_noise"})
    assert gate["flagged"] and gate["usable_for_gate"] is True
    missing = judge_metric("gate.mmd2", {**draws, "copier": [None, 1.0, None]})
    assert missing["separations"]["copier"]["n"] == 1 and missing["separates_copier"] is None
    assert missing["flagged"]


def test_outputs(result: dict[str, Any], tmp_path: Path) -> None:
    md = write_validation(result, tmp_path)
    saved = json.loads((tmp_path / "validation.json").read_text(),
                       parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert saved["metrics"].keys() == result["metrics"].keys()
    text = md.read_text()
    assert "| memorization.memorized_fraction | lower |" in text
    assert "## Flagged metrics" in text and "3 repeats" in text and "n = 40" in text
    assert (tmp_path / "validation.png").stat().st_size > 10_000
    assert not list(tmp_path.glob("*.tmp*"))


def _stores(tmp_path: Path) -> list[str]:
    paths = [str(tmp_path / f"{name}.zarr") for name in ("train", "holdout")]
    write_store(paths[0], _bumps(60, 0), sampling_rate=FS)
    write_store(paths[1], _bumps(40, 1), sampling_rate=FS)
    return paths


def test_cli_writes_the_three_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = validation.validate_metrics

    def with_fast_config(*args: Any, **kw: Any) -> dict[str, Any]:
        return fast(*args, **{**kw, "config": FAST})

    monkeypatch.setattr(validation, "validate_metrics", with_fast_config)
    train, holdout = _stores(tmp_path)
    out = tmp_path / "val"
    res = CliRunner().invoke(validate_cmd, ["--train", train, "--holdout", holdout,
                                            "--train-subset", "20", "--repeats", "2", "--n",
                                            "40", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert '"train_subset": 20' in res.output and "| metric | better |" in res.output
    for name in ("validation.json", "validation.md", "validation.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--train", "missing.zarr", "--holdout", "missing.zarr"], "not a sigdiff store"),
    (["--dataset", "nope"], "unknown dataset 'nope'; valid choices: basicmotions, digits, ecg5000"),
    (["--dataset", "ecg5000", "--repeats", "1"], "--repeats must be at least 2"),
    (["--train", "a.zarr"], "--train and --holdout go together"),
    (["--dataset", "ecg5000", "--train", "a.zarr"], "either --dataset NAME or --train"),
])
def test_cli_user_errors(tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(validate_cmd, [*args, "--out", str(tmp_path / "v")])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and message in lines[0], res.output
    assert "Traceback" not in res.output


def test_cli_dry_run_with_dataset(tmp_path: Path) -> None:
    res = CliRunner().invoke(validate_cmd, ["--dataset", "ecg5000", "--train-subset", "16",
                                            "--out", str(tmp_path), "--dry-run"])
    assert res.exit_code == 0, res.output
    resolved = json.loads(res.output)
    assert resolved["split"] == {"holdout": 0.2, "split_seed": 0} and resolved["repeats"] == 10
    assert not (tmp_path / "data").exists()
