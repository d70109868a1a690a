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
import json
import re
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sigdiff.config import ConfigError, TrainConfig, config_to_dict, load_config, merge_dicts

__all__ = [
    "Cell",
    "EvalSpec",
    "SweepConfig",
    "SweepError",
    "expand_grid",
    "load_sweep",
    "run_sweep",
]

RESULT_FIELDS = (
    "cell", "arm", "train_subset", "seed", "step", "steps", "memorized_fraction",
    "dcr_median_ratio", "dcr_p_closer", "mmd2_vs_holdout", "pca_w_vs_holdout",
    "pca_js_vs_holdout", "lsd_db_vs_holdout", "mmd2_vs_train", "pca_w_vs_train",
    "pca_js_vs_train", "floor_memorized_fraction", "floor_mmd2_vs_holdout",
    "floor_pca_w_vs_holdout", "floor_pca_js_vs_holdout", "floor_lsd_db_vs_holdout",
    "floor_mmd2_vs_train", "floor_pca_w_vs_train", "floor_pca_js_vs_train",
    "copy_mmd2_vs_holdout", "copy_pca_w_vs_holdout", "n_samples", "n_train_records",
    "n_holdout", "train_seconds", "eval_seconds", "checkpoint", "timesteps", "weighting",
)
_SLUG = re.compile(r"[^a-z0-9]+")
_SWEEP_KEYS = {"name", "seeds", "train_subsets", "vary_subset", "data", "train", "eval", "arm"}


class SweepError(ValueError):
    """The sweep config is invalid or the output directory holds a different sweep."""


@dataclass(frozen=True)
class EvalSpec:
    """How each checkpoint is evaluated: samples drawn, sampler and the fixed seeds."""

    n_samples: int = 200
    sampler: str = "dpmpp_2m"
    sampler_steps: int = 25
    sample_seed: int = 1234
    metric_seed: int = 0
    mmd_permutations: int = 0  # the p-value is not used by the sweep; 0 skips the permutations
    use_ema: bool = True

    def __post_init__(self) -> None:
        if self.n_samples < 3 or self.sampler_steps < 1:
            raise SweepError("[eval] n_samples must be >= 3 and sampler_steps >= 1")


@dataclass(frozen=True)
class Cell:
    """One run of the grid: an arm at one training-set size and seed."""

    id: str
    arm: str
    train_subset: int | None
    seed: int
    config: TrainConfig


@dataclass(frozen=True)
class SweepConfig:
    name: str
    train_path: Path
    holdout_path: Path
    data_source: Mapping[str, Any]
    cells: tuple[Cell, ...]
    eval: EvalSpec
    raw: Mapping[str, Any] = field(default_factory=dict)


def _slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")


