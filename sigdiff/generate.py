"""Sampling from a trained run: rebuild from the checkpoint alone, walk a σ grid, denormalise,
and write a store in the same layout as the real data.

`sample_to_store` refuses bad options, an unusable output and options the model cannot honour
before it generates anything, so a mistake costs seconds, not a whole sampling run."""

from __future__ import annotations

import math
import numbers
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sigdiff._faults import kill_point
from sigdiff._lock import folder_lock
from sigdiff._utils import choice_error, is_local
from sigdiff.build import build_denoiser, check_rank, resolve_device
from sigdiff.checkpoint import CheckpointError, LoadedCheckpoint, load_checkpoint
from sigdiff.config import TrainConfig, config_from_dict
from sigdiff.data.dataset import Normalizer
from sigdiff.denoiser import Denoiser
from sigdiff.errors import TrainingError
from sigdiff.samplers import get_sampler, prior_noise
from sigdiff.schedules import karras_sigmas

__all__ = [
    "BALANCES",
    "GRIDS",
    "LoadedModel",
    "RejectOptions",
    "check_output",
    "check_sample_options",
    "class_counts",
    "generate",
    "load_model",
    "sample_to_store",
    "sigma_grid",
    "spatial_shape",
]

GRIDS = ("trailing", "leading", "linspace", "karras")


@dataclass(frozen=True)
class LoadedModel:
    denoiser: Denoiser
    config: TrainConfig
    checkpoint: LoadedCheckpoint

    @property
    def meta(self) -> dict[str, Any]:
        return self.checkpoint.meta


def spatial_shape(meta: dict[str, Any]) -> tuple[int, ...]:
    """What a run draws: (L,) for signals, (H, W) for images (checkpoints before images: length)."""
    shape = meta.get("spatial_shape") or [meta["length"]]
    return tuple(int(n) for n in shape)


def load_model(run: str | Path, *, use_ema: bool = True, device: str = "cpu") -> LoadedModel:
    """Rebuild the denoiser of a run (its latest checkpoint) or of one checkpoint directory."""

    ckpt = load_checkpoint(run)
    try:
        cfg = config_from_dict(ckpt.config["train"])
        model_config = ckpt.config["model_config"]
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{ckpt.path}: config.json is not a sigdiff training config ({exc})") from exc
    with torch.random.fork_rng(devices=[]):
        den, _ = build_denoiser(cfg, model_config, in_channels=ckpt.meta["n_channels"],
                                num_classes=len(ckpt.meta.get("classes", [])) if cfg.conditional else 0)
    try:
        check_rank(int(model_config.get("dims", 1)), spatial_shape(ckpt.meta), where=str(ckpt.path))
    except TrainingError as exc:
        raise CheckpointError(str(exc)) from exc
    weights = ckpt.ema if use_ema else ckpt.model
    try:
        den.net.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{ckpt.path}: weights do not fit the model its config describes "
                              f"({str(exc).splitlines()[0]})") from exc
    return LoadedModel(den.to(device).eval(), cfg, ckpt)


def sigma_grid(model: LoadedModel, steps: int, *, grid: str = "trailing") -> torch.Tensor:
    """The σ grid for ``steps`` sampler steps on the model's own schedule."""
    schedule = model.denoiser.schedule
    assert schedule is not None
    if grid == "karras":
        return karras_sigmas(steps, sigma_min=schedule.sigma_min, sigma_max=schedule.sigma_max)
    if grid not in GRIDS:
        raise choice_error("sigma grid", grid, GRIDS)
    return schedule.sampling_sigmas(steps, spacing=grid)  # type: ignore[arg-type]


