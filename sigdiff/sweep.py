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
import re
import shutil
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sigdiff._faults import kill_point
from sigdiff._utils import atomic_write_text, unknown_keys
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

#: Version of the row schema; rows measured under another schema or metric settings are
#: re-measured from their saved samples on the next run.
EVAL_SCHEMA = 2
#: Leading CSV columns; the CSV then holds every generated, floor and copier figure and the gate
#: (results.jsonl holds every reference's figures as well).
META_FIELDS = (
    "cell", "arm", "train_subset", "seed", "step", "sampler", "steps", "n_samples",
    "n_train_records",
    "n_target", "n_compared", "train_seconds", "eval_seconds", "checkpoint", "timesteps",
    "weighting", "eval_fingerprint",
)
_SLUG = re.compile(r"[^a-z0-9]+")
_SWEEP_KEYS = {"name", "seeds", "train_subsets", "vary_subset", "data", "train", "eval", "arm"}


class SweepError(ValueError):
    """The sweep config is invalid or the output directory holds a different sweep."""


#: The sweep's default metric settings: no permutation p-values (unused by the report) and no
#: slow extras at every checkpoint; `[eval.metrics]` overrides any EvalConfig field.
SWEEP_METRICS = {"mmd_permutations": 0, "extras": []}


def _check_sampler(where: str, sampler: Any, steps: Any, grid: Any) -> None:
    from sigdiff.generate import GRIDS
    from sigdiff.samplers import SAMPLERS

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SweepError(f"{where} sampler_steps must be a positive integer, got {steps!r}")
    if grid not in GRIDS:
        raise SweepError(f"{where} unknown grid {grid!r}; valid choices: {', '.join(GRIDS)}")
    if sampler not in SAMPLERS:
        raise SweepError(f"{where} unknown sampler {sampler!r}; valid choices: "
                         f"{', '.join(sorted(SAMPLERS))}")


def _check_steps(where: str, steps: Any) -> tuple[int, ...]:
    if not isinstance(steps, list | tuple) or not steps or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in steps):
        raise SweepError(f"{where} checkpoints must be a list of positive steps, got {steps!r}")
    return tuple(sorted(set(steps)))


def sampler_label(sampler: str, steps: int, grid: str) -> str:
    """How rows name the evaluation sampler that drew their samples (`dpmpp_2m-25-trailing`)."""
    return f"{sampler}-{steps}-{grid}"


@dataclass(frozen=True)
class EvalSampler:
    """A further evaluation sampler (`[[eval.also]]`): the same checkpoints' models sampled another
    way (the generation sampler is a memorization knob of its own). It draws `n_samples` with the
    same seed at its `checkpoints` (default: each cell's final step only, where costly samplers
    such as ancestral DDPM-1000 are affordable); its rows carry its `sampler` label and stay out
    of the frontier, which is measured with the primary sampler."""

    sampler: str
    sampler_steps: int
    grid: str = "trailing"
    checkpoints: tuple[int, ...] | None = None
    #: arm labels this sampler evaluates (default: every arm), for samplers too costly for all
    arms: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_sampler("[[eval.also]]", self.sampler, self.sampler_steps, self.grid)
        if self.checkpoints is not None:
            object.__setattr__(self, "checkpoints",
                               _check_steps("[[eval.also]]", self.checkpoints))
        if self.arms is not None:
            if not isinstance(self.arms, list | tuple) or not self.arms or \
                    not all(isinstance(a, str) for a in self.arms):
                raise SweepError(f"[[eval.also]] arms must be a list of arm labels, got "
                                 f"{self.arms!r}")
            object.__setattr__(self, "arms", tuple(self.arms))

    @property
    def label(self) -> str:
        return sampler_label(self.sampler, self.sampler_steps, self.grid)

    def targets(self, final: int) -> set[int]:
        """The training steps at which this sampler evaluates a cell that ends at ``final``."""
        return {s for s in (self.checkpoints or ()) if s <= final} | {final}