def _table(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise SweepError(f"[{key}] must be a table")
    return dict(value)


def expand_grid(raw: Mapping[str, Any], *, train_path: str | Path) -> tuple[Cell, ...]:
    """Arms × training-set sizes × seeds, each a validated TrainConfig (grid order)."""
    arms = raw.get("arm")
    if not isinstance(arms, list) or not arms:
        raise SweepError("the sweep needs at least one [[arm]] table (label + config overrides)")
    seeds = raw.get("seeds", [0])
    subsets = raw.get("train_subsets", [None])
    if not seeds or not all(isinstance(s, int) for s in seeds):
        raise SweepError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    if not subsets or not all(s is None or (isinstance(s, int) and s > 1) for s in subsets):
        raise SweepError(f"train_subsets must be a list of integers > 1, got {subsets!r}")
    base = _table(raw, "train")
    for key in ("data", "seed", "train_subset"):
        if key in base:
            raise SweepError(f"[train] must not set {key!r}: the sweep sets it per cell")
    vary = raw.get("vary_subset", True)
    labels: list[str] = []
    for arm in arms:
        label = arm.get("label") if isinstance(arm, Mapping) else None
        if not isinstance(label, str) or not _slug(label):
            raise SweepError(f"every [[arm]] needs a label; got {label!r}")
        if _slug(label) in map(_slug, labels):
            raise SweepError(f"duplicate arm label {label!r}")
        labels.append(label)
    cells = []
    # seed-major order: a sweep stopped early still holds every arm at the first seeds
    for seed in seeds:
        for subset in subsets:
            for label, arm in zip(labels, arms):
                overrides = {k: v for k, v in arm.items() if k != "label"}
                values = merge_dicts(base, overrides)
                values.update(data=str(train_path), seed=seed, train_subset=subset)
                if vary and subset is not None:
                    values["subset_seed"] = seed  # a different training subset per seed
                try:
                    cfg = load_config(overrides=values)
                except ConfigError as exc:
                    raise SweepError(f"arm {label!r}: {exc}") from exc
                size = "all" if subset is None else str(subset)
                cells.append(Cell(f"{_slug(label)}__n{size}__s{seed}", label, subset, seed, cfg))
    return tuple(cells)


#: Sweep configs shipped with sigdiff, usable by name (`sigdiff sweep demo --out DIR`).
PACKAGED_CONFIGS = Path(__file__).parent / "configs"


def resolve_config_path(name: str | Path) -> Path:
    """A TOML path, or the name of a packaged config (`demo`)."""
    path = Path(name)
    if path.is_file():
        return path
    packaged = PACKAGED_CONFIGS / f"{name}.toml"
    if packaged.is_file():
        return packaged
    names = sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.toml"))
    raise SweepError(f"sweep config {str(name)!r} does not exist (packaged configs: "
                     f"{', '.join(names) or 'none'})")


def load_sweep(path: str | Path, *, out_dir: str | Path | None = None) -> SweepConfig:
    """Parse and validate a sweep TOML (a path or a packaged name). Data paths are relative to
    the TOML file; a `dataset` (catalog name) is materialised and split under `out_dir/data/`."""
    path = resolve_config_path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: not valid TOML: {exc}") from exc
    return sweep_from_dict(raw, base_dir=path.parent, out_dir=out_dir)


def sweep_from_dict(raw: Mapping[str, Any], *, base_dir: str | Path = ".",
                    out_dir: str | Path | None = None) -> SweepConfig:
    unknown = sorted(set(raw) - _SWEEP_KEYS)
    if unknown:
        raise SweepError(f"unknown key(s) {', '.join(map(repr, unknown))} in the sweep config; "
                         f"valid keys: {', '.join(sorted(_SWEEP_KEYS))}")
    data = _table(raw, "data")
    if "dataset" in data:
        root = Path(out_dir or ".") / "data"
        train_path, holdout_path = root / "train.zarr", root / "holdout.zarr"
    elif "train" in data and "holdout" in data:
        train_path = Path(base_dir) / data["train"]
        holdout_path = Path(base_dir) / data["holdout"]
    else:
        raise SweepError("[data] needs either dataset = NAME (with holdout, split_seed) or "
                         "train = PATH and holdout = PATH")
    try:
        spec = EvalSpec(**_table(raw, "eval"))
    except TypeError as exc:
        raise SweepError(f"[eval]: {exc}") from exc
    cells = expand_grid(raw, train_path=train_path)
    return SweepConfig(str(raw.get("name", "sweep")), train_path, holdout_path, data, cells, spec,
                       dict(raw))


def prepare_data(sweep: SweepConfig) -> None:
    """Write the catalog dataset and its stratified split when the sweep names one."""
    if "dataset" not in sweep.data_source or sweep.holdout_path.exists():
        return
    from sigdiff.data.store import split_store
    from sigdiff.datasets import make_dataset

    src = sweep.train_path.parent / "full.zarr"
    d = sweep.data_source
    make_dataset(d["dataset"], src, seed=int(d.get("seed", 0)), overwrite=True)
    split_store(src, holdout=float(d.get("holdout", 0.2)), seed=int(d.get("split_seed", 0)),
                out_train=sweep.train_path, out_holdout=sweep.holdout_path, overwrite=True)


# ----------------------------------------------------------------------------- one cell
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


def _floors(train_rec: np.ndarray, pool: np.ndarray, holdout: np.ndarray, *, n: int,
            spec: EvalSpec, sampling_rate: float, pca: Any, seed: int) -> dict[str, Any]:
    """Real-data floors: holdout vs the training records (memorization, alignment vs train) and an
    equally sized real sample from the non-holdout pool vs the holdout (alignment)."""
    from sigdiff.metrics import mmd2, neighbor_ratio, pca_distances

    rng = np.random.default_rng([spec.metric_seed, seed, len(train_rec)])
    real = pool[np.sort(rng.choice(len(pool), min(n, len(pool)), replace=False))]
    hold = neighbor_ratio(holdout, train_rec, name="holdout")
    al = _alignment(real, holdout, train_rec, spec=spec, sampling_rate=sampling_rate, pca=pca)
    copy = _alignment(train_rec, holdout, train_rec, spec=spec, sampling_rate=sampling_rate,
                      pca=pca, with_train=False)
    tr = pca_distances(holdout, train_rec, pca=pca)
    return {
        "floor_memorized_fraction": hold.fraction,
        "floor_mmd2_vs_holdout": al["mmd2_vs_holdout"],
        "floor_pca_w_vs_holdout": al["pca_w_vs_holdout"],
        "floor_pca_js_vs_holdout": al["pca_js_vs_holdout"],
        "floor_lsd_db_vs_holdout": al["lsd_db_vs_holdout"],
        "floor_mmd2_vs_train": mmd2(train_rec, holdout, n_permutations=spec.mmd_permutations,
                                    seed=spec.metric_seed).mmd2,
        "floor_pca_w_vs_train": tr["pca_wasserstein"],
        "floor_pca_js_vs_train": tr["pca_js"],
        "copy_mmd2_vs_holdout": copy["mmd2_vs_holdout"],
        "copy_pca_w_vs_holdout": copy["pca_w_vs_holdout"],
        "_holdout_dcr": hold.d1.tolist(),
    }


def _alignment(x: np.ndarray, holdout: np.ndarray, train_rec: np.ndarray, *, spec: EvalSpec,
               sampling_rate: float, pca: Any, with_train: bool = True) -> dict[str, float]:
    from sigdiff.metrics import mmd2, pca_distances
    from sigdiff.metrics.spectral import spectral_report

    ph = pca_distances(x, holdout, pca=pca)
    out = {
        "mmd2_vs_holdout": mmd2(holdout, x, n_permutations=spec.mmd_permutations,
                                seed=spec.metric_seed).mmd2,
        "pca_w_vs_holdout": ph["pca_wasserstein"],
        "pca_js_vs_holdout": ph["pca_js"],
        "lsd_db_vs_holdout": float(spectral_report(holdout, x, sampling_rate=sampling_rate)
                                   ["log_spectral_distance_db"]),  # type: ignore[arg-type]
    }
    if with_train:
        pt = pca_distances(x, train_rec, pca=pca)
        out.update(mmd2_vs_train=mmd2(train_rec, x, n_permutations=spec.mmd_permutations,
                                      seed=spec.metric_seed).mmd2,
                   pca_w_vs_train=pt["pca_wasserstein"], pca_js_vs_train=pt["pca_js"])
    return out


def _cell_floors(cell: Cell, sweep: SweepConfig, out_dir: Path, train_all: np.ndarray,
                 holdout: np.ndarray, records: np.ndarray, sampling_rate: float,
                 pca: Any) -> dict[str, Any]:
    """Floors per (training-set size, subset seed), cached in `floors/` (computed once)."""
    key = f"n{cell.train_subset or 'all'}__subset{cell.config.subset_seed}"
    path = out_dir / "floors" / f"{key}.json"
    if path.is_file():
        out: dict[str, Any] = json.loads(path.read_text())
        return out
    pool = train_all  # the non-holdout records: the population an ideal generator would match
    floors = _floors(train_all[records], pool, holdout, n=sweep.eval.n_samples, spec=sweep.eval,
                     sampling_rate=sampling_rate, pca=pca, seed=cell.config.subset_seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(floors))
    tmp.replace(path)
    return floors


def evaluate_checkpoint(ckpt: Path, *, train_all: np.ndarray, holdout: np.ndarray,
                        floors: Mapping[str, Any], spec: EvalSpec, sampling_rate: float,
                        pca: Any) -> dict[str, Any]:
    """Generate `spec.n_samples` from one checkpoint and measure it against its own records."""
    from sigdiff.generate import generate, load_model
    from sigdiff.metrics import dcr_comparison, neighbor_ratio

    model = load_model(ckpt, use_ema=spec.use_ema)
    records = model.meta.get("train_records")
    train_rec = train_all if records is None else train_all[np.asarray(records)]
    x = generate(model, n=spec.n_samples, seed=spec.sample_seed, sampler=spec.sampler,
                 steps=spec.sampler_steps, progress=False)  # (n, C, L) in data units
    nr = neighbor_ratio(x, train_rec)
    dcr = dcr_comparison(nr.d1, np.asarray(floors["_holdout_dcr"]))
    row = {"memorized_fraction": nr.fraction, "dcr_median_ratio": dcr["median_ratio"],
           "dcr_p_closer": dcr["p_closer"], "n_samples": len(x),
           "n_train_records": len(train_rec), "n_holdout": len(holdout)}
    row.update(_alignment(x, holdout, train_rec, spec=spec, sampling_rate=sampling_rate, pca=pca))
    row.update({k: v for k, v in floors.items() if not k.startswith("_")})
    return row


def _targets(cfg: TrainConfig) -> list[int]:
    every = cfg.checkpoint_every
    return sorted({*range(every, cfg.steps + 1, every), cfg.steps})


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
    from sigdiff.checkpoint import list_checkpoints
    from sigdiff.data.store import read_store
    from sigdiff.metrics import fit_pca
    from sigdiff.training import subset_records, train

    cell_dir = out_dir / "cells" / cell.id
    run_dir, rows_path = cell_dir / "run", cell_dir / "rows.jsonl"
    cell_dir.mkdir(parents=True, exist_ok=True)
    if (cell_dir / "done.json").is_file():
        return _read_rows(rows_path)
    train_all, attrs = read_store(sweep.train_path)
    holdout, _ = read_store(sweep.holdout_path)
    rate = float(attrs["sampling_rate"])
    pca = fit_pca(train_all)  # one PCA basis for every cell: the full non-holdout training split
    records = subset_records(cell.config, len(train_all))
    floors = _cell_floors(cell, sweep, out_dir, train_all, holdout, records, rate, pca)
    rows = _read_rows(rows_path)
    rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # drop a cut last line
    done = {r["step"] for r in rows}
    meta = {"cell": cell.id, "arm": cell.arm, "train_subset": cell.train_subset,
            "seed": cell.seed, "steps": cell.config.steps,
            "timesteps": json.dumps(config_to_dict(cell.config)["timesteps"], sort_keys=True),
            "weighting": json.dumps(config_to_dict(cell.config)["weighting"], sort_keys=True)}
    evaluated = 0

    def evaluate_pending(train_seconds: float) -> bool:
        nonlocal evaluated
        for ckpt in list_checkpoints(run_dir):
            step = int(ckpt.name[5:])
            if step in done:
                continue
            t0 = time.perf_counter()
            row = evaluate_checkpoint(ckpt, train_all=train_all, holdout=holdout, floors=floors,
                                      spec=sweep.eval, sampling_rate=rate, pca=pca)
            row = {**meta, "step": step, **row, "train_seconds": round(train_seconds, 3),
                   "eval_seconds": round(time.perf_counter() - t0, 3),
                   "checkpoint": str(ckpt.relative_to(out_dir))}
            _append_row(rows_path, row)
            rows.append(row)
            done.add(step)
            evaluated += 1
            if on_event:
                on_event(cell.id, step)
        return stop_after_checkpoints is not None and evaluated >= stop_after_checkpoints

    if evaluate_pending(0.0):
        return rows
    ckpts = list_checkpoints(run_dir)
    current = int(ckpts[-1].name[5:]) if ckpts else 0
    for target in _targets(cell.config):
        if target <= current:
            continue
        t0 = time.perf_counter()
        train(cell.config, run_dir=run_dir, resume=(run_dir / "config.json").is_file(),
              progress=False, stop_after=target - current)
        current = target
        if evaluate_pending(time.perf_counter() - t0):
            return rows
    (cell_dir / "done.json").write_text(json.dumps({"cell": cell.id, "steps": current}))
    return rows


# ----------------------------------------------------------------------------- the sweep
def _write_results(sweep: SweepConfig, out_dir: Path) -> list[dict[str, Any]]:
    """Rebuild results.jsonl / results.csv from the cell rows, in grid then step order."""
    rows: list[dict[str, Any]] = []
    for cell in sweep.cells:
        rows += sorted(_read_rows(out_dir / "cells" / cell.id / "rows.jsonl"),
                       key=lambda r: r["step"])
    tmp = out_dir / "results.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(out_dir / "results.jsonl")
    tmp = out_dir / "results.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESULT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out_dir / "results.csv")
    return rows


def _check_out_dir(sweep: SweepConfig, out_dir: Path) -> None:
    """Refuse to mix two different sweeps in one directory; record this one's grid."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"name": sweep.name, "raw": sweep.raw,
              "cells": {c.id: config_to_dict(c.config) for c in sweep.cells}}
    path = out_dir / "sweep.json"
    text = json.dumps(record, indent=2, sort_keys=True, default=str)
    if path.is_file():
        old = json.loads(path.read_text())
        changed = sorted(k for k in set(old["cells"]) & set(record["cells"])
                         if old["cells"][k] != json.loads(text)["cells"][k])
        if changed:
            raise SweepError(f"{out_dir} holds a sweep whose cells {changed[:3]} have a different "
                             "config; use another --out directory (nothing was overwritten)")
    path.write_text(text)


def _run_cell_worker(cell: Cell, sweep: SweepConfig, out_dir: str, queue: Any) -> str:
    run_cell(cell, sweep, out_dir, on_event=lambda c, s: queue.put((c, s)))
    return cell.id


def run_sweep(sweep: SweepConfig, out_dir: str | Path, *, jobs: int = 1,
              progress: bool = True) -> list[dict[str, Any]]:
    """Run every cell not yet done (``jobs`` processes, one thread each) and write the results."""
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    _check_out_dir(sweep, out_dir)
    prepare_data(sweep)
    pending = [c for c in sweep.cells if not (out_dir / "cells" / c.id / "done.json").is_file()]
    total = sum(len(_targets(c.config)) for c in sweep.cells)
    already = sum(len(_read_rows(out_dir / "cells" / c.id / "rows.jsonl")) for c in sweep.cells)
    bar = tqdm(total=total, initial=already, unit="ckpt", desc=f"sweep {sweep.name}",
               disable=not progress, dynamic_ncols=True, smoothing=0.05)
    n_done = len(sweep.cells) - len(pending)

    def status() -> None:
        bar.set_postfix_str(f"cells {n_done}/{len(sweep.cells)} done")

    status()
    t0 = time.perf_counter()
    if jobs <= 1:
        for cell in pending:
            run_cell(cell, sweep, out_dir, on_event=lambda c, s: bar.update(1))
            n_done += 1
            status()
            _write_results(sweep, out_dir)
    else:
        _run_parallel(sweep, out_dir, pending, jobs, bar)
        n_done = len(sweep.cells)
    bar.close()
    rows = _write_results(sweep, out_dir)
    (out_dir / "sweep_time.json").write_text(json.dumps(
        {"last_invocation_seconds": round(time.perf_counter() - t0, 1), "jobs": jobs,
         "cells_run": len(pending)}))
    return rows


def _run_parallel(sweep: SweepConfig, out_dir: Path, pending: Sequence[Cell], jobs: int,
                  bar: Any) -> None:
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context("spawn")  # no forked torch thread pools
    with ctx.Manager() as manager, ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
        q = manager.Queue()
        futures: dict[Future[str], Cell] = {
            pool.submit(_run_cell_worker, c, sweep, str(out_dir), q): c for c in pending}
        done_cells = len(sweep.cells) - len(pending)
        remaining = set(futures)
        while remaining:
            finished, remaining = wait(remaining, timeout=1.0, return_when=FIRST_COMPLETED)
            while True:
                try:
                    q.get_nowait()
                except queue_mod.Empty:
                    break
                bar.update(1)
            for fut in finished:
                fut.result()  # re-raise a failed cell's error here
                done_cells += 1
                _write_results(sweep, out_dir)
            if finished:
                bar.set_postfix_str(f"cells {done_cells}/{len(sweep.cells)} done")


def describe(sweep: SweepConfig) -> str:
    """A short plan: cells, steps, checkpoints (what `--dry-run` prints)."""
    steps = sum(c.config.steps for c in sweep.cells)
    ckpts = sum(len(_targets(c.config)) for c in sweep.cells)
    lines = [f"sweep {sweep.name!r}: {len(sweep.cells)} cells, {steps} training steps, "
             f"{ckpts} checkpoint evaluations of {sweep.eval.n_samples} samples "
             f"({sweep.eval.sampler} × {sweep.eval.sampler_steps})",
             f"train data {sweep.train_path}; holdout {sweep.holdout_path}"]
    lines += [f"  {c.id}: timesteps={json.dumps(config_to_dict(c.config)['timesteps'])} "
              f"weighting={json.dumps(config_to_dict(c.config)['weighting'])} "
              f"steps={c.config.steps}" for c in sweep.cells]
    return "\n".join(lines)

