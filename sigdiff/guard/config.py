"""The guard's configuration: when it evaluates, what it measures, how it decides, and the
optional emphasis controller. Frozen dataclasses embedded in `TrainConfig.guard`, so every
checkpoint of a guarded run says how it was guarded (a resume with other settings is refused)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sigdiff._utils import choice_error, unknown_keys
from sigdiff.metrics.gate import GATE_LEVEL

__all__ = ["CONTROLLER_PARAMS", "GUARD_MODES", "ControllerConfig", "GuardConfig", "GuardConfigError"]

#: "stop": end training after `patience` copying evaluations in a row; "monitor": keep training
GUARD_MODES = ("stop", "monitor")
#: what the controller may move: the uniform floor (any sampler), the CI-Gaussian's centre/width
CONTROLLER_PARAMS = ("floor", "center", "width")
GUARD_SAMPLES = 256  # samples per evaluation: the memorization test's n (cheap by default)


class GuardConfigError(ValueError):
    """A guard or controller setting is invalid; the message names it and the valid values."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise GuardConfigError(message)


@dataclass(frozen=True)
class ControllerConfig:
    """Move the timestep sampler when the guard sees memorization rise, instead of stopping.

    At an evaluation where memorization is significantly above the floor, ``param`` (the uniform
    ``floor`` of any sampler, or the CI-Gaussian's ``center`` / ``width``, all on the u ∈ [0, 1]
    scale, u = t/T, large u = noisier) changes by ``by`` without crossing ``limit``; once it sits
    at ``limit`` the controller has no move left and the guard's own rule (stop or monitor)
    applies. Each move is recorded with its step in the checkpoints (exact resume) and guard.json.
    Example: start at uniform written as ``ci_gaussian`` centre 0.8 width 0.6 with ``floor = 1``
    and lower the floor by 0.35 down to 0.3, moving the emphasis to the noisier steps."""

    param: str = "floor"
    by: float = -0.35
    limit: float = 0.3

    def __post_init__(self) -> None:
        _check(self.param in CONTROLLER_PARAMS,
               str(choice_error("controller param", self.param, CONTROLLER_PARAMS)))
        _check(isinstance(self.by, (int, float)) and self.by != 0,
               f"guard.controller.by must be a non-zero number, got {self.by!r}")
        _check(isinstance(self.limit, (int, float)) and 0 <= self.limit <= 1,
               f"guard.controller.limit must lie in [0, 1] (u = t/T scale), got {self.limit!r}")


@dataclass(frozen=True)
class GuardConfig:
    """Evaluate the EMA model during training and keep the best checkpoint that does not copy.

    Every ``every``-th checkpoint, ``n_samples`` records are drawn (``sampler``, ``sampler_steps``
    on the ``grid``, seed ``sample_seed``) and measured against the training records and the
    held-out records (module `sigdiff.guard.monitor`). ``holdout``: a store of real records the
    run never trains on; without it the guard holds out ``holdout_fraction`` of the training data
    (rows drawn by ``split_seed``, recorded in guard.json) and trains on the rest.
    ``alpha``: family-wise level of the two copying tests; ``patience``: copying evaluations in a
    row before ``mode = "stop"`` ends the run; ``level``: the alignment gate's pass level."""

    every: int = 1
    n_samples: int = GUARD_SAMPLES
    sampler: str = "dpmpp_2m"
    sampler_steps: int = 25
    grid: str = "trailing"
    sample_seed: int = 1234
    alpha: float = 0.05
    patience: int = 3
    mode: str = "stop"
    level: float = GATE_LEVEL
    holdout: str | None = None
    holdout_fraction: float = 0.2
    split_seed: int = 0
    controller: ControllerConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.controller, Mapping):
            message = unknown_keys(ControllerConfig, self.controller, where="guard.controller")
            _check(message is None, str(message))
            object.__setattr__(self, "controller", ControllerConfig(**self.controller))
        for name in ("every", "n_samples", "sampler_steps", "patience"):
            value = getattr(self, name)
            _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                   f"guard.{name} must be a positive integer, got {value!r}")
        _check(self.n_samples >= 10, f"guard.n_samples must be at least 10 for the copying "
               f"tests to mean anything, got {self.n_samples}")
        _check(0 < self.alpha < 1, f"guard.alpha must lie in (0, 1), got {self.alpha!r}")
        _check(self.mode in GUARD_MODES, str(choice_error("guard mode", self.mode, GUARD_MODES)))
        _check(self.level > 0, f"guard.level must be > 0, got {self.level!r}")
        _check(0 < self.holdout_fraction < 1,
               f"guard.holdout_fraction must lie in (0, 1), got {self.holdout_fraction!r}")
        from sigdiff.generate import GRIDS  # here: generate imports the training config
        from sigdiff.samplers import SAMPLERS
        _check(self.sampler in SAMPLERS, str(choice_error("sampler", self.sampler, SAMPLERS)))
        _check(self.grid in GRIDS, str(choice_error("sigma grid", self.grid, GRIDS)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def guard_config_from_dict(values: Mapping[str, Any]) -> GuardConfig:
    """A GuardConfig from plain values; unknown keys are an error naming them."""
    message = unknown_keys(GuardConfig, values, where="guard")
    if message:
        raise GuardConfigError(message)
    return GuardConfig(**values)
