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
from .evaluate import (
    EvalConfig,
    evaluate,
    evaluate_stores,
    evaluate_with,
    flatten_report,
    markdown_table,
    prepare,
)
from .gate import GateSpec, c2st_1nn
from .memorization import (
    MEMORIZATION_THRESHOLD,
    dcr_comparison,
    memorization_report,
    most_copied,
    neighbor_ratio,
)
from .neighbors import Neighbors, knn
from .references import ReferenceSpec, build_references, lowpass
from .spectral import ECG_BANDS, spectral_report, welch_psd
from .tsgbench import tsgbench_report
from .validation import validate_metrics

__all__ = [
    "ECG_BANDS",
    "MEMORIZATION_THRESHOLD",
    "EvalConfig",
    "GateSpec",
    "Neighbors",
    "ReferenceSpec",
    "alpha_beta_authenticity",
    "build_references",
    "c2st_1nn",
    "dcr_comparison",
    "evaluate",
    "evaluate_stores",
    "evaluate_with",
    "fit_pca",
    "flatten_report",
    "knn",
    "lowpass",
    "marginal_distances",
    "markdown_table",
    "memorization_report",
    "mmd2",
    "most_copied",
    "neighbor_ratio",
    "pca_distances",
    "prdc",
    "prepare",
    "sliced_wasserstein",
    "spectral_report",
    "tsgbench_report",
    "validate_metrics",
    "wasserstein_1d",
    "welch_psd",
]
