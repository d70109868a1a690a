"""How a network's output becomes a clean-signal estimate: eps, x0, v and EDM preconditioning.

Every parameterization is written as EDM's preconditioning (Karras et al. 2022, eq. 7):

    D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ))

with x = x0 + σ·ε in σ units. For the VP (DDPM) family the network sees
``c_in·x = x / sqrt(1 + σ²) = sqrt(ᾱ)·x0 + sqrt(1 − ᾱ)·ε``, exactly the DDPM input, and its noise
conditioning is the (fractional) DDPM timestep, so a network trained by a DDPM codebase plugs in
unchanged. The table (σ_d = sigma_data; σ_d = 1 for the VP family):

========  ================  ======================  ===================  =====================
kind      c_skip            c_out                   c_in                 F is trained towards
========  ================  ======================  ===================  =====================
eps       1                 −σ                      1/sqrt(σ²+1)         ε
x0        0                 1                       1/sqrt(σ²+1)         x0
v         1/(σ²+1)          −σ/sqrt(σ²+1)           1/sqrt(σ²+1)         v = sqrt(ᾱ)ε − sqrt(1−ᾱ)x0
edm       σ_d²/(σ²+σ_d²)    σσ_d/sqrt(σ²+σ_d²)      1/sqrt(σ²+σ_d²)      (x0 − c_skip·x)/c_out
========  ================  ======================  ===================  =====================

The *native* loss of a parameterization is the MSE of F against its target, which in x0 units is
``‖D − x0‖² / c_out²``; loss weightings (``sigdiff.weighting``) multiply that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from sigdiff._utils import append_dims, choice_error

__all__ = ["PARAMETERIZATIONS", "Parameterization", "eps_to_x0", "v_to_x0", "x0_to_eps", "x0_to_v"]

Kind = Literal["eps", "x0", "v", "edm"]
PARAMETERIZATIONS: tuple[str, ...] = ("eps", "x0", "v", "edm")


@dataclass(frozen=True)
class Parameterization:
    """The c_skip / c_out / c_in scalings of one parameterization (see the module table)."""

    kind: Kind = "eps"
    sigma_data: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in PARAMETERIZATIONS:
            raise choice_error("parameterization", self.kind, PARAMETERIZATIONS)
        if not self.sigma_data > 0:
            raise ValueError(f"sigma_data must be positive, got {self.sigma_data!r}")
        if self.kind != "edm" and self.sigma_data != 1.0:
            raise ValueError(
                f"sigma_data={self.sigma_data} only applies to kind='edm'; the VP family "
                "(eps, x0, v) assumes unit-variance data: normalise the data instead"
            )

    @property
    def is_vp(self) -> bool:
        """True for the DDPM family, whose network is conditioned on the timestep."""
        return self.kind != "edm"

    def scalings(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in) at σ, each shaped like ``sigma``."""
        sd2 = self.sigma_data**2
        c_in = (sigma**2 + sd2).rsqrt()
        if self.kind == "eps":
            return torch.ones_like(sigma), -sigma, c_in
        if self.kind == "x0":
            return torch.zeros_like(sigma), torch.ones_like(sigma), c_in
        if self.kind == "v":
            return sd2 / (sigma**2 + sd2), -sigma * self.sigma_data * c_in, c_in
        return sd2 / (sigma**2 + sd2), sigma * self.sigma_data * c_in, c_in  # EDM, Table 1

    def target(self, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """What F should output for x = x0 + σ·noise: (x0 − c_skip·x) / c_out."""
        c_skip, c_out, _ = (append_dims(c, x0.ndim) for c in self.scalings(sigma))
        if self.kind == "eps":
            return noise  # exact, and finite at σ = 0
        x = x0 + append_dims(sigma, x0.ndim) * noise
        return (x0 - c_skip * x) / c_out

    def edm_c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        """EDM's noise conditioning c_noise = ln(σ)/4 (Karras et al. 2022, Table 1)."""
        return sigma.log() / 4


def eps_to_x0(x: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x0 = x − σ·ε (σ units)."""
    return x - append_dims(sigma, x.ndim) * eps


def x0_to_eps(x: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """ε = (x − x0)/σ (σ units, σ > 0)."""
    return (x - x0) / append_dims(sigma, x.ndim)


def v_to_x0(x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x0 from v (Salimans & Ho 2022): with x_vp = x/sqrt(1+σ²), x0 = sqrt(ᾱ)·x_vp − sqrt(1−ᾱ)·v."""
    s = append_dims(sigma, x.ndim)
    return (x - s * v * (1 + s**2).sqrt()) / (1 + s**2)


def x0_to_v(x: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """v = sqrt(ᾱ)·ε − sqrt(1−ᾱ)·x0 with ε = (x − x0)/σ."""
    s = append_dims(sigma, x.ndim)
    eps = (x - x0) / s
    return (eps - s * x0) / (1 + s**2).sqrt()

