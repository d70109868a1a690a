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
the ECG demo step alone: `--no-peers --batch 64 --length 140`; the DiT: `--model dit`;
`--compile` adds the sigdiff network under `torch.compile` (its compile time is printed apart);
on a GPU: `--device cuda [--bf16]` (bf16 autocast, MFU against the bf16 matmul peak).
Timings are medians over interleaved repeats, so a transient load hits every model alike.
FLOPs per step are counted by torch's `FlopCounterMode` (forward + backward; the optimizer's
elementwise work is not counted), and MFU is achieved FLOP/s over the fp32 matmul peak measured
in the same process, interleaved with the steps (a 1024² matmul on the same threads).
`--parts` also times the step's parts (forward, backward, AdamW loop / foreach / fused, EMA loop /
foreach) for the sigdiff network alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

import torch
from torch import nn

from sigdiff.models import build_model

Net = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, c_noise) -> prediction
TOLERANCE = 0.10  # matched parameter count: within ±10%


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sigdiff_net(name: str, preset: str) -> tuple[nn.Module, Net]:
    model, _ = build_model(name, preset=preset)
    return model, model


#: where steps run and under which autocast (set by `main` from --device / --bf16)
DEVICE = torch.device("cpu")
BF16 = False


def autocast() -> AbstractContextManager[Any]:
    return torch.autocast(DEVICE.type, dtype=torch.bfloat16) if BF16 else nullcontext()


def sync() -> None:
    """Wait for queued GPU work, so that wall-clock time measures it."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def step_flops(net: Net, batch: int, length: int) -> int:
    """Forward + backward FLOPs of one step, counted by torch (matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, 1, length, device=DEVICE)
    sigma = torch.rand(batch, device=DEVICE)
    with FlopCounterMode(display=False) as counter:
        with autocast():
            out = net(x, sigma)
        out.float().square().mean().backward()
    return int(counter.get_total_flops())


def matmul_peak(size: int) -> Callable[[], None]:
    """A size² matmul in the steps' precision (bf16 under --bf16): the machine's peak."""
    dtype = torch.bfloat16 if BF16 else torch.float32
    a = torch.randn(size, size, device=DEVICE, dtype=dtype)
    b = torch.randn(size, size, device=DEVICE, dtype=dtype)

    def run() -> None:
        a @ b
    return run


