"""Noise schedules and sampling σ grids.

sigdiff works in σ units everywhere (Karras et al. 2022, "Elucidating the design space", EDM):
a noisy signal is ``x = x0 + σ·ε``. A discrete variance-preserving (DDPM) schedule enters through
σ_t = sqrt((1 − ᾱ_t) / ᾱ_t), so that ``x_vp = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε = x / sqrt(1 + σ_t²)``.

Timesteps are integers ``0 … T−1`` (index 0 is the least noisy, as in DDPM and diffusers); the
continuous time ``u ∈ [0, 1]`` is the fractional timestep ``u·(T − 1)``, with log σ interpolated
linearly between integer steps, so that the continuous and discrete views agree exactly at
``u = t/(T − 1)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from sigdiff._utils import choice_error

__all__ = [
    "SCHEDULES",
    "SPACINGS",
    "DiscreteSchedule",
    "TerminalSNRWarning",
    "append_zero",
    "ddpm_timesteps",
    "karras_sigmas",
    "make_betas",
    "rescale_zero_terminal_snr",
]

Spacing = Literal["leading", "trailing", "linspace"]
SPACINGS: tuple[str, ...] = ("leading", "trailing", "linspace")

#: ᾱ_{T−1} used after a zero-terminal-SNR rescale (as diffusers does): keeps σ_max finite (4096).
ZERO_SNR_ALPHA_CUMPROD = 2.0**-24
#: A schedule whose last step keeps SNR above this is not "pure noise" at t = T − 1.
TERMINAL_SNR_TOLERANCE = 1e-3
#: Cosine schedule offset s and β clip (Nichol & Dhariwal 2021, eq. 17).
COSINE_S = 0.008
COSINE_MAX_BETA = 0.999


class TerminalSNRWarning(UserWarning):
    """The schedule does not reach (near) pure noise at its last timestep."""


def _linear(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    # Ho et al. 2020, §4: β_t linear in t.
    return np.linspace(beta_start, beta_end, T, dtype=np.float64)


def _scaled_linear(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    # Rombach et al. 2022 (Stable Diffusion): sqrt(β_t) linear in t.
    return np.linspace(beta_start**0.5, beta_end**0.5, T, dtype=np.float64) ** 2


def _cosine(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    # Nichol & Dhariwal 2021, eq. 17: ᾱ(t) = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2);
    # β_t = 1 − ᾱ(t+1)/ᾱ(t), clipped at 0.999. beta_start/beta_end are unused.
    del beta_start, beta_end

    def f(t: np.ndarray) -> np.ndarray:
        return np.cos((t / T + COSINE_S) / (1 + COSINE_S) * math.pi / 2) ** 2

    t = np.arange(T, dtype=np.float64)
    return np.minimum(1 - f(t + 1) / f(t), COSINE_MAX_BETA)


def _sigmoid(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    # GeoDiff (Xu et al. 2022) sigmoid betas, as in diffusers' "sigmoid" beta_schedule:
    # β = sigmoid(linspace(−6, 6, T)) · (β_end − β_start) + β_start.
    x = np.linspace(-6.0, 6.0, T, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-x)) * (beta_end - beta_start) + beta_start


_BETA_FNS = {
    "linear": _linear,
    "scaled_linear": _scaled_linear,
    "cosine": _cosine,
    "sigmoid": _sigmoid,
}
SCHEDULES: tuple[str, ...] = tuple(_BETA_FNS)


def make_betas(name: str, T: int, *, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """β_1..β_T (float64) of the named schedule; raises on unknown names and invalid β."""
    if name not in _BETA_FNS:
        raise choice_error("schedule", name, SCHEDULES)
    if not isinstance(T, int) or T < 2:
        raise ValueError(f"num_timesteps must be an integer >= 2, got {T!r}")
    for label, b in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not 0.0 < b < 1.0:
            raise ValueError(f"{label} must lie in (0, 1), got {b!r}")
    if beta_start > beta_end:
        raise ValueError(f"beta_start ({beta_start}) must not exceed beta_end ({beta_end})")
    betas = _BETA_FNS[name](T, beta_start, beta_end)
    if not np.all((betas > 0) & (betas < 1)):
        raise ValueError(f"schedule {name!r} produced β outside (0, 1); check beta_start/beta_end")
    return betas


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Rescale β so the last step has zero SNR (Lin et al. 2024, "Common diffusion noise
    schedules and sample steps are flawed", Algorithm 1): shift and scale sqrt(ᾱ) so that
    sqrt(ᾱ_T) = 0 while sqrt(ᾱ_1) is unchanged."""
    sqrt_ab = np.sqrt(np.cumprod(1.0 - betas))
    first, last = sqrt_ab[0], sqrt_ab[-1]
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    ab = sqrt_ab**2
    alphas = np.concatenate([ab[:1], ab[1:] / ab[:-1]])
    return 1.0 - alphas


