"""Small shared helpers: rank-agnostic broadcasting and explicit random generators."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


def append_dims(x: torch.Tensor, target_ndim: int) -> torch.Tensor:
    """Append trailing singleton dims so a per-example tensor `(B,)` broadcasts against `(B, ...)`."""
    missing = target_ndim - x.ndim
    if missing < 0:
        raise ValueError(f"tensor has {x.ndim} dims, more than the target {target_ndim}")
    return x[(...,) + (None,) * missing]


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh `torch.Generator` seeded with `seed`: every random draw in sigdiff takes one."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def step_generator(seed: int, step: int, *, stream: int = 0, device: str = "cpu") -> torch.Generator:
    """The generator for one training step's randomness, derived from (seed, step, stream)."""
    state = np.random.SeedSequence([seed, step, stream]).generate_state(2, dtype=np.uint32)
    g = torch.Generator(device=device)
    g.manual_seed(int(state[0]) << 32 | int(state[1]))
    return g


def choice_error(kind: str, name: str, valid: object) -> ValueError:
    """The error every registry raises for an unknown name: it lists the valid choices."""
    names = sorted(valid) if not isinstance(valid, str) else [valid]  # type: ignore[call-overload]
    return ValueError(f"unknown {kind} {name!r}; valid choices: {', '.join(map(str, names))}")


def unknown_keys(cls: type[Any], values: Mapping[str, Any], *, where: str) -> str | None:
    """The error message for keys of `values` that are not fields of dataclass `cls` (listing
    the valid ones), or None when every key is known."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if not unknown:
        return None
    return (f"unknown key(s) {', '.join(map(repr, unknown))} in [{where}]; "
            f"valid keys: {', '.join(sorted(names))}")


def is_local(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is on the local filesystem: a plain path or a file:// URL."""
    text = os.fspath(path)
    return "://" not in text or text.startswith("file://")


def local_folder(path: str | os.PathLike[str], *, what: str) -> Path:
    """``path`` as a `Path`; a URL other than file:// is a ValueError: run directories and
    reports live on a local or shared filesystem, only data stores may be fsspec URLs."""
    text = os.fspath(path)
    if not is_local(text):
        raise ValueError(f"{text}: the {what} must be a local (or shared) folder, not a URL; "
                         "only data stores may live on object storage")
    return Path(text.removeprefix("file://"))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace `path` by `text` in one rename: a kill leaves the old or the new file, never a
    mix (a uniquely named temp beside it, flushed to disk first, removed on failure)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
