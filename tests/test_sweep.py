"""Sweeps and the trade-off report: grid expansion, config errors, a tiny sweep end to end,
kill-and-resume equal to an uninterrupted sweep, report files, and intervals against scipy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats
from sigdiff.cli.sweep import claims_cmd, report_cmd, sweep_cmd

from sigdiff.report import claim_rows, claims_table, t_interval, write_report
from sigdiff.sweep import SweepError, load_sweep, run_cell, run_sweep, sweep_from_dict

WALL = ("train_seconds", "eval_seconds")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from sigdiff.datasets import make_dataset

    from sigdiff.data.store import split_store

    d = tmp_path_factory.mktemp("data")
    make_dataset("ecg5000", d / "full.zarr", seed=0)
    split_store(d / "full.zarr", holdout=0.2, seed=0, out_train=d / "train.zarr",
                out_holdout=d / "holdout.zarr")
    return d / "train.zarr", d / "holdout.zarr"


def tiny_toml(train: Path, holdout: Path, *, seeds: str = "[0, 1]", subsets: str = "[8]") -> str:
    return textwrap.dedent(f"""
        name = "tiny"
        seeds = {seeds}
        train_subsets = {subsets}
        [data]
        train = "{train}"
        holdout = "{holdout}"
        [train]
        steps = 8
        batch_size = 8
        checkpoint_every = 4
        log_every = 4
        model = {{ name = "unet", preset = "tiny" }}
        optim = {{ warmup_steps = 2 }}
        [eval]
        n_samples = 12
        sampler_steps = 3
        [[arm]]
        label = "uniform"
        [[arm]]
        label = "CI small"
        timesteps = {{ name = "ci_gaussian", params = {{ center = 0.2, width = 0.3 }} }}
        """)


def write_toml(tmp: Path, text: str) -> Path:
    path = tmp / "sweep.toml"
    path.write_text(text)
    return path


def assert_same_row(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Equal keys and values; floats equal to float64 rounding (numpy's SIMD sums may differ in
    the last bit between processes with differently aligned arrays)."""
    assert set(got) == set(want)
    diff = {k: (got[k], want[k]) for k in got if not _same(got[k], want[k])}
    assert not diff, (got.get("cell"), got.get("step"), diff)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-9 * max(abs(a), abs(b))
    return bool(a == b)


def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in WALL} for r in rows]


# ----------------------------------------------------------------------------- grid and errors
def test_grid_expands_arms_sizes_seeds(tmp_path: Path, stores: tuple[Path, Path]) -> None:
    sweep = load_sweep(write_toml(tmp_path, tiny_toml(*stores, seeds="[3, 4, 5]",
                                                      subsets="[8, 16]")))
    assert len(sweep.cells) == 2 * 2 * 3
    ids = [c.id for c in sweep.cells]
    assert ids[0] == "uniform__n8__s3" and ids[-1] == "ci-small__n16__s5"
    assert len(set(ids)) == len(ids)
    cell = sweep.cells[-1]
    assert cell.config.timesteps.name == "ci_gaussian"
    assert cell.config.timesteps.params == {"center": 0.2, "width": 0.3}
    assert (cell.config.seed, cell.config.train_subset, cell.config.subset_seed) == (5, 16, 5)
    assert cell.config.steps == 8 and cell.config.data == str(stores[0])


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("arm"), "at least one [[arm]]"),
    (lambda r: r.update(colour="red"), "unknown key(s) 'colour'"),
    (lambda r: r["arm"][1].update(timesteps={"name": "nope"}), "arm 'CI small'"),
    (lambda r: r["arm"][1].update(stepz=3), "unknown key(s) 'stepz'"),
    (lambda r: r["train"].update(seed=1), "must not set 'seed'"),
    (lambda r: r["arm"][1].update(label="uniform"), "duplicate arm label"),
    (lambda r: r["arm"][0].pop("label"), "needs a label"),
    (lambda r: r.update(seeds=[]), "seeds must be"),
    (lambda r: r.update(train_subsets=[1]), "train_subsets"),
    (lambda r: r["eval"].update(bogus=1), "[eval]"),
    (lambda r: r["eval"].update(grid="sideways"), "unknown grid 'sideways'"),
    (lambda r: r["eval"].update(sampler="rk45"), "unknown sampler 'rk45'"),
    (lambda r: r["eval"].update(metrics={"lowpas": 0.2}), "unknown key(s) 'lowpas'"),
    (lambda r: r.pop("data"), "[data] needs"),
    (lambda r: r.update(executor={"kind": "mpi"}), "not one of local, ray, slurm"),
    (lambda r: r.update(executor={"gpus": 1}), "[executor]: unknown key(s) ['gpus']"),
    (lambda r: r.update(executor={"cpus_per_cell": 0}), "cpus_per_cell must be a positive"),
])
def test_config_errors_name_the_problem(stores: tuple[Path, Path], edit: Any, message: str) -> None:
    import tomllib

    raw = tomllib.loads(tiny_toml(*stores))
    edit(raw)
    with pytest.raises(SweepError, match=None) as err:
        sweep_from_dict(raw)
    assert message in str(err.value)


