"""Self-describing checkpoints that load without executing code.

A checkpoint is a directory ``step_00001000/`` holding

- ``config.json``: the resolved TrainConfig and the resolved network config;
- ``meta.json``: data facts needed to sample alone (shape, normalisation, sampling rate, labels);
- ``model.safetensors`` and ``ema.safetensors``: raw and EMA weights;
- ``train_state.pt``: optimizer, LR schedule, step and sampler state, read with
  ``torch.load(weights_only=True)`` (tensors and plain containers only, never pickled code).

It is written into a temporary sibling directory and renamed into place, so an interrupted write
never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = [
    "CheckpointError",
    "LoadedCheckpoint",
    "find_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "save_checkpoint",
]

_STEP_DIR = re.compile(r"^step_(\d{8})$")
FILES = ("config.json", "meta.json", "model.safetensors", "ema.safetensors", "train_state.pt")


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
) -> Path:
    """Write ``run_dir/checkpoints/step_XXXXXXXX`` atomically; keep only the last ``keep_last``."""
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
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary directories are ignored)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(p.name[5:]))


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


def load_checkpoint(path: str | Path, *, with_train_state: bool = False) -> LoadedCheckpoint:
    """Read a checkpoint (run directory → its latest). Never executes code from the files."""
    ckpt = find_checkpoint(path)
    missing = [f for f in FILES if not (ckpt / f).is_file()]
    if missing:
        raise CheckpointError(f"{ckpt}: incomplete checkpoint, missing {', '.join(missing)}")
    state = None
    if with_train_state:
        try:
            state = torch.load(ckpt / "train_state.pt", map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for corrupt files
            raise CheckpointError(f"{ckpt / 'train_state.pt'}: corrupt or truncated ({exc})") from exc
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