def time_parts(model: nn.Module, net: Net, batch: int, length: int, repeats: int) -> None:
    """Median ms of each part of a training step, interleaved (the AdamW and EMA variants)."""
    import copy

    x = torch.randn(batch, 1, length, device=DEVICE)
    sigma = torch.rand(batch, device=DEVICE)
    ema = copy.deepcopy(model).requires_grad_(False)
    opts = {kind: torch.optim.AdamW(model.parameters(), lr=1e-6, foreach=foreach, fused=fused)
            for kind, foreach, fused in (("loop", False, None), ("foreach", True, None),
                                         ("fused", None, True))}
    def forward() -> None:
        net(x, sigma).square().mean()

    def backward() -> None:
        net(x, sigma).square().mean().backward()

    def ema_loop() -> None:
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1e-3)

    def ema_foreach() -> None:
        with torch.no_grad():
            torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1e-3)

    parts: dict[str, Callable[[], None]] = {
        "forward": forward, "forward + backward": backward,
        **{f"AdamW {k}": o.step for k, o in opts.items()},
        "EMA loop": ema_loop, "EMA foreach": ema_foreach}
    for part in parts.values():
        part()
    times: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(repeats):
        for name, part in parts.items():
            start = time.perf_counter()
            part()
            times[name].append(1000 * (time.perf_counter() - start))
    for name, t in times.items():
        print(f"  {name:<22}{statistics.median(t):>9.2f} ms")


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
    g = torch.Generator(device=DEVICE).manual_seed(0)
    x0 = torch.randn(batch, 1, length, generator=g, device=DEVICE)
    target = torch.randn(batch, 1, length, generator=g, device=DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        sigma = torch.rand(batch, generator=g, device=DEVICE)
        noise = torch.randn(x0.shape, generator=g, device=DEVICE)
        x = x0 + sigma[:, None, None] * noise  # (B, 1, L)
        with autocast():
            out = net(x, sigma)
        loss = torch.nn.functional.mse_loss(out.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="unet", choices=["unet", "dit"])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-peers", action="store_true", help="time sigdiff alone (any length)")
    parser.add_argument("--parts", action="store_true", help="also time the step's parts")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (peak in bf16 too)")
    parser.add_argument("--compile", action="store_true",
                        help="also time the sigdiff network under torch.compile (inductor)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    global DEVICE, BF16
    DEVICE, BF16 = torch.device(args.device), args.bf16

    ours, ours_net = sigdiff_net(args.model, args.preset)
    ours.to(DEVICE)
    target = n_params(ours)
    candidates: dict[str, tuple[nn.Module, Net] | None] = {
        f"sigdiff {args.model} ({args.preset})": (ours, ours_net)
    }
    if args.compile:  # same initial weights, its own optimizer; compiles during the warm-up
        import copy

        twin = copy.deepcopy(ours)
        candidates[f"sigdiff {args.model} compiled"] = (twin, cast(Net, torch.compile(twin)))
    if not args.no_peers:  # the peers need a length divisible by their down-sampling factor
        for name, build in (("denoising-diffusion-pytorch Unet1D", lambda: ddp_unet(target)),
                            ("diffusers UNet1DModel",
                             lambda: diffusers_unet(target, args.length))):
            try:
                candidates[name] = build()
            except RuntimeError as err:  # no width within ±10% of the parameter count
                print(f"{name}: left out: {err}")
    for found in candidates.values():
        if found is not None:
            found[0].to(DEVICE)
    flops = {k: step_flops(v[0] if "compiled" in k else v[1], args.batch, args.length)
             for k, v in candidates.items() if v}  # a compiled network does the eager FLOPs
    steps = {k: make_step(*v, args.batch, args.length) for k, v in candidates.items() if v}
    size = 1024 if DEVICE.type == "cpu" else 8192
    peak = matmul_peak(size)
    first: dict[str, float] = {}
    for name, step in [*steps.items(), ("peak", peak)]:  # warm-up: allocator, oneDNN, compile
        sync()
        start = time.perf_counter()
        step()
        sync()
        first[name] = time.perf_counter() - start
        for _ in range(2):
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    peak_flops: list[float] = []
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        for _ in range(20):
            peak()
        sync()
        peak_flops.append(20 * 2 * size**3 / (time.perf_counter() - start))
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            sync()
            times[name].append((time.perf_counter() - start) / args.steps)
    machine = statistics.median(peak_flops)
    where = (f"{torch.get_num_threads()} threads" if DEVICE.type == "cpu"
             else torch.cuda.get_device_name(DEVICE))
    precision = "bf16" if BF16 else "fp32"
    print(
        f"train step (fwd+bwd+AdamW), batch {args.batch} × 1 × {args.length}, {where}, "
        f"{precision}, median of {args.repeats} × {args.steps} steps; {precision} matmul peak "
        f"({size}², same process, interleaved) {machine / 1e9:.1f} GFLOP/s"
    )
    # the last column: how many times faster the fastest sigdiff variant is than this row
    print(f"{'model':<38}{'params':>11}{'ms/step':>10}{'samples/s':>11}{'GFLOP/step':>12}"
          f"{'MFU':>7}{'best sigdiff ×':>16}")
    ours_rate = max(args.batch / statistics.median(t) for k, t in times.items()
                    if k.startswith("sigdiff"))
    for name, found in candidates.items():
        if found is None:
            print(f"{name:<38}{'not installed':>11}")
            continue
        t = statistics.median(times[name])
        rate = args.batch / t
        mfu = flops[name] / t / machine
        row = (f"{name:<38}{n_params(found[0]):>11,}{1000 * t:>10.1f}{rate:>11.1f}"
               f"{flops[name] / 1e9:>12.2f}{mfu:>7.0%}")
        print(f"{row}{ours_rate / rate:>15.2f}×")
    for name in (k for k in steps if "compiled" in k):
        print(f"{name}: first step (compilation) {first[name]:.1f} s")
    if args.parts:
        print(f"parts of the sigdiff step (median of {5 * args.repeats}, interleaved):")
        time_parts(ours, ours_net, args.batch, args.length, 5 * args.repeats)


if __name__ == "__main__":
    main()
