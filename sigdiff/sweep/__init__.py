"""`run_sweep(config)`: a grid of training runs, each evaluated at every checkpoint.

A sweep is a TOML file: a base training config, a list of *arms* (named partial overrides: a
timestep sampler with its parameters, or a loss weighting), training-set sizes and seeds. The grid
is arms × sizes × seeds; every cell trains with the library's `train` into its own run directory
and, at every checkpoint, draws samples and measures memorization (1/3 rule and DCR, against the
cell's own training records) and alignment (MMD², the paper's PCA-W/PCA-JS, log-spectral distance,
against the holdout). Memorization is recorded over training time because the literature reports
its maximum over snapshots, and a sampler that merely learns slower would otherwise look safer.

Resumable: per-cell rows (`cells/<id>/rows.jsonl`) are the source of truth; a finished cell
(`done.json`) is skipped, a half-trained one resumes bit-identically via `train(resume=True)`, an
evaluated checkpoint is not evaluated again, and `results.csv`/`results.jsonl` are rebuilt from the
cell rows in grid order, so a killed-and-resumed sweep writes the same table as an uninterrupted
one (except wall-time columns).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sigdiff._utils import atomic_write_text
from sigdiff.config import TrainConfig, config_to_dict
from sigdiff.sweep.cell import (
    _needs_work,
    _read_rows,
    cell_context,
    cell_downstream,
    checkpoint_samples,
    evaluate_samples,
    run_cell,
    sample_labels,
)
from sigdiff.sweep.config import (
    EVAL_SCHEMA,
    EXECUTORS,
    META_FIELDS,
    PACKAGED_CONFIGS,
    Cell,
    EvalSampler,
    EvalSpec,
    ExecutorSpec,
    SweepConfig,
    SweepError,
    _labels,
    _row_key,
    _wanted,
    describe,
    expand_grid,
    load_sweep,
    prepare_data,
    resolve_config_path,
    sampler_label,
    sweep_from_dict,
)
from sigdiff.sweep.executors import check_executor, run_cells

__all__ = [
    "EVAL_SCHEMA",
    "EXECUTORS",
    "META_FIELDS",
    "PACKAGED_CONFIGS",
    "Cell",
    "EvalSampler",
    "EvalSpec",
    "ExecutorSpec",
    "SweepConfig",
    "SweepError",
    "cell_context",
    "cell_downstream",
    "checkpoint_samples",
    "describe",
    "evaluate_samples",
    "expand_grid",
    "load_sweep",
    "prepare_data",
    "resolve_config_path",
    "run_cell",
    "run_sweep",
    "sample_labels",
    "sampler_label",
    "sweep_from_dict",
]


def _write_results(sweep: SweepConfig, out_dir: Path) -> list[dict[str, Any]]:
    """Rebuild results.jsonl / results.csv from the cell rows, in grid then step order."""
    rows: list[dict[str, Any]] = []
    order = {label: i for i, label in enumerate(_labels(sweep.eval))}
    for cell in sweep.cells:
        rows += sorted(_read_rows(out_dir / "cells" / cell.id / "rows.jsonl"),
                       key=lambda r: (order.get(_row_key(r, sweep.eval)[1], len(order)),
                                      r["step"]))
    atomic_write_text(out_dir / "results.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=_csv_fields(rows), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / "results.csv", table.getvalue())
    return rows


#: A training config's top-level defaults: sweeps recorded before a field existed lack its key
_TRAIN_DEFAULTS = config_to_dict(TrainConfig())


def _same_place(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A cell config with its data path resolved (`--out d` and `--out /abs/d` are one sweep) and
    the fields it was recorded without at their defaults."""
    data = cfg.get("data")
    return {**_TRAIN_DEFAULTS, **cfg,
            "data": str(Path(data).resolve()) if data and "://" not in data else data}


def _csv_fields(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Meta columns, then every generated / floor / copier figure and the gate, in row order."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    figures = [k for k in keys if k not in META_FIELDS and
               ("@" not in k or k.endswith(("@floor", "@copier")))]
    return [*META_FIELDS, *figures]


def _check_out_dir(sweep: SweepConfig, out_dir: Path) -> None:
    """Refuse to mix two different sweeps in one directory; record this one's grid."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"name": sweep.name, "raw": sweep.raw,
              "cells": {c.id: config_to_dict(c.config) for c in sweep.cells}}
    path = out_dir / "sweep.json"
    text = json.dumps(record, indent=2, sort_keys=True, default=str)
    if path.is_file():
        old = json.loads(path.read_text())
        new = json.loads(text)["cells"]
        changed = sorted(k for k in set(old["cells"]) & set(record["cells"])
                         if _same_place(old["cells"][k]) != _same_place(new[k]))
        if changed:
            raise SweepError(f"{out_dir} holds a sweep whose cells {changed[:3]} have a different "
                             "config; use another --out directory (nothing was overwritten)")
    atomic_write_text(path, text)


def run_sweep(sweep: SweepConfig, out_dir: str | Path, *, jobs: int | None = None,
              executor: ExecutorSpec | None = None,
              progress: bool = True) -> list[dict[str, Any]]:
    """Run every cell not yet done and write the results.

    Cells run on ``executor`` (default: the sweep TOML's ``[executor]`` table, else local
    processes; see `sigdiff.sweep.executors`); ``jobs`` overrides its local process count.
    The sweep folder is locked for the whole call: a second sweep into it is refused
    (`sigdiff._lock.LockError`) before anything is written; a killed sweep's lock is taken over.
    Cells that fail do not stop the others: the results of every finished cell are written, then
    the first failure is raised."""
    from tqdm.auto import tqdm

    from sigdiff._lock import folder_lock

    out_dir = Path(out_dir)
    spec = (executor or sweep.executor).merged(jobs=jobs)
    check_executor(spec, sweep.cells)
    with folder_lock(out_dir, what="sweep folder"):
        _check_out_dir(sweep, out_dir)
        prepare_data(sweep)
        pending = [c for c in sweep.cells if _needs_work(c, sweep, out_dir)]
        total = sum(len(_wanted(c, sweep.eval)) for c in sweep.cells)
        already = sum(len(_read_rows(out_dir / "cells" / c.id / "rows.jsonl")) for c in sweep.cells)
        bar = tqdm(total=total, initial=already, unit="ckpt", desc=f"sweep {sweep.name}",
                   disable=not progress, dynamic_ncols=True, smoothing=0.05)
        n_done = len(sweep.cells) - len(pending)

        def status() -> None:
            bar.set_postfix_str(f"cells {n_done}/{len(sweep.cells)} done")

        status()

        def finished(cell: Cell) -> None:
            nonlocal n_done
            n_done += 1
            status()
            _write_results(sweep, out_dir)

        t0 = time.perf_counter()
        try:
            run_cells(spec, sweep, out_dir, pending, on_cell=finished, on_rows=bar.update)
        finally:
            bar.close()
            rows = _write_results(sweep, out_dir)
        atomic_write_text(out_dir / "sweep_time.json", json.dumps(
            {"last_invocation_seconds": round(time.perf_counter() - t0, 1),
             "executor": spec.kind, "jobs": spec.jobs, "cells_run": len(pending)}))
        return rows
