"""`sigdiff data ...`: list, make, import, info and split signal and image stores (thin over
sigdiff.data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sigdiff._utils import is_local
from sigdiff.data.store import SignalStore, StoreError, open_store, split_store

__all__ = ["data"]


def _show(title: str, resolved: dict[str, Any]) -> None:
    click.echo(f"{title}: {json.dumps(resolved, default=str)}")


def _fail(err: Exception) -> click.ClickException:
    return click.ClickException(str(err))


def _stem(store_path: str) -> str:
    """STORE without its suffix, a URL kept whole: s3://b/x.zarr -> s3://b/x (`Path` would give
    s3:/b/x)."""
    head, sep, name = store_path.rstrip("/").rpartition("/")
    return head + sep + str(Path(name).with_suffix(""))


def _describe(store: SignalStore) -> str:
    shape = " x ".join(str(n) for n in (store.n_samples, store.n_channels, *store.spatial_shape))
    if store.kind == "image":
        return f"{shape} images (sample x channel x height x width)"
    return f"{shape} at {store.sampling_rate:g} Hz"


@click.group("data")
def data() -> None:
    """Signal and image data sets: catalog, import, inspection and train/holdout splits."""


@data.command("list")
def list_cmd() -> None:
    """List the catalog's data sets."""
    from sigdiff.datasets import CATALOG

    for entry in CATALOG.values():
        click.echo(f"{entry.name:12s} {entry.summary}")


@data.command("make")
@click.argument("name")
@click.option("--out", required=True, type=click.Path(), help="store to write (X.zarr)")
@click.option("--seed", default=0, show_default=True, help="seed for synthetic data sets")
@click.option("--overwrite", is_flag=True, help="replace an existing store")
@click.option("--dry-run", is_flag=True, help="print the resolved options and stop")
def make_cmd(name: str, out: str, seed: int, overwrite: bool, dry_run: bool) -> None:
    """Write catalog data set NAME to a store."""
    from sigdiff.datasets import CATALOG, make_dataset

    if name not in CATALOG:
        raise click.BadParameter(f"unknown data set {name!r}; valid: {', '.join(sorted(CATALOG))}")
    _show("make", {"name": name, "out": out, "seed": seed, "overwrite": overwrite})
    if dry_run:
        return
    try:
        store = make_dataset(name, out, seed=seed, overwrite=overwrite)
    except StoreError as err:
        raise _fail(err) from err
    click.echo(f"wrote {store.path}: {_describe(store)}")


@data.command("import")
@click.argument("file", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="store to write (X.zarr)")
@click.option(
    "--format",
    "fmt",
    default=None,
    help="ucr, csv, npy, npz, wav, flac, wfdb, images (a folder of PNG/JPEG), image-npy "
    "(default: from the suffix; images for a folder)",
)
@click.option("--sampling-rate", type=float, default=None, help="Hz, when the file states none")
@click.option("--window", type=int, default=None, help="cut rows into windows of this length")
@click.option("--hop", type=int, default=None, help="window hop (default: the window length)")
@click.option("--beats", is_flag=True, help="cut ECG rows into R-peak-aligned beats")
@click.option("--resample-to", type=float, default=None, help="target rate in Hz (torchaudio)")
@click.option("--bandpass", nargs=2, type=float, default=None, help="LOW HIGH Hz (scipy)")
@click.option("--layout", default=None, help="CSV: rows (samples) or columns (channels + time)")
@click.option("--time-column", default=None, help="CSV columns layout: the time column (s)")
@click.option("--label-column", default=None, help="CSV rows layout: the label column")
@click.option("--header/--no-header", default=None,
              help="CSV: the first line names the columns, or is data (columns are then named "
              "1, 2, ...) [default: detect]")
@click.option("--size", default=None,
              help="images: resize to cover N (or HxW) and centre-crop; needed for mixed sizes")
@click.option("--mode", "image_mode", type=click.Choice(["gray", "rgb"]), default=None,
              help="images: grayscale or RGB (default rgb)")
