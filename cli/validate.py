"""`sigdiff validate`: does each metric rank real data better than copies and corrupted real data?
Parses, validates, prints the resolved options, calls `sigdiff.metrics.validation.validate_stores`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sigdiff.errors import USER_ERRORS

__all__ = ["validate_cmd"]

SPLIT = {"holdout": 0.2, "split_seed": 0}  # as a sweep splits a catalog dataset


@click.command("validate")
@click.option("--dataset", default=None, help="catalog dataset (see `sigdiff data list`), "
              "materialised and split 80/20 (stratified, split seed 0) under OUT/data/")
@click.option("--train", default=None, help="training store (instead of --dataset)")
@click.option("--holdout", default=None, help="held-out real store: the alignment target")
@click.option("--pool", default=None, help="real records unseen in training for the floor "
              "(default: half of the holdout; not with --train-subset)")
@click.option("--train-subset", default=None, type=int,
              help="train on this many random records per repeat; the rest of the training "
              "records is the floor's pool")
@click.option("--repeats", default=10, show_default=True, type=int, help="fresh draws (>= 2)")
@click.option("--n", "n", default=500, show_default=True, type=int,
              help="records per reference set (at most the floor pool)")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="folder for validation.json, validation.md and validation.png")
@click.option("--no-progress", is_flag=True, help="hide the progress bar")
@click.option("--dry-run", is_flag=True, help="print the resolved options and exit")
def validate_cmd(dataset: str | None, train: str | None, holdout: str | None, pool: str | None,
                 train_subset: int | None, repeats: int, n: int, seed: int, out: str,
                 no_progress: bool, dry_run: bool) -> None:
    """Separate the real-data floor from a copier, noisy copies and corrupted real data, per
    metric, with Student-t intervals over repeats; flags metrics that cannot."""
    from sigdiff.datasets import CATALOG, make_split

    from sigdiff.metrics.validation import validate_stores

    if (dataset is None) == (train is None and holdout is None):
        raise click.ClickException("give either --dataset NAME or --train STORE --holdout STORE")
    if dataset is None and (train is None or holdout is None):
        raise click.ClickException("--train and --holdout go together")
    if dataset is not None and pool is not None:
        raise click.ClickException("--pool goes with --train/--holdout, not --dataset")
    if dataset is not None and dataset not in CATALOG:
        raise click.ClickException(f"unknown dataset {dataset!r}; valid choices: "
                                   f"{', '.join(sorted(CATALOG))}")
    if repeats < 2:
        raise click.ClickException(f"--repeats must be at least 2 for an interval; got {repeats}")
    data_dir = Path(out) / "data"
    resolved = {"dataset": dataset, "data": str(data_dir) if dataset else None,
                "split": SPLIT if dataset else None, "train": train, "holdout": holdout,
                "pool": pool, "train_subset": train_subset, "repeats": repeats, "n": n,
                "seed": seed, "out": out}
    click.echo(json.dumps(resolved, indent=2))
    if dry_run:
        return
    try:
        if dataset is not None:
            stores = make_split(dataset, data_dir, **SPLIT)
            source = f"{dataset} (catalog; 80/20 stratified split, split seed 0)"
        else:
            stores, source = (train, holdout), f"{train}, {holdout}"
        validate_stores(*stores, pool=pool, out_dir=out, source=source,
                        train_subset=train_subset, repeats=repeats, n=n, seed=seed,
                        progress=not no_progress)
    except USER_ERRORS as err:
        raise click.ClickException(" ".join(str(err).split())) from err
    click.echo((Path(out) / "validation.md").read_text(encoding="utf-8"))
