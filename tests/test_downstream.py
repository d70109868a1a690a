"""Downstream validation: the four ways against known answers on generated data (separable
classes, real data posing as synthetic, shuffled labels, a copier), and the CLI's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sigdiff.cli.main import cli

from sigdiff.data.store import write_store
from sigdiff.metrics.downstream import (
    DownstreamError,
    check_labels,
    classify_report,
    copier_set,
    fit_predict,
    forecast_report,
)


def _classes(n: int, seed: int, *, length: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Three separable classes: sines of 1, 3 and 6 cycles with random phase, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    t = np.arange(length) / length
    cycles = np.array([1.0, 3.0, 6.0])[y][:, None]
    x = np.sin(2 * np.pi * cycles * t + rng.uniform(0, 2 * np.pi, (n, 1)))
    x = x + 0.3 * rng.normal(size=x.shape)
    return x[:, None, :].astype(np.float32), y


@pytest.mark.parametrize("classifier", ["minirocket", "fcn"])
def test_trtr_separable_real_as_synthetic_and_shuffled(classifier: str) -> None:
    train, holdout, fresh = _classes(60, 0), _classes(60, 1), _classes(60, 2)
    rep = classify_report(train, holdout, fresh, classifier=classifier, seeds=2)
    trtr, tstr = rep["synthetic"]["trtr"], rep["synthetic"]["tstr"]
    assert trtr["accuracy"]["mean"] >= 0.95 and trtr["macro_f1"]["mean"] >= 0.95
    # "synthetic" that is fresh real data trains as well as the real training set
    assert abs(tstr["accuracy"]["mean"] - trtr["accuracy"]["mean"]) <= 0.05
    # labels shuffled: trained on noise labels, the holdout is predicted at chance (1/3)
    rng = np.random.default_rng(3)
    shuffled = (fresh[0], rng.permutation(fresh[1]))
    bad = classify_report(train, holdout, shuffled, classifier=classifier, seeds=2)
    assert bad["synthetic"]["tstr"]["accuracy"]["mean"] < 0.55
    assert bad["synthetic"]["trts"]["accuracy"]["mean"] < 0.55  # the real model disagrees
    # the copier's TSTR is reported (copies of separable training data classify well)
    assert rep["copier"]["tstr"]["accuracy"]["mean"] >= 0.9 and "trtr" not in rep["copier"]
    assert len(rep["synthetic"]["tstr"]["per_seed"]) == 2
    assert np.asarray(rep["synthetic"]["tstr"]["confusion"]).sum() == 60


def test_copier_and_augmentation_sets() -> None:
    x, y = _classes(30, 0)
    like = np.array([0, 0, 0, 2, 2])
    cx, cy = copier_set(x, y, like, seed=0)
    assert sorted(cy.tolist()) == [0, 0, 0, 2, 2]
    for rec, lab in zip(cx, cy):  # every copied record is a training record of its class
        hit = np.flatnonzero((x == rec).all(axis=(1, 2)))
        assert len(hit) and (y[hit] == lab).all()
    with pytest.raises(DownstreamError, match="at least two classes"):
        fit_predict("fcn", x[y == 0], y[y == 0], x, seed=0)


def test_forecast_variant_matches_its_parts() -> None:
    from sigdiff.metrics.classifiers import predictive_score

    (train, _), (holdout, _), (synth, _) = _classes(40, 0), _classes(40, 1), _classes(40, 2)
    rep = forecast_report(train, holdout, synth)
    assert rep["tstr_mae"] == pytest.approx(predictive_score(synth, holdout))
    assert rep["trtr_mae"] == pytest.approx(predictive_score(train, holdout))
    assert rep["tstr_over_trtr"] == pytest.approx(rep["tstr_mae"] / rep["trtr_mae"])


def test_label_checks() -> None:
    y = np.array([0, 1, 2])
    with pytest.raises(DownstreamError, match=r"has no labels.*--downstream forecast"):
        check_labels([y, y, None], names=("t", "h", "s"))
    with pytest.raises(DownstreamError, match=r"labels \[7\]"):
        check_labels([y, y, np.array([0, 7])], names=("t", "h", "s"))


def test_eval_cli_downstream_writes_scores_and_refuses_unlabelled(tmp_path: Path) -> None:
    paths = {}
    for name, seed in (("train", 0), ("holdout", 1), ("samples", 2)):
        x, y = _classes(36, seed, length=48)
        paths[name] = tmp_path / f"{name}.zarr"
        write_store(paths[name], x, sampling_rate=48.0, labels=y)
    args = ["eval", "--train", str(paths["train"]), "--holdout", str(paths["holdout"]),
            "--no-progress", "--extras", ""]
    res = CliRunner().invoke(cli, [*args, "--samples", str(paths["samples"]), "--out",
                                   str(tmp_path / "r"), "--downstream", "classify",
                                   "--downstream-seeds", "2", "--classifier", "fcn"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "r" / "downstream.json").read_text())
    assert set(rep["synthetic"]) == {"trtr", "tstr", "trts", "augmentation"}
    assert (tmp_path / "r" / "confusion.png").is_file() and "TSTR" in res.output
    x, _ = _classes(36, 4, length=48)
    write_store(tmp_path / "unlabelled.zarr", x, sampling_rate=48.0)
    res = CliRunner().invoke(cli, [*args, "--samples", str(tmp_path / "unlabelled.zarr"),
                                   "--out", str(tmp_path / "r2"), "--downstream", "classify"])
    assert res.exit_code != 0 and "no labels" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r2" / "metrics.json").exists()  # refused before any work


def test_class_conditional_sampling_per_class_and_balance(tmp_path: Path,
                                                          sines_store: Path) -> None:
    from sigdiff.data.store import open_store
    from sigdiff.generate import class_counts, generate, load_model

    run = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(cli, ["train", "--data", str(sines_store), "--out", str(run), "--preset",
                              "tiny", "--steps", "4", "--conditional", "--set",
                              "label_dropout=0.1", "--quiet"])
    assert res.exit_code == 0, res.output
    base = ["sample", "--run", str(run), "--steps", "3", "--quiet"]
    res = runner.invoke(cli, [*base, "--per-class", "4", "--out", str(tmp_path / "pc.zarr")])
    assert res.exit_code == 0, res.output
    s = open_store(tmp_path / "pc.zarr")
    assert s.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    model = load_model(run)
    prior = np.bincount(open_store(sines_store).labels, minlength=3).astype(float)
    share = 10 * prior / prior.sum()  # largest remainders, by hand
    want = np.floor(share).astype(int)
    want[np.argsort(-(share - want), kind="stable")[: 10 - want.sum()]] += 1
    got = class_counts(model, n=10, balance="prior")
    assert list(got.values()) == [k for k in want.tolist() if k] and sum(got.values()) == 10
    assert class_counts(model, n=10, balance="uniform") == {0: 4, 1: 3, 2: 3}
    # one label draws with the seed itself: the same records as generate()
    res = runner.invoke(cli, [*base, "--n", "5", "--label", "2", "--seed", "7", "--out",
                              str(tmp_path / "one.zarr")])
    assert res.exit_code == 0, res.output
    one = open_store(tmp_path / "one.zarr")
    np.testing.assert_allclose(one.read(np.arange(5)),
                               generate(model, n=5, seed=7, steps=3, label=2, progress=False),
                               rtol=1e-6)
    assert one.labels.tolist() == [2] * 5
    for bad, msg in ((["--per-class", "2", "--label", "1"], "pass one of them"),
                     (["--n", "4", "--per-class", "2"], "one of them")):
        res = runner.invoke(cli, [*base, *bad, "--out", str(tmp_path / "x.zarr")])
        assert res.exit_code != 0 and msg in res.output and "Traceback" not in res.output
    uncond = tmp_path / "u"
    assert runner.invoke(cli, ["train", "--data", str(sines_store), "--out", str(uncond),
                               "--preset", "tiny", "--steps", "2", "--quiet"]).exit_code == 0
    res = runner.invoke(cli, ["sample", "--run", str(uncond), "--per-class", "2", "--out",
                              str(tmp_path / "y.zarr")])
    assert res.exit_code != 0 and "class-conditional" in res.output


def test_a_sweep_measures_utility_beside_memorization(tmp_path: Path) -> None:
    """[eval] balance + downstream: conditional cells sample per class, keep the labels, and
    their rows carry TSTR / augmentation figures equal to the classifier run by hand on the same
    saved samples; the report plots utility against memorization."""
    from sigdiff.data.store import open_store
    from sigdiff.metrics.downstream import trtr_score, utility_scores
    from sigdiff.report import write_report
    from sigdiff.sweep import SweepError, load_sweep, run_sweep, sample_labels
    from sigdiff.training import subset_records

    paths = {}
    for name, seed in (("train", 0), ("holdout", 1)):
        x, y = _classes(30, seed, length=32)
        paths[name] = tmp_path / f"{name}.zarr"
        write_store(paths[name], x, sampling_rate=32.0, labels=y)
    text = f"""
