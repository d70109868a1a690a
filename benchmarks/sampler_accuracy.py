"""Sampler accuracy against a closed form: every sampler, driven by the ideal denoiser of
Gaussian data N(μ, s²), should return N(μ, s²). Prints the error in the std against the number
of network evaluations (NFE), side by side, so fast samplers are compared at equal cost.

    python benchmarks/sampler_accuracy.py
"""

from __future__ import annotations

import math
import warnings

import torch

from sigdiff import samplers
from sigdiff.schedules import DiscreteSchedule, karras_sigmas

MU, S, N = 0.7, 0.5, 50_000
NFE_PER_STEP = {"euler": 1, "ddim": 1, "ddpm": 1, "heun": 2, "dpmpp_2m": 1}


def ideal(x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
    return MU + S**2 / (S**2 + sigma.reshape(-1, 1, 1) ** 2) * (x - MU)


def run(name: str, sigmas: torch.Tensor) -> float:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(N, 1, 1, generator=g, dtype=torch.float64)
    x = MU + (z - z.mean()) / z.std() * math.sqrt(sigmas[0].item() ** 2 + S**2)
    out = samplers.get_sampler(name)(ideal, x, sigmas, generator=g)
    return out.std().item() / S - 1


def main() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = DiscreteSchedule("linear")
    print("relative error of the sample std (0 = exact) by sampler and NFE")
    names = sorted(samplers.SAMPLERS)
    for grid in ("karras", "ddpm-trailing"):
        print(f"\n{grid} grid\n{'NFE':>6} " + " ".join(f"{n:>10}" for n in names))
        for nfe in (10, 20, 50, 100, 250):
            row = []
            for n in names:
                steps = max(1, nfe // NFE_PER_STEP[n])
                sig = (karras_sigmas(steps, sigma_min=0.002, sigma_max=80.0) if grid == "karras"
                       else sched.sampling_sigmas(steps, spacing="trailing"))
                row.append(f"{run(n, sig):>+10.4f}")
            print(f"{nfe:>6} " + " ".join(row))


if __name__ == "__main__":
    main()
