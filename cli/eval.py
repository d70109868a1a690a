"""`sigdiff eval`: memorization, alignment and spectral metrics of a sample store beside the
real-data floor, a copier and corrupted real data, with the alignment gate."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sigdiff._utils import local_folder
from sigdiff.metrics.alignment import MMD_PERMUTATIONS, PCA_COMPONENTS, PRDC_K
from sigdiff.metrics.evaluate import (
    DEFAULT_EXTRAS,
    EXTRAS,
    IMAGE_DEFAULT_EXTRAS,
    EvalConfig,
    evaluate_stores,
)
from sigdiff.metrics.gate import GATE_LEVEL, GateSpec
from sigdiff.metrics.memorization import MEMORIZATION_THRESHOLD
from sigdiff.metrics.references import (
    LOWPASS_FRACTION,
    NOISE_LEVELS,
    RESIDUAL_SIGMA,
    SMOOTH_SIGMA,
    ReferenceSpec,
)


def _names(value: str | None, valid: tuple[str, ...]) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; valid choices: {', '.join(valid)}")
    return names


def _extras(_ctx: click.Context, _param: click.Parameter,
            value: str | None) -> tuple[str, ...] | None:
    return _names(value, EXTRAS)  # None: the default for the data's kind


def _levels(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError as err:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from err
    if not levels or any(v <= 0 for v in levels):
        raise click.BadParameter(f"noise levels must be positive numbers; got {value!r}")
    return levels


@click.command("eval")
@click.option("--train", "train", required=True, help="training store (path or fsspec URL)")
@click.option("--holdout", "holdout", required=True,
              help="held-out real store: the alignment target (split in halves without --pool)")
@click.option("--samples", "samples", required=True, help="generated store")
@click.option("--pool", "pool", default=None,
              help="real store used neither for training nor as the target: the floor is drawn "
              "from it (default: half of the holdout)")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="folder for metrics.json, metrics.md and PNGs")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threshold", default=MEMORIZATION_THRESHOLD, show_default=True, type=float,
              help="d1/d2 ratio under which a sample counts as memorized")
@click.option("--lowpass", default=LOWPASS_FRACTION, show_default=True, type=float,
              help="fraction of the Nyquist band kept for band-limited memorization")
@click.option("--noise-levels", default=",".join(f"{v:g}" for v in NOISE_LEVELS),
              show_default=True, callback=_levels, help="noisy-copy references, × data std")
@click.option("--residual-sigma", default=RESIDUAL_SIGMA, show_default=True, type=float,
              help="residual-noise reference, × data std (σ of the sampler's last step)")
@click.option("--smooth-sigma", default=SMOOTH_SIGMA, show_default=True, type=float,
              help="smoothed reference: Gaussian kernel std in samples")
@click.option("--gate-level", default=GATE_LEVEL, show_default=True, type=float,
              help="the gate passes at most this far from real (0) towards the anchor (1)")
@click.option("--k", "k", default=PRDC_K, show_default=True, type=int, help="PRDC neighbours")
@click.option("--pca-components", default=PCA_COMPONENTS, show_default=True, type=int)
@click.option("--permutations", default=MMD_PERMUTATIONS, show_default=True,
              type=click.IntRange(min=0), help="MMD permutation-test draws (0: no p-value)")
@click.option("--extras", default=None, callback=_extras,
              help=f"comma-separated, from: {', '.join(EXTRAS)} (empty for none); default "
              f"{','.join(DEFAULT_EXTRAS)} for signals, {','.join(IMAGE_DEFAULT_EXTRAS)} for images")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto (nearest neighbours)")
@click.option("--downstream", type=click.Choice(["classify", "forecast"]), default=None,
              help="also train a model on the samples and test it on real data: classify "
                   "(labelled stores: TRTR, TSTR, TRTS, augmentation, beside a copier) or "
                   "forecast (train-on-synthetic, test-on-real MAE)")
@click.option("--classifier", default="minirocket", show_default=True,
              help="--downstream classify: minirocket (aeon, the default) or fcn (torch)")
@click.option("--downstream-seeds", default=5, show_default=True, type=int,
              help="--downstream classify: classifier seeds (intervals over them)")
@click.option("--augment", default=1.0, show_default=True, type=float,
              help="--downstream classify: synthetic records added, × the real training set")
@click.option("--overwrite", is_flag=True, help="replace an existing report in --out")
@click.option("--no-progress", is_flag=True, help="hide the progress bar")
@click.option("--dry-run", is_flag=True, help="print the resolved options and exit")
def eval_cmd(
    train: str, holdout: str, samples: str, pool: str | None, out: str, seed: int,
    threshold: float, lowpass: float, noise_levels: tuple[float, ...], residual_sigma: float,
    smooth_sigma: float, gate_level: float, k: int, pca_components: int, permutations: int,
    extras: tuple[str, ...] | None, device: str, downstream: str | None, classifier: str,
    downstream_seeds: int, augment: float, overwrite: bool, no_progress: bool, dry_run: bool,
) -> None:
    """Evaluate SAMPLES on two axes — quality against HOLDOUT (a cross-validated classifier
    two-sample test) and memorization against TRAIN — each beside the real-data floor, a copier,
    noisy, blurred and mode-dropped real data; print both, then the full table."""
    try:
        config = EvalConfig(
            seed=seed, threshold=threshold, k=k, n_components=pca_components,
            mmd_permutations=permutations, extras=extras, lowpass=lowpass, device=device,
            references=ReferenceSpec(noise_levels=noise_levels, residual_sigma=residual_sigma,
                                     smooth_sigma=smooth_sigma),
            gate=GateSpec(level=gate_level))
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    resolved = {"train": train, "holdout": holdout, "samples": samples, "pool": pool, "out": out,
                **config.to_dict()}
    if extras is None:
        resolved["extras"] = "default for the data's kind"
    if downstream is not None:
        resolved["downstream"] = {"task": downstream, "classifier": classifier,
                                  "seeds": downstream_seeds, "augment": augment}
    click.echo(json.dumps(resolved, indent=2))
    try:
        local_folder(out, what="report folder (--out)")  # the stores may be URLs, --out not
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    if (Path(out) / "metrics.json").exists() and not overwrite:
        raise click.ClickException(f"{out} already holds a report (metrics.json); pass "
                                   "--overwrite to replace it or choose another --out")
    if dry_run:
        return
    try:
        if downstream == "classify":  # refuse unlabelled or mismatched stores before the work
            from sigdiff.data.store import open_store
            from sigdiff.metrics.downstream import check_labels

            check_labels([open_store(p).labels for p in (train, holdout, samples)],
                         names=(train, holdout, samples))
        evaluate_stores(train, holdout, samples, pool=pool, config=config, out_dir=out,
                        progress=not no_progress)
        if downstream is not None:
            from sigdiff.metrics.downstream import downstream_stores

            downstream_stores(train, holdout, samples, task=downstream, out_dir=out,
                              classifier=classifier, seeds=downstream_seeds, augment=augment,
                              progress=not no_progress)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    with open(f"{out}/metrics.md", encoding="utf-8") as fh:
        click.echo(fh.read())
    if downstream is not None:
        with open(f"{out}/downstream.md", encoding="utf-8") as fh:
            click.echo("downstream:\n" + fh.read())