name = "utility"
seeds = [0, 1]
train_subsets = [12]
[data]
train = "{paths['train']}"
holdout = "{paths['holdout']}"
[train]
steps = 4
batch_size = 8
checkpoint_every = 2
conditional = true
label_dropout = 0.1
model = {{ name = "unet", preset = "tiny" }}
optim = {{ warmup_steps = 1 }}
[eval]
n_samples = 12
sampler_steps = 3
balance = "uniform"
downstream = {{ classifier = "fcn", seeds = 1 }}
[[arm]]
label = "uniform"
"""
    (tmp_path / "sweep.toml").write_text(text)
    sweep = load_sweep(tmp_path / "sweep.toml")
    out = tmp_path / "out"
    rows = run_sweep(sweep, out, progress=False)
    assert len(rows) == 4 and all("downstream.tstr.macro_f1" in r for r in rows)
    cell = sweep.cells[0]
    path = out / "cells" / cell.id / "samples" / "step_00000004.npy"
    labels = sample_labels(path)
    assert labels is not None and np.bincount(labels).tolist() == [4, 4, 4]
    tr, ho = open_store(paths["train"]), open_store(paths["holdout"])
    recs = subset_records(cell.config, tr.n_samples)
    train = (tr.read(recs), tr.labels[recs])
    holdout = (ho.read(np.arange(ho.n_samples)), ho.labels)
    trtr = trtr_score(train, holdout, classifier="fcn", seeds=1)
    want = utility_scores(train, holdout, (np.load(path), labels), classifier="fcn", seeds=1,
                          augment=1.0, trtr=trtr)
    row = next(r for r in rows if r["cell"] == cell.id and r["step"] == 4)
    for key, value in want.items():
        assert row[f"downstream.{key}"] == pytest.approx(value)
    md = write_report(out, out / "report").read_text()
    assert "Utility against memorization" in md and (out / "report" / "utility_n12.png").is_file()
    (tmp_path / "sweep.toml").write_text(text.replace("conditional = true\n", ""))
    with pytest.raises(SweepError, match="unconditional"):
        load_sweep(tmp_path / "sweep.toml")
