"""``train(config)``: the training loop — AdamW, warm-up + cosine LR, EMA, exact resume, DDP.

Reproducibility: every random draw of step ``k`` (batch indices, crops, timesteps, noise, label
dropout, and the network's own dropout) derives from ``(seed, k)``. A run killed at any moment and
resumed from its last checkpoint therefore produces the same weights as an uninterrupted run.

Distributed: launched by ``torchrun``, every rank draws the same *global* batch and keeps its
slice ``[rank::world]``; DDP averages gradients, so the update equals a single process with the
same global batch.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from sigdiff._faults import kill_point
from sigdiff._lock import folder_lock
from sigdiff._utils import atomic_write_text, local_folder, step_generator
from sigdiff.build import build_denoiser, check_rank, resolve_device
from sigdiff.checkpoint import (
    CheckpointError,
    LoadedCheckpoint,
    list_checkpoints,
    load_checkpoint,
    remove_partial,
    save_checkpoint,
)
from sigdiff.config import TrainConfig, config_from_dict, config_to_dict
from sigdiff.data.dataset import StepBatches
from sigdiff.data.store import open_store
from sigdiff.denoiser import Denoiser
from sigdiff.errors import TrainingError
from sigdiff.guard.monitor import GuardMonitor, guard_rows
from sigdiff.losses import denoising_loss
from sigdiff.parameterization import Parameterization
from sigdiff.schedules import DiscreteSchedule
from sigdiff.timesteps import TimestepSampler
from sigdiff.weighting import LossWeightingConfig

__all__ = ["TrainResult", "TrainingError", "build_denoiser", "check_rank", "read_run_config",
           "resolve_device", "step_generator", "train"]

#: Number of noise-level buckets (quantiles of t) the loss is logged by (improved-diffusion).
LOSS_BUCKETS = 4
#: Stores larger than this many bytes are read batch by batch instead of held in memory.
IN_MEMORY_LIMIT_BYTES = 4 * 2**30




@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    step: int
    last_checkpoint: Path
    final_loss: float


def subset_records(cfg: TrainConfig, n_store: int) -> np.ndarray:
    """The store rows a run trains on: all of them, or ``cfg.train_subset`` random rows drawn by
    ``cfg.subset_seed`` (sorted). Memorization is measured against exactly these."""
    if cfg.train_subset is None:
        return np.arange(n_store)
    if cfg.train_subset > n_store:
        raise TrainingError(f"{cfg.data}: train_subset {cfg.train_subset} exceeds the "
                            f"{n_store} records in the store")
    rng = np.random.default_rng([cfg.subset_seed, 7919])
    return np.sort(rng.choice(n_store, size=cfg.train_subset, replace=False))


# --- data ---------------------------------------------------------------------------------
def _batches(cfg: TrainConfig) -> tuple[StepBatches, np.ndarray | None]:
    """The run's batches (`sigdiff.data.dataset.StepBatches` over the rows it trains on) and the
    store rows its guard holds out (None: no guard, or the guard reads its own --holdout store)."""
    store = open_store(cfg.data)
    if store.n_samples < 1:
        raise TrainingError(f"{cfg.data}: the store holds no samples")
    records, guard_holdout = guard_rows(cfg, subset_records(cfg, store.n_samples), store.n_samples)
    if cfg.conditional and store.labels is None:
        raise TrainingError(f"{cfg.data}: conditional=true needs a store with labels")
    crop = cfg.crop_length
    if crop is not None and store.kind != "signal":
        raise TrainingError(f"{cfg.data}: crop_length crops 1D signals; this is an image store "
                            f"{store.spatial_shape}, so drop crop_length")
    if crop is not None and crop > store.length:
        raise TrainingError(f"{cfg.data}: crop_length {crop} exceeds the signal length "
                            f"{store.length}")
    batches = StepBatches(store, batch_size=cfg.batch_size, seed=cfg.seed, indices=records,
                          crop=crop, memory_limit=IN_MEMORY_LIMIT_BYTES)
    return batches, guard_holdout


def _lr_lambda(cfg: TrainConfig) -> Any:
    o = cfg.optim

    def fn(step: int) -> float:
        if o.warmup_steps and step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.lr_schedule == "constant":
            return 1.0
        progress = min(1.0, (step - o.warmup_steps) / max(1, cfg.steps - o.warmup_steps))
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return fn


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    # one multi-tensor call: faster than a per-parameter loop on CPU, bit-identical to it
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def _ema_decay(cfg: TrainConfig, step: int) -> float:
    """EMA decay at ``step`` (0-based count of finished updates); with warm-up, the decay
    min(decay, (1 + k)/(10 + k)) lets early averages follow the fast-moving weights."""
    if not cfg.ema_warmup:
        return cfg.ema_decay
    return min(cfg.ema_decay, (1 + step) / (10 + step))


@contextmanager
def _seeded_global_rng(seed: int, step: int, device: torch.device) -> Iterator[None]:
    """Network-internal randomness (dropout) uses the global RNG: seed it from (seed, step) inside
    a fork so the caller's global state is untouched."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        s = int(np.random.SeedSequence([seed, step, 2]).generate_state(1)[0])
        torch.manual_seed(s)
        yield