@dataclass(frozen=True)
class EvalSpec:
    """How each checkpoint is evaluated: samples drawn, sampler, seeds, and the metric settings
    (`metrics`, the same EvalConfig `sigdiff eval` uses)."""

    n_samples: int = 500
    sampler: str = "dpmpp_2m"
    sampler_steps: int = 25
    #: σ grid of the evaluation sampler (`sigdiff.generate.GRIDS`); every grid ends at σ = 0
    grid: str = "trailing"
    sample_seed: int = 1234
    use_ema: bool = True
    #: Explicit evaluation steps (dense early, so no equal-alignment crossing is censored);
    #: default: every ``checkpoint_every`` steps. Each cell also evaluates its final step.
    checkpoints: tuple[int, ...] | None = None
    metrics: Any = None  # EvalConfig; a mapping from TOML is validated into one
    #: further evaluation samplers (`[[eval.also]]` tables), e.g. DDIM-100 to t = 0 and DDPM-1000
    also: tuple[EvalSampler, ...] = ()
    #: class-conditional cells: draw the samples with this class mix ('prior' or 'uniform',
    #: `sigdiff.generate.class_counts`) and keep their labels; None: unconditional draws
    balance: str | None = None
    #: downstream utility per checkpoint (needs `balance`): a table with `classifier`
    #: (default minirocket), `seeds` (2) and `augment` (1.0); rows gain `downstream.*` columns
    downstream: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        from sigdiff.metrics.evaluate import EvalConfig, eval_config_from_dict

        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, int) or \
                self.n_samples < 3:
            raise SweepError(f"[eval] n_samples must be an integer >= 3, got {self.n_samples!r}")
        _check_sampler("[eval]", self.sampler, self.sampler_steps, self.grid)
        if self.checkpoints is not None:
            object.__setattr__(self, "checkpoints", _check_steps("[eval]", self.checkpoints))
        also = []
        for entry in self.also or ():
            if isinstance(entry, Mapping):
                message = unknown_keys(EvalSampler, entry, where="[eval.also]")
                if message:
                    raise SweepError(message)
                try:
                    entry = EvalSampler(**entry)
                except TypeError as exc:
                    raise SweepError(f"[[eval.also]]: {exc}") from exc
            if not isinstance(entry, EvalSampler):
                raise SweepError(f"[[eval.also]] entries must be tables, got {entry!r}")
            also.append(entry)
        labels = [self.label, *(e.label for e in also)]
        if len(set(labels)) != len(labels):
            raise SweepError(f"[[eval.also]] repeats an evaluation sampler: {labels}")
        object.__setattr__(self, "also", tuple(also))
        self._check_downstream()
        if not isinstance(self.metrics, EvalConfig):
            values = {**SWEEP_METRICS, **dict(self.metrics or {})}
            try:
                object.__setattr__(self, "metrics", eval_config_from_dict(values))
            except ValueError as exc:
                raise SweepError(f"[eval.metrics]: {exc}") from exc

    def _check_downstream(self) -> None:
        from sigdiff.generate import BALANCES
        from sigdiff.metrics.downstream import CLASSIFIERS

        if self.balance is not None and self.balance not in BALANCES:
            raise SweepError(f"[eval] balance must be one of {', '.join(BALANCES)}, got "
                             f"{self.balance!r}")
        if self.downstream is None:
            return
        if self.balance is None:
            raise SweepError("[eval] downstream needs labelled samples: set balance = \"prior\" "
                             "(class-conditional cells)")
        d = {"classifier": "minirocket", "seeds": 2, "augment": 1.0, **dict(self.downstream)}
        unknown = sorted(set(d) - {"classifier", "seeds", "augment"})
        if unknown:
            raise SweepError(f"[eval] downstream: unknown key(s) {unknown}; valid: augment, "
                             "classifier, seeds")
        if d["classifier"] not in CLASSIFIERS:
            raise SweepError(f"[eval] downstream classifier must be one of "
                             f"{', '.join(CLASSIFIERS)}, got {d['classifier']!r}")
        if not isinstance(d["seeds"], int) or d["seeds"] < 1 or not d["augment"] > 0:
            raise SweepError(f"[eval] downstream seeds must be >= 1 and augment > 0, got {d}")
        object.__setattr__(self, "downstream", d)

    @property
    def label(self) -> str:
        """The primary sampler's label (its rows make the frontier)."""
        return sampler_label(self.sampler, self.sampler_steps, self.grid)

    def sampling(self, label: str | None = None) -> dict[str, Any]:
        """What determines the samples of a checkpoint under the sampler ``label`` (default: the
        primary one); saved beside them."""
        if label is None or label == self.label:
            how: Any = self
        else:
            how = next((e for e in self.also if e.label == label), None)
            if how is None:
                raise SweepError(f"no evaluation sampler {label!r} in this sweep")
        out = {"n_samples": self.n_samples, "sampler": how.sampler,
               "sampler_steps": how.sampler_steps, "grid": how.grid,
               "sample_seed": self.sample_seed, "use_ema": self.use_ema}
        if self.balance is not None:  # only when set: older sweeps' saved samples stay valid
            out["balance"] = self.balance
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain values (what `--dry-run` prints)."""
        return {**self.sampling(), "checkpoints": list(self.checkpoints or ()) or None,
                "metrics": self.metrics.to_dict(),
                "also": [{"sampler": e.sampler, "sampler_steps": e.sampler_steps, "grid": e.grid,
                          "checkpoints": list(e.checkpoints or ()) or None,
                          "arms": list(e.arms or ()) or None} for e in self.also],
                "balance": self.balance, "downstream": self.downstream}

    def fingerprint(self) -> str:
        """Identifies the metric settings and result schema a row was measured with."""
        import hashlib

        what: dict[str, Any] = {"schema": EVAL_SCHEMA, "metrics": self.metrics.to_dict()}
        if self.downstream is not None:  # only when set: older rows stay fresh
            what["downstream"] = self.downstream
        text = json.dumps(what, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


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
    labels = {c.arm for c in cells}
    for extra in spec.also:
        unknown = sorted(set(extra.arms or ()) - labels)
        if unknown:
            raise SweepError(f"[[eval.also]] {extra.label}: arms {unknown} are not arm labels of "
                             f"this sweep ({', '.join(sorted(labels))})")
    for cell in cells:
        if spec.balance is not None and not cell.config.conditional:
            raise SweepError(f"[eval] balance = {spec.balance!r} draws class-conditional samples, "
                             f"but cell {cell.id} is unconditional: set conditional = true (and "
                             "label_dropout > 0) in [train], or drop balance/downstream")
        off = [t for t in _targets(cell.config, spec)
               if t % cell.config.checkpoint_every and t != cell.config.steps]
        if off:
            raise SweepError(f"[eval] checkpoints {off} of cell {cell.id} are not multiples of "
                             f"checkpoint_every = {cell.config.checkpoint_every}: a run only "
                             "saves (and resumes from) those steps; lower checkpoint_every")
        targets = set(_targets(cell.config, spec))
        for extra in spec.also:
            stray = sorted(extra.targets(cell.config.steps) - targets)
            if stray:
                raise SweepError(f"[[eval.also]] {extra.label}: checkpoints {stray} of cell "
                                 f"{cell.id} are not evaluation steps of [eval] checkpoints; "
                                 "a further sampler evaluates a subset of them")
    return SweepConfig(str(raw.get("name", "sweep")), train_path, holdout_path, data, cells, spec,
                       dict(raw))


def prepare_data(sweep: SweepConfig) -> None:
    """Write the catalog dataset and its stratified split when the sweep names one."""
    if "dataset" not in sweep.data_source:
        return
    from sigdiff.datasets import make_split

    d = sweep.data_source
    make_split(d["dataset"], sweep.train_path.parent, holdout=float(d.get("holdout", 0.2)),
               split_seed=int(d.get("split_seed", 0)), seed=int(d.get("seed", 0)))


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


def _targets(cfg: TrainConfig, spec: EvalSpec | None = None) -> list[int]:
    """The steps at which a cell is checkpointed and evaluated (always including the last)."""
    if spec is not None and spec.checkpoints is not None:
        return sorted({*(s for s in spec.checkpoints if s <= cfg.steps), cfg.steps})
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


def _labels(spec: EvalSpec) -> list[str]:
    return [spec.label, *(e.label for e in spec.also)]


def _row_key(row: Mapping[str, Any], spec: EvalSpec) -> tuple[int, str]:
    """(step, sampler label); rows written before `[[eval.also]]` are the primary sampler's."""
    return int(row["step"]), str(row.get("sampler") or spec.label)


