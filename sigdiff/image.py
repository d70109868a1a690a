"""The image adapter: images are signals with a second spatial rank, (N, C, H, W).

Everything else (stores, training, sampling, metrics) is rank-agnostic; this module holds only what
is specific to pixels: reading a picture file with Pillow (resize and centre-crop, grayscale or
RGB) and writing image grids as PNG.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["IMAGE_MODES", "IMAGE_SUFFIXES", "image_grid", "parse_size", "read_image", "save_grid"]

#: Pillow mode for each `--mode`, and the channel names a store records.
IMAGE_MODES: dict[str, tuple[str, tuple[str, ...]]] = {
    "gray": ("L", ("gray",)),
    "rgb": ("RGB", ("red", "green", "blue")),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_FULL_SCALE = 255.0  # 8-bit pixels are stored as intensities in [0, 1]


class ImageError(ValueError):
    """An unreadable picture, a bad size or mode; the message names the file."""


def parse_size(size: int | str | Sequence[int] | None) -> tuple[int, int] | None:
    """`64`, `"64"`, `"64x48"` (height x width) or `(64, 48)` -> (H, W); None stays None."""
    if size is None:
        return None
    if isinstance(size, int):
        hw: tuple[int, ...] = (size, size)
    elif isinstance(size, str):
        try:
            parts = tuple(int(p) for p in size.lower().split("x"))
        except ValueError:
            raise ImageError(f"size {size!r} must be N or HxW, e.g. 64 or 64x48") from None
        hw = parts * 2 if len(parts) == 1 else parts
    else:
        hw = tuple(int(n) for n in size)
    if len(hw) != 2 or min(hw) < 1:
        raise ImageError(f"size {size!r} must be N or HxW with positive sizes")
    return hw[0], hw[1]


def read_image(path: str | os.PathLike[str], *, mode: str = "rgb",
               size: tuple[int, int] | None = None) -> np.ndarray:
    """One picture as float32 (C, H, W) in [0, 1]; with `size`, scaled so it covers (H, W) and
    centre-cropped to it (the usual resize-then-centre-crop of image pipelines)."""
    from PIL import Image, UnidentifiedImageError

    if mode not in IMAGE_MODES:
        raise ImageError(f"unknown image mode {mode!r}; valid choices: {', '.join(IMAGE_MODES)}")
    try:
        with Image.open(path) as img:
            img.load()
            pic = img.convert(IMAGE_MODES[mode][0])
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageError(f"{path}: cannot read this image ({err}); remove or fix the file") from err
    if size is not None:
        pic = _resize_crop(pic, size)
    arr = np.asarray(pic, dtype=np.float32) / _FULL_SCALE  # (H, W) or (H, W, C)
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def _resize_crop(pic: Image, size: tuple[int, int]) -> Image:
    from PIL import Image as PILImage

    h, w = size
    scale = max(h / pic.height, w / pic.width)  # cover the target, then crop the overhang
    new_w, new_h = max(w, round(pic.width * scale)), max(h, round(pic.height * scale))
    pic = pic.resize((new_w, new_h), PILImage.Resampling.LANCZOS)
    left, top = (new_w - w) // 2, (new_h - h) // 2
    return pic.crop((left, top, left + w, top + h))


def image_grid(images: np.ndarray, *, ncols: int = 8, scale: int = 1, pad: int = 1,
               value_range: tuple[float, float] | None = None) -> np.ndarray:
    """(N, C, H, W) with C in {1, 3} -> one uint8 picture (rows·(H+pad)·scale, ..., C).

    Values are mapped from `value_range` (default: the images' own min/max) to 0..255, clipped.
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ImageError(f"image_grid needs (N, 1 or 3, H, W) images, got {x.shape}")
    lo, hi = value_range if value_range is not None else (float(x.min()), float(x.max()))
    x = np.clip((x - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    n, c, h, w = x.shape
    rows = -(-n // ncols)
    grid = np.ones((c, rows * (h + pad) + pad, ncols * (w + pad) + pad))
    for i, img in enumerate(x):
        r, q = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top:top + h, left:left + w] = img
    grid = grid.repeat(scale, axis=1).repeat(scale, axis=2)
    out = np.round(grid * 255).astype(np.uint8)
    return out[0] if c == 1 else np.moveaxis(out, 0, -1)


def save_grid(images: np.ndarray, path: str | os.PathLike[str], **options: object) -> Path:
    """Write `image_grid(images, **options)` as a PNG."""
    from PIL import Image

    out = Path(path)
    Image.fromarray(image_grid(images, **options)).save(out)  # type: ignore[arg-type]
    return out
