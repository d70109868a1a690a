"""`sigdiff eval`: memorization, alignment and spectral metrics of a sample store, with floors."""

from __future__ import annotations

import json

import click

from sigdiff.metrics.alignment import MMD_PERMUTATIONS, PCA_COMPONENTS, PRDC_K
from sigdiff.metrics.evaluate import DEFAULT_EXTRAS, EXTRAS, IMAGE_DEFAULT_EXTRAS, evaluate_stores
from sigdiff.metrics.memorization import MEMORIZATION_THRESHOLD


def _extras(_ctx: click.Context, _param: click.Parameter,
            value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None  # the default for the data's kind
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in EXTRAS]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; valid choices: {', '.join(EXTRAS)}")
    return names


@click.command("eval")
@click.option("--train", "train", required=True, help="training store (path or fsspec URL)")
@click.option("--holdout", "holdout", required=True, help="held-out real store")
@click.option("--samples", "samples", required=True, help="generated store")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="folder for metrics.json, metrics.md and PNGs")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threshold", default=MEMORIZATION_THRESHOLD, show_default=True, type=float,
              help="d1/d2 ratio under which a sample counts as memorized")
@click.option("--k", "k", default=PRDC_K, show_default=True, type=int, help="PRDC neighbours")
@click.option("--pca-components", default=PCA_COMPONENTS, show_default=True, type=int)
@click.option("--permutations", default=MMD_PERMUTATIONS, show_default=True, type=int,
              help="MMD permutation-test draws")
@click.option("--extras", default=None, callback=_extras,
              help=f"comma-separated, from: {', '.join(EXTRAS)} (empty for none); default "
              f"{','.join(DEFAULT_EXTRAS)} for signals, {','.join(IMAGE_DEFAULT_EXTRAS)} for images")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto (nearest neighbours)")
@click.option("--no-progress", is_flag=True, help="hide the progress bar")
@click.option("--dry-run", is_flag=True, help="print the resolved options and exit")
def eval_cmd(
    train: str, holdout: str, samples: str, out: str, seed: int, threshold: float, k: int,
    pca_components: int, permutations: int, extras: tuple[str, ...] | None, device: str,
    no_progress: bool, dry_run: bool,
) -> None:
    """Evaluate SAMPLES against TRAIN (memorization) and HOLDOUT (alignment), with real floors."""
    resolved = {"train": train, "holdout": holdout, "samples": samples, "out": out, "seed": seed,
                "threshold": threshold, "k": k, "pca_components": pca_components,
                "permutations": permutations,
                "extras": list(extras) if extras is not None else "default for the data's kind",
                "device": device}
    click.echo(json.dumps(resolved, indent=2))
    if dry_run:
        return
    try:
        evaluate_stores(train, holdout, samples, out_dir=out, seed=seed, threshold=threshold, k=k,
                        n_components=pca_components, mmd_permutations=permutations,
                        extras=extras, device=device, progress=not no_progress)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    with open(f"{out}/metrics.md", encoding="utf-8") as fh:
        click.echo(fh.read())
