"""Samplers: pure functions ``sample_x(denoiser, x, sigmas, *, generator, ...)`` walking a σ grid.

Each takes ``x`` already at the first σ of ``sigmas`` (see :func:`prior_noise`), a descending
float grid ending at 0 (see ``sigdiff.schedules``), and a denoiser ``D(x, σ, cond) -> x̂0``.
All randomness comes from the explicit ``generator``. DDIM is an Euler step in σ space, and DDPM
ancestral sampling is DDIM with η = 1, so the three share one code path (:func:`sample_ddim`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
from tqdm.auto import tqdm

from sigdiff._utils import choice_error

__all__ = [
    "SAMPLERS",
    "DenoiseFn",
    "ancestral_step",
    "get_sampler",
    "prior_noise",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_euler",
    "sample_heun",
]


class DenoiseFn(Protocol):
    def __call__(
        self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor: ...


Callback = Callable[[int, torch.Tensor, torch.Tensor], None]


def prior_noise(
    shape: tuple[int, ...],
    *,
    sigma_max: float,
    generator: torch.Generator,
    sigma_data: float = 1.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """x_T ~ N(0, (σ_max² + σ_data²) I): the marginal at σ_max for data of std σ_data.

    For the VP family (σ_data = 1) this is exactly DDPM's x_T ~ N(0, I) expressed in σ units
    (x = x_vp·sqrt(1 + σ²))."""
    scale = math.sqrt(float(sigma_max) ** 2 + sigma_data**2)
    return torch.randn(shape, generator=generator, dtype=dtype, device=device) * scale


def ancestral_step(sigma: float, sigma_next: float, eta: float) -> tuple[float, float]:
    """(σ_down, σ_up) of a DDIM(η) step from σ to σ_next (Song et al. 2021, eq. 16 in σ units).

    σ_up = η·sqrt(σ_next²(σ² − σ_next²)/σ²) is DDIM's σ_t(η)/sqrt(ᾱ_{t−1}); σ_down² + σ_up² =
    σ_next². η = 1 gives the DDPM posterior variance β̃ (Ho et al. 2020, eq. 7).
    """
    if sigma_next == 0 or eta == 0:
        return sigma_next, 0.0
    sigma_up = min(sigma_next, eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - sigma_up**2), sigma_up


def _steps(sigmas: torch.Tensor, progress: bool, name: str) -> tqdm:
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError(f"sigmas must be a 1-D grid with at least 2 entries, got {tuple(sigmas.shape)}")
    if sigmas[-1] != 0 or bool((sigmas[1:] > sigmas[:-1]).any()):
        raise ValueError("sigmas must be non-increasing and end at 0 (use sigdiff.schedules grids)")
    return tqdm(range(len(sigmas) - 1), desc=name, disable=not progress, unit="step")


def _sig(x: torch.Tensor, s: float) -> torch.Tensor:
    return x.new_full((x.shape[0],), s)


@torch.no_grad()
def sample_ddim(
    denoiser: DenoiseFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    eta: float = 0.0,
    cond: torch.Tensor | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """DDIM(η) (Song et al. 2021, eq. 12) as an Euler step to σ_down plus fresh noise σ_up."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if eta > 0 and generator is None:
        raise ValueError("a stochastic sampler (eta > 0) needs an explicit generator")
    sig = sigmas.tolist()
    for i in _steps(sigmas, progress, f"ddim(eta={eta:g})"):
        s, s_next = sig[i], sig[i + 1]
        denoised = denoiser(x, _sig(x, s), cond)
        if callback is not None:
            callback(i, x, denoised)
        sigma_down, sigma_up = ancestral_step(s, s_next, eta)
        x = denoised + (x - denoised) * (sigma_down / s)  # Euler: x + (x − x̂0)/σ · (σ_down − σ)
        if sigma_up > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + noise * sigma_up
    return x


def sample_euler(
    denoiser: DenoiseFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    cond: torch.Tensor | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Euler on the probability-flow ODE dx/dσ = (x − D(x; σ))/σ (Karras et al. 2022, eq. 3);
    identical to DDIM with η = 0."""
    return sample_ddim(denoiser, x, sigmas, generator=generator, eta=0.0, cond=cond,
                       callback=callback, progress=progress)


def sample_ddpm(
    denoiser: DenoiseFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    cond: torch.Tensor | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Alg. 2, σ_t² = β̃_t): DDIM with η = 1."""
    return sample_ddim(denoiser, x, sigmas, generator=generator, eta=1.0, cond=cond,
                       callback=callback, progress=progress)


@torch.no_grad()
def sample_heun(
    denoiser: DenoiseFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    cond: torch.Tensor | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Heun's 2nd-order method, Karras et al. 2022, Alg. 1 (deterministic; Euler on the last
    step to σ = 0)."""
    del generator  # deterministic
    sig = sigmas.tolist()
    for i in _steps(sigmas, progress, "heun"):
        s, s_next = sig[i], sig[i + 1]
        denoised = denoiser(x, _sig(x, s), cond)
        if callback is not None:
            callback(i, x, denoised)
        d = (x - denoised) / s  # Alg. 1 line 7
        x_next = x + d * (s_next - s)
        if s_next > 0:  # Alg. 1 lines 9-11: trapezoidal correction
            d_next = (x_next - denoiser(x_next, _sig(x, s_next), cond)) / s_next
            x_next = x + (d + d_next) / 2 * (s_next - s)
        x = x_next
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    denoiser: DenoiseFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    cond: torch.Tensor | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """DPM-Solver++(2M), Lu et al. 2022, Alg. 2, in σ units (λ = −log σ); first order on the
    first step and on the final step to σ = 0."""
    del generator  # deterministic
    sig = sigmas.tolist()
    old_denoised: torch.Tensor | None = None
    h_last = 0.0
    for i in _steps(sigmas, progress, "dpmpp_2m"):
        s, s_next = sig[i], sig[i + 1]
        denoised = denoiser(x, _sig(x, s), cond)
        if callback is not None:
            callback(i, x, denoised)
        if s_next == 0:
            x = denoised
            break
        h = math.log(s) - math.log(s_next)  # λ_{i+1} − λ_i
        if old_denoised is None:
            d = denoised
        else:
            r = h_last / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised  # Alg. 2, D_i
        x = (s_next / s) * x - math.expm1(-h) * d  # x_{i+1} = σ_{i+1}/σ_i x − (e^{−h} − 1) D
        old_denoised, h_last = denoised, h
    return x


SamplerFn = Callable[..., torch.Tensor]
SAMPLERS: dict[str, SamplerFn] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "euler": sample_euler,
    "heun": sample_heun,
    "dpmpp_2m": sample_dpmpp_2m,
}


def get_sampler(name: str) -> SamplerFn:
    """The sampler function registered under ``name``; raises listing the valid names."""
    if name not in SAMPLERS:
        raise choice_error("sampler", name, SAMPLERS)
    return SAMPLERS[name]
