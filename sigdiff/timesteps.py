"""Training timestep samplers: where along the denoising trajectory learning happens.

Every sampler draws a *time fraction* ``u ∈ [0, 1]`` from a law with an exact CDF, then

- discrete (DDPM) training: ``t = min(⌊u·T⌋, T − 1)``, so step ``t`` owns the cell
  ``[t/T, (t+1)/T)`` (as diffusers' SD3 scripts index ``(u·T).long()``); ``pmf()`` is the exact
  mass of each cell;
- continuous training: ``t = u·(T − 1)`` (fractional timesteps, ``DiscreteSchedule.sigma``
  interpolates log σ); ``pdf(t)`` is the exact density over ``t``.

On top of the sampler's own law, ``floor`` mixes in uniform draws: ``p = (1 − floor)·p_base +
floor·U`` (so no region starves; cf. the SD3 logit-normal complaint in ../shared/paper.md).

Two modes that must not be confused (improved-diffusion's ``resample.py`` only has the second):

- ``emphasis``: weight 1 — drawing t non-uniformly *changes the objective* (the paper's control);
- ``importance``: weight ``1/(T·p_t)`` (discrete) or ``(1/(T−1))/pdf(t)`` (continuous) — the
  objective stays the uniform-t loss, only the variance of its estimate changes.

Each sampler returns ``(t, weight)``; ``t`` is int64 (discrete) or float32 (continuous), ``weight``
is float32 (B,). All randomness comes from the caller's ``torch.Generator``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sigdiff._laws import (
    Beta,
    Law,
    Mode,
    PiecewiseUniform,
    Stratified,
    Uniform,
    WindowedNormal,
    linear_map,
    ndtri,
    rand,
)
from sigdiff._utils import choice_error
from sigdiff.schedules import DiscreteSchedule

__all__ = [
    "MODES",
    "TAIL_POLICIES",
    "TIMESTEP_SAMPLERS",
    "TimestepSampler",
    "TimestepSamplerConfig",
    "build_timestep_sampler",
    "sample_timesteps",
]

MODES: tuple[str, ...] = ("emphasis", "importance")
#: How Gaussian mass outside the window [0, T) is handled (../shared/paper.md).
TAIL_POLICIES: tuple[str, ...] = ("resample", "uniform", "clamp")
#: ci_gaussian defaults: interval [0, 0.5] of T at 95% confidence (emphasis on small t, the
#: paper's "later denoising steps"; a choice of ours — the paper gives no default).
CI_DEFAULTS = {"c_l": 0.0, "c_h": 0.5, "q": 0.95}
#: EDM's training σ distribution, ln σ ~ N(P_mean, P_std²) (Karras et al. 2022, Table 1).
EDM_P_MEAN, EDM_P_STD = -1.2, 1.2
#: SD3's preferred mode scale (Esser et al. 2024, §5.1 "mode(1.29)").
SD3_MODE_SCALE = 1.29
#: improved-diffusion LossSecondMomentResampler (Nichol & Dhariwal 2021, resample.py).
LOSS_AWARE_HISTORY, LOSS_AWARE_UNIFORM_PROB = 10, 0.001

Tensor = torch.Tensor


# --- law builders (one per registry name): validate params, return the law ------------------


def _number(name: str, value: float) -> float:
    if not (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _positive(name: str, value: float) -> float:
    if _number(name, value) <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _tail(value: Any) -> str:
    if value not in TAIL_POLICIES:
        raise choice_error("tail policy", str(value), TAIL_POLICIES)
    return str(value)


def _ci_form(p: Mapping[str, Any]) -> tuple[str, str]:
    """Which of the three ci_gaussian parameter pairs ``p`` uses (ValueError if mixed or half)."""
    pairs = (("c_l", "c_h"), ("center", "width"), ("z_l", "z_h"))
    forms = [k for k in pairs if k[0] in p or k[1] in p]
    if len(forms) > 1:
        raise ValueError(
            f"ci_gaussian takes one of (c_l, c_h), (center, width) or (z_l, z_h); got {sorted(p)}"
        )
    for key in forms[0] if forms else ():
        if key not in p:
            raise ValueError(f"ci_gaussian: {forms[0][0]} and {forms[0][1]} must be given together")
    return forms[0] if forms else ("c_l", "c_h")


def _ci_resolve(p: Mapping[str, Any]) -> dict[str, Any]:
    """ci_gaussian's parameters with the defaults filled in: the paper's (c_l, c_h) when no pair
    is given, and q for the interval forms (a new dict; ``p`` is not changed)."""
    form = _ci_form(p)
    out = dict(p)
    for key in form:
        if key not in out:  # only when no pair was given: the paper's default interval
            out[key] = CI_DEFAULTS[key]
    if form == ("z_l", "z_h"):
        if "q" in p:
            raise ValueError("ci_gaussian: q applies to (c_l, c_h)/(center, width), not z_l/z_h")
    else:
        out.setdefault("q", CI_DEFAULTS["q"])
    return out


def _ci_gaussian(schedule: DiscreteSchedule, p: Mapping[str, Any]) -> Law:
    """The paper's confidence-interval Gaussian (Vu et al. 2026; ../shared/paper.md).

    Exactly one of three parameter sets:

    - ``c_l, c_h`` (fractions of T) at confidence ``q``: mean (c_l+c_h)/2, std (c_h−c_l)/(2z),
      z = Φ⁻¹((1+q)/2), so the central q of the Gaussian lies on [c_l, c_h];
    - ``center, width`` (+ ``q``): the same with c_l = center − width/2, c_h = center + width/2;
    - ``z_l, z_h`` (z-score units): Z ~ N(0, 1) restricted to [z_l, z_h], mapped linearly onto
      [0, T) (z_l ↦ t = 0, z_h ↦ t = T); the tail is the mass outside [z_l, z_h].
    """
    del schedule
    tail = _tail(p["tail"])
    form = _ci_form(p)
    if form == ("z_l", "z_h"):
        z_l, z_h = _number("z_l", p["z_l"]), _number("z_h", p["z_h"])
        if z_l >= z_h:
            raise ValueError(f"ci_gaussian needs z_l < z_h, got z_l={z_l} >= z_h={z_h}")
        return WindowedNormal(0.0, 1.0, tail=tail, **linear_map(z_l, z_h))
    q = _number("q", p["q"])
    if not 0 < q < 1:
        raise ValueError(f"confidence level q must lie in (0, 1), got {q!r}")
    if form == ("center", "width"):
        center, width = _number("center", p["center"]), _number("width", p["width"])
        if width <= 0:
            raise ValueError(f"width must be positive (a fraction of T), got {width!r}")
        c_l, c_h = center - width / 2, center + width / 2
    else:
        c_l, c_h = _number("c_l", p["c_l"]), _number("c_h", p["c_h"])
        if c_l >= c_h:
            raise ValueError(f"ci_gaussian needs c_l < c_h, got c_l={c_l} >= c_h={c_h}")
        center = (c_l + c_h) / 2
    if not 0 <= center <= 1:
        raise ValueError(
            f"the interval's centre must lie in [0, 1] (a fraction of T), got {center!r}"
        )
    z = float(ndtri(torch.tensor((1 + q) / 2, dtype=torch.float64)))
    return WindowedNormal(center, (c_h - c_l) / (2 * z), tail=tail, **linear_map(0.0, 1.0))


def _logit_normal(schedule: DiscreteSchedule, p: Mapping[str, Any]) -> Law:
    """SD3 logit-normal (Esser et al. 2024, eq. 19): u = sigmoid(x), x ~ N(logit_mean, logit_std²)."""
    del schedule
    m, s = _number("logit_mean", p["logit_mean"]), _positive("logit_std", p["logit_std"])
    return WindowedNormal(
        m,
        s,
        tail="resample",
        g=torch.logit,
        g_inv=torch.sigmoid,
        g_prime=lambda u: 1 / (u * (1 - u)),
    )


def _mode(schedule: DiscreteSchedule, p: Mapping[str, Any]) -> Law:
    del schedule
    s = _number("mode_scale", p["mode_scale"])
    if not -1 <= s <= 2 / (math.pi - 2):
        raise ValueError(f"mode_scale must lie in [-1, 2/(π-2) ≈ 1.752] (monotone map), got {s!r}")
    return Mode(s)


def _lognormal(schedule: DiscreteSchedule, p: Mapping[str, Any]) -> Law:
    """EDM's ln σ ~ N(p_mean, p_std²) (Karras et al. 2022, Table 1), mapped to timesteps through the
    schedule (t = schedule.timestep(σ)); σ outside [σ_min, σ_max] follows the tail policy."""
    m, s = _number("p_mean", p["p_mean"]), _positive("p_std", p["p_std"])
    T1 = schedule.T - 1
    log_sigmas = schedule.sigmas.log()
    steps = (log_sigmas[1:] - log_sigmas[:-1]) * T1  # d ln σ / du on each cell

    def g(u: Tensor) -> Tensor:
        return schedule.sigma(u * T1).log()

    def g_inv(x: Tensor) -> Tensor:
        return schedule.timestep(x.exp()) / T1

    def g_prime(u: Tensor) -> Tensor:
        return steps[(u.clamp(0, 1) * T1).floor().long().clamp(max=T1 - 1)]

    return WindowedNormal(m, s, tail=_tail(p["tail"]), g=g, g_inv=g_inv, g_prime=g_prime)


def _beta(schedule: DiscreteSchedule, p: Mapping[str, Any]) -> Law:
    del schedule
    return Beta(_positive("a", p["a"]), _positive("b", p["b"]))


def _loss_aware(schedule: DiscreteSchedule, p: Mapping[str, Any]) -> Law:
    history, prob = p["history"], _number("uniform_prob", p["uniform_prob"])
    if not (isinstance(history, int | float) and float(history).is_integer() and history >= 1):
        raise ValueError(f"history must be a positive integer, got {history!r}")
    if not 0 <= prob <= 1:
        raise ValueError(f"uniform_prob must lie in [0, 1], got {prob!r}")
    return PiecewiseUniform(torch.full((schedule.T,), 1.0 / schedule.T, dtype=torch.float64))


@dataclass(frozen=True)
class _Spec:
    build: Callable[[DiscreteSchedule, Mapping[str, Any]], Law]  # reads its params, never writes
    defaults: Mapping[str, Any]
    optional: tuple[str, ...] = ()  # accepted params without a default
    #: fills defaults that depend on which params were given (a new dict)
    resolve: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None


def _no_params(law: Callable[[], Law]) -> Callable[[DiscreteSchedule, Mapping[str, Any]], Law]:
    return lambda schedule, p: law()


#: name → spec. Parameters are keyword arguments of ``build_timestep_sampler``.
TIMESTEP_SAMPLERS: dict[str, _Spec] = {
    "uniform": _Spec(_no_params(Uniform), {}),
    "stratified": _Spec(_no_params(Stratified), {}),
    "ci_gaussian": _Spec(
        _ci_gaussian, {"tail": "resample"}, ("c_l", "c_h", "q", "center", "width", "z_l", "z_h"),
        _ci_resolve,
    ),
    "logit_normal": _Spec(_logit_normal, {"logit_mean": 0.0, "logit_std": 1.0}),
    "mode": _Spec(_mode, {"mode_scale": SD3_MODE_SCALE}),
    "lognormal": _Spec(_lognormal, {"p_mean": EDM_P_MEAN, "p_std": EDM_P_STD, "tail": "resample"}),
    "beta": _Spec(_beta, {"a": 1.0, "b": 2.0}),
    "loss_aware": _Spec(
        _loss_aware, {"history": LOSS_AWARE_HISTORY, "uniform_prob": LOSS_AWARE_UNIFORM_PROB}
    ),
}


# --- the sampler -------------------------------------------------------------------------------
class TimestepSampler:
    """Draws training timesteps ``(t, weight)`` from a law over u ∈ [0, 1] (module docstring).

    Build with :func:`build_timestep_sampler` or :meth:`TimestepSamplerConfig.build`.
    """

    def __init__(
        self,
        name: str,
        law: Law,
        *,
        schedule: DiscreteSchedule,
        continuous: bool,
        mode: str,
        floor: float,
        params: Mapping[str, Any],
    ) -> None:
        self.name, self.schedule, self.continuous = name, schedule, continuous
        self.mode, self.floor, self.params = mode, floor, dict(params)
        self._law = law
        self._pmf: Tensor | None = None

    @property
    def T(self) -> int:
        return self.schedule.T

    def __repr__(self) -> str:
        return (
            f"TimestepSampler({self.name!r}, params={self.params}, mode={self.mode!r}, "
            f"floor={self.floor}, continuous={self.continuous}, T={self.T})"
        )

    # --- the exact law -----------------------------------------------------------------------
    def pmf(self) -> Tensor:
        """P(t = k) for k = 0 … T−1 (float64, sums to 1), floor and tail policy included.

        For a continuous sampler: the mass of each cell [k, k+1)·(T−1)/T of fractional t."""
        if self._pmf is None:
            base = self._law.cell_masses(self.T)
            self._pmf = (1 - self.floor) * base / base.sum() + self.floor / self.T
        return self._pmf

    def cdf(self, t: Tensor) -> Tensor:
        """P(t' < t) for fractional t (continuous samplers; float64)."""
        u = self._to_u(t)
        return (1 - self.floor) * self._law.cdf(u) + self.floor * u.clamp(0.0, 1.0)

    def pdf(self, t: Tensor) -> Tensor:
        """Density over fractional t ∈ [0, T−1] (continuous samplers only; float64)."""
        if not self.continuous:
            raise ValueError("a discrete sampler has a pmf(), not a pdf(); build continuous=True")
        u = self._to_u(t)
        return ((1 - self.floor) * self._law.pdf(u) + self.floor) / (self.T - 1)

    def _to_u(self, t: Tensor) -> Tensor:
        return torch.as_tensor(t).detach().cpu().double() / (self.T - 1)

    # --- drawing -----------------------------------------------------------------------------
    def sample(
        self,
        batch_size: int,
        *,
        generator: torch.Generator,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(t, weight)``: t int64 in [0, T) or float32 in [0, T−1]; weight float32 (B,)."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(generator, torch.Generator):
            raise TypeError("sample() needs an explicit torch.Generator (generator=...)")
        u = self._law.draw(batch_size, generator)  # (B,) float64 in [0, 1]
        if self.floor > 0:
            pick = rand(batch_size, generator) < self.floor
            u = torch.where(pick, rand(batch_size, generator), u)
        if self.continuous:
            t = (u * (self.T - 1)).float()
        else:
            t = (u * self.T).floor().long().clamp(0, self.T - 1)
        return t.to(device), self._weights(t).to(device)

    def _weights(self, t: Tensor) -> Tensor:
        if self.mode == "emphasis":
            return torch.ones(t.shape, dtype=torch.float32)
        if self.continuous:  # density ratio uniform / proposal
            return ((1.0 / (self.T - 1)) / self.pdf(t)).float()
        return (1.0 / (self.T * self.pmf()[t])).float()  # 1/(T·p_t), improved-diffusion

    # --- state (loss_aware only) ---------------------------------------------------------------
    def update(self, t: Tensor, losses: Tensor) -> None:
        """Record per-example losses at their timesteps (a no-op except for ``loss_aware``)."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep for a bit-identical resume (empty when stateless)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise ValueError(f"sampler {self.name!r} is stateless; got state keys {sorted(state)}")


class LossAwareSampler(TimestepSampler):
    """improved-diffusion's ``LossSecondMomentResampler`` (Nichol & Dhariwal 2021, §3.3):
    p_t ∝ sqrt(E[L_t²]) over the last ``history`` losses at t, mixed with ``uniform_prob`` of
    uniform; uniform until every t has a full history. Importance mode is what the paper uses."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history = int(self.params["history"])
        self.uniform_prob = float(self.params["uniform_prob"])
        self._losses = np.zeros((self.T, self.history), dtype=np.float64)
        self._counts = np.zeros(self.T, dtype=np.int64)

    def _cells(self, t: Tensor) -> np.ndarray:
        t = torch.as_tensor(t).detach().cpu()
        if self.continuous:
            t = (t.double() / (self.T - 1) * self.T).floor()
        return t.long().clamp(0, self.T - 1).numpy()

    def update(self, t: Tensor, losses: Tensor) -> None:
        cells = self._cells(t)
        values = torch.as_tensor(losses).detach().cpu().double().reshape(-1).numpy()
        if cells.shape != values.shape:
            raise ValueError(f"t and losses must match, got {cells.shape} and {values.shape}")
        for k, loss in zip(cells.tolist(), values.tolist()):
            if self._counts[k] == self.history:  # drop the oldest (resample.py: shift left)
                self._losses[k, :-1] = self._losses[k, 1:]
                self._losses[k, -1] = loss
            else:
                self._losses[k, self._counts[k]] = loss
                self._counts[k] += 1
        self._refresh()

    def _refresh(self) -> None:
        if (self._counts == self.history).all():
            w = np.sqrt(np.mean(self._losses**2, axis=-1))
            w = w / w.sum() if w.sum() > 0 else np.full(self.T, 1.0 / self.T)
            p = w * (1 - self.uniform_prob) + self.uniform_prob / self.T
        else:
            p = np.full(self.T, 1.0 / self.T)
        self._law = PiecewiseUniform(torch.from_numpy(p / p.sum()))
        self._pmf = None

    def state_dict(self) -> dict[str, Any]:
        return {"losses": self._losses.tolist(), "counts": self._counts.tolist()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        losses = np.asarray(state["losses"], dtype=np.float64)
        counts = np.asarray(state["counts"], dtype=np.int64)
        if losses.shape != self._losses.shape or counts.shape != self._counts.shape:
            raise ValueError(
                f"loss_aware state has shape {losses.shape}, expected {self._losses.shape}"
            )
        self._losses, self._counts = losses.copy(), counts.copy()
        self._refresh()


def _resolve_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    if name not in TIMESTEP_SAMPLERS:
        raise choice_error("timestep sampler", name, TIMESTEP_SAMPLERS)
    spec = TIMESTEP_SAMPLERS[name]
    valid = (*spec.defaults, *spec.optional)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        listed = ", ".join(sorted(valid)) or "none"
        raise ValueError(f"unknown parameter(s) {unknown} for sampler {name!r}; valid: {listed}")
    out = {**spec.defaults, **params}
    return spec.resolve(out) if spec.resolve is not None else out


def build_timestep_sampler(
    name: str,
    *,
    schedule: DiscreteSchedule,
    continuous: bool = False,
    mode: str = "emphasis",
    floor: float = 0.0,
    **params: Any,
) -> TimestepSampler:
    """Build the named sampler (``TIMESTEP_SAMPLERS``) for ``schedule``; raises ValueError on
    unknown names or params and on invalid values, naming the value and why."""
    resolved = _resolve_params(name, params)
    if mode not in MODES:
        raise choice_error("timestep sampling mode", mode, MODES)
    floor = _number("floor", floor)
    if not 0 <= floor <= 1:
        raise ValueError(f"floor (fraction of uniform draws) must lie in [0, 1], got {floor!r}")
    law = TIMESTEP_SAMPLERS[name].build(schedule, resolved)
    if continuous and law.has_atoms:
        raise ValueError(
            "tail policy 'clamp' puts point masses at t = 0 and t = T-1, which continuous time "
            "cannot represent as a density; use tail='resample' or 'uniform'"
        )
    cls = LossAwareSampler if name == "loss_aware" else TimestepSampler
    sampler = cls(
        name,
        law,
        schedule=schedule,
        continuous=bool(continuous),
        mode=mode,
        floor=floor,
        params=resolved,
    )
    if mode == "importance" and not bool((sampler.pmf() > 0).all()):
        raise ValueError(
            "importance mode needs p_t > 0 at every timestep (its weights are 1/(T·p_t)); "
            "this law leaves some timesteps at zero probability: set floor > 0"
        )
    return sampler


@functools.cache
def _default_schedule() -> DiscreteSchedule:
    """The DDPM linear schedule, T = 1000: what a sampler config is checked against on its own
    (a training config checks it again on the run's own schedule, `sigdiff.config.TrainConfig`)."""
    return DiscreteSchedule("linear", 1000)


@dataclass(frozen=True)
class TimestepSamplerConfig:
    """A timestep sampler as stored in configs and checkpoints (JSON via ``dataclasses.asdict``).

    ``params`` are floats, except ``tail`` (a policy name from ``TAIL_POLICIES``)."""

    name: str = "uniform"
    mode: str = "emphasis"
    floor: float = 0.0
    continuous: bool = False
    params: Mapping[str, float | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(self.params))
        self.build(_default_schedule())  # validates every field with the same messages

    def build(self, schedule: DiscreteSchedule) -> TimestepSampler:
        return build_timestep_sampler(
            self.name,
            schedule=schedule,
            continuous=self.continuous,
            mode=self.mode,
            floor=self.floor,
            **self.params,
        )


def sample_timesteps(
    batch_size: int,
    *,
    generator: torch.Generator,
    num_timesteps: int = 1000,
    sampler: str = "ci_gaussian",
    device: torch.device | str | None = None,
    schedule: DiscreteSchedule | None = None,
    **params: Any,
) -> torch.LongTensor:
    """Integer timesteps in [0, num_timesteps) for one batch: a one-line drop-in for diffusers or
    denoising-diffusion-pytorch loops (``timesteps = sample_timesteps(bsz, generator=g)`` instead
    of ``torch.randint``). Emphasis only (weights are 1). ``schedule`` matters for ``lognormal``
    only (default: the linear DDPM schedule with ``num_timesteps`` steps)."""
    if schedule is None:
        schedule = DiscreteSchedule("linear", num_timesteps, warn_terminal_snr=False)
    elif schedule.T != num_timesteps:
        raise ValueError(f"schedule has {schedule.T} steps but num_timesteps={num_timesteps}")
    t, _ = build_timestep_sampler(sampler, schedule=schedule, **params).sample(
        batch_size, generator=generator, device=device
    )
    return t  # type: ignore[return-value]
