"""One cell of a sweep: train to each evaluation step, draw (or reuse) each checkpoint's samples,
measure them, and append the row; resumable and re-measurable from the saved samples."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sigdiff._faults import kill_point
from sigdiff._utils import atomic_write_text
from sigdiff.config import config_to_dict
from sigdiff.sweep.config import (
    Cell,
    EvalSpec,
    SweepConfig,
    SweepError,
    _labels,
    _row_key,
    _targets,
    _wanted,
)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill mid-write: that checkpoint is redone
            break
    return rows


def _append_row(path: Path, row: Mapping[str, Any]) -> None:
    import os

    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def checkpoint_samples(ckpt: Path, path: Path | None, spec: EvalSpec,
                       label: str | None = None) -> np.ndarray:
    """The evaluation samples of one checkpoint under the sampler ``label`` (default: the primary
    one), (n, C, L) in data units: read from `path` when an earlier evaluation saved them, else
    generated (fixed seed) and saved there atomically, so a changed evaluation re-measures the
    same samples without retraining or resampling. With ``spec.balance`` the samples are drawn
    per class (`sigdiff.generate.class_counts`) and their labels saved beside them
    (`sample_labels`)."""
    from sigdiff.generate import class_counts, class_seed, generate, load_model

    labels_path = _labels_path(path) if path is not None else None
    if path is not None and path.is_file() and (labels_path is None or spec.balance is None
                                                or labels_path.is_file()):
        return np.asarray(np.load(path))
    how = spec.sampling(label)
    model = load_model(ckpt, use_ema=spec.use_ema)
    counts: dict[int | None, int] = (
        {None: spec.n_samples} if spec.balance is None else
        class_counts(model, n=spec.n_samples, balance=spec.balance))
    parts, ys = [], []
    for c, k in counts.items():
        parts.append(generate(model, n=k, seed=class_seed(spec.sample_seed, c, len(counts)),
                              sampler=how["sampler"], steps=how["sampler_steps"],
                              grid=how["grid"], label=c, progress=False))
        ys.append(np.full(k, -1 if c is None else c, dtype=np.int64))
    x = np.concatenate(parts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if spec.balance is not None and labels_path is not None:  # labels first: x marks done
            _save_npy(labels_path, np.concatenate(ys))
        _save_npy(path, x)
    return x


def _labels_path(path: Path) -> Path:
    return path.with_name(path.stem + ".labels.npy")


def sample_labels(path: Path) -> np.ndarray | None:
    """The class labels saved beside a checkpoint's samples (None: drawn unconditionally)."""
    lp = _labels_path(path)
    return np.asarray(np.load(lp)) if lp.is_file() else None


def _save_npy(path: Path, x: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, x)
    tmp.replace(path)


def cell_downstream(cell: Cell, sweep: SweepConfig) -> dict[str, Any]:
    """What the downstream figures of a cell need: its labelled training records, the labelled
    holdout, and its TRTR macro-F1 (the same at every checkpoint, computed once)."""
    from sigdiff.data.store import open_store
    from sigdiff.metrics.downstream import trtr_score
    from sigdiff.training import subset_records

    spec = sweep.eval
    assert spec.downstream is not None
    tr, ho = open_store(sweep.train_path), open_store(sweep.holdout_path)
    if tr.labels is None or ho.labels is None:
        raise SweepError("[eval] downstream needs labelled training and holdout stores")
    rows = subset_records(cell.config, tr.n_samples)
    train = (tr.read(rows), tr.labels[rows])
    holdout = (ho.read(np.arange(ho.n_samples)), ho.labels)
    trtr = trtr_score(train, holdout, classifier=spec.downstream["classifier"],
                      seeds=spec.downstream["seeds"])
    return {"train": train, "holdout": holdout, "trtr": trtr}


def cell_context(cell: Cell, sweep: SweepConfig) -> Any:
    """The evaluation context of a cell: its own training records, the holdout as the alignment
    target, and the rest of the training split as the real-data pool (the floor)."""
    from sigdiff.data.store import read_store
    from sigdiff.metrics.evaluate import prepare
    from sigdiff.metrics.spectral import signal_kind
    from sigdiff.training import subset_records

    train_all, attrs = read_store(sweep.train_path)
    holdout, _ = read_store(sweep.holdout_path)
    records = subset_records(cell.config, len(train_all))
    pool = np.delete(train_all, records, axis=0) if len(records) < len(train_all) else None
    return prepare(train_all[records], holdout, n=sweep.eval.n_samples, pool=pool,
                   sampling_rate=float(attrs["sampling_rate"]), config=sweep.eval.metrics,
                   names=(str(sweep.train_path), str(sweep.holdout_path)),
                   signal_kind=signal_kind(attrs))


