"""`sigdiff train` and `sigdiff sample`: parse, validate, print the resolved config, call one
library function (sigdiff.training.train / sigdiff.generate.sample_to_store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from sigdiff.cli._options import key_values

from sigdiff.errors import USER_ERRORS

__all__ = ["sample_cmd", "train_cmd"]

#: `sigdiff train` flags that configure the guard → GuardConfig fields
GUARD_FLAGS = {"holdout": "holdout", "guard_mode": "mode", "guard_every": "every",
               "guard_samples": "n_samples", "guard_patience": "patience"}


def _assign(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise click.BadParameter(f"{dotted!r}: {p!r} is not a section")
    node[leaf] = value


def _overrides(flags: dict[str, Any], params: tuple[str, ...], wparams: tuple[str, ...],
               sets: tuple[str, ...]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    direct = {"data": "data", "steps": "steps", "batch_size": "batch_size", "seed": "seed",
              "device": "device", "precision": "precision", "compile": "compile", "ema_decay": "ema_decay",
              "lr": "optim.lr", "model": "model.name", "model_preset": "model.preset",
              "sampler": "timesteps.name", "mode": "timesteps.mode", "floor": "timesteps.floor",
              "weighting": "weighting.name", "parameterization": "diffusion.parameterization",
              "schedule": "diffusion.schedule", "conditional": "conditional",
              "checkpoint_every": "checkpoint_every"}
    for flag, path in direct.items():
        if flags.get(flag) is not None:
            _assign(tree, path, flags[flag])
    used = [flag for flag in GUARD_FLAGS if flags.get(flag) is not None]
    if used and not flags.get("guard"):
        raise click.UsageError(f"{', '.join('--' + f.replace('_', '-') for f in used)} configure "
                               "the memorization guard: add --guard")
    if flags.get("guard"):
        tree["guard"] = {GUARD_FLAGS[flag]: flags[flag] for flag in used}
    for key, value in key_values(params, "--param"):
        _assign(tree, f"timesteps.params.{key}", value)
    for key, value in key_values(wparams, "--weighting-param"):
        _assign(tree, f"weighting.params.{key}", value)
    for key, value in key_values(sets, "--set"):
        _assign(tree, key, value)
    return tree


@click.command("train")
@click.option("--data", type=str, help="training store (from `sigdiff data make/import/split`)")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="run directory: config, checkpoints, train_log.jsonl")
@click.option("--preset", type=str, default=None, help="training preset: tiny, small, base")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML config; flags override it, it overrides the preset")
@click.option("--steps", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--model", type=str, default=None, help="network: unet or dit")
@click.option("--model-preset", type=str, default=None, help="network preset: tiny, small, base")
@click.option("--sampler", type=str, default=None,
              help="timestep sampler, e.g. uniform, ci_gaussian, logit_normal, lognormal")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="timestep-sampler parameter, e.g. --param center=0.2 --param width=0.3")
@click.option("--mode", type=click.Choice(["emphasis", "importance"]), default=None)
@click.option("--floor", type=float, default=None, help="fraction of uniform draws mixed in")
@click.option("--weighting", type=str, default=None, help="loss weighting, e.g. none, min_snr")
@click.option("--weighting-param", "wparams", multiple=True, metavar="KEY=VALUE")
@click.option("--parameterization", type=str, default=None, help="eps, x0, v or edm")
@click.option("--schedule", type=str, default=None, help="linear, scaled_linear, cosine, sigmoid")
@click.option("--ema-decay", type=float, default=None)
@click.option("--device", type=str, default=None, help="cpu, cuda, or auto")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default=None)
@click.option("--compile/--no-compile", "compile", default=None,
              help="torch.compile the network for training (first step compiles; faster after)")
@click.option("--conditional/--unconditional", default=None, help="class-conditional training")
@click.option("--checkpoint-every", type=int, default=None)
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
              help="any config field, e.g. --set optim.warmup_steps=50")
@click.option("--guard", is_flag=True, default=None,
              help="memorization guard: evaluate at checkpoints, keep the best-aligned checkpoint "
                   "that does not copy, stop when copying persists (guard.json, guard.png)")
@click.option("--holdout", type=str, default=None,
              help="guard: held-out real records (a store) never trained on; default: the "
                   "records outside --set train_subset, else 20%% of --data held out")
@click.option("--guard-mode", type=click.Choice(["stop", "monitor"]), default=None,
              help="guard: stop after --guard-patience copying evaluations, or keep training")
@click.option("--guard-every", type=int, default=None,
              help="guard: evaluate every N-th checkpoint (default 1)")
@click.option("--guard-samples", type=int, default=None,
              help="guard: samples drawn per evaluation (default 256)")
@click.option("--guard-patience", type=int, default=None,
              help="guard: copying evaluations in a row before it stops (default 3)")
@click.option("--resume", is_flag=True, help="continue the run in --out from its last checkpoint")
@click.option("--dry-run", is_flag=True, help="print the resolved config and stop")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train_cmd(out: str, preset: str | None, config_path: str | None, params: tuple[str, ...],
              wparams: tuple[str, ...], sets: tuple[str, ...], resume: bool, dry_run: bool,
              quiet: bool, **flags: Any) -> None:
    """Train a diffusion model on a signal or image store."""
    from sigdiff.config import config_to_dict, load_config, merge_dicts
    from sigdiff.training import read_run_config, train

    try:
        overrides = _overrides(flags, params, wparams, sets)
        if resume and preset is None and config_path is None and (Path(out) / "config.json").is_file():
            overrides = merge_dicts(read_run_config(out), overrides)
        cfg = load_config(preset=preset, toml_path=config_path, overrides=overrides)
        if not cfg.data:
            raise click.UsageError("no training data: pass --data X.zarr (or set data in --config)")
        click.echo("resolved config:\n" + json.dumps(config_to_dict(cfg), indent=2))
        if dry_run:
            return
        result = train(cfg, run_dir=out, resume=resume, progress=not quiet)
    except click.ClickException:
        raise
    except USER_ERRORS as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"trained {result.step} steps; final loss {result.final_loss:.4f}; "
               f"checkpoint {result.last_checkpoint}")
    if cfg.guard is not None:
        from sigdiff.guard.monitor import GUARD_FILE, GUARD_PLOT, read_guard

        record = read_guard(out)
        if record is not None:
            click.echo(f"guard: {record['decision']['reason']}\n"
                       f"guard: evidence in {Path(out) / GUARD_FILE} and {Path(out) / GUARD_PLOT}; "
                       "`sigdiff sample --run` uses the chosen checkpoint")


@click.command("sample")
@click.option("--run", required=True, type=str, help="run directory or checkpoint directory")
@click.option("--n", "n", type=int, default=None,
              help="number of samples (all classes together with --balance)")
@click.option("--out", required=True, type=str, help="output store (samples.zarr)")
@click.option("--sampler", default="dpmpp_2m", show_default=True,
              help="ddpm, ddim, euler, heun, dpmpp_2m")
@click.option("--steps", default=50, show_default=True, type=int)
@click.option("--grid", default="trailing", show_default=True,
              help="σ grid: trailing, leading, linspace (DDPM timesteps) or karras")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--batch-size", default=256, show_default=True, type=int)
@click.option("--label", type=int, default=None, help="class label (conditional runs)")
@click.option("--per-class", type=int, default=None,
              help="conditional runs: this many records of every training class")
@click.option("--balance", type=click.Choice(["prior", "uniform"]), default=None,
              help="conditional runs: split --n over the classes by the training prior or "
                   "uniformly")
@click.option("--guidance", type=float, default=1.0, show_default=True,
              help="classifier-free guidance scale (1 = conditional, no guidance)")
@click.option("--raw-weights", is_flag=True, help="sample from the raw weights instead of EMA")
@click.option("--reject-copies", is_flag=True,
              help="drop and redraw near-copies: records closer to a training record than the "
                   "--dcr-quantile of held-out real records' distance (not differential privacy)")
@click.option("--dcr-quantile", type=float, default=0.05, show_default=True,
              help="--reject-copies threshold: this quantile of held-out records' DCR")
@click.option("--max-rounds", type=int, default=10, show_default=True,
              help="--reject-copies: redraw rounds before giving up with an error")
@click.option("--holdout", type=str, default=None,
              help="--reject-copies: held-out real records (default: the guard's, else the "
                   "training store's records outside train_subset)")
@click.option("--latest", is_flag=True,
              help="a guarded run: sample from its last checkpoint, not the guard's choice")
@click.option("--device", default="cpu", show_default=True)
@click.option("--overwrite", is_flag=True, help="replace an existing output store")
@click.option("--dry-run", is_flag=True, help="print the resolved options and stop")
@click.option("--quiet", is_flag=True, help="no progress bar")
def sample_cmd(run: str, n: int | None, out: str, sampler: str, steps: int, grid: str,
               seed: int, batch_size: int, label: int | None, per_class: int | None,
               balance: str | None, guidance: float, raw_weights: bool,
               reject_copies: bool, dcr_quantile: float, max_rounds: int, holdout: str | None,
               latest: bool, device: str, overwrite: bool, dry_run: bool, quiet: bool) -> None:
    """Draw N samples from a trained run into a store (a guarded run: from the checkpoint its
    guard chose)."""
    from sigdiff.generate import RejectOptions, check_sample_options, sample_to_store
    from sigdiff.guard.monitor import choose_checkpoint

    options: dict[str, Any] = {
        "run": run, "n": n, "out": out, "sampler": sampler, "steps": steps, "grid": grid,
        "seed": seed, "batch_size": batch_size, "label": label, "per_class": per_class,
        "balance": balance, "guidance": guidance, "weights": "raw" if raw_weights else "ema",
        "device": device}
    if reject_copies:
        options["reject_copies"] = {"dcr_quantile": dcr_quantile, "max_rounds": max_rounds,
                                    "holdout": holdout}
    elif holdout is not None or dcr_quantile != 0.05 or max_rounds != 10:
        raise click.UsageError("--holdout, --dcr-quantile and --max-rounds configure "
                               "--reject-copies: add it")
    click.echo("resolved options: " + json.dumps(options))
    try:
        if (n is None) == (per_class is None):
            raise click.UsageError("pass --n (the number of samples) or --per-class (records "
                                   "per class), one of them")
        check_sample_options(n=n if n is not None else 1, steps=steps, batch_size=batch_size,
                             sampler=sampler, grid=grid, guidance=guidance)
        checkpoint, note = choose_checkpoint(run, latest=latest)
        if note:
            click.echo(f"note: {note}")
        if dry_run:
            return
        path = sample_to_store(checkpoint, out, n=n, seed=seed, sampler=sampler, steps=steps, grid=grid,
                               batch_size=batch_size, label=label, guidance=guidance,
                               per_class=per_class, balance=balance, use_ema=not raw_weights, device=device, overwrite=overwrite,
                               progress=not quiet,
                               reject=RejectOptions(dcr_quantile, max_rounds, holdout)
                               if reject_copies else None)
    except USER_ERRORS as err:
        raise click.ClickException(str(err)) from err
    from sigdiff.data.store import open_store

    prov = open_store(str(path)).attrs["provenance"]
    total = sum(prov["class_counts"].values())
    counts = ", ".join(f"{c}: {k}" for c, k in prov["class_counts"].items() if c != "None")
    click.echo(f"wrote {total} samples to {path}" + (f" (per class {counts})" if counts else ""))
    if reject_copies:
        reports = prov["reject_copies"]
        for rep in ([reports] if "summary" in reports else reports.values()):
            click.echo("reject-copies: " + rep["summary"])
