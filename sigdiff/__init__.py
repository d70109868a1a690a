"""sigdiff: diffusion models for 1D signals with measured control over memorization."""

__version__ = "0.1.0"
