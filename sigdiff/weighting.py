"""Loss weightings λ(σ), independent of the timestep sampler and of the parameterization.

Each weighting is defined by its weight on the **x0-space** error ``‖D − x0‖²`` (the common
currency; Kingma et al. 2021/2023 write every diffusion loss this way). A parameterization's
native loss (``sigdiff.losses``) is ``‖D − x0‖²/c_out²``, so the multiplier returned here is

    loss_weight = w_x0(σ) · c_out(σ)²

which makes e.g. min-SNR-γ right for every target (Hang et al. 2023, eq. 9 and §3.4):
eps → min(SNR, γ)/SNR, x0 → min(SNR, γ), v → min(SNR, γ)/(SNR + 1).
SNR = 1/σ² (the schedule's ᾱ/(1 − ᾱ)). diffusers' examples once used min(SNR + 1, γ)/(SNR + 1)
for v (huggingface/diffusers#5654, fixed in #6307) and kohya's sd-scripts min(SNR + 1, γ)-style
variants; the x0-space definition above settles it: the v loss is (SNR + 1)·‖D − x0‖², so
min(SNR, γ)·‖D − x0‖² needs min(SNR, γ)/(SNR + 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from sigdiff._utils import choice_error
from sigdiff.parameterization import Parameterization

__all__ = ["LOSS_WEIGHTINGS", "LossWeightingConfig", "loss_weight", "x0_weight"]

Tensor = torch.Tensor
#: Hang et al. 2023 recommend γ = 5.
MIN_SNR_GAMMA = 5.0


def _none(sigma: Tensor, sd: float, p: Mapping[str, float]) -> Tensor:
    raise AssertionError("unreachable: 'none' keeps the native loss")  # pragma: no cover


def _snr(sigma: Tensor, sd: float, p: Mapping[str, float]) -> Tensor:
    # w = SNR: the ε-MSE objective (Ho et al. 2020, L_simple) in any parameterization.
    return sigma.pow(-2)


def _min_snr(sigma: Tensor, sd: float, p: Mapping[str, float]) -> Tensor:
    # Hang et al. 2023, eq. 9: w = min(SNR, γ).
    return sigma.pow(-2).clamp(max=p["gamma"])


def _soft_min_snr(sigma: Tensor, sd: float, p: Mapping[str, float]) -> Tensor:
    # Crowson et al. 2024 (HDiT, §4.1 / k-diffusion weighting_soft_min_snr): a smooth min of SNR
    # and γ, w = 1/(σ² + 1/γ) = SNR·γ/(SNR + γ). k-diffusion's (σσ_d)²/(σ² + σ_d²)² on the EDM
    # F-loss is exactly w = 1/(σ² + σ_d²), i.e. γ = 1/σ_d².
    return 1 / (sigma.pow(2) + 1 / p["gamma"])


def _p2(sigma: Tensor, sd: float, p: Mapping[str, float]) -> Tensor:
    # Choi et al. 2022, eq. 8: λ'_t = 1/(k + SNR)^γ on the ε loss, i.e. w = SNR/(k + SNR)^γ.
    snr = sigma.pow(-2)
    return snr / (p["k"] + snr).pow(p["gamma"])


def _edm(sigma: Tensor, sd: float, p: Mapping[str, float]) -> Tensor:
    # Karras et al. 2022, eq. 8 and Table 1: λ(σ) = (σ² + σ_d²)/(σ·σ_d)².
    return (sigma.pow(2) + sd**2) / (sigma * sd).pow(2)


@dataclass(frozen=True)
class _Weighting:
    fn: Callable[[Tensor, float, Mapping[str, float]], Tensor]
    defaults: Mapping[str, float] = field(default_factory=dict)


#: name → x0-space weight and its parameters (with defaults).
LOSS_WEIGHTINGS: dict[str, _Weighting] = {
    "none": _Weighting(_none),
    "snr": _Weighting(_snr),
    "min_snr": _Weighting(_min_snr, {"gamma": MIN_SNR_GAMMA}),
    "soft_min_snr": _Weighting(_soft_min_snr, {"gamma": 1.0}),
    "p2": _Weighting(_p2, {"k": 1.0, "gamma": 1.0}),
    "edm": _Weighting(_edm),
}


def _resolve(name: str, params: Mapping[str, float]) -> dict[str, float]:
    if name not in LOSS_WEIGHTINGS:
        raise choice_error("loss weighting", name, LOSS_WEIGHTINGS)
    defaults = LOSS_WEIGHTINGS[name].defaults
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        listed = ", ".join(sorted(defaults)) or "none"
        raise ValueError(
            f"unknown parameter(s) {unknown} for loss weighting {name!r}; valid: {listed}"
        )
    resolved = {**defaults, **params}
    for key, value in resolved.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"{name}: {key} must be a finite number, got {value!r}")
        if key == "gamma" and name in ("min_snr", "soft_min_snr") and value <= 0:
            raise ValueError(f"{name}: gamma must be positive (an SNR cap), got {value!r}")
        if value < 0:
            raise ValueError(f"{name}: {key} must not be negative, got {value!r}")
    return {k: float(v) for k, v in resolved.items()}


def x0_weight(
    name: str, sigma: Tensor, *, parameterization: Parameterization, **params: float
) -> Tensor:
    """The weighting's weight on the x0-space error ``‖D − x0‖²``, shaped like ``sigma``.

    ``none`` has no fixed x0 weight: it is the parameterization's own, 1/c_out²."""
    resolved = _resolve(name, params)
    sigma = torch.as_tensor(sigma)
    if name == "none":
        return parameterization.scalings(sigma)[1].pow(-2)
    return LOSS_WEIGHTINGS[name].fn(sigma, parameterization.sigma_data, resolved)


def loss_weight(
    name: str, sigma: Tensor, *, parameterization: Parameterization, **params: float
) -> Tensor:
    """Multiplier on the parameterization's native per-example loss, shaped like ``sigma`` (B,).

    ``loss_weight = w_x0(σ)·c_out(σ)²`` (module docstring); ``none`` is 1."""
    resolved = _resolve(name, params)
    sigma = torch.as_tensor(sigma)
    if name == "none":
        return torch.ones_like(sigma)
    c_out = parameterization.scalings(sigma)[1]
    return LOSS_WEIGHTINGS[name].fn(sigma, parameterization.sigma_data, resolved) * c_out.pow(2)


@dataclass(frozen=True)
class LossWeightingConfig:
    """A loss weighting as stored in configs and checkpoints (JSON via ``dataclasses.asdict``)."""

    name: str = "none"
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(self.params))
        _resolve(self.name, self.params)

    def weight(self, sigma: Tensor, parameterization: Parameterization) -> Tensor:
        """``loss_weight(self.name, sigma, parameterization=..., **self.params)``."""
        return loss_weight(self.name, sigma, parameterization=parameterization, **self.params)