def test_cli_dry_run_and_user_errors(tmp_path: Path, stores: tuple[Path, Path]) -> None:
    runner = CliRunner()
    path = write_toml(tmp_path, tiny_toml(*stores))
    res = runner.invoke(sweep_cmd, [str(path), "--out", str(tmp_path / "o"), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "4 cells" in res.output and "ci-small__n8__s1" in res.output
    assert not (tmp_path / "o" / "cells").exists()
    bad = write_toml(tmp_path, tiny_toml(*stores).replace('name = "tiny"', 'nme = "x"'))
    res = runner.invoke(sweep_cmd, [str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "unknown key(s) 'nme'" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(report_cmd, [str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "no results.jsonl" in res.output


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, stores: tuple[Path, Path]) -> Path:
    tmp = tmp_path_factory.mktemp("sweep_a")
    sweep = load_sweep(write_toml(tmp, tiny_toml(*stores)))
    run_sweep(sweep, tmp / "out", progress=False)
    return tmp / "out"


def test_tiny_sweep_writes_every_checkpoint(finished: Path) -> None:
    rows = [json.loads(line) for line in (finished / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * 2  # 4 cells × checkpoints at steps 4 and 8
    assert [r["step"] for r in rows[:2]] == [4, 8]
    csv = pd.read_csv(finished / "results.csv")
    assert len(csv) == len(rows) and {
        "memorization.memorized_fraction", "memorization.memorized_fraction@floor",
        "memorization.memorized_fraction_lowpass", "alignment_vs_holdout.mmd2@copier",
        "alignment_vs_train.pca_wasserstein", "gate.score", "checkpoint",
        "train_seconds"} <= set(csv.columns)
    r = rows[0]
    assert r["n_train_records"] == 8 and r["n_samples"] == 12 and r["n_compared"] == 12
    assert 0 <= r["memorization.memorized_fraction"] <= 1
    assert r["memorization.memorized_fraction@copier"] == 1.0
    assert r["memorization.dcr_median_ratio"] > 0
    assert (finished / r["checkpoint"]).is_dir()
    # references are built once per (subset, seed) and shared by every arm
    by_seed = {(x["seed"], x["alignment_vs_holdout.mmd2@floor"]) for x in rows}
    assert len(by_seed) == 2


def test_memorization_is_measured_against_the_cells_own_records(finished: Path,
                                                                stores: tuple[Path, Path]) -> None:
    from sigdiff.checkpoint import list_checkpoints
    from sigdiff.data.store import read_store
    from sigdiff.generate import generate, load_model
    from sigdiff.metrics import neighbor_ratio

    cell = finished / "cells" / "uniform__n8__s1"
    model = load_model(list_checkpoints(cell / "run")[-1])
    train, _ = read_store(stores[0])
    records = np.asarray(model.meta["train_records"])
    x = generate(model, n=12, seed=1234, steps=3, progress=False)
    # the saved samples are this checkpoint's (float32 sums differ across thread counts)
    np.testing.assert_allclose(np.load(cell / "samples" / "step_00000008.npy"), x, rtol=1e-5,
                               atol=1e-3)
    row = [json.loads(line) for line in (cell / "rows.jsonl").read_text().splitlines()][-1]
    assert row["memorization.memorized_fraction"] == neighbor_ratio(x, train[records]).fraction


def test_sigdiff_eval_and_a_sweep_cell_give_identical_numbers(finished: Path, tmp_path: Path,
                                                              stores: tuple[Path, Path]) -> None:
    """One evaluation path: the cell's training records, its pool (the rest of the training
    split) and the holdout as stores, its saved samples as a store, through `sigdiff eval`."""
    from sigdiff.cli.eval import eval_cmd

    from sigdiff.data.store import read_store, write_store
    from sigdiff.metrics.evaluate import flatten_report

    cell = finished / "cells" / "ci-small__n8__s0"
    meta = json.loads(next((cell / "run" / "checkpoints").glob("step_*/meta.json")).read_text())
    train, attrs = read_store(stores[0])
    records = np.asarray(meta["train_records"])
    rate = float(attrs["sampling_rate"])
    paths = {name: str(tmp_path / f"{name}.zarr") for name in ("train", "pool", "samples")}
    kw = {"sampling_rate": rate, "channel_names": attrs["channel_names"]}  # ECG: ECG bands
    write_store(paths["train"], train[records], **kw)
    write_store(paths["pool"], np.delete(train, records, axis=0), **kw)
    write_store(paths["samples"], np.load(cell / "samples" / "step_00000004.npy"), **kw)
    res = CliRunner().invoke(eval_cmd, [
        "--train", paths["train"], "--holdout", str(stores[1]), "--pool", paths["pool"],
        "--samples", paths["samples"], "--out", str(tmp_path / "ev"), "--permutations", "0",
        "--extras", "", "--no-progress"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    row = json.loads((cell / "rows.jsonl").read_text().splitlines()[0])
    assert row["step"] == 4
    flat = flatten_report(report)
    assert len(flat) > 200 and set(flat) <= set(row)
    assert_same_row(flat, {k: v for k, v in row.items() if k in flat})


#: Where a sweep is killed: after a checkpoint's samples are saved but before its row, right after
#: a row, after training to the second checkpoint, and in the second cell.
KILL_POINTS = ["sweep.samples_saved:1", "sweep.row_appended:1", "sweep.trained:2",
               "sweep.samples_saved:3"]


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_killed_sweep_resumes_to_identical_results(tmp_path: Path, stores: tuple[Path, Path],
                                                   finished: Path, kill_at: str) -> None:
    """A real SIGKILL at a chosen point (not a race with a timer), then a resumed sweep: the same
    results table as an uninterrupted one."""
    sweep = load_sweep(write_toml(tmp_path, tiny_toml(*stores)))
    out = tmp_path / "out"
    code = (f"from sigdiff.sweep import load_sweep, run_sweep\n"
            f"run_sweep(load_sweep({str(tmp_path / 'sweep.toml')!r}), {str(out)!r}, "
            "progress=False)\n")
    proc = subprocess.run([sys.executable, "-c", code], env={
        **os.environ, "OMP_NUM_THREADS": "1", "SIGDIFF_KILL_AT": kill_at}, check=False)
    assert proc.returncode == -signal.SIGKILL, f"the sweep was not killed at {kill_at}"
    rows = run_sweep(sweep, out, progress=False)
    expected = [json.loads(line) for line in (finished / "results.jsonl").read_text().splitlines()]
    assert len(rows) == len(expected)
    for got, want in zip(strip(rows), strip(expected)):
        assert_same_row(got, want)
    assert (out / "results.csv").read_text().count("\n") == len(expected) + 1


def test_half_evaluated_cell_and_cut_row_resume(tmp_path: Path, stores: tuple[Path, Path],
                                                finished: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import sigdiff.training

    sweep = load_sweep(write_toml(tmp_path, tiny_toml(*stores)))
    out = tmp_path / "out"
    run_cell(sweep.cells[0], sweep, out)
    # a second cell stopped half-way (one of two checkpoints evaluated), a cut last line
    run_cell(sweep.cells[2], sweep, out, stop_after_checkpoints=1)
    with open(out / "cells" / sweep.cells[2].id / "rows.jsonl", "a") as fh:
        fh.write('{"cell": "half-writ')
    done_before = {c.id for c in sweep.cells if (out / "cells" / c.id / "done.json").is_file()}
    calls: list[str] = []
    real_train = sigdiff.training.train

    def counting_train(cfg: Any, **kw: Any) -> Any:
        calls.append(str(kw["run_dir"]))
        return real_train(cfg, **kw)

    monkeypatch.setattr(sigdiff.training, "train", counting_train)
    rows = run_sweep(sweep, out, progress=False)
    assert not any(d in c for d in done_before for c in calls)  # finished cells skipped
    assert sum(sweep.cells[2].id in c for c in calls) == 1  # only the second half retrained
    expected = [json.loads(line) for line in (finished / "results.jsonl").read_text().splitlines()]
    for got, want in zip(strip(rows), strip(expected)):
        assert_same_row(got, want)


def test_changed_metric_settings_re_measure_saved_samples(tmp_path: Path,
                                                          stores: tuple[Path, Path],
                                                          finished: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows measured under other metric settings are re-measured from the saved samples, with no
    training and no sampling."""
    import importlib
    import shutil

    import sigdiff.training

    out = tmp_path / "out"
    shutil.copytree(finished, out)
    text = tiny_toml(*stores).replace("sampler_steps = 3", "sampler_steps = 3\n"
                                      "metrics = { lowpass = 0.5 }")
    sweep = load_sweep(write_toml(tmp_path, text))

    def forbidden(*_: Any, **__: Any) -> Any:
        raise AssertionError("re-measuring must neither train nor sample")

    monkeypatch.setattr(sigdiff.training, "train", forbidden)
    monkeypatch.setattr(importlib.import_module("sigdiff.generate"), "generate", forbidden)
    rows = run_sweep(sweep, out, progress=False)
    old = [json.loads(line) for line in (finished / "results.jsonl").read_text().splitlines()]
    assert len(rows) == len(old)
    assert [r["eval_fingerprint"] for r in rows] == [sweep.eval.fingerprint()] * len(rows)
    assert {r["eval_fingerprint"] for r in old} != {sweep.eval.fingerprint()}
    assert [r["memorization.memorized_fraction"] for r in rows] == \
        [r["memorization.memorized_fraction"] for r in old]  # raw figures: same samples
    assert rows[0]["train_seconds"] == old[0]["train_seconds"]


def test_report_files_and_tables(finished: Path, tmp_path: Path) -> None:
    md = write_report(finished, tmp_path / "rep")
    text = md.read_text()
    for name in ("over_steps_n8.png", "frontier_raw_n8.png", "frontier_lowpass_n8.png",
                 "contribution.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 1000
        assert name in text
    for phrase in ("real-data floor", "Verdict", "reference: copier", "reference: residual_noise",
                   "Area under the frontier", "Memorization at equal quality",
                   "**Equal quality**", "quality score (0 = real",
                   "tells floor from its anchor", "95% Student-t", "paper's metric"):
        assert phrase in text, phrase


def _synthetic_rows(*, quality: bool) -> list[dict[str, Any]]:
    """Two arms × three seeds × four checkpoints: quality improves (falls) and memorization rises
    with training; the small-t arm memorizes more. Reference figures per seed, as a sweep writes
    them (the quality ladder's references only with the quality score)."""
    rng = np.random.default_rng(0)
    refs = ["floor", "copier", "noisy_copy@0.1", "noisy_copy@0.2", "residual_noise", "smoothed"]
    rows = []
    for arm, ts, extra in (("uniform", "uniform", 0.0), ("CI small", "ci", 0.15)):
        for seed in range(3):
            for i, step in enumerate((100, 200, 400, 800)):
                mem = min(0.05 + 0.18 * i + extra + 0.02 * rng.random(), 1.0)
                row = {"arm": arm, "cell": f"{arm}-s{seed}", "seed": seed, "step": step,
                       "train_subset": 16, "timesteps": json.dumps({"name": ts}),
                       "weighting": json.dumps({"name": "none"}), "n_samples": 64,
                       "n_target": 64, "n_compared": 64,
                       "memorization.memorized_fraction": mem,
                       "memorization.memorized_fraction_lowpass": mem * 0.9,
                       "memorization.dcr_p_closer": 0.5,
                       "gate.score": 3.0 / (i + 1) + 0.1 * rng.random()}
                for ref, q, m in zip(refs, (0.02, 0.1, 0.5, 0.7, 0.9, 0.8),
                                     (0.0, 1.0, 0.8, 0.2, 0.0, 0.0)):
                    row[f"memorization.memorized_fraction@{ref}"] = m + 0.01 * seed
                    if quality:
                        row[f"quality.score@{ref}"] = q + 0.01 * seed
                if quality:
                    row["quality.score"] = 0.9 - 0.2 * i - extra / 3 + 0.03 * rng.random()
                    row["quality.se"] = 0.02
                    for ref in ("noisy_real@0.1", "mode_dropped"):
                        row[f"quality.score@{ref}"] = 0.4 + 0.01 * seed
                rows.append(row)
    return rows


@pytest.mark.parametrize("quality", [True, False])
def test_report_axis_is_the_quality_score_when_rows_carry_it(tmp_path: Path,
                                                             quality: bool) -> None:
    from sigdiff.report._core import GATE_NOTE

    rows = _synthetic_rows(quality=quality)
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = write_report(tmp_path / "res", tmp_path / "rep").read_text()
    verdict = text.split("### Verdict")[1].split("###")[0]
    if not quality:  # older rows: the gate, with the note that it is not a quality score
        assert GATE_NOTE in text and "Memorization at equal alignment (joint gate" in text
        assert "quality score (0 = real" not in text and "reference: noisy_real" not in text
        return
    assert GATE_NOTE not in text and "joint gate" not in text
    assert "**Equal quality**" in verdict and "**equal steps**" in verdict
    assert "Δ quality score" in verdict and "first crossing of quality score ≤" in verdict
    assert "| arm | final step | quality score (0 = real, 1 = always told apart) |" in text
    assert "*reference: noisy_real@0.1*" in text and "*reference: mode_dropped*" in text
    assert "never reached" in text and "Memorization at equal quality" in text
    # the frontier's levels come from the data: they lie within the rows' quality values
    grid = text.split("chosen before any arm is compared: ")[1].split(".\n")[0]
    levels = [float(v) for v in grid.split(", ")]
    q = [r["quality.score"] for r in rows]
    assert len(levels) >= 5 and min(q) - 1e-3 <= min(levels) and max(levels) <= max(q) + 1e-3
    level = float(verdict.split("first crossing of quality score ≤ ")[1].split(",")[0])
    assert min(q) - 1e-3 <= level <= max(q) + 1e-3


# ----------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("values", [[0.1, 0.3, 0.2], [1.0, 2.0, 4.0, 8.0, 3.0], [5.0, 6.0]])
def test_t_interval_matches_scipy(values: list[float]) -> None:
    ci = t_interval(values)
    x = np.asarray(values)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    if x.std() == 0:
        low = high = x.mean()
    assert ci.mean == pytest.approx(x.mean())
    assert (ci.low, ci.high) == pytest.approx((low, high))
    assert ci.n == len(x)


def test_t_interval_degenerate_cases() -> None:
    assert t_interval([]).n == 0 and np.isnan(t_interval([]).mean)
    one = t_interval([0.5, float("nan")])
    assert one.n == 1 and one.mean == 0.5 and np.isnan(one.low)
    assert "n=1" in one.fmt()


def test_packaged_demo_config_resolves_by_name(tmp_path: Path) -> None:
    sweep = load_sweep("demo", out_dir=tmp_path)
    arms = {c.arm for c in sweep.cells}
    assert "uniform" in arms and any(c.config.timesteps.name == "ci_gaussian" for c in sweep.cells)
    assert sweep.train_path == tmp_path / "data" / "train.zarr"
    with pytest.raises(SweepError, match=r"packaged configs: .*demo"):
        load_sweep("no-such-sweep")


# ----------------------------------------------------------------------------- further samplers
ALSO = ('\n[[eval.also]]\nsampler = "ddim"\nsampler_steps = 4\ngrid = "leading"\n'
        'arms = ["uniform"]\n')


def test_further_sampler_rows_from_the_final_checkpoint(tmp_path: Path, stores: tuple[Path, Path],
                                                        finished: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sampler added under [[eval.also]] to a finished sweep is evaluated from each listed arm's
    kept final checkpoint, without training; its samples are what `generate` draws from that
    checkpoint with the same settings; the primary rows do not change."""
    import shutil

    import sigdiff.training
    from sigdiff.checkpoint import list_checkpoints
    from sigdiff.generate import generate, load_model

    out = tmp_path / "out"
    shutil.copytree(finished, out)
    sweep = load_sweep(write_toml(tmp_path, tiny_toml(*stores) + ALSO))
    assert sweep.eval.also[0].label == "ddim-4-leading"

    def forbidden(*_: Any, **__: Any) -> Any:
        raise AssertionError("a further sampler on a finished cell must not train")

    monkeypatch.setattr(sigdiff.training, "train", forbidden)
    rows = run_sweep(sweep, out, progress=False)
    old = [json.loads(line) for line in (finished / "results.jsonl").read_text().splitlines()]
    primary = [r for r in rows if r["sampler"] != "ddim-4-leading"]
    extra = [r for r in rows if r["sampler"] == "ddim-4-leading"]
    assert strip(primary) == strip(old)
    assert {r["sampler"] for r in primary} == {"dpmpp_2m-3-trailing"}
    assert {(r["cell"], r["step"]) for r in extra} == {("uniform__n8__s0", 8),
                                                       ("uniform__n8__s1", 8)}
    cell_dir = out / "cells" / "uniform__n8__s1"
    ckpt = list_checkpoints(cell_dir / "run")[-1]
    want = generate(load_model(ckpt), n=12, seed=1234, sampler="ddim", steps=4, grid="leading",
                    progress=False)
    got = np.load(cell_dir / "samples@ddim-4-leading" / "step_00000008.npy")
    # the sweep samples with one thread; float sums may differ in the last bit across threads
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got, np.load(cell_dir / "samples" / "step_00000008.npy"))
    # run again: nothing left to do, the same table
    again = run_sweep(sweep, out, progress=False)
    assert strip(again) == strip(rows)
    # the report keeps the frontier on the primary sampler and shows the further one as a factor
    text = write_report(out, tmp_path / "rep").read_text()
    assert "### The evaluation sampler as a factor" in text
    assert "| ddim-4-leading | uniform | 8 |" in text
    assert f"{len(primary)} evaluated checkpoints" in text
    # claims: the final-step differences are the seed-paired means of the rows themselves
    claims = claim_rows(out)
    by_sampler = {c["sampler"]: c for c in claims}
    assert set(by_sampler) == {"dpmpp_2m-3-trailing"}  # the ddim rows have no CI-small partner
    final = {(r["arm"], r["seed"]): r for r in primary if r["step"] == 8}
    diffs = [final[("CI small", s)]["memorization.memorized_fraction"]
             - final[("uniform", s)]["memorization.memorized_fraction"] for s in (0, 1)]
    c = by_sampler["dpmpp_2m-3-trailing"]
    assert c["d_mem_final"].mean == pytest.approx(np.mean(diffs))
    want = stats.t.interval(0.95, 1, loc=np.mean(diffs), scale=stats.sem(diffs)) \
        if np.std(diffs) > 0 else (np.mean(diffs), np.mean(diffs))
    assert (c["d_mem_final"].low, c["d_mem_final"].high) == pytest.approx(want)
    assert c["reading"] == "small t" and c["parameterization"] == "eps"  # the default
    # every test states its endpoint and basis, with the paired t-test p and Holm over the table
    from sigdiff.report.claims import claim_tests
    from sigdiff.stats import holm

    tests = claim_tests(claims)
    assert [(t["endpoint"], t["basis"]) for t in tests] == [
        ("memorized fraction", "equal steps"), ("alignment gate", "equal steps"),
        ("memorized fraction", "equal gate"), ("AUF (memorized fraction)", "equal gate")]
    if np.std(diffs) > 0:
        arm = [final[("CI small", s)]["memorization.memorized_fraction"] for s in (0, 1)]
        base = [final[("uniform", s)]["memorization.memorized_fraction"] for s in (0, 1)]
        assert tests[0]["p"] == pytest.approx(stats.ttest_rel(arm, base).pvalue)
    np.testing.assert_allclose([t["p_holm"] for t in tests], holm([t["p"] for t in tests]))
    # equal gate: the tightest level every run reaches (the largest of the runs' best gates)
    best = pd.DataFrame(primary).groupby(["arm", "seed"])["gate.score"].min()
    assert c["gate_level"] == pytest.approx(best.max())
    text = claims_table([out])
    assert "## Table 1" in text and f"Holm p (m = {len(tests)})" in text
    assert "## Table 3: plateau check" in text and "| CI small |" in text
    res = CliRunner().invoke(claims_cmd, [str(out), "--out", str(tmp_path / "claims.md")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "claims.md").read_text() == claims_table([out]) + "\n"
    res = CliRunner().invoke(claims_cmd, [str(tmp_path / "nowhere")])
    assert res.exit_code != 0 and "no results.jsonl" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("also, message", [
    ({"sampler": "rk45", "sampler_steps": 4}, "unknown sampler 'rk45'"),
    ({"sampler": "ddim", "sampler_steps": 0}, "sampler_steps must be a positive integer"),
    ({"sampler": "ddim", "sampler_steps": 4, "colour": 1}, "unknown key(s) 'colour'"),
    ({"sampler": "ddim", "sampler_steps": 4, "arms": ["nope"]}, "arms ['nope'] are not arm"),
    ({"sampler": "ddim", "sampler_steps": 4, "checkpoints": [6]}, "checkpoints [6] of cell"),
    ({"sampler": "dpmpp_2m", "sampler_steps": 3, "grid": "trailing"}, "repeats an evaluation"),
])
def test_further_sampler_errors(stores: tuple[Path, Path], also: dict[str, Any],
                                message: str) -> None:
    import tomllib

    raw = tomllib.loads(tiny_toml(*stores))
    raw["eval"]["also"] = [also]
    with pytest.raises(SweepError) as err:
        sweep_from_dict(raw)
    assert message in str(err.value)


@pytest.mark.parametrize("mem, gate, want", [
    ((-0.5, -0.6, -0.4), (0.0, -0.1, 0.1), -1),   # less memorization, gate Δ includes 0
    ((-0.5, -0.6, -0.4), (-0.2, -0.3, -0.1), -1),  # less memorization, better alignment
    ((0.2, 0.1, 0.3), (-0.1, -0.2, 0.05), 1),      # more memorization at equal alignment
    ((0.2, -0.1, 0.5), (0.0, -0.1, 0.1), 0),       # nothing significant
    ((-0.5, -0.6, -0.4), (0.3, 0.1, 0.5), 2),      # worse alignment: not at equal alignment
])
def test_equal_alignment_outcome(mem: tuple[float, float, float],
                                 gate: tuple[float, float, float], want: int) -> None:
    from sigdiff.report import equal_alignment_outcome
    from sigdiff.stats import Interval

    assert equal_alignment_outcome(Interval(*mem, 5), Interval(*gate, 5)) == want


# ----------------------------------------------------------------------------- executors
def _read_results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_ray_then_slurm_executors_match_local_and_skip_finished_cells(
        tmp_path: Path, stores: tuple[Path, Path], finished: Path) -> None:
    """Seed 0 on Ray (an embedded local instance), then the whole grid through submitit's
    local executor (the Slurm path) into the same folder: Ray's cells are skipped, and the table
    equals the local executor's, row for row."""
    pytest.importorskip("ray")
    pytest.importorskip("submitit")
    runner = CliRunner()
    out = tmp_path / "out"
    half = tmp_path / "half"
    half.mkdir()
    res = runner.invoke(sweep_cmd, [str(write_toml(half, tiny_toml(*stores, seeds="[0]"))),
                                    "--out", str(out), "--executor", "ray", "--no-report",
                                    "--quiet"])
    assert res.exit_code == 0, res.output
    assert "executor: ray (1 CPUs, 0 GPUs per cell)" in res.output
    by_ray = {c: (out / "cells" / c / "done.json").stat().st_mtime_ns
              for c in ("uniform__n8__s0", "ci-small__n8__s0")}
    assert json.loads((out / "sweep_time.json").read_text())["executor"] == "ray"
    res = runner.invoke(sweep_cmd, [str(write_toml(tmp_path, tiny_toml(*stores))), "--out",
                                    str(out), "--executor", "slurm", "--slurm-cluster", "local",
                                    "--no-report", "--quiet"])
    assert res.exit_code == 0, res.output
    assert {c: (out / "cells" / c / "done.json").stat().st_mtime_ns for c in by_ray} == by_ray
    assert json.loads((out / "sweep_time.json").read_text())["cells_run"] == 2
    assert len(list((out / "slurm").glob("*/*_log.out"))) == 2  # submitit's job logs
    rows, expected = _read_results(out), _read_results(finished)
    assert len(rows) == len(expected) == 8
    for got, want in zip(strip(rows), strip(expected)):
        assert_same_row(got, want)


def test_executor_refusals_are_clear(tmp_path: Path, stores: tuple[Path, Path],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    path = write_toml(tmp_path, tiny_toml(*stores))
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch on PATH
    for flags, message in [
        (["--executor", "ray"], "pip install 'sigdiff[ray]'"),
        (["--executor", "slurm"], "no Slurm on this machine (sbatch not found)"),
        (["--executor", "ray", "--gpus-per-cell", "1"], "train on device 'cpu'"),
    ]:
        res = runner.invoke(sweep_cmd, [str(path), "--out", str(tmp_path / "o"), "--quiet",
                                        "--no-report", *flags])
        assert res.exit_code == 1, (flags, res.output)
        assert message in res.output, (flags, res.output)
        assert "Traceback" not in res.output
        assert not list((tmp_path / "o" / "cells").glob("*/done.json"))


def test_a_failing_cell_does_not_stop_the_others(tmp_path: Path, stores: tuple[Path, Path],
                                                 finished: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """One cell raising: every other cell still runs and its rows are written, then the error is
    raised; a rerun finishes the failed cell and the table equals an uninterrupted sweep's."""
    from sigdiff.sweep import executors

    real = executors.run_cell

    def flaky(cell: Any, *args: Any, **kwargs: Any) -> Any:
        if cell.id == "uniform__n8__s0":
            raise RuntimeError("disk full (injected)")
        return real(cell, *args, **kwargs)

    sweep = load_sweep(write_toml(tmp_path, tiny_toml(*stores)))
    out = tmp_path / "out"
    monkeypatch.setattr(executors, "run_cell", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        run_sweep(sweep, out, progress=False)
    done = sorted(p.parent.name for p in (out / "cells").glob("*/done.json"))
    assert done == ["ci-small__n8__s0", "ci-small__n8__s1", "uniform__n8__s1"]
    assert len(_read_results(out)) == 3 * 2  # the finished cells' rows were written
    monkeypatch.setattr(executors, "run_cell", real)
    rows = run_sweep(sweep, out, progress=False)
    for got, want in zip(strip(rows), strip(_read_results(finished)), strict=True):
        assert_same_row(got, want)


def test_a_failed_slurm_job_is_reported_in_one_line(tmp_path: Path,
                                                    stores: tuple[Path, Path]) -> None:
    """A cell that fails inside its job (here: its training store is gone) is reported with the
    cell, the job, the remote error's last line and the log path; no traceback."""
    pytest.importorskip("submitit")
    text = tiny_toml(*stores, seeds="[0]").replace(str(stores[0]), str(tmp_path / "gone.zarr"))
    res = CliRunner().invoke(sweep_cmd, [str(write_toml(tmp_path, text)), "--out",
                                         str(tmp_path / "o"), "--executor", "slurm",
                                         "--slurm-cluster", "local", "--quiet", "--no-report"])
    assert res.exit_code == 1, res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("Error: cell uniform__n8__s0 failed in Slurm job "), line
    assert "StoreError: " in line and "gone.zarr" in line and "_log.err)" in line
    assert "Traceback" not in res.output
