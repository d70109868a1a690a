"""Sampling throughput: DPM-Solver++(2M) at 25 steps against DDPM ancestral at 1000 steps, same
network (U-Net `small`, ECG-shaped 1 × 140 signals), same batch, in one run, as samples/s and the
ratio. The network's weights do not change the cost, so a freshly initialised one is used.

    python benchmarks/sample_speed.py [--batch 256] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from sigdiff.denoiser import Denoiser
from sigdiff.models import build_model
from sigdiff.parameterization import Parameterization
from sigdiff.samplers import get_sampler, prior_noise
from sigdiff.schedules import DiscreteSchedule


def measure(den: Denoiser, sched: DiscreteSchedule, name: str, steps: int, batch: int,
            length: int) -> tuple[float, float]:
    sigmas = sched.sampling_sigmas(steps, spacing="trailing")
    g = torch.Generator().manual_seed(0)
    x = prior_noise((batch, 1, length), sigma_max=float(sigmas[0]), generator=g)
    t0 = time.perf_counter()
    get_sampler(name)(den, x, sigmas, generator=g)
    dt = time.perf_counter() - t0
    return batch / dt, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--length", type=int, default=140)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--preset", default="small")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net, _ = build_model("unet", preset=args.preset)
    sched = DiscreteSchedule("linear")
    den = Denoiser(net, Parameterization("eps"), schedule=sched).eval()
    n_params = sum(p.numel() for p in net.parameters())
    print(f"unet {args.preset} ({n_params / 1e6:.2f} M params), batch {args.batch} × 1 × "
          f"{args.length}, {args.threads} threads")
    rows = [("dpmpp_2m", 25), ("ddpm", 1000)]
    results = {name: measure(den, sched, name, steps, args.batch, args.length)
               for name, steps in rows}
    print(f"{'sampler':<10} {'steps':>6} {'NFE':>6} {'seconds':>9} {'samples/s':>10}")
    for name, steps in rows:
        rate, dt = results[name]
        print(f"{name:<10} {steps:>6} {steps:>6} {dt:>9.2f} {rate:>10.1f}")
    ratio = results["dpmpp_2m"][0] / results["ddpm"][0]
    print(f"ratio dpmpp_2m(25) / ddpm(1000) throughput: {ratio:.1f}×")


if __name__ == "__main__":
    main()