def _guided(den: Denoiser, label: int | None, guidance: float, null: int) -> Any:
    if label is None:
        return den

    def fn(x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        y = torch.full((x.shape[0],), label, dtype=torch.long, device=x.device)
        d_cond = den(x, sigma, y)
        if guidance == 1.0:
            return d_cond
        d_uncond = den(x, sigma, torch.full_like(y, null))
        return d_uncond + guidance * (d_cond - d_uncond)  # Ho & Salimans 2022, eq. 6

    return fn


def check_sample_options(*, n: int, steps: int, batch_size: int, sampler: str, grid: str,
                         guidance: float) -> None:
    """Raise `ValueError` naming the first option no model could honour."""
    for name, value in (("n", n), ("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    get_sampler(sampler)
    if grid not in GRIDS:
        raise choice_error("sigma grid", grid, GRIDS)
    if not math.isfinite(guidance):
        raise ValueError(f"guidance must be a finite number, got {guidance!r}")


def _check_model_options(model: LoadedModel, *, label: int | None, guidance: float) -> None:
    """Raise `ValueError` for a label or guidance this model cannot honour."""
    classes: list[int] = model.meta.get("classes", [])
    if label is not None:
        if not model.config.conditional:
            raise ValueError("this model was trained unconditionally: --label needs a run trained "
                             "with conditional = true")
        if label not in classes:
            raise ValueError(f"label {label} is not one of the training classes {classes}")
    elif guidance != 1.0:
        if not model.config.conditional:
            raise ValueError(f"guidance {guidance:g} needs a class-conditional model, but this "
                             "model was trained unconditionally; drop --guidance (or train with "
                             "--conditional and sample with --label)")
        raise ValueError(f"guidance {guidance:g} steers towards a class: pass --label "
                         f"(one of {classes}) or drop --guidance")


def check_output(out: str | Path, *, overwrite: bool, run: str | Path | None = None) -> None:
    """Raise `ValueError` unless a store can be written at ``out``: it must not exist (or, with
    ``overwrite``, be a sigdiff store), must not hold ``run``, and its folder must be writable
    (local paths; a URL's filesystem package must be installed, else `StoreError`)."""
    from sigdiff.data.store import open_store
    from sigdiff.data.store._location import _Location

    local = is_local(out)
    p = Path(os.fspath(out).removeprefix("file://")).absolute()  # meaningful when local
    if local and run is not None and (p == Path(run).absolute()
                                      or p in Path(run).absolute().parents):
        raise ValueError(f"{out}: this is (or holds) the run being sampled; choose another --out")
    loc = _Location.parse(out, None)
    if loc.fs.exists(loc.path):
        if not overwrite:
            raise ValueError(f"{out}: already exists; pass --overwrite to replace it")
        try:
            open_store(out)
        except (ValueError, OSError):
            raise ValueError(f"{out}: exists and is not a sigdiff store, so --overwrite will not "
                             "replace it; remove it yourself or choose another --out") from None
    if not local:
        return
    existing = next(q for q in p.parents if q.exists())
    if not existing.is_dir():
        raise ValueError(f"{out}: cannot create it, {existing} is a file; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{out}: cannot write into {existing} (permission denied)")


@torch.no_grad()
def generate(model: LoadedModel, *, n: int, seed: int, sampler: str = "dpmpp_2m", steps: int = 50,
             grid: str = "trailing", batch_size: int = 256, label: int | None = None,
             guidance: float = 1.0, progress: bool = True) -> np.ndarray:
    """``n`` samples (n, C, L) or (n, C, H, W) in data units (denormalised with the training
    store's stats)."""
    check_sample_options(n=n, steps=steps, batch_size=batch_size, sampler=sampler, grid=grid,
                         guidance=guidance)
    _check_model_options(model, label=label, guidance=guidance)
    fn = get_sampler(sampler)
    classes: list[int] = model.meta.get("classes", [])
    label_idx = classes.index(label) if label is not None else None
    den = _guided(model.denoiser, label_idx, guidance, len(classes))
    sigmas = sigma_grid(model, steps, grid=grid)
    shape = (model.meta["n_channels"], *spatial_shape(model.meta))  # (C, L) or (C, H, W)
    device = next(model.denoiser.parameters()).device
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    out = []
    normalizer = Normalizer(torch.tensor(model.meta["norm_mean"], dtype=torch.float64),
                            torch.tensor(model.meta["norm_std"], dtype=torch.float64),
                            spatial_rank=len(shape) - 1)
    n_batches = math.ceil(n / batch_size)
    for b in tqdm(range(n_batches), desc=f"sample {sampler}×{steps}", disable=not progress,
                  unit="batch"):
        m = min(batch_size, n - b * batch_size)
        x = prior_noise((m, *shape), sigma_max=float(sigmas[0]), generator=g, device=device,
                        sigma_data=model.config.diffusion.sigma_data)
        x0 = fn(den, x, sigmas.to(device), generator=g)
        out.append(normalizer.denormalize(x0.cpu()).float().numpy())
        kill_point("generate.batch_done")  # fault tests
    return np.concatenate(out)


@dataclass(frozen=True)
class RejectOptions:
    """`sigdiff sample --reject-copies`: the DCR quantile of held-out real records below which a
    generated record is a near-copy, the redraw rounds allowed, and the held-out store (None: the
    run's own, see `sigdiff.guard.copies.real_records`)."""

    quantile: float = 0.05
    max_rounds: int = 10
    holdout: str | None = None


def sample_to_store(run: str | Path, out: str | Path, *, n: int | None, seed: int,
                    sampler: str = "dpmpp_2m", steps: int = 50, grid: str = "trailing",
                    batch_size: int = 256, label: int | None = None, guidance: float = 1.0,
                    per_class: int | None = None, balance: str | None = None,
                    use_ema: bool = True, device: str = "cpu", overwrite: bool = False,
                    progress: bool = True, reject: RejectOptions | None = None) -> str:
    """Generate and write ``out`` (a store in the real data's layout) with its provenance;
    return ``out`` as a string (a path or an fsspec URL such as ``s3://bucket/samples.zarr``).

    Classes (`class_counts`): unconditional, one ``label``, ``per_class`` records of every
    training class, or ``n`` split by ``balance`` ('prior' or 'uniform'); the output's labels
    say which class each record was drawn for.

    ``reject``: drop and redraw near-copies of the training records (`sigdiff.guard.copies`);
    what was rejected and what it cost in alignment is in the store's provenance.

    Options, the output and the model's fit to the options are checked first; a local ``out``
    is locked while samples are drawn and written (a second writer is refused)."""

    check_sample_options(n=n if n is not None else 1, steps=steps, batch_size=batch_size,
                         sampler=sampler, grid=grid, guidance=guidance)
    try:
        device = str(resolve_device(device))
    except TrainingError as exc:
        raise ValueError(str(exc)) from None
    check_output(out, overwrite=overwrite, run=run)
    model = load_model(run, use_ema=use_ema, device=device)
    counts = class_counts(model, n=n, label=label, per_class=per_class, balance=balance)
    for c in counts:
        _check_model_options(model, label=c, guidance=guidance)
    sigma_grid(model, steps, grid=grid)  # steps within the model's schedule
    real = None
    if reject is not None:  # the real records are readable before anything is drawn
        from sigdiff.guard.copies import real_records

        real = real_records(model.meta, model.checkpoint.path.parent.parent, reject.holdout)
    with ExitStack() as lock:
        if is_local(out):
            lock.enter_context(folder_lock(os.fspath(out).removeprefix("file://"),
                                           what="output store"))
            check_output(out, overwrite=overwrite, run=run)  # another writer may have finished
        return _sample_and_write(model, out, counts=counts, seed=seed, sampler=sampler,
                                 steps=steps, grid=grid, batch_size=batch_size, guidance=guidance,
                                 use_ema=use_ema, overwrite=overwrite, progress=progress,
                                 reject=reject, real=real)


def class_counts(model: LoadedModel, *, n: int | None, label: int | None = None,
                 per_class: int | None = None, balance: str | None = None
                 ) -> dict[int | None, int]:
    """How many records of which class to draw: ``{None: n}`` unconditionally, ``{label: n}``,
    ``per_class`` of every training class, or ``n`` split over the classes uniformly or by the
    training prior (``balance``; largest remainders). Raises ValueError naming what is wrong."""
    chosen = [name for name, v in (("--label", label), ("--per-class", per_class),
                                   ("--balance", balance)) if v is not None]
    if len(chosen) > 1:
        raise ValueError(f"{' and '.join(chosen)} each choose the classes: pass one of them")
    classes: list[int] = model.meta.get("classes", [])
    if (per_class is not None or balance is not None) and not model.config.conditional:
        raise ValueError(f"{chosen[0]} needs a class-conditional run (trained with "
                         "--conditional); this one was trained unconditionally")
    if per_class is not None:
        if per_class < 1:
            raise ValueError(f"--per-class must be >= 1, got {per_class}")
        return {c: per_class for c in classes}
    if n is None or n < 1:
        raise ValueError(f"--n must be a positive integer, got {n}")
    if balance is None:
        return {label: n}
    if balance not in BALANCES:
        raise choice_error("class balance", balance, BALANCES)
    weights = np.ones(len(classes)) if balance == "uniform" else _training_prior(model, classes)
    share = n * weights / weights.sum()
    counts = np.floor(share).astype(int)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return {c: int(k) for c, k in zip(classes, counts) if k > 0}


BALANCES = ("prior", "uniform")


def _training_prior(model: LoadedModel, classes: list[int]) -> np.ndarray:
    """Class counts of the records the run trained on (read from its training store)."""
    from sigdiff.data.store import StoreError, open_store

    data = model.meta.get("data")
    try:
        labels = open_store(str(data)).labels
    except (StoreError, FileNotFoundError, OSError) as exc:
        raise ValueError(f"--balance prior reads the run's training labels, but its store "
                         f"{data!r} cannot be read ({exc}); use --balance uniform") from None
    rows = model.meta.get("train_records")
    assert labels is not None
    ys = labels if rows is None else labels[np.asarray(rows)]
    return np.array([(ys == c).sum() for c in classes], dtype=float)


def class_seed(seed: int, label: int | None, n_classes: int) -> int:
    """One class of several draws with a seed derived from (seed, label); a single class (or an
    unconditional draw) with ``seed`` itself."""
    if n_classes == 1 or label is None:
        return seed
    return int(np.random.SeedSequence([seed, 104729, label]).generate_state(1, np.uint64)[0]
               >> np.uint64(1))


def _sample_and_write(model: LoadedModel, out: str | Path, *, counts: dict[int | None, int],
                      seed: int, sampler: str, steps: int, grid: str, batch_size: int,
                      guidance: float, use_ema: bool, overwrite: bool, progress: bool,
                      reject: RejectOptions | None = None,
                      real: tuple[np.ndarray, np.ndarray, str] | None = None) -> str:
    from sigdiff.data.store import write_store

    parts, labels, filtered = [], [], {}
    for label, k in counts.items():
        def draw(m: int, s: int, label: int | None = label) -> np.ndarray:
            return generate(model, n=m, seed=s, sampler=sampler, steps=steps, grid=grid,
                            batch_size=batch_size, label=label, guidance=guidance,
                            progress=progress)

        s = class_seed(seed, label, len(counts))
        if reject is None or real is None:
            x = draw(k, s)
        else:
            from sigdiff.guard.copies import draw_without_copies

            x, report = draw_without_copies(draw, n=k, seed=s, train=real[0], holdout=real[1],
                                            quantile=reject.quantile,
                                            max_rounds=reject.max_rounds)
            filtered[str(label)] = {**report.to_dict(), "holdout": real[2],
                                    "summary": report.summary()}
        parts.append(x)
        labels.append(np.full(k, -1 if label is None else label, dtype=np.int64))
    x = np.concatenate(parts)
    kill_point("generate.before_write")  # fault tests: all drawn, nothing written
    meta = model.meta
    one = next(iter(counts)) if len(counts) == 1 else None
    provenance = {"generated_by": "sigdiff sample", "checkpoint": str(model.checkpoint.path),
                  "step": model.checkpoint.step, "sampler": sampler, "steps": steps, "grid": grid,
                  "seed": seed, "weights": "ema" if use_ema else "raw", "label": one,
                  "class_counts": {str(c): k for c, k in counts.items()},
                  "guidance": guidance, "training_data": meta.get("data"),
                  "reject_copies": (filtered.get(str(one)) if len(counts) == 1 else filtered)
                  if reject is not None else None}
    conditional = any(c is not None for c in counts)
    write_store(out, x, sampling_rate=float(meta["sampling_rate"]),
                labels=np.concatenate(labels) if conditional else None,
                units=meta.get("units", "a.u."),
                channel_names=meta.get("channel_names") or None,
                attrs={"provenance": provenance}, overwrite=overwrite)
    return os.fspath(out)  # not Path(out): that turns s3://b/x into s3:/b/x
