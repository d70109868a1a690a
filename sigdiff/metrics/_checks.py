"""Input validation shared by every metric: clear errors naming the array and the metric."""

from __future__ import annotations

import numpy as np


def as_signals(x: object, *, name: str, metric: str) -> np.ndarray:
    """Return `x` as a float32 array (N, C, L) or images (N, C, H, W), or raise naming `name` and
    `metric`. A 2D array (N, L) is read as one channel. NaN or infinite values are rejected.
    """
    arr = np.asarray(x)
    if arr.ndim == 2:
        arr = arr[:, None, :]  # (N, L) -> (N, 1, L)
    if arr.ndim not in (3, 4):
        raise ValueError(f"{metric}: {name} must have shape (N, C, L) or (N, C, H, W); "
                         f"got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{metric}: {name} is empty")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{metric}: {name} must be numeric; got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).reshape(len(arr), -1).any(axis=1).sum())
        raise ValueError(f"{metric}: {name} contains NaN or infinite values in {bad} records")
    return arr


def check_same_layout(a: np.ndarray, b: np.ndarray, *, names: tuple[str, str], metric: str) -> None:
    """Raise unless `a` and `b` have the same channel count and length (or image size)."""
    if a.shape[1:] != b.shape[1:]:
        axes = "(C, L)" if a.ndim == 3 else "(C, H, W)"
        raise ValueError(
            f"{metric}: {names[0]} has {axes} = {a.shape[1:]} but {names[1]} has {b.shape[1:]}; "
            "channel count and length (or image size) must match"
        )


def check_k(k: int, n: int, *, name: str, metric: str, self_excluded: bool = False) -> None:
    """Raise unless `k` neighbours can be found among `n` records (one fewer when self is excluded)."""
    available = n - 1 if self_excluded else n
    if k < 1:
        raise ValueError(f"{metric}: k must be at least 1; got {k}")
    if k > available:
        raise ValueError(
            f"{metric}: k = {k} needs more records than {name} has (n = {n}"
            f"{', excluding each record itself' if self_excluded else ''})"
        )


def is_image(x: np.ndarray) -> bool:
    """True for images (N, C, H, W), False for signals (N, C, L)."""
    return np.ndim(x) == 4


def flatten(x: np.ndarray) -> np.ndarray:
    """(N, C, L) -> (N, C*L), (N, C, H, W) -> (N, C*H*W): the vector each record is compared as."""
    return x.reshape(x.shape[0], -1)
