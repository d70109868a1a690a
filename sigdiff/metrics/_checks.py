"""Input validation shared by every metric: clear errors naming the array and the metric."""

from __future__ import annotations

import numpy as np


def as_signals(x: object, *, name: str, metric: str) -> np.ndarray:
    """Return `x` as a float32 array of shape (N, C, L), or raise naming `name` and `metric`.

    A 2D array (N, L) is read as one channel. NaN or infinite values are rejected.
    """
    arr = np.asarray(x)
    if arr.ndim == 2:
        arr = arr[:, None, :]  # (N, L) -> (N, 1, L)
    if arr.ndim != 3:
        raise ValueError(f"{metric}: {name} must have shape (N, C, L); got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{metric}: {name} is empty")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{metric}: {name} must be numeric; got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=(1, 2)).sum())
        raise ValueError(f"{metric}: {name} contains NaN or infinite values in {bad} records")
    return arr


def check_same_layout(a: np.ndarray, b: np.ndarray, *, names: tuple[str, str], metric: str) -> None:
    """Raise unless `a` and `b` have the same channel count and length."""
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"{metric}: {names[0]} has (C, L) = {a.shape[1:]} but {names[1]} has {b.shape[1:]}; "
            "channel count and length must match"
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


def flatten(x: np.ndarray) -> np.ndarray:
    """(N, C, L) -> (N, C*L): the vector each record is compared as."""
    return x.reshape(x.shape[0], -1)