# --- distributed ------------------------------------------------------------------------------
def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _maybe_init_distributed(device: torch.device) -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


# --- the run folder -------------------------------------------------------------------------
#: The run's log: one JSON row per `log_every` steps.
LOG_NAME = "train_log.jsonl"


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The ``config.json`` a run folder was started with, as plain values."""
    path = Path(run_dir) / "config.json"
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise TrainingError(f"{run_dir}: nothing to resume (no config.json); start without "
                            "--resume") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainingError(f"{path}: unreadable or corrupt ({exc}); cannot resume this run, "
                            "start a new --out directory") from None
    if not isinstance(saved, dict):
        raise TrainingError(f"{path}: not a sigdiff training config; start a new --out directory")
    return saved


def _check_resume_config(run_dir: Path, cfg: TrainConfig) -> TrainConfig:
    saved = read_run_config(run_dir)
    try:
        saved_cfg = config_from_dict(saved)
    except ValueError as exc:
        raise TrainingError(f"{run_dir / 'config.json'}: not a valid training config ({exc}); "
                            "start a new --out directory") from None
    mine, theirs = config_to_dict(cfg), config_to_dict(saved_cfg)
    # Only the step budget may grow on resume; everything else must match the original run.
    diffs = sorted(k for k in mine if k != "steps" and mine[k] != theirs[k])
    if diffs:
        raise TrainingError(
            f"{run_dir}: cannot resume with a different config (changed: {', '.join(diffs)}); "
            "resume with the same settings or start a new --out directory")
    return saved_cfg if cfg.steps == saved_cfg.steps else cfg


def _check_folder(run_dir: Path) -> None:
    """Refuse a run folder that is a file or lies where nothing can be written."""
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"{run_dir} is a file, not a run folder; choose another --out")
    existing = next(p for p in (run_dir, *run_dir.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise TrainingError(f"cannot create {run_dir}: {existing} is a file; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TrainingError(f"cannot write into {existing} (permission denied); choose another "
                            "--out")


def _check_run_dir(cfg: TrainConfig, run_dir: Path, resume: bool) -> TrainConfig:
    """Read-only, under the run folder's lock: refuse a folder this call cannot use; return the
    config to run with."""
    if resume:
        return _check_resume_config(run_dir, cfg)
    if list_checkpoints(run_dir):
        raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it or "
                            "choose another --out directory (nothing was overwritten)")
    return cfg


def _trim_log(path: Path, step: int) -> None:
    """Drop log rows after ``step`` (logged after the checkpoint a run restarts from, so they
    would be logged twice) and any line a kill cut short."""
    if not path.is_file():
        return
    text = path.read_text()
    kept = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line + "\n")
    if "".join(kept) != text:
        atomic_write_text(path, "".join(kept))


def _open_run_dir(cfg: TrainConfig, run_dir: Path, *, step: int, fresh: bool) -> None:
    """Under the run's lock: clear what a killed writer left half-written, record the config of a
    fresh run, and cut the log back to ``step``, where this call starts."""
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_partial(run_dir)
    for tmp in run_dir.glob(".*.tmp"):  # a `_write_atomic` cut short
        if tmp.is_file():
            tmp.unlink()
    if fresh:
        atomic_write_text(run_dir / "config.json", json.dumps(config_to_dict(cfg), indent=2))
    _trim_log(run_dir / LOG_NAME, step)


# --- the loop -------------------------------------------------------------------------------
def _meta(batches: StepBatches, cfg: TrainConfig, step: int) -> dict[str, Any]:
    s = batches.store
    spatial = (cfg.crop_length,) if cfg.crop_length else s.spatial_shape
    return {
        "step": step,
        "n_channels": s.n_channels,
        "length": spatial[0] if s.kind == "signal" else None,
        "spatial_shape": list(spatial),  # (L,) or (H, W): what `generate` draws
        "kind": s.kind,
        "sampling_rate": s.sampling_rate,
        "norm_mean": [float(v) for v in s.norm_mean],
        "norm_std": [float(v) for v in s.norm_std],
        "classes": batches.classes,
        "data": str(cfg.data),
        # the store rows this model trained on: memorization is measured against exactly these
        "train_records": (batches.records.tolist() if cfg.train_subset is not None
                          or _guard_holds_rows(cfg) else None),
        "channel_names": list(s.attrs.get("channel_names", [])),
        "units": s.attrs.get("units", "a.u."),
    }


def train(cfg: TrainConfig, *, run_dir: str | Path, resume: bool = False,
          progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Train a denoiser per ``cfg``, writing checkpoints and logs into ``run_dir``.

    ``resume`` continues from the latest checkpoint of ``run_dir`` exactly where it stopped.
    ``stop_after`` ends this call after that many optimizer steps (as if the run were killed
    there), used to test exact resumption.

    Everything that can be refused (config, data, model, run folder) is checked before the run
    folder is created or changed; then the folder's lock is held until the call returns, so a
    second writer is refused (`sigdiff._lock.LockError`) instead of mixing two runs.
    """
    run_dir = local_folder(run_dir, what="run directory")  # cfg.data may be a URL, runs not
    device = resolve_device(cfg.device)
    started_dist = _maybe_init_distributed(device)
    rank, world = _dist_info()
    try:
        if cfg.batch_size % (world * cfg.optim.grad_accum):
            raise TrainingError(f"batch_size {cfg.batch_size} must be divisible by world size "
                                f"({world}) × grad_accum ({cfg.optim.grad_accum})")
        if cfg.guard is not None and world > 1:
            raise TrainingError(
                f"the memorization guard runs in single-process training (its decisions and "
                f"sampler moves are made on one process); this is a {world}-process run: train "
                "without --guard under torchrun, or guard a single-process run")
        return _train(cfg, run_dir, device, rank, world, resume, progress, stop_after)
    finally:
        if started_dist:
            dist.destroy_process_group()


