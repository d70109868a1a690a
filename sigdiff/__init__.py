"""sigdiff: diffusion models for 1D signals with measured control over memorization.

The public API, one module per design axis (see README.md):

- schedules: :class:`DiscreteSchedule`, :func:`karras_sigmas`, :func:`ddpm_timesteps`
- timestep samplers (the paper's ``ci_gaussian`` and its peers): :func:`build_timestep_sampler`,
  :func:`sample_timesteps` (a drop-in for diffusers-style loops)
- loss weightings: :func:`loss_weight`
- parameterizations and the denoiser: :class:`Parameterization`, :class:`Denoiser`
- the per-example loss: :func:`denoising_loss`
- samplers: :data:`SAMPLERS`, :func:`get_sampler`
- training and sampling: :func:`train`, :func:`load_config`, :func:`load_model`, :func:`generate`
"""

from sigdiff.config import TrainConfig, load_config
from sigdiff.denoiser import Denoiser
from sigdiff.generate import generate, load_model, sample_to_store
from sigdiff.losses import denoising_loss
from sigdiff.parameterization import Parameterization
from sigdiff.samplers import SAMPLERS, get_sampler, prior_noise
from sigdiff.schedules import DiscreteSchedule, ddpm_timesteps, karras_sigmas
from sigdiff.timesteps import (
    TIMESTEP_SAMPLERS,
    TimestepSamplerConfig,
    build_timestep_sampler,
    sample_timesteps,
)
from sigdiff.training import train
from sigdiff.weighting import LOSS_WEIGHTINGS, LossWeightingConfig, loss_weight

__version__ = "0.1.0"

__all__ = [
    "LOSS_WEIGHTINGS",
    "SAMPLERS",
    "TIMESTEP_SAMPLERS",
    "Denoiser",
    "DiscreteSchedule",
    "LossWeightingConfig",
    "Parameterization",
    "TimestepSamplerConfig",
    "TrainConfig",
    "__version__",
    "build_timestep_sampler",
    "ddpm_timesteps",
    "denoising_loss",
    "generate",
    "get_sampler",
    "karras_sigmas",
    "load_config",
    "load_model",
    "loss_weight",
    "prior_noise",
    "sample_timesteps",
    "sample_to_store",
    "train",
]