@dataclass(frozen=True)
class DiscreteSchedule:
    """A DDPM-style discrete schedule with T steps, viewed in σ units.

    ``alphas_cumprod``, ``sigmas`` and ``log_snr`` are float64 tensors of length T.
    """

    name: str = "linear"
    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    zero_terminal_snr: bool = False
    warn_terminal_snr: bool = True

    def __post_init__(self) -> None:
        betas = make_betas(
            self.name, self.num_timesteps, beta_start=self.beta_start, beta_end=self.beta_end
        )
        if self.zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        ab = np.cumprod(1.0 - betas)
        if self.zero_terminal_snr:
            ab[-1] = ZERO_SNR_ALPHA_CUMPROD
        object.__setattr__(self, "_betas", torch.from_numpy(betas))
        object.__setattr__(self, "_alphas_cumprod", torch.from_numpy(ab))
        snr_T = ab[-1] / (1.0 - ab[-1])
        if self.warn_terminal_snr and not self.zero_terminal_snr and snr_T > TERMINAL_SNR_TOLERANCE:
            warnings.warn(
                f"schedule {self.name!r} ends at SNR {snr_T:.3g} > {TERMINAL_SNR_TOLERANCE:g}: "
                "the last timestep is not pure noise, so sampling from N(0, I) starts off the "
                "training distribution (Lin et al. 2024). Pass zero_terminal_snr=True to rescale.",
                TerminalSNRWarning,
                stacklevel=2,
            )

    # --- per-step quantities (float64, length T) -------------------------------------------
    @property
    def T(self) -> int:
        return self.num_timesteps

    @property
    def betas(self) -> torch.Tensor:
        return self._betas  # type: ignore[attr-defined]

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self._alphas_cumprod  # type: ignore[attr-defined]

    @property
    def sigmas(self) -> torch.Tensor:
        """σ_t = sqrt((1 − ᾱ_t)/ᾱ_t), increasing in t."""
        ab = self.alphas_cumprod
        return ((1 - ab) / ab).sqrt()

    @property
    def log_snr(self) -> torch.Tensor:
        """log SNR_t = log(ᾱ_t/(1 − ᾱ_t)) = −2 log σ_t."""
        return -2 * self.sigmas.log()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    # --- continuous views -------------------------------------------------------------------
    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """σ at (possibly fractional) timesteps ``t ∈ [0, T−1]``; log σ is interpolated."""
        log_sigmas = self.sigmas.log().to(t.device)
        tf = t.to(torch.float64).clamp(0, self.T - 1)
        lo = tf.floor().long().clamp(max=self.T - 2)
        w = tf - lo
        out = (1 - w) * log_sigmas[lo] + w * log_sigmas[lo + 1]
        return out.exp().to(t.dtype if t.is_floating_point() else torch.float64)

    def sigma_at(self, u: torch.Tensor) -> torch.Tensor:
        """σ at continuous time ``u ∈ [0, 1]`` (u = t/(T − 1))."""
        return self.sigma(u.to(torch.float64) * (self.T - 1))

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep t ∈ [0, T−1] with σ_t = σ (inverse of :meth:`sigma`).

        σ outside [σ_min, σ_max] clamps to the ends. Used as the network's noise conditioning for
        VP parameterizations (what a DDPM network was trained on)."""
        log_sigmas = self.sigmas.log().to(sigma.device)
        ls = sigma.to(torch.float64).clamp(self.sigma_min, self.sigma_max).log()
        hi = torch.searchsorted(log_sigmas, ls.contiguous()).clamp(1, self.T - 1)
        lo = hi - 1
        w = (ls - log_sigmas[lo]) / (log_sigmas[hi] - log_sigmas[lo])
        return (lo + w.clamp(0, 1)).to(sigma.dtype)

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """SNR at (fractional) timesteps: 1/σ_t²."""
        return self.sigma(t).pow(-2)

    # --- grids for sampling -----------------------------------------------------------------
    def sampling_sigmas(self, steps: int, *, spacing: Spacing = "leading") -> torch.Tensor:
        """σ grid for ``steps`` sampler steps: σ at the DDPM timesteps, descending, then 0."""
        ts = ddpm_timesteps(self.T, steps, spacing=spacing)
        return append_zero(self.sigmas[ts])


def ddpm_timesteps(T: int, steps: int, *, spacing: Spacing = "leading") -> torch.Tensor:
    """Descending integer timesteps for a sampler with ``steps`` steps out of ``T``.

    Spacings follow Lin et al. 2024, Table 2 (as diffusers implements them): ``leading``
    (DDIM's original: 0, k, 2k, …), ``trailing`` (ends exactly at T − 1), ``linspace``
    (rounded linspace over [0, T − 1]).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if steps > T:
        raise ValueError(f"steps ({steps}) cannot exceed the schedule's num_timesteps ({T})")
    if spacing == "leading":
        ts = np.arange(0, steps) * (T // steps)
    elif spacing == "trailing":
        # round(T − i·T/steps) − 1 for i < steps; diffusers' np.arange(T, 0, −T/steps) can emit
        # one extra step (e.g. T=959, steps=914 ends at −1) through float rounding.
        ts = (np.round(T - np.arange(steps) * (T / steps)).astype(np.int64) - 1)[::-1]
    elif spacing == "linspace":
        ts = np.linspace(0, T - 1, steps).round().astype(np.int64)
    else:
        raise choice_error("timestep spacing", spacing, SPACINGS)
    return torch.from_numpy(np.ascontiguousarray(ts[::-1]).astype(np.int64))


def karras_sigmas(
    steps: int, *, sigma_min: float, sigma_max: float, rho: float = 7.0
) -> torch.Tensor:
    """Karras et al. 2022, eq. 5: σ_i = (σ_max^{1/ρ} + i/(n−1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ,
    followed by σ_n = 0. Float64, length ``steps + 1``."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min!r}, {sigma_max!r}")
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho!r}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    inv_rho = 1.0 / rho
    sig = (sigma_max**inv_rho + ramp * (sigma_min**inv_rho - sigma_max**inv_rho)) ** rho
    sig[0] = sigma_max  # exact ends: the power can lose digits for small ρ and wide ranges
    if steps > 1:
        sig[-1] = sigma_min
    return append_zero(sig)


def append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    """Append the final σ = 0 (the clean signal) to a descending grid."""
    return torch.cat([sigmas, sigmas.new_zeros(1)])
