"""Memorization, distributional-alignment and spectral metrics for generated signals (N, C, L)
and images (N, C, H, W, in pixel space)."""

from .alignment import (
    alpha_beta_authenticity,
    fit_pca,
    marginal_distances,
    mmd2,
    pca_distances,
    prdc,
    sliced_wasserstein,
    wasserstein_1d,
)
from .evaluate import evaluate, evaluate_stores, markdown_table
from .memorization import (
    MEMORIZATION_THRESHOLD,
    dcr_comparison,
    memorization_report,
    most_copied,
    neighbor_ratio,
)
from .neighbors import Neighbors, knn
from .spectral import ECG_BANDS, spectral_report, welch_psd
from .tsgbench import tsgbench_report

__all__ = [
    "ECG_BANDS",
    "MEMORIZATION_THRESHOLD",
    "Neighbors",
    "alpha_beta_authenticity",
    "dcr_comparison",
    "evaluate",
    "evaluate_stores",
    "fit_pca",
    "knn",
    "marginal_distances",
    "markdown_table",
    "memorization_report",
    "mmd2",
    "most_copied",
    "neighbor_ratio",
    "pca_distances",
    "prdc",
    "sliced_wasserstein",
    "spectral_report",
    "tsgbench_report",
    "wasserstein_1d",
    "welch_psd",
]
