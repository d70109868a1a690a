"""Training-step throughput of sigdiff's U-Net against peer 1D U-Nets at matched parameter count.

One step = forward + backward + AdamW update on a batch of noisy signals, MSE against a random
target, so every network does the same work around it. Peers are sized to within ±10% of the
sigdiff network's parameters (the closest width found by search). Peers that are not installed
are reported as such:

    pip install diffusers                                   # UNet1DModel
    pip install einops ema-pytorch accelerate
    pip install --no-deps denoising-diffusion-pytorch        # Unet1D (its torchvision would
                                                            # replace torch, so no deps)

Run: `python benchmarks/train_speed.py [--preset small] [--batch 32] [--length 256] [--threads N]`;
the ECG demo step alone: `--no-peers --batch 64 --length 140`.
Timings are medians over interleaved repeats, so a transient load hits every model alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from sigdiff.models import build_model

Net = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, c_noise) -> prediction
TOLERANCE = 0.10  # matched parameter count: within ±10%


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sigdiff_unet(preset: str, length: int) -> tuple[nn.Module, Net]:
    model, _ = build_model("unet", preset=preset)
    return model, model


def load_ddp_unet1d() -> type[nn.Module] | None:
    """denoising-diffusion-pytorch's `Unet1D`, loaded without the package `__init__` (which
    imports torchvision and pytorch-fid for the image trainer)."""
    spec = importlib.util.find_spec("denoising_diffusion_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    pkg = types.ModuleType("denoising_diffusion_pytorch")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("denoising_diffusion_pytorch", pkg)
    from denoising_diffusion_pytorch.denoising_diffusion_pytorch_1d import Unet1D

    return cast(type[nn.Module], Unet1D)


def match_width(build: Callable[[int], nn.Module], target: int, widths: range) -> nn.Module:
    """The model from `build(width)` whose parameter count is closest to `target`."""
    best = min(widths, key=lambda w: abs(n_params(build(w)) - target))
    model = build(best)
    if abs(n_params(model) - target) > TOLERANCE * target:
        raise RuntimeError(f"no width in {widths} within ±10% of {target} parameters")
    return model


def ddp_unet(target: int) -> tuple[nn.Module, Net] | None:
    unet1d = load_ddp_unet1d()
    if unet1d is None:
        return None
    model = match_width(
        lambda w: unet1d(dim=w, dim_mults=(1, 2, 4, 8), channels=1), target, range(4, 129, 2)
    )

    def net(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return model(x, c * 1000)  # integer-scale timesteps, as GaussianDiffusion1D passes

    return model, net


def diffusers_unet(target: int, length: int) -> tuple[nn.Module, Net] | None:
    try:
        from diffusers import UNet1DModel
    except ImportError:
        return None

    def build(w: int) -> nn.Module:
        model = UNet1DModel(
            sample_size=length, in_channels=1, out_channels=1, extra_in_channels=2 * w,
            block_out_channels=(w, w, 2 * w), time_embedding_type="fourier", flip_sin_to_cos=True,
            use_timestep_embedding=False,
        )  # fmt: skip
        return cast(nn.Module, model)

    model = match_width(build, target, range(8, 257, 8))

    def net(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, model(x, c).sample)

    return model, net


def make_step(model: nn.Module, net: Net, batch: int, length: int) -> Callable[[], None]:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(batch, 1, length, generator=g)
    target = torch.randn(batch, 1, length, generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        sigma = torch.rand(batch, generator=g)
        x = x0 + sigma[:, None, None] * torch.randn(x0.shape, generator=g)  # (B, 1, L)
        loss = torch.nn.functional.mse_loss(net(x, sigma), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-peers", action="store_true", help="time sigdiff alone (any length)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    ours, ours_net = sigdiff_unet(args.preset, args.length)
    target = n_params(ours)
    candidates: dict[str, tuple[nn.Module, Net] | None] = {
        f"sigdiff UNet ({args.preset})": (ours, ours_net)
    }
    if not args.no_peers:  # the peers need a length divisible by their down-sampling factor
        candidates["denoising-diffusion-pytorch Unet1D"] = ddp_unet(target)
        candidates["diffusers UNet1DModel"] = diffusers_unet(target, args.length)
    steps = {k: make_step(*v, args.batch, args.length) for k, v in candidates.items() if v}
    for step in steps.values():  # warm-up: allocator, oneDNN primitives
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - start) / args.steps)

    print(
        f"train step (fwd+bwd+AdamW), batch {args.batch} × 1 × {args.length}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} × {args.steps} steps"
    )
    print(f"{'model':<38}{'params':>11}{'ms/step':>10}{'samples/s':>11}{'sigdiff ×':>11}")
    ours_rate = args.batch / statistics.median(times[next(iter(times))])
    for name, found in candidates.items():
        if found is None:
            print(f"{name:<38}{'not installed':>11}")
            continue
        t = statistics.median(times[name])
        rate = args.batch / t
        row = f"{name:<38}{n_params(found[0]):>11,}{1000 * t:>10.1f}{rate:>11.1f}"
        print(f"{row}{ours_rate / rate:>10.2f}×")


if __name__ == "__main__":
    main()