def _wanted(cell: Cell, spec: EvalSpec) -> set[tuple[int, str]]:
    """Every (step, sampler) row a finished cell holds."""
    final = cell.config.steps
    keys = {(s, spec.label) for s in _targets(cell.config, spec)}
    for extra in spec.also:
        if extra.arms is None or cell.arm in extra.arms:
            keys |= {(s, extra.label) for s in extra.targets(final)}
    return keys


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


# ----------------------------------------------------------------------------- the sweep
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


def _same_place(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A cell config with its data path resolved: `--out d` and `--out /abs/d` are one sweep."""
    out = {**cfg, "data": str(Path(cfg["data"]).resolve()) if cfg.get("data") else cfg.get("data")}
    if out.get("guard", 0) is None:  # sweeps recorded before the guard existed lack the key
        del out["guard"]
    return out


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


def _run_cell_worker(cell: Cell, sweep: SweepConfig, out_dir: str, queue: Any) -> str:
    run_cell(cell, sweep, out_dir, on_event=lambda c, s: queue.put((c, s)))
    return cell.id


def run_sweep(sweep: SweepConfig, out_dir: str | Path, *, jobs: int = 1,
              progress: bool = True) -> list[dict[str, Any]]:
    """Run every cell not yet done (``jobs`` processes, one thread each) and write the results.

    The sweep folder is locked for the whole call: a second sweep into it is refused
    (`sigdiff._lock.LockError`) before anything is written; a killed sweep's lock is taken over."""
    from tqdm.auto import tqdm

    from sigdiff._lock import folder_lock

    out_dir = Path(out_dir)
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
        atomic_write_text(out_dir / "sweep_time.json", json.dumps(
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
    ckpts = sum(len(_wanted(c, sweep.eval)) for c in sweep.cells)
    lines = [f"sweep {sweep.name!r}: {len(sweep.cells)} cells, {steps} training steps, "
             f"{ckpts} checkpoint evaluations of {sweep.eval.n_samples} samples "
             f"(samplers {', '.join(_labels(sweep.eval))})",
             f"train data {sweep.train_path}; holdout {sweep.holdout_path}"]
    lines += [f"  {c.id}: timesteps={json.dumps(config_to_dict(c.config)['timesteps'])} "
              f"weighting={json.dumps(config_to_dict(c.config)['weighting'])} "
              f"steps={c.config.steps}" for c in sweep.cells]
    return "\n".join(lines)