def _guard_holds_rows(cfg: TrainConfig) -> bool:
    """Whether the guard holds out rows of the training store (see `guard_rows`)."""
    return cfg.guard is not None and cfg.guard.holdout is None


def _build(cfg: TrainConfig, batches: StepBatches,
           model_config: dict[str, Any] | None = None) -> tuple[Denoiser, dict[str, Any]]:
    """The denoiser for this data; initial weights from the seed alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_denoiser(cfg, model_config, in_channels=batches.store.n_channels,
                              num_classes=len(batches.classes) if cfg.conditional else 0,
                              spatial_shape=batches.store.spatial_shape)


def _train(cfg: TrainConfig, run_dir: Path, device: torch.device, rank: int, world: int,
           resume: bool, progress: bool, stop_after: int | None) -> TrainResult:
    # validation: nothing is created or written until the data and the model are known to work
    _check_folder(run_dir)
    if resume:
        read_run_config(run_dir)  # there is a run to resume
    batches, guard_holdout = _batches(cfg)
    den, model_config = _build(cfg, batches)
    sampler = cfg.timesteps.build(cfg.diffusion.build_schedule())
    monitor = (_guard_monitor(cfg, batches, guard_holdout)
               if cfg.guard is not None and rank == 0 else None)
    with ExitStack() as lock:
        if rank == 0:  # one writer per run folder (a live one refuses us); other ranks only read
            lock.enter_context(folder_lock(run_dir, what="run folder"))
        kill_point("training.locked")  # fault tests: locked, nothing written yet
        cfg = _check_run_dir(cfg, run_dir, resume)  # what the folder holds, now that it is ours
        loaded = (load_checkpoint(run_dir, with_train_state=True)
                  if resume and list_checkpoints(run_dir) else None)
        if loaded is not None:  # the exact architecture the checkpoint was trained with
            if not isinstance(loaded.config.get("model_config"), dict):
                raise CheckpointError(f"{loaded.path}: config.json has no model_config; not a "
                                      "sigdiff training checkpoint")
            den, model_config = _build(cfg, batches, loaded.config["model_config"])
        if rank == 0:
            _open_run_dir(cfg, run_dir, step=loaded.step if loaded else 0, fresh=not resume)
        return _loop(cfg, run_dir, batches, den, model_config, sampler, loaded, device, rank,
                     world, progress, stop_after, monitor)


def _guard_monitor(cfg: TrainConfig, batches: StepBatches,
                   guard_holdout: np.ndarray | None) -> GuardMonitor:
    """The guard of a run: its training records and held-out records, read in data units."""
    from sigdiff.metrics.spectral import signal_kind

    assert cfg.guard is not None
    store = batches.store
    train_x = store.read(batches.records)
    if guard_holdout is not None:
        holdout_x = store.read(guard_holdout)
        source: dict[str, Any] = {"store": str(cfg.data), "rows": guard_holdout.tolist(),
                                  "how": ("the store's records outside train_subset"
                                          if cfg.train_subset is not None else
                                          f"{cfg.guard.holdout_fraction:g} of the store's records "
                                          f"(split_seed {cfg.guard.split_seed}), not trained on")}
    else:
        held = open_store(str(cfg.guard.holdout))
        if (held.n_channels, held.spatial_shape) != (store.n_channels, store.spatial_shape):
            raise TrainingError(
                f"guard.holdout {cfg.guard.holdout}: records of shape "
                f"{(held.n_channels, *held.spatial_shape)} do not match the training store's "
                f"{(store.n_channels, *store.spatial_shape)}; give held-out records of the same "
                "data")
        holdout_x = held.read(np.arange(held.n_samples))
        source = {"store": str(cfg.guard.holdout), "rows": None, "how": "--holdout store"}
    unused = np.setdiff1d(np.arange(store.n_samples), batches.records)
    pool = store.read(unused) if guard_holdout is None and len(unused) >= 4 else None
    return GuardMonitor(cfg, train_x, holdout_x, holdout_source=source, pool=pool,
                        sampling_rate=float(store.sampling_rate),
                        signal_kind=signal_kind(store.attrs))


def _loop(cfg: TrainConfig, run_dir: Path, batches: StepBatches, den: Denoiser,
          model_config: dict[str, Any], sampler: TimestepSampler,
          loaded: LoadedCheckpoint | None, device: torch.device, rank: int, world: int,
          progress: bool, stop_after: int | None,
          monitor: GuardMonitor | None = None) -> TrainResult:
    den.to(device)
    ema = copy.deepcopy(den.net).requires_grad_(False)
    # foreach: multi-tensor updates, bit-identical to the per-parameter loop that CPU runs
    # default to, and faster (benchmarks/train_speed.py --parts)
    opt = torch.optim.AdamW(den.net.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                            betas=(cfg.optim.beta1, cfg.optim.beta2), foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    schedule = cfg.diffusion.build_schedule()
    param = cfg.diffusion.build_parameterization()
    step = 0
    if loaded is not None:
        assert loaded.train_state is not None
        den.net.load_state_dict(loaded.model)
        ema.load_state_dict(loaded.ema)
        opt.load_state_dict(loaded.train_state["optimizer"])
        sched.load_state_dict(loaded.train_state["lr_schedule"])
        if monitor is not None:  # the trace and the controller's moves up to this checkpoint
            monitor.load_state(loaded.train_state.get("guard"), loaded.step)
            sampler = monitor.timesteps.build(schedule)
        if "sampler" in loaded.train_state:
            sampler.load_state_dict(loaded.train_state["sampler"])
        step = loaded.step
    net: nn.Module = den.net
    if world > 1:
        net = nn.parallel.DistributedDataParallel(den.net, device_ids=[device.index]
                                                  if device.type == "cuda" else None)
    autocast: AbstractContextManager[Any] = (
        torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16"
        else nullcontext())
    if cfg.compile:  # the step's network only; checkpoints and the EMA keep the plain module
        net = cast(nn.Module, torch.compile(net))
    parts = _StepParts(cfg, batches, Denoiser(net, param, schedule=schedule), net, schedule,
                       cfg.weighting, param, opt, autocast, device, rank, world)
    log_path = run_dir / LOG_NAME
    meta = _meta(batches, cfg, step)
    last_ckpt = loaded.path if loaded else run_dir
    end = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank > 0, unit="step",
               desc="train", dynamic_ncols=True)
    window: list[dict[str, float]] = []
    t0, last_loss = time.perf_counter(), float("nan")
    while step < end:
        stats = _train_step(parts, step, sampler)
        sched.step()
        _ema_update(ema, den.net, _ema_decay(cfg, step))
        step += 1
        last_loss = stats["loss"]
        window.append(stats)
        bar.update(1)
        lr = float(sched.get_last_lr()[0])
        bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}")
        if rank == 0 and (step % cfg.log_every == 0 or step == end):
            _log(log_path, step, window, lr, time.perf_counter() - t0, cfg.batch_size)
            window, t0 = [], time.perf_counter()
        stop = False
        if rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            if monitor is not None and monitor.due(step):  # evaluated before the checkpoint
                act = monitor.observe(step, Denoiser(ema, param, schedule=schedule),
                                      {**meta, "step": step})
                if act.timesteps is not None:  # the controller moved the sampler
                    sampler = act.timesteps.build(schedule)
                stop = act.decision.stop
                bar.write(f"guard @ {step}: memorized {act.evaluation.fraction_generated:.3f} "
                          f"(floor {act.evaluation.fraction_floor:.3f}), gate "
                          f"{act.evaluation.gate_score:.3f}"
                          + (" COPYING" if act.evaluation.copying else "")
                          + (f"; sampler moved: {monitor.moves[-1]['param']} -> "
                             f"{monitor.moves[-1]['to']:g}" if act.timesteps is not None else ""))
            train_state: dict[str, Any] = {"optimizer": opt.state_dict(),
                                           "lr_schedule": sched.state_dict(), "step": step}
            train_state["sampler"] = sampler.state_dict()
            if monitor is not None:
                train_state["guard"] = monitor.state_json()
            last_ckpt = save_checkpoint(
                run_dir, step=step, keep_last=cfg.keep_last, meta={**meta, "step": step},
                config={"train": config_to_dict(cfg), "model_config": model_config},
                model=den.net.state_dict(), ema=ema.state_dict(), train_state=train_state,
                keep=monitor.keep_steps() if monitor is not None else ())
            if monitor is not None:
                monitor.write(run_dir)
        kill_point("training.step_done")  # fault tests: logged and, if due, checkpointed
        if stop and monitor is not None:
            bar.write(f"guard: stopped at step {step}: {monitor.decision().reason}")
            break
    bar.close()  # guard.json was written at the last evaluation; nothing changed since
    return TrainResult(run_dir=run_dir, step=step, last_checkpoint=last_ckpt, final_loss=last_loss)


@dataclass(frozen=True)
class _StepParts:
    """What every optimizer step uses and no step changes (the timestep sampler, which a guard's
    controller may replace, is passed per step)."""

    cfg: TrainConfig
    batches: StepBatches
    den: Denoiser  # the (possibly DDP-wrapped) network with the run's parameterization
    net: nn.Module
    schedule: DiscreteSchedule
    weighting: LossWeightingConfig
    param: Parameterization
    opt: torch.optim.Optimizer
    autocast: AbstractContextManager[Any]
    device: torch.device
    rank: int
    world: int


def _train_step(parts: _StepParts, step: int, sampler: TimestepSampler) -> dict[str, float]:
    cfg, batches, den, net, opt, device = (parts.cfg, parts.batches, parts.den, parts.net,
                                           parts.opt, parts.device)
    rank, world = parts.rank, parts.world
    g = step_generator(cfg.seed, step)
    # every draw is made for the global batch, identically on every rank; each rank reads and
    # keeps only its slice [rank::world] of it
    mine = slice(rank, None, world)
    x0, y = batches.batch(step, part=mine)  # (B / world, C, L)
    x0, y = x0.to(device), (y.to(device) if y is not None else None)
    t, w_sampler = sampler.sample(cfg.batch_size, generator=g)
    noise = torch.randn((cfg.batch_size, *x0.shape[1:]), generator=g)[mine].to(device)
    if y is not None and cfg.conditional:
        drop = (torch.rand(cfg.batch_size, generator=g) < cfg.label_dropout)[mine].to(device)
        y = torch.where(drop, torch.full_like(y, len(batches.classes)), y)  # null class
    else:
        y = None
    t, w_sampler = t.to(device), w_sampler.to(device)
    sigma = parts.schedule.sigma(t).to(torch.float32)
    lam = parts.weighting.weight(sigma, parts.param).to(device)  # λ(σ): the loss weighting
    sigma, lam, w_sampler = sigma[mine], lam[mine], w_sampler[mine]  # t stays global
    local_b = x0.shape[0]
    micro = local_b // cfg.optim.grad_accum
    opt.zero_grad(set_to_none=True)
    losses = torch.empty(local_b, device=device)
    with _seeded_global_rng(cfg.seed, step, device):
        for i in range(cfg.optim.grad_accum):
            sl = slice(i * micro, (i + 1) * micro)
            # DDP all-reduces on the last micro-batch only; a fresh context per `with` (a
            # generator context manager cannot be entered twice)
            sync: Callable[[], AbstractContextManager[Any]] = (
                nullcontext if (world == 1 or i == cfg.optim.grad_accum - 1)
                else net.no_sync)  # type: ignore[assignment]
            with sync(), parts.autocast:
                per_ex = denoising_loss(den, x0[sl], sigma[sl], noise[sl],
                                        cond=y[sl] if y is not None else None, weight=lam[sl])
            if not torch.isfinite(per_ex).all():
                bad = (~torch.isfinite(per_ex)).sum().item()
                raise TrainingError(
                    f"non-finite loss at step {step + 1} ({bad} of {micro} examples); the run "
                    "stopped and its last good checkpoint is kept. Lower optim.lr, enable "
                    "optim.grad_clip, or check the data for extreme values")
            with sync():  # importance weights multiply the λ-weighted loss (Nichol & Dhariwal 2021)
                ((per_ex.float() * w_sampler[sl]).sum() / local_b).backward()
            losses[sl] = per_ex.detach().float()
    grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip or float("inf"))
    opt.step()
    # loss_aware sees the λ-weighted loss before importance weighting, from every rank alike;
    # the logged losses are the global batch's too, not rank 0's slice
    losses = _gather(losses, world)
    sampler.update(t, losses)
    stats = {"loss": float(losses.mean()), "grad_norm": float(grad_norm)}
    bucket = (t.float() * LOSS_BUCKETS / parts.schedule.T).long().clamp(0, LOSS_BUCKETS - 1)
    for q in range(LOSS_BUCKETS):
        sel = bucket == q
        if sel.any():
            stats[f"loss_q{q}"] = float(losses[sel].mean())
    return stats


def _gather(x: torch.Tensor, world: int) -> torch.Tensor:
    """Per-example values of the global batch in global order (rank r holds [r::world])."""
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x)
    return torch.stack(parts, dim=1).flatten()  # (B/world, world) -> global order


def _log(path: Path, step: int, window: list[dict[str, float]], lr: float, elapsed: float,
         batch_size: int) -> None:
    keys = sorted({k for s in window for k in s})
    rec: dict[str, float | int] = {"step": step, "lr": lr,
                                   "samples_per_s": len(window) * batch_size / max(elapsed, 1e-9)}
    for k in keys:
        vals = [s[k] for s in window if k in s]
        rec[k] = float(np.mean(vals))
    with open(path, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
