"""Image importers: a folder of PNG/JPEG pictures (one class per sub-folder) or an NPY array of
images, into an image store (N, C, H, W)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sigdiff.data.importers._common import Imported, _float32
from sigdiff.data.importers.arrays import _check_array, _labels, _read_numpy
from sigdiff.data.store import (
    PIXEL_RATE,
    PathLike,
    StoreError,
)

_PIXEL_SOURCE = "images: one sample per pixel"


def _no_rate(sampling_rate: float | None, *, where: str) -> None:
    if sampling_rate is not None:
        raise StoreError(f"{where}: images have no sampling rate; drop --sampling-rate")


def load_images(path: PathLike, *, sampling_rate: float | None = None, size: Any = None,
                mode: str = "rgb") -> Imported:
    """A folder of PNG/JPEG pictures as (N, C, H, W) float32 in [0, 1], in sorted file order.

    Pictures directly in the folder are unlabelled; a folder holding only class subfolders
    (`cats/`, `dogs/`, ...) gives labels 0..k-1 in sorted subfolder order (names in attrs).
    `size` (N, "HxW" or (H, W)) resizes each picture to cover that size and centre-crops it;
    without it every picture must have the same size. `mode` is "gray" or "rgb".
    """
    from sigdiff.image import IMAGE_MODES, ImageError, parse_size, read_image

    root = Path(path)
    _no_rate(sampling_rate, where=str(root))
    if not root.is_dir():
        raise StoreError(f"{root}: the images importer reads a folder of PNG/JPEG files")
    files, labels, attrs = _image_files(root)
    try:
        hw = parse_size(size)
        pictures = [read_image(f, mode=mode, size=hw) for f in files]
    except ImageError as err:
        raise StoreError(str(err)) from err
    first = pictures[0].shape[1:]
    for f, pic in zip(files, pictures):
        if pic.shape[1:] != first:
            raise StoreError(
                f"{f}: image size {pic.shape[2]}x{pic.shape[1]} (WxH) differs from "
                f"{files[0].name} ({first[1]}x{first[0]}); pass size (--size N or HxW) to resize "
                "and centre-crop every image"
            )
    attrs = {**attrs, "image_mode": mode, "n_files": len(files),
             "resized_to": list(hw) if hw else None}
    return Imported(np.stack(pictures), labels, PIXEL_RATE, _PIXEL_SOURCE, str(root),
                    channel_names=IMAGE_MODES[mode][1], units="intensity [0, 1]", attrs=attrs)


def _image_files(root: Path) -> tuple[list[Path], np.ndarray | None, dict[str, Any]]:
    """Picture files of `root` (flat, or one subfolder per class) with their labels."""
    from sigdiff.image import IMAGE_SUFFIXES

    def pictures(folder: Path) -> list[Path]:
        return sorted(f for f in folder.iterdir() if f.is_file()
                      and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES)

    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    flat = pictures(root)
    if flat or not classes:
        if not flat:
            raise StoreError(f"{root}: no {'/'.join(IMAGE_SUFFIXES)} files in this folder")
        return flat, None, {}
    per_class = [pictures(d) for d in classes]
    empty = [d.name for d, fs in zip(classes, per_class) if not fs]
    if empty:
        raise StoreError(f"{root}: class subfolders {empty} hold no images; remove them")
    labels = np.repeat(np.arange(len(classes)), [len(fs) for fs in per_class])
    return [f for fs in per_class for f in fs], labels, {"label_names": [d.name for d in classes]}


def load_image_numpy(path: PathLike, *, sampling_rate: float | None = None) -> Imported:
    """`.npy` images (N, H, W) or (N, C, H, W), or `.npz` with `images` and optional `labels`.
    Values are stored as they are (no rescaling); channels-last arrays must be transposed first."""
    p = Path(path)
    _no_rate(sampling_rate, where=str(p))
    z = _read_numpy(p, main="images", extras=("labels",))
    arr = z["images"]
    if arr.dtype.kind not in "fiub" or arr.ndim not in (3, 4):
        raise StoreError(f"{p}: expected numeric images (N, H, W) or (N, C, H, W), got "
                         f"{arr.dtype} {arr.shape}")
    _check_array(arr, where=str(p), what="images", shapes="(N, H, W) or (N, C, H, W)",
                 ranks=(3, 4), name="images array")
    images = arr[:, None] if arr.ndim == 3 else arr
    labels = _labels(z.get("labels"), len(images), where=str(p))
    return Imported(_float32(images, where=str(p)), labels, PIXEL_RATE, _PIXEL_SOURCE, str(p))
