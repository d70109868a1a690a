"""Frozen training configuration: dataclasses, presets, TOML loading, strict validation.

Precedence is preset < TOML file < explicit overrides (CLI flags). Unknown keys are an error that
lists the valid ones. The resolved config is written beside every run and embedded in every
checkpoint as JSON, so a checkpoint alone rebuilds its model.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigdiff._utils import choice_error, unknown_keys
from sigdiff.guard.config import GuardConfig, GuardConfigError
from sigdiff.parameterization import PARAMETERIZATIONS, Parameterization
from sigdiff.schedules import DiscreteSchedule
from sigdiff.timesteps import TimestepSamplerConfig
from sigdiff.weighting import LossWeightingConfig

__all__ = [
    "TRAIN_PRESETS",
    "ConfigError",
    "DiffusionConfig",
    "ModelSpec",
    "OptimConfig",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
]

PRECISIONS = ("fp32", "bf16")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names it and the valid choices."""


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


@dataclass(frozen=True)
class DiffusionConfig:
    """Noise schedule and parameterization (the training-time definition of the process)."""

    schedule: str = "linear"
    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    zero_terminal_snr: bool = False
    parameterization: str = "eps"
    sigma_data: float = 1.0

    def __post_init__(self) -> None:
        if self.parameterization not in PARAMETERIZATIONS:
            raise ConfigError(str(choice_error("parameterization", self.parameterization,
                                               PARAMETERIZATIONS)))
        self.build_schedule()
        self.build_parameterization()

    def build_schedule(self) -> DiscreteSchedule:
        return DiscreteSchedule(self.schedule, self.num_timesteps, self.beta_start, self.beta_end,
                                self.zero_terminal_snr, warn_terminal_snr=False)

    def build_parameterization(self) -> Parameterization:
        return Parameterization(self.parameterization, self.sigma_data)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ModelSpec:
    """Which network: a registry name, a preset, and field overrides."""

    name: str = "unet"
    preset: str | None = "small"
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", dict(self.overrides))


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay to ``min_lr_ratio·lr``."""

    lr: float = 2e-4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 100
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    grad_accum: int = 1

    def __post_init__(self) -> None:
        _positive("optim.lr", self.lr)
        _positive("optim.weight_decay", self.weight_decay, allow_zero=True)
        _positive("optim.warmup_steps", self.warmup_steps, allow_zero=True)
        _positive("optim.grad_clip", self.grad_clip, allow_zero=True)
        if self.grad_accum < 1:
            raise ConfigError(f"optim.grad_accum must be >= 1, got {self.grad_accum!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(str(choice_error("lr_schedule", self.lr_schedule,
                                               ("constant", "cosine"))))
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"optim.min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; embedded in each checkpoint."""

    data: str = ""
    steps: int = 2000
    batch_size: int = 64
    seed: int = 0
    crop_length: int | None = None
    #: Train on this many records of the store (a random subset drawn by ``subset_seed``);
    #: memorization appears quickly on small training sets (Gu et al. 2023).
    train_subset: int | None = None
    subset_seed: int = 0
    model: ModelSpec = field(default_factory=ModelSpec)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    timesteps: TimestepSamplerConfig = field(default_factory=TimestepSamplerConfig)
    weighting: LossWeightingConfig = field(default_factory=LossWeightingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema_decay: float = 0.999
    ema_warmup: bool = True
    label_dropout: float = 0.0
    conditional: bool = False
    precision: str = "fp32"
    #: run the network through `torch.compile` (inductor) for training; the first step compiles
    #: (~40-80 s on CPU), later steps are 1.08× (U-Net) to 1.18× (DiT) faster on 2 CPU cores
    #: (docs/benchmarks.md). Fused kernels round differently: losses agree with eager training
    #: to float32 tolerance, not bit for bit, so it is recorded here with the run.
    compile: bool = False
    device: str = "cpu"
    checkpoint_every: int = 500
    keep_last: int = 3
    log_every: int = 50
    #: the memorization guard (`sigdiff.guard`); None: unguarded
    guard: GuardConfig | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.batch_size % self.optim.grad_accum:
            raise ConfigError(f"batch_size ({self.batch_size}) must be divisible by "
                              f"optim.grad_accum ({self.optim.grad_accum})")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must lie in [0, 1), got {self.ema_decay!r}")
        if not 0 <= self.label_dropout < 1:
            raise ConfigError(f"label_dropout must lie in [0, 1), got {self.label_dropout!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(str(choice_error("precision", self.precision, PRECISIONS)))
        if self.train_subset is not None and self.train_subset < 1:
            raise ConfigError(f"train_subset must be a positive integer, got {self.train_subset!r}")
        if self.crop_length is not None and self.crop_length < 1:
            raise ConfigError(f"crop_length must be positive, got {self.crop_length!r}")
        try:  # the sampler on this run's own schedule (its config checked it on the default one)
            self.timesteps.build(self.diffusion.build_schedule())
        except ValueError as exc:
            raise ConfigError(f"[timesteps]: {exc}") from None
        if self.guard is not None:
            self._check_guard(self.guard)

    def _check_guard(self, g: GuardConfig) -> None:
        if self.crop_length is not None:
            raise ConfigError("guard: the guard compares generated records with whole training "
                              "records; crop_length makes them shorter, so drop one of the two")
        if self.conditional and self.label_dropout == 0:
            raise ConfigError("guard: the guard samples unconditionally; a conditional run needs "
                              "label_dropout > 0 (classifier-free training) to be guarded")
        c = g.controller
        if c is None:
            return
        ts = self.timesteps
        if ts.name == "loss_aware":
            raise ConfigError("guard.controller: loss_aware adapts itself; the controller moves "
                              "stateless samplers only")
        if c.param != "floor" and c.param not in ts.params:
            raise ConfigError(f"guard.controller.param {c.param!r}: the timestep sampler "
                              f"{ts.name!r} has no such parameter (ci_gaussian has center and "
                              "width); move 'floor' instead")
        now = float(ts.floor if c.param == "floor" else ts.params[c.param])
        if (c.by < 0 and now <= c.limit) or (c.by > 0 and now >= c.limit):
            raise ConfigError(f"guard.controller: {c.param} starts at {now:g}, already at or "
                              f"past its limit {c.limit:g} in the direction of by = {c.by:g}; "
                              "the controller could never move")


_SECTIONS: dict[str, type[Any]] = {
    "model": ModelSpec,
    "diffusion": DiffusionConfig,
    "timesteps": TimestepSamplerConfig,
    "weighting": LossWeightingConfig,
    "optim": OptimConfig,
    "guard": GuardConfig,
}
#: sections that may be absent (None) in a config
_OPTIONAL_SECTIONS = ("guard",)

#: Named training presets: a model preset plus a step budget that fits the hardware.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # v-prediction for the CPU-sized presets: after a few thousand steps eps-prediction's first
    # x0 estimate carries σ_max·|ε error| (≈ 157 × 0.08 on the linear schedule), which later
    # steps never correct (docs/results/ecg5000-v1/README.md; with DDIM-100 to t = 0 it stays
    # poorer than v, docs/results/ecg5000/README.md); v-prediction does not.
    "tiny": {"steps": 50, "batch_size": 16, "checkpoint_every": 25, "log_every": 10,
             "model": {"name": "unet", "preset": "tiny"}, "optim": {"warmup_steps": 5},
             "diffusion": {"parameterization": "v"}},
    "small": {"steps": 2000, "batch_size": 64, "checkpoint_every": 500, "log_every": 50,
              "model": {"name": "unet", "preset": "small"}, "optim": {"lr": 1e-3},
              "diffusion": {"parameterization": "v"}},
    "base": {"steps": 50_000, "batch_size": 128, "checkpoint_every": 5000, "log_every": 100,
             "model": {"name": "unet", "preset": "base"}, "optim": {"warmup_steps": 1000},
             "ema_decay": 0.9999},
}


def _build(cls: type[Any], values: Mapping[str, Any], where: str) -> Any:
    message = unknown_keys(cls, values, where=where)
    if message:
        raise ConfigError(message)
    try:
        return cls(**values)
    except ConfigError:
        raise
    except GuardConfigError as exc:
        raise ConfigError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{where}]: {exc}") from exc


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """Build a validated TrainConfig from nested plain values (TOML or JSON)."""
    top = dict(values)
    for name, cls in _SECTIONS.items():
        if name in _OPTIONAL_SECTIONS and top.get(name, 0) is None:
            continue  # e.g. an unguarded run: guard = None
        if name in top and not isinstance(top[name], cls):
            if not isinstance(top[name], Mapping):
                raise ConfigError(f"[{name}] must be a table, got {top[name]!r}")
            top[name] = _build(cls, top[name], name)
    return _build(TrainConfig, top, "top level")


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain nested dict (JSON-serialisable) of a TrainConfig."""
    out: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(cfg)))
    return out


def merge_dicts(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "params":
            out[key] = merge_dicts(dict(out[key]), value)
        else:
            out[key] = value
    return out


def load_config(
    *,
    preset: str | None = None,
    toml_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Resolve preset < TOML < overrides into a validated TrainConfig."""
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in TRAIN_PRESETS:
            raise ConfigError(str(choice_error("training preset", preset, TRAIN_PRESETS)))
        values = merge_dicts(values, TRAIN_PRESETS[preset])
    if toml_path is not None:
        path = Path(toml_path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            values = merge_dicts(values, tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc
    if overrides:
        values = merge_dicts(values, overrides)
    return config_from_dict(values)