def evaluate_samples(ctx: Any, samples: np.ndarray, spec: EvalSpec,
                     labels: np.ndarray | None = None,
                     down: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The flat result row of one checkpoint's samples (`sigdiff.metrics.evaluate`'s schema),
    with `downstream.*` utility figures when the sweep asks for them (``down``: the cell's
    `cell_downstream`, ``labels``: the samples' classes)."""
    from sigdiff.metrics.evaluate import evaluate_with, flatten_report

    report = evaluate_with(ctx, samples)
    meta = report["meta"]
    row = {"n_samples": meta["n_samples"], "n_train_records": meta["n_train"],
           "n_target": meta["n_target"], "n_compared": meta["n_compared"],
           "eval_fingerprint": spec.fingerprint(), **flatten_report(report)}
    if spec.downstream is not None and down is not None and labels is not None:
        from sigdiff.metrics.downstream import utility_scores

        d = spec.downstream
        scores = utility_scores(down["train"], down["holdout"], (samples, labels),
                                classifier=d["classifier"], seeds=d["seeds"],
                                augment=d["augment"], trtr=down["trtr"])
        row.update({f"downstream.{k}": v for k, v in scores.items()})
    return row




def run_cell(cell: Cell, sweep: SweepConfig, out_dir: str | Path, *,
             on_event: Callable[[str, int], None] | None = None, threads: int | None = 1,
             stop_after_checkpoints: int | None = None) -> list[dict[str, Any]]:
    """Train one cell checkpoint by checkpoint, evaluating each; resumes where it stopped.

    ``stop_after_checkpoints`` returns early after evaluating that many new checkpoints (tests).
    """
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_cell(cell, sweep, Path(out_dir), on_event, stop_after_checkpoints)
    finally:
        torch.set_num_threads(previous)


def _run_cell(cell: Cell, sweep: SweepConfig, out_dir: Path,
              on_event: Callable[[str, int], None] | None,
              stop_after_checkpoints: int | None) -> list[dict[str, Any]]:
    from sigdiff.checkpoint import checkpoint_step, list_checkpoints
    from sigdiff.guard.monitor import GUARD_FILE, GUARD_PLOT
    from sigdiff.training import train

    spec = sweep.eval
    cell_dir = out_dir / "cells" / cell.id
    run_dir, rows_path = cell_dir / "run", cell_dir / "rows.jsonl"
    cell_dir.mkdir(parents=True, exist_ok=True)
    wanted = _wanted(cell, spec)
    for label in {label for _, label in wanted}:
        _check_sampling(_samples_dir(cell_dir, spec, label), spec, label)
    context: dict[str, Any] = {}  # built on first use: a finished, up-to-date cell needs none

    def measure(x: np.ndarray, path: Path) -> dict[str, Any]:
        if "eval" not in context:
            context["eval"] = cell_context(cell, sweep)
        if spec.downstream is not None and "down" not in context:
            context["down"] = cell_downstream(cell, sweep)
        return evaluate_samples(context["eval"], x, spec, labels=sample_labels(path),
                                down=context.get("down"))

    rows = _refresh_stale(_read_rows(rows_path), cell_dir, spec, measure)
    _rewrite_rows(rows_path, rows)  # drops a cut last line, stores re-measured rows
    done = {_row_key(r, spec) for r in rows}
    if (cell_dir / "done.json").is_file() and wanted <= done:
        return rows
    meta = {"cell": cell.id, "arm": cell.arm, "train_subset": cell.train_subset,
            "seed": cell.seed, "steps": cell.config.steps,
            "timesteps": json.dumps(config_to_dict(cell.config)["timesteps"], sort_keys=True),
            "weighting": json.dumps(config_to_dict(cell.config)["weighting"], sort_keys=True)}
    evaluated = 0

    def evaluate_pending(train_seconds: float) -> bool:
        nonlocal evaluated
        for ckpt in list_checkpoints(run_dir):
            step = checkpoint_step(ckpt)
            for label in _labels(spec):
                if (step, label) in done or (step, label) not in wanted:
                    continue
                t0 = time.perf_counter()
                path = _samples_path(cell_dir, step, spec, label)
                x = checkpoint_samples(ckpt, path, spec, label)
                kill_point("sweep.samples_saved")
                row = {**meta, "step": step, "sampler": label, **measure(x, path),
                       "train_seconds": round(train_seconds, 3),
                       "eval_seconds": round(time.perf_counter() - t0, 3),
                       "checkpoint": str(ckpt.relative_to(out_dir))}
                _append_row(rows_path, row)
                kill_point("sweep.row_appended")
                rows.append(row)
                done.add((step, label))
                evaluated += 1
                if on_event:
                    on_event(cell.id, step)
        return stop_after_checkpoints is not None and evaluated >= stop_after_checkpoints

    if evaluate_pending(0.0):
        return rows
    ckpts = list_checkpoints(run_dir)
    current = checkpoint_step(ckpts[-1]) if ckpts else 0
    for target in _targets(cell.config, spec):
        if target <= current:
            continue
        t0 = time.perf_counter()
        train(cell.config, run_dir=run_dir, resume=(run_dir / "config.json").is_file(),
              progress=False, stop_after=target - current)
        kill_point("sweep.trained")
        current = target
        if evaluate_pending(time.perf_counter() - t0):
            return rows
    missing = sorted(wanted - done)
    if missing:  # a finished cell whose checkpoints are gone cannot gain a new sampler's rows
        raise SweepError(f"{cell_dir}: cannot evaluate {missing[:3]}: the run's checkpoint at "
                         "that step is gone (each run keeps its last); add evaluation samplers "
                         "before a cell trains, or rerun it into a new --out directory")
    for name in (GUARD_FILE, GUARD_PLOT):  # a guarded cell's evidence, kept beside its rows
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, cell_dir / name)
    atomic_write_text(cell_dir / "done.json", json.dumps({"cell": cell.id, "steps": current}))
    return rows








