"""What a run is built from its config: the denoiser (network + parameterization + schedule) and
the device. Shared by training and sampling, so sampling never depends on the training loop."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import torch

from sigdiff.config import TrainConfig
from sigdiff.denoiser import Denoiser
from sigdiff.errors import TrainingError
from sigdiff.models import build_model

__all__ = ["build_denoiser", "check_rank", "resolve_device"]


def build_denoiser(cfg: TrainConfig, model_config: dict[str, Any] | None = None,
                   *, in_channels: int, num_classes: int,
                   spatial_shape: tuple[int, ...] | None = None) -> tuple[Denoiser, dict[str, Any]]:
    """The network wrapped in its parameterization. With ``model_config`` (from a checkpoint)
    the exact architecture is rebuilt; otherwise it is resolved from the config.

    ``spatial_shape`` ((L,) or (H, W), the data's) sets the network's ``dims`` (and a
    transformer's 2D ``input_size``); a model of the other rank is an error."""
    if model_config is not None:
        net, mcfg = build_model(cfg.model.name, **model_config)
    else:
        overrides = dict(cfg.model.overrides)
        overrides.setdefault("in_channels", in_channels)
        overrides.setdefault("out_channels", in_channels)
        if num_classes:
            overrides.setdefault("num_classes", num_classes)
        if spatial_shape is not None and len(spatial_shape) > 1:
            overrides.setdefault("dims", len(spatial_shape))
            if "input_size" in _config_fields(cfg.model.name):
                overrides.setdefault("input_size", tuple(spatial_shape))
        net, mcfg = build_model(cfg.model.name, preset=cfg.model.preset, **overrides)
    if spatial_shape is not None:
        check_rank(getattr(mcfg, "dims", 1), spatial_shape, where=str(cfg.data))
    den = Denoiser(net, cfg.diffusion.build_parameterization(),
                   schedule=cfg.diffusion.build_schedule())
    resolved = json.loads(json.dumps(dataclasses.asdict(mcfg)))
    return den, resolved


def _config_fields(name: str) -> set[str]:
    from sigdiff.models.registry import MODELS

    return {f.name for f in dataclasses.fields(MODELS[name][0])} if name in MODELS else set()


def check_rank(dims: int, spatial_shape: tuple[int, ...], *, where: str) -> None:
    """Raise unless a network of ``dims`` spatial dimensions fits data of ``spatial_shape``."""
    if dims != len(spatial_shape):
        kinds = {1: "1D signals (N, C, L)", 2: "images (N, C, H, W)"}
        raise TrainingError(
            f"{where}: the data are {kinds.get(len(spatial_shape), spatial_shape)} with shape "
            f"{tuple(spatial_shape)} but the model has dims={dims} ({kinds.get(dims, '?')}); drop "
            "model.overrides.dims (it follows the data) or use data of the model's rank")



def resolve_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a device this machine has (torchrun: the
    rank's own GPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device
