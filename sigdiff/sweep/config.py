"""A sweep's configuration: the TOML schema, the evaluation spec (`[eval]`, `[[eval.also]]`),
the grid of cells, loading and validation, and the dataset a sweep materialises."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sigdiff._utils import unknown_keys
from sigdiff.config import ConfigError, TrainConfig, config_to_dict, load_config, merge_dicts

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


_SWEEP_KEYS = {"name", "seeds", "train_subsets", "vary_subset", "data", "train", "eval", "arm",
               "executor"}


class SweepError(ValueError):
    """The sweep config is invalid or the output directory holds a different sweep."""


#: where a sweep's cells can run (`sigdiff.sweep.executors`)
EXECUTORS = ("local", "ray", "slurm")


@dataclass(frozen=True)
class ExecutorSpec:
    """How and where cells run (the sweep TOML's ``[executor]`` table; CLI flags override it)."""

    kind: str = "local"
    #: local: cells trained at once in separate processes
    jobs: int = 1
    #: CPUs each cell gets: its torch threads, and what it asks Ray / Slurm for
    cpus_per_cell: int = 1
    #: GPUs each cell asks Ray / Slurm for (the cells' `device` must then be "cuda" or "auto")
    gpus_per_cell: int = 0
    ray_address: str | None = None
    partition: str | None = None
    #: Slurm time limit per cell, minutes
    time_min: int = 60
    mem_gb: float | None = None
    account: str | None = None
    #: further `#SBATCH` options, e.g. {qos = "high", constraint = "a100"}
    slurm_args: Mapping[str, Any] = field(default_factory=dict)
    #: submitit cluster: None = Slurm (sbatch must exist); "local" = local subprocesses
    slurm_cluster: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise SweepError(f"executor {self.kind!r} is not one of {', '.join(EXECUTORS)}")
        for name in ("jobs", "cpus_per_cell", "time_min"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SweepError(f"[executor] {name} must be a positive integer, got {value!r}")
        if not isinstance(self.gpus_per_cell, int) or self.gpus_per_cell < 0:
            raise SweepError(f"[executor] gpus_per_cell must be a non-negative integer, got "
                             f"{self.gpus_per_cell!r}")
        if self.slurm_cluster not in (None, "slurm", "local", "debug"):
            raise SweepError(f"[executor] slurm_cluster {self.slurm_cluster!r}: use 'local' "
                             "(local subprocesses) or leave it unset (Slurm)")

    def merged(self, **flags: Any) -> ExecutorSpec:
        """This spec with every flag that is not None replacing its field."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None})


def executor_from_table(table: Mapping[str, Any]) -> ExecutorSpec:
    """The ``[executor]`` table of a sweep TOML, checked key by key."""
    names = {f.name for f in fields(ExecutorSpec)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise SweepError(f"[executor]: unknown key(s) {unknown}; valid keys: "
                         f"{', '.join(sorted(names))}")
    if not isinstance(table.get("slurm_args", {}), Mapping):
        raise SweepError("[executor] slurm_args must be a table, e.g. { qos = \"high\" }")
    return ExecutorSpec(**table)


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
    train_path: str | Path  # a local path, or an fsspec URL kept as written
    holdout_path: str | Path
    data_source: Mapping[str, Any]
    cells: tuple[Cell, ...]
    eval: EvalSpec
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: where cells run (the TOML's [executor] table; `sigdiff sweep` flags override it)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)


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
PACKAGED_CONFIGS = Path(__file__).parent.parent / "configs"


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
    train_path: str | Path
    holdout_path: str | Path
    if "dataset" in data:
        root = Path(out_dir or ".") / "data"
        train_path, holdout_path = root / "train.zarr", root / "holdout.zarr"
    elif "train" in data and "holdout" in data:
        train_path, holdout_path = (_data_location(base_dir, data[k]) for k in ("train", "holdout"))
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
                       dict(raw), executor_from_table(_table(raw, "executor")))


def _data_location(base_dir: str | Path, where: Any) -> str | Path:
    """A store named in [data]: an fsspec URL (s3://, gs://, memory://) as given, else a path
    relative to the sweep TOML."""
    if not isinstance(where, str) or not where:
        raise SweepError(f"[data] train and holdout must be store paths or URLs, got {where!r}")
    return where if "://" in where else Path(base_dir) / where


def prepare_data(sweep: SweepConfig) -> None:
    """Write the catalog dataset and its stratified split when the sweep names one."""
    if "dataset" not in sweep.data_source:
        return
    from sigdiff.datasets import make_split

    d = sweep.data_source
    make_split(d["dataset"], Path(sweep.train_path).parent, holdout=float(d.get("holdout", 0.2)),
               split_seed=int(d.get("split_seed", 0)), seed=int(d.get("seed", 0)))


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


def _targets(cfg: TrainConfig, spec: EvalSpec | None = None) -> list[int]:
    """The steps at which a cell is checkpointed and evaluated (always including the last)."""
    if spec is not None and spec.checkpoints is not None:
        return sorted({*(s for s in spec.checkpoints if s <= cfg.steps), cfg.steps})
    every = cfg.checkpoint_every
    return sorted({*range(every, cfg.steps + 1, every), cfg.steps})


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
