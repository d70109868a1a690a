"""``Denoiser``: turns any network ``F(x, c_noise, cond)`` into ``D(x, σ, cond) -> x̂0``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from sigdiff._utils import append_dims
from sigdiff.parameterization import Parameterization
from sigdiff.schedules import DiscreteSchedule

__all__ = ["Denoiser", "NoiseConditioning"]

NoiseConditioning = Callable[[torch.Tensor], torch.Tensor]


class Denoiser(nn.Module):
    """D(x; σ) = c_skip·x + c_out·F(c_in·x, c_noise, cond) (Karras et al. 2022, eq. 7).

    ``noise_conditioning`` maps σ to the value the network is conditioned on. The VP family needs
    the schedule it was trained on (c_noise is the fractional DDPM timestep); EDM uses ln(σ)/4.
    """

    def __init__(
        self,
        net: nn.Module,
        parameterization: Parameterization,
        *,
        schedule: DiscreteSchedule | None = None,
    ) -> None:
        super().__init__()
        if parameterization.is_vp and schedule is None:
            raise ValueError(
                f"parameterization {parameterization.kind!r} conditions the network on the DDPM "
                "timestep, so Denoiser needs the schedule=... it was trained with"
            )
        self.net = net
        self.parameterization = parameterization
        self.schedule = schedule

    def c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        """The network's noise conditioning at σ, shape (B,)."""
        if self.parameterization.is_vp:
            assert self.schedule is not None
            return self.schedule.timestep(sigma)
        return self.parameterization.edm_c_noise(sigma)

    def raw(
        self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """F's output (the parameterization's prediction target), before c_skip/c_out."""
        _, _, c_in = self.parameterization.scalings(sigma)
        out: torch.Tensor = self.net(x * append_dims(c_in, x.ndim), self.c_noise(sigma), cond)
        return out

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x̂0 from x = x0 + σ·ε. ``x``: (B, C, L) (any rank); ``sigma``: (B,) or scalar."""
        sigma = _per_example(sigma, x)
        c_skip, c_out, _ = (append_dims(c, x.ndim) for c in self.parameterization.scalings(sigma))
        return c_skip * x + c_out * self.raw(x, sigma, cond)


def _per_example(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar σ to (B,), in x's dtype and device."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(f"sigma must be a scalar or shaped ({x.shape[0]},), got {tuple(sigma.shape)}")
    return sigma
