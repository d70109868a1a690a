"""The per-example denoising loss: stays shaped (B,) until the caller reduces it."""

from __future__ import annotations

import torch

from sigdiff._utils import append_dims
from sigdiff.denoiser import Denoiser

__all__ = ["denoising_loss"]


def denoising_loss(
    denoiser: Denoiser,
    x0: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    *,
    cond: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-example loss ``w · mean_{C,L} (F(c_in·x) − target)²`` with x = x0 + σ·noise, shape (B,).

    This is the parameterization's native objective (ε-MSE for eps, Ho et al. 2020 eq. 14;
    v-MSE for v; EDM's eq. 8 written in F space for edm). ``weight`` (B,) carries the loss
    weighting λ(σ) and any importance weight from the timestep sampler.
    """
    x = x0 + append_dims(sigma, x0.ndim) * noise  # (B, C, L)
    target = denoiser.parameterization.target(x0, noise, sigma)
    err = (denoiser.raw(x, sigma, cond) - target).pow(2)
    loss = err.flatten(1).mean(dim=1)  # (B,)
    return loss if weight is None else loss * weight
