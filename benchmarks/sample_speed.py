"""Sampling throughput: DPM-Solver++(2M) at 25 steps against DDPM ancestral at 1000 steps, same
network, same batch, in one run, as samples/s and the ratio; and how close each sampler runs to
the network's own forward pass: the sampler's network evaluations per second (NFE × batch / s)
over a bare forward pass at the same batch, and the forward pass's MFU against the same process's
matmul peak. The network's weights do not change the cost, so a freshly initialised one is used.

    python benchmarks/sample_speed.py [--batch 256] [--threads 2] [--model unet|dit]
    python benchmarks/sample_speed.py --device cuda --batch 1024 [--bf16]     # on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from sigdiff.denoiser import Denoiser
from sigdiff.models import build_model
from sigdiff.parameterization import Parameterization
from sigdiff.samplers import get_sampler, prior_noise
from sigdiff.schedules import DiscreteSchedule


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--length", type=int, default=140)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--model", default="unet", choices=["unet", "dit"])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    ap.add_argument("--ddpm-steps", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net, _ = build_model(args.model, preset=args.preset)
    net = net.to(device).eval()
    sched = DiscreteSchedule("linear")
    den = Denoiser(net, Parameterization("eps"), schedule=sched).eval()
    n_params = sum(p.numel() for p in net.parameters())
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    cast: AbstractContextManager[Any] = (torch.autocast(device.type, dtype=torch.bfloat16)
                                         if args.bf16 else nullcontext())
    shape = (args.batch, 1, args.length)

    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(shape, device=device)
    sigma = torch.rand(args.batch, device=device)
    with torch.no_grad(), cast, FlopCounterMode(display=False) as counter:
        net(x, sigma)
    fwd_flops = counter.get_total_flops()
    a = torch.randn(2048, 2048, device=device, dtype=dtype)

    def forward() -> None:
        with torch.no_grad(), cast:
            net(x, sigma)

    def peak() -> None:
        for _ in range(10):
            a @ a

    def sample(name: str, steps: int) -> None:
        sigmas = sched.sampling_sigmas(steps, spacing="trailing")
        g = torch.Generator(device=device).manual_seed(0)
        x0 = prior_noise(shape, sigma_max=float(sigmas[0]), generator=g, device=device)
        with cast:
            get_sampler(name)(den, x0, sigmas.to(device), generator=g)

    rows = [("dpmpp_2m", 25), ("ddpm", args.ddpm_steps)]
    for fn in (forward, peak):  # warm-up
        fn()
    sample("dpmpp_2m", 2)
    fwd_t, peak_t = [], []
    for _ in range(5):
        fwd_t.append(timed(forward, device))
        peak_t.append(timed(peak, device))
    results = {name: timed(lambda n=name, s=steps: sample(n, s), device) for name, steps in rows}
    fwd = statistics.median(fwd_t)
    machine = 10 * 2 * 2048**3 / statistics.median(peak_t)
    where = f"{args.threads} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"{args.model} {args.preset} ({n_params / 1e6:.2f} M params), batch {args.batch} × 1 × "
          f"{args.length}, {where}{', bf16 autocast' if args.bf16 else ''}")
    print(f"forward pass: {1000 * fwd:.1f} ms, {fwd_flops / 1e9:.2f} GFLOP, "
          f"MFU {fwd_flops / fwd / machine:.0%} of the {machine / 1e12:.2f} TFLOP/s matmul peak")
    print(f"{'sampler':<10} {'NFE':>6} {'seconds':>9} {'samples/s':>10} {'× forward rate':>15}")
    for name, steps in rows:
        dt = results[name]
        nfe = steps  # one network evaluation per step for both
        print(f"{name:<10} {nfe:>6} {dt:>9.2f} {args.batch / dt:>10.1f} "
              f"{nfe * fwd / dt:>14.0%}")
    ratio = results["ddpm"] / results["dpmpp_2m"]
    print(f"ratio dpmpp_2m(25) / ddpm({args.ddpm_steps}) throughput: {ratio:.1f}×")


if __name__ == "__main__":
    main()
