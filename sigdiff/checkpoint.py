"""Self-describing checkpoints that load without executing code.

A checkpoint is a directory ``step_00001000/`` holding

- ``config.json``: the resolved TrainConfig and the resolved network config;
- ``meta.json``: data facts needed to sample alone (shape, normalisation, sampling rate, labels);
- ``model.safetensors`` and ``ema.safetensors``: raw and EMA weights;
- ``train_state.pt``: optimizer, LR schedule, step and sampler state, read with
  ``torch.load(weights_only=True)`` (tensors and plain containers only, never pickled code).

It is written into a temporary sibling directory and renamed into place, so an interrupted write
never leaves a half-written checkpoint under the final name (`remove_partial` clears such
leftovers when the run is next opened).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sigdiff._faults import kill_point

__all__ = [
    "CheckpointError",
    "LoadedCheckpoint",
    "checkpoint_step",
    "find_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "remove_partial",
    "save_checkpoint",
]

_STEP_DIR = re.compile(r"^step_(\d{8})$")
_TMP_DIR = re.compile(r"^\.step_\d{8}\..*\.tmp$")  # a checkpoint whose write was interrupted
FILES = ("config.json", "meta.json", "model.safetensors", "ema.safetensors", "train_state.pt")
#: Keys every sigdiff training state holds (`train_state.pt`).
TRAIN_STATE_KEYS = ("optimizer", "lr_schedule")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated, or does not fit the model asked for."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    path: Path
    step: int
    config: dict[str, Any]
    meta: dict[str, Any]
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    train_state: dict[str, Any] | None


def _state_dict_for_save(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}


def save_checkpoint(
    run_dir: str | Path,
    *,
    step: int,
    config: dict[str, Any],
    meta: dict[str, Any],
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
    train_state: dict[str, Any],
    keep_last: int,
    keep: Iterable[int] = (),
) -> Path:
    """Write ``run_dir/checkpoints/step_XXXXXXXX`` atomically; keep only the last ``keep_last``
    and the steps in ``keep`` (the memorization guard's chosen checkpoint)."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        save_file(_state_dict_for_save(model), str(tmp / "model.safetensors"))
        save_file(_state_dict_for_save(ema), str(tmp / "ema.safetensors"))
        torch.save(train_state, tmp / "train_state.pt")
        for f in tmp.iterdir():  # durable before the rename makes it visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        kill_point("checkpoint.unpublished")  # fault tests: written, not yet visible
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    protected = set(keep)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        if checkpoint_step(old) in protected:
            continue
        # renamed out of sight first, so a kill mid-delete never leaves a partial step_* folder
        trash = root / f".{old.name}.{uuid.uuid4().hex[:8]}.pruned.tmp"
        os.replace(old, trash)
        shutil.rmtree(trash, ignore_errors=True)
    return final


def remove_partial(run_dir: str | Path) -> None:
    """Delete temporary checkpoint folders left by a writer that was killed mid-write. Call only
    while holding the run folder's lock (a live writer's temporary folder looks the same)."""
    root = Path(run_dir) / "checkpoints"
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and _TMP_DIR.match(p.name):
                shutil.rmtree(p, ignore_errors=True)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary directories are ignored)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)]
    return sorted(found, key=checkpoint_step)


def checkpoint_step(path: str | Path) -> int:
    """The step of a ``step_XXXXXXXX`` checkpoint folder (ValueError for any other name)."""
    match = _STEP_DIR.match(Path(path).name)
    if not match:
        raise ValueError(f"{path}: not a checkpoint folder (expected step_XXXXXXXX)")
    return int(match.group(1))


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a run directory (its latest) or a checkpoint directory."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{str(p)!r} does not exist: give a run directory (from "
                              "`sigdiff train --out`) or one of its checkpoints/step_* folders")
    if (p / "config.json").is_file() and (p / "model.safetensors").exists():
        return p
    ckpts = list_checkpoints(p)
    if not ckpts:
        raise CheckpointError(f"{str(p)!r} holds no checkpoint (expected checkpoints/step_*/ "
                              "inside a run directory)")
    return ckpts[-1]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        out: dict[str, Any] = json.loads(path.read_text())
        return out
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable or corrupt JSON ({exc})") from exc


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (OSError, SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated weights file ({exc})") from exc


def _read_train_state(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: tensors and plain containers; anything that would
    unpickle Python objects (and so could run code) is refused, never retried unsafely."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on foreign files
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path}: refused to load: it is not a plain tensor file but holds pickled Python "
            f"objects{what}, which could run code; sigdiff reads only tensors and plain "
            "containers. Resume from an earlier checkpoint or start a new run") from None
    except Exception as exc:  # torch raises several types for corrupt files
        reason = str(exc).splitlines()[0].split(". ")[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: corrupt or truncated ({reason})") from None
    if not isinstance(state, dict) or any(k not in state for k in TRAIN_STATE_KEYS):
        raise CheckpointError(f"{path}: not a sigdiff training state (expected a dict with "
                              f"{', '.join(TRAIN_STATE_KEYS)})")
    return state


def load_checkpoint(path: str | Path, *, with_train_state: bool = False) -> LoadedCheckpoint:
    """Read a checkpoint (run directory → its latest). Never executes code from the files."""
    ckpt = find_checkpoint(path)
    missing = [f for f in FILES if not (ckpt / f).is_file()]
    if missing:
        raise CheckpointError(f"{ckpt}: incomplete checkpoint, missing {', '.join(missing)}")
    state = _read_train_state(ckpt / "train_state.pt") if with_train_state else None
    match = _STEP_DIR.match(ckpt.name)
    step = int(match.group(1)) if match else int(_read_json(ckpt / "meta.json").get("step", 0))
    return LoadedCheckpoint(
        path=ckpt,
        step=step,
        config=_read_json(ckpt / "config.json"),
        meta=_read_json(ckpt / "meta.json"),
        model=_read_safetensors(ckpt / "model.safetensors"),
        ema=_read_safetensors(ckpt / "ema.safetensors"),
        train_state=state,
    )