@click.option("--drop-nonfinite", is_flag=True, help="skip rows containing NaN/Inf")
@click.option("--overwrite", is_flag=True, help="replace an existing store")
@click.option("--dry-run", is_flag=True, help="print the resolved options and stop")
def import_cmd(
    file: str,
    out: str,
    fmt: str | None,
    sampling_rate: float | None,
    window: int | None,
    hop: int | None,
    beats: bool,
    resample_to: float | None,
    bandpass: tuple[float, float] | None,
    layout: str | None,
    time_column: str | None,
    label_column: str | None,
    header: bool | None,
    size: str | None,
    image_mode: str | None,
    drop_nonfinite: bool,
    overwrite: bool,
    dry_run: bool,
) -> None:
    """Import FILE into a store (no partial output on any error)."""
    from sigdiff.data.importers import (
        IMPORTERS,
        Segmenting,
        describe_csv_header,
        import_file,
        infer_format,
    )

    csv_opts = {"layout": layout, "time_column": time_column, "label_column": label_column,
                "header": header}
    image_opts = {"size": size, "mode": image_mode}
    loader_options = {k: v for k, v in {**csv_opts, **image_opts}.items() if v is not None}
    try:
        fmt = fmt or infer_format(file)
        if fmt not in IMPORTERS:
            raise StoreError(f"unknown format {fmt!r}; valid: {', '.join(sorted(IMPORTERS))}")
        if any(k in csv_opts for k in loader_options) and fmt != "csv":
            raise StoreError(
                f"{file}: --layout/--time-column/--label-column/--header apply to CSV only"
            )
        if any(k in image_opts for k in loader_options) and fmt != "images":
            raise StoreError(f"{file}: --size/--mode apply to a folder of images (--format images)")
        seg = Segmenting(
            window=window,
            hop=hop,
            beats=beats,
            resample_to=resample_to,
            band=(bandpass[0], bandpass[1]) if bandpass else None,
        )
        _show(
            "import",
            {
                "file": file,
                "out": out,
                "format": fmt,
                "sampling_rate": sampling_rate,
                "segmenting": seg,
                "loader_options": loader_options,
                "drop_nonfinite": drop_nonfinite,
                "overwrite": overwrite,
            },
        )
        if dry_run:
            return
        store = import_file(
            file,
            out,
            format=fmt,
            sampling_rate=sampling_rate,
            segmenting=seg,
            drop_nonfinite=drop_nonfinite,
            overwrite=overwrite,
            loader_options=loader_options,
        )
    except (StoreError, ValueError) as err:
        raise _fail(err) from err
    click.echo(
        f"wrote {store.path}: {_describe(store)} "
        f"({store.attrs['provenance']['sampling_rate_source']})"
    )
    if "csv_header" in store.attrs:
        click.echo(f"csv header: {describe_csv_header(store.attrs['csv_header'])}")


@data.command("info")
@click.argument("store_path", type=click.Path())
@click.option(
    "--png",
    type=click.Path(),
    default=None,
    help="where to write the figure (default: STORE.info.png beside a local store, NAME.info.png "
    "in the current folder for a URL)",
)
@click.option("--no-png", is_flag=True, help="print the summary only")
def info_cmd(store_path: str, png: str | None, no_png: bool) -> None:
    """Summarise a store and plot example signals and the mean spectrum (images: a grid)."""
    from sigdiff.data.info import check_png_target, plot_store, summarize

    stem = _stem(store_path)
    target = png or (stem.removeprefix("file://") if is_local(store_path)
                     else stem.rpartition("/")[2]) + ".info.png"
    try:
        store = open_store(store_path)
        if not no_png:
            check_png_target(target)  # before anything is printed
    except StoreError as err:
        raise _fail(err) from err
    for key, value in summarize(store).items():
        click.echo(f"{key:18s} {json.dumps(value, default=str)}")
    if not no_png:
        click.echo(f"{'figure':18s} {plot_store(store, target)}")


@data.command("split")
@click.argument("store_path", type=click.Path())
@click.option("--holdout", type=float, required=True, help="holdout fraction, e.g. 0.2")
@click.option("--seed", type=int, required=True, help="split seed")
@click.option("--out-train", type=click.Path(), default=None, help="default: STORE.train.zarr")
@click.option("--out-holdout", type=click.Path(), default=None, help="default: STORE.holdout.zarr")
@click.option("--overwrite", is_flag=True, help="replace existing outputs")
@click.option("--dry-run", is_flag=True, help="print the resolved options and stop")
def split_cmd(
    store_path: str,
    holdout: float,
    seed: int,
    out_train: str | None,
    out_holdout: str | None,
    overwrite: bool,
    dry_run: bool,
) -> None:
    """Split a store into train and holdout stores (stratified by labels when present)."""
    stem = _stem(store_path)
    out_train = out_train or f"{stem}.train.zarr"
    out_holdout = out_holdout or f"{stem}.holdout.zarr"
    _show(
        "split",
        {
            "store": store_path,
            "holdout": holdout,
            "seed": seed,
            "out_train": out_train,
            "out_holdout": out_holdout,
        },
    )
    if dry_run:
        return
    try:
        train, hold = split_store(
            store_path,
            holdout=holdout,
            seed=seed,
            out_train=out_train,
            out_holdout=out_holdout,
            overwrite=overwrite,
        )
    except StoreError as err:
        raise _fail(err) from err
    click.echo(f"train   {train.path}: {train.n_samples} samples")
    click.echo(
        f"holdout {hold.path}: {hold.n_samples} samples"
        + (" (stratified by label)" if hold.split and hold.split["stratified"] else "")
    )
