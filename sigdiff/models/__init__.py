"""Denoiser networks `F(x, c_noise, cond) -> Tensor` that know nothing of diffusion."""

from sigdiff.models.registry import MODELS, PRESETS, ModelConfig, build_model, make_config
from sigdiff.models.transformer import DiT, DiTConfig
from sigdiff.models.unet import UNet, UNetConfig

__all__ = [
    "MODELS",
    "PRESETS",
    "DiT",
    "DiTConfig",
    "ModelConfig",
    "UNet",
    "UNetConfig",
    "build_model",
    "make_config",
]