def _needs_work(cell: Cell, sweep: SweepConfig, out_dir: Path) -> bool:
    """Not finished, missing a sampler's rows, or holding rows measured under other metric
    settings."""
    cell_dir = out_dir / "cells" / cell.id
    if not (cell_dir / "done.json").is_file():
        return True
    rows = _read_rows(cell_dir / "rows.jsonl")
    fresh = sweep.eval.fingerprint()
    return (any(r.get("eval_fingerprint") != fresh for r in rows) or
            not _wanted(cell, sweep.eval) <= {_row_key(r, sweep.eval) for r in rows})


def _samples_dir(cell_dir: Path, spec: EvalSpec, label: str) -> Path:
    """`samples/` for the primary sampler (the layout before `[[eval.also]]`),
    `samples@<label>/` for the others."""
    return cell_dir / ("samples" if label == spec.label else f"samples@{label}")


def _samples_path(cell_dir: Path, step: int, spec: EvalSpec, label: str) -> Path:
    return _samples_dir(cell_dir, spec, label) / f"step_{step:08d}.npy"


def _check_sampling(folder: Path, spec: EvalSpec, label: str) -> None:
    """Saved samples are only reused under the sampling settings that drew them."""
    path = folder / "sampling.json"
    want = spec.sampling(label)
    if path.is_file():
        saved = {"grid": "trailing", **json.loads(path.read_text())}  # before grids: trailing
        if saved != want:
            raise SweepError(f"{folder} holds samples drawn with {saved}, not {want}; "
                             "use another --out directory (nothing was overwritten)")
        return
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(want))


def _refresh_stale(rows: list[dict[str, Any]], cell_dir: Path, spec: EvalSpec,
                   measure: Callable[[np.ndarray, Path], dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """Re-measure rows written under other metric settings (or an older schema) from the samples
    saved beside them: the evaluation changes, the models and their samples do not."""
    fresh = spec.fingerprint()
    out = []
    for row in rows:
        if row.get("eval_fingerprint") == fresh:
            out.append(row)
            continue
        step, label = _row_key(row, spec)
        if label not in _labels(spec):  # a sampler dropped from [[eval.also]]: keep its rows
            out.append(row)
            continue
        path = _samples_path(cell_dir, step, spec, label)
        if not path.is_file():
            raise SweepError(f"{cell_dir}: the row for step {row['step']} was measured with other "
                             f"metric settings and its samples ({path.name}) were not saved; "
                             "rerun the sweep into a new --out directory")
        t0 = time.perf_counter()
        keep = {k: row[k] for k in ("cell", "arm", "train_subset", "seed", "steps", "timesteps",
                                    "weighting", "step", "train_seconds", "checkpoint")}
        new = {**keep, "sampler": label, **measure(np.load(path), path)}
        new["eval_seconds"] = round(time.perf_counter() - t0, 3)
        out.append(new)
    return out


def _rewrite_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
