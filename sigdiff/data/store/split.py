"""Splitting a store into train and holdout stores (stratified by label when it has labels)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from sigdiff.data.store._format import _MARKER, PathLike, StoreError
from sigdiff.data.store._location import _discard, _Location
from sigdiff.data.store.reader import SignalStore, open_store
from sigdiff.data.store.writer import StoreWriter


def _stratified_holdout(labels: np.ndarray, holdout: float, rng: np.random.Generator) -> np.ndarray:
    """Holdout indices, per-class counts by largest remainder so the total is round(holdout·N)."""
    classes, counts = np.unique(labels, return_counts=True)
    quota = holdout * counts
    take = np.floor(quota).astype(np.int64)
    short = round(holdout * len(labels)) - int(take.sum())
    order = np.lexsort((rng.random(len(classes)), -(quota - take)))  # largest remainder first
    take[order[:short]] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picked))


def split_store(
    path: PathLike,
    *,
    holdout: float,
    seed: int,
    out_train: PathLike,
    out_holdout: PathLike,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[SignalStore, SignalStore]:
    """Split a store into train/holdout stores (stratified by labels when present).

    Each output records `attrs["split"]` = {role, source, seed, holdout, stratified} and an
    int64 array `source_index` (sample,) giving each row's index in the source store.
    """
    src = open_store(path, storage_options=storage_options)
    if not 0 < holdout < 1:
        raise StoreError(f"{src.path}: holdout must be a fraction in (0, 1), got {holdout}")
    rng = np.random.default_rng(seed)
    n = src.n_samples
    if src.labels is not None:
        hold = _stratified_holdout(src.labels, holdout, rng)
    else:
        hold = np.sort(rng.permutation(n)[: round(holdout * n)])
    train = np.setdiff1d(np.arange(n), hold)
    if hold.size == 0 or train.size == 0:
        raise StoreError(f"{src.path}: holdout {holdout} of {n} samples leaves an empty side")
    record = {
        "source": src.path,
        "seed": int(seed),
        "holdout": float(holdout),
        "stratified": src.labels is not None,
    }
    locs = _check_outputs(path, {"train": out_train, "holdout": out_holdout},
                          overwrite=overwrite, storage_options=storage_options)
    jobs = (("train", train, out_train), ("holdout", hold, out_holdout))
    with contextlib.ExitStack() as held:
        for loc in locs:  # both outputs are ours before either is written
            loc.hold_lock(held)
        existed = [loc.fs.exists(loc.path) for loc in locs]
        try:
            for role, rows, out in jobs:
                split = {**record, "role": role, "n_samples": int(rows.size)}
                _copy_rows(
                    src, rows, out, split=split, overwrite=overwrite,
                    storage_options=storage_options,
                )
        except BaseException:
            for loc, was_there in zip(locs, existed):  # no half split: drop a new train store
                if not was_there:
                    _discard(loc, loc.path)
            raise
    outs = [open_store(out, storage_options=storage_options) for _, _, out in jobs]
    return outs[0], outs[1]


def _check_outputs(
    source: PathLike,
    outs: Mapping[str, PathLike],
    *,
    overwrite: bool,
    storage_options: Mapping[str, Any] | None,
) -> list[_Location]:
    """Refuse outputs that coincide with each other or with the source, or that exist without
    `overwrite`, before anything is written."""
    src = _Location.parse(source, storage_options)
    locs = {role: _Location.parse(out, storage_options) for role, out in outs.items()}
    seen: dict[str, str] = {}
    for role, loc in locs.items():
        key = loc.key
        if key == src.key:
            raise StoreError(f"{loc.display}: the {role} output is the input store; choose "
                             f"another --out-{role} path")
        if key in seen:
            raise StoreError(f"{loc.display}: the {seen[key]} and {role} outputs are the same "
                             f"store; give --out-{seen[key]} and --out-{role} different paths")
        seen[key] = role
        if loc.fs.exists(loc.path) and not overwrite:
            raise StoreError(f"{loc.display}: already exists; pass overwrite=True (--overwrite)")
    return list(locs.values())


def _copy_rows(
    src: SignalStore,
    rows: np.ndarray,
    out: PathLike,
    *,
    split: dict[str, Any],
    overwrite: bool,
    storage_options: Mapping[str, Any] | None,
) -> None:
    """Stream `rows` of `src` into a new store, one source chunk's worth at a time."""
    keep = {
        k: v
        for k, v in src.attrs.items()
        if k
        not in {
            _MARKER,
            "sampling_rate",
            "n_samples",
            "norm_mean",
            "norm_std",
            "units",
            "channel_names",
            "split",
        }
    }
    writer = StoreWriter(
        out,
        n_channels=src.n_channels,
        spatial_shape=src.spatial_shape,
        sampling_rate=src.sampling_rate,
        units=src.attrs.get("units", "a.u."),
        channel_names=src.attrs.get("channel_names"),
        attrs={**keep, "split": split},
        chunk_samples=src.chunk_samples,
        with_labels=src.labels is not None,
        overwrite=overwrite,
        storage_options=storage_options,
    )
    step = src.chunk_samples
    with writer:
        for i in range(0, rows.size, step):
            part = rows[i : i + step]
            labels = None if src.labels is None else src.labels[part]
            writer.append(src.read(part), labels=labels)
        group = writer._group
        assert group is not None
        group.create_array("source_index", data=rows.astype(np.int64), dimension_names=("sample",))
