"""Laws of the time fraction u ∈ [0, 1] behind ``sigdiff.timesteps`` (private).

Each law gives ``cdf(u) = P(U < u)``, ``sf(u) = P(U ≥ u)``, a density where one exists, exact
cell masses for T discrete steps, and draws from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.special
import torch

Tensor = torch.Tensor
_BISECT_STEPS = 60
#: A window holding less probability than this cannot be resampled reliably.
MIN_WINDOW_MASS = 1e-12


class Law:
    """A law of u ∈ [0, 1]: ``cdf(u) = P(U < u)``, ``sf(u) = P(U ≥ u)``, ``pdf``, ``draw``."""

    has_atoms = False

    def cdf(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    def sf(self, u: Tensor) -> Tensor:
        return 1.0 - self.cdf(u)

    def pdf(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def cell_masses(self, T: int) -> Tensor:
        """Mass of each cell [k/T, (k+1)/T) (the last one closed), float64 (T,).

        Differences of the CDF below the median and of the survival function above it, so that
        tiny tail masses keep their relative precision (they become importance weights)."""
        edges = torch.arange(T, dtype=torch.float64) / T
        c = torch.cat([self.cdf(edges), edges.new_ones(1)])
        s = torch.cat([self.sf(edges), edges.new_zeros(1)])
        return torch.where(c[:-1] < 0.5, c[1:] - c[:-1], s[:-1] - s[1:]).clamp_min(0.0)


def ndtr(x: Tensor) -> Tensor:
    # scipy's Φ keeps relative precision deep in the lower tail (torch's float64 ndtr underflows
    # to 0 below about −8, which would zero importance weights' denominators).
    return torch.from_numpy(np.asarray(scipy.special.ndtr(x.double().numpy())))


def ndtri(p: Tensor) -> Tensor:
    return torch.from_numpy(np.asarray(scipy.special.ndtri(p.double().numpy())))


def rand(n: int, generator: torch.Generator) -> Tensor:
    # float32 draws (torch's default, as diffusers draws them), transformed in float64.
    return torch.rand(n, generator=generator, device=generator.device).cpu().double()


class Uniform(Law):
    def cdf(self, u: Tensor) -> Tensor:
        return u.clamp(0.0, 1.0)

    def pdf(self, u: Tensor) -> Tensor:
        return torch.ones_like(u)

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        return rand(n, generator)


class Stratified(Uniform):
    """One draw per stratum [k/B, (k+1)/B), in random order; each draw is marginally uniform."""

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        k = torch.randperm(n, generator=generator, device=generator.device).cpu().double()
        return (k + rand(n, generator)) / n


def nmass(lo: Tensor, hi: Tensor) -> Tensor:
    """P(lo ≤ Z < hi) for standard normal Z, stable in both tails."""
    return torch.where(lo > 0, ndtr(-lo) - ndtr(-hi), ndtr(hi) - ndtr(lo))


class WindowedNormal(Law):
    """X ~ N(mean, std²) in a window variable x = g(u), window [g(0), g(1)], g increasing.

    Tail policies for the mass m outside the window (../shared/paper.md):
    ``resample`` — the truncated normal; ``uniform`` — (1 − m)·TN + m·U(0, 1) (tail draws are
    replaced by uniform ones); ``clamp`` — tail draws move to the nearest end (atoms at u = 0, 1).
    """

    def __init__(
        self,
        mean: float,
        std: float,
        *,
        tail: str,
        g: Callable[[Tensor], Tensor],
        g_inv: Callable[[Tensor], Tensor],
        g_prime: Callable[[Tensor], Tensor],
    ) -> None:
        self.mean, self.std, self.tail = mean, std, tail
        self.g, self.g_inv, self.g_prime = g, g_inv, g_prime
        ends = g(torch.tensor([0.0, 1.0], dtype=torch.float64))
        self.za, self.zb = ((ends - mean) / std).tolist()
        self.inside = float(nmass(torch.tensor(self.za), torch.tensor(self.zb)))
        self.has_atoms = tail == "clamp"
        if tail != "uniform" and self.inside < MIN_WINDOW_MASS:
            raise ValueError(
                f"the Gaussian puts only {self.inside:.3g} of its mass on [0, T); "
                "move the centre into the window or widen it"
            )

    def _z(self, u: Tensor) -> Tensor:
        return (self.g(u.clamp(0.0, 1.0)) - self.mean) / self.std

    def cdf(self, u: Tensor) -> Tensor:
        z, za = self._z(u), torch.tensor(self.za, dtype=torch.float64)
        if self.tail == "resample":
            out = nmass(za, z) / self.inside
        elif self.tail == "uniform":
            out = nmass(za, z) + (1 - self.inside) * u.clamp(0.0, 1.0)
        else:  # clamp: P(U < u) = P(X < g(u)) for 0 < u ≤ 1; the atom at 0 sits in U ≤ 0
            out = torch.where(u <= 0, torch.zeros_like(z), ndtr(z))
        return torch.where(u > 1, torch.ones_like(out), out)

    def sf(self, u: Tensor) -> Tensor:
        z, zb = self._z(u), torch.tensor(self.zb, dtype=torch.float64)
        if self.tail == "resample":
            out = nmass(z, zb) / self.inside
        elif self.tail == "uniform":
            out = nmass(z, zb) + (1 - self.inside) * (1 - u.clamp(0.0, 1.0))
        else:
            out = torch.where(u <= 0, torch.ones_like(z), ndtr(-z))
        return torch.where(u > 1, torch.zeros_like(out), out)

    def pdf(self, u: Tensor) -> Tensor:
        if self.has_atoms:
            raise ValueError("tail policy 'clamp' puts point masses at both ends: no density")
        z = self._z(u)
        dens = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi) / self.std * self.g_prime(u)
        dens = torch.nan_to_num(dens, nan=0.0)  # 0·∞ at an infinite window's ends (logit-normal)
        dens = dens / self.inside if self.tail == "resample" else dens + (1 - self.inside)
        return torch.where((u < 0) | (u > 1), torch.zeros_like(dens), dens)

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        if self.tail == "resample" and self.inside < 1.0:
            # Inverse CDF of the truncated normal; mirrored when the window lies right of the
            # mean so that Φ differences never cancel.
            flip = self.za > 0
            lo, hi = (-self.zb, -self.za) if flip else (self.za, self.zb)
            a, b = ndtr(torch.tensor([lo, hi], dtype=torch.float64)).tolist()
            z = ndtri(a + rand(n, generator) * (b - a)).clamp(lo, hi)
            x = self.mean + self.std * (-z if flip else z)
            return self.g_inv(x).clamp(0.0, 1.0)
        # Plain normal draws (bit-identical to diffusers' logit-normal for the same generator).
        x = (
            torch.normal(
                self.mean, self.std, size=(n,), generator=generator, device=generator.device
            )
            .cpu()
            .double()
        )
        z = (x - self.mean) / self.std
        outside = (z < self.za) | (z > self.zb)
        if self.tail == "uniform":
            return torch.where(outside, rand(n, generator), self.g_inv(x).clamp(0.0, 1.0))
        return self.g_inv(x).clamp(0.0, 1.0)  # clamp (or an infinite window: nothing outside)


def linear_map(lo: float, hi: float) -> dict[str, Callable[[Tensor], Tensor]]:
    return {
        "g": lambda u: lo + u * (hi - lo),
        "g_inv": lambda x: (x - lo) / (hi - lo),
        "g_prime": lambda u: torch.full_like(u, hi - lo),
    }


class Mode(Law):
    """SD3 "mode" sampling (Esser et al. 2024, eq. 20): u = f(v) = 1 − v − s·(cos²(πv/2) − 1 + v)
    with v ~ U(0, 1); f decreases from 1 to 0 for −1 ≤ s ≤ 2/(π − 2), so P(U < u) = 1 − f⁻¹(u)."""

    def __init__(self, scale: float) -> None:
        self.s = scale

    def f(self, v: Tensor) -> Tensor:
        return 1 - v - self.s * (torch.cos(math.pi * v / 2) ** 2 - 1 + v)

    def f_prime(self, v: Tensor) -> Tensor:
        return -1 - self.s * (1 - math.pi / 2 * torch.sin(math.pi * v))

    def f_inv(self, u: Tensor) -> Tensor:
        lo, hi = torch.zeros_like(u), torch.ones_like(u)
        for _ in range(_BISECT_STEPS):  # f decreasing: f(mid) > u means the root is right of mid
            mid = (lo + hi) / 2
            right = self.f(mid) > u
            lo, hi = torch.where(right, mid, lo), torch.where(right, hi, mid)
        return (lo + hi) / 2

    def cdf(self, u: Tensor) -> Tensor:
        return 1 - self.f_inv(u.clamp(0.0, 1.0))

    def sf(self, u: Tensor) -> Tensor:
        return self.f_inv(u.clamp(0.0, 1.0))

    def pdf(self, u: Tensor) -> Tensor:
        return 1 / self.f_prime(self.f_inv(u.clamp(0.0, 1.0))).abs()

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        return self.f(rand(n, generator)).clamp(0.0, 1.0)


class Beta(Law):
    """u ~ Beta(a, b); CDF and inverse CDF from scipy's regularised incomplete beta."""

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = a, b

    def cdf(self, u: Tensor) -> Tensor:
        return torch.from_numpy(scipy.special.betainc(self.a, self.b, u.clamp(0, 1).numpy()))

    def sf(self, u: Tensor) -> Tensor:
        return torch.from_numpy(scipy.special.betainc(self.b, self.a, 1 - u.clamp(0, 1).numpy()))

    def pdf(self, u: Tensor) -> Tensor:
        uu = u.numpy()
        log_pdf = (
            scipy.special.xlogy(self.a - 1, uu)
            + scipy.special.xlog1py(self.b - 1, -uu)
            - scipy.special.betaln(self.a, self.b)
        )
        return torch.from_numpy(np.where((uu < 0) | (uu > 1), 0.0, np.exp(log_pdf)))

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        v = rand(n, generator).numpy()
        return torch.from_numpy(scipy.special.betaincinv(self.a, self.b, v))


class PiecewiseUniform(Law):
    """Cell k = [k/T, (k+1)/T) has mass p_k, spread uniformly (loss_aware's law)."""

    def __init__(self, p: Tensor) -> None:
        self.p = p
        self.T = p.numel()
        self.cum = torch.cat([p.new_zeros(1), p.cumsum(0)])

    def cdf(self, u: Tensor) -> Tensor:
        x = u.clamp(0.0, 1.0) * self.T
        k = x.floor().long().clamp(max=self.T - 1)
        return self.cum[k] + (x - k) * self.p[k]

    def pdf(self, u: Tensor) -> Tensor:
        k = (u.clamp(0.0, 1.0) * self.T).floor().long().clamp(max=self.T - 1)
        return self.p[k] * self.T

    def cell_masses(self, T: int) -> Tensor:
        return self.p.clone()

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        p = self.p.float().to(generator.device)
        k = torch.multinomial(p, n, replacement=True, generator=generator)
        return (k.cpu().double() + rand(n, generator)) / self.T
