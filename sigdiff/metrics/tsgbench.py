"""TSGBench's feature-based differences (Ang et al. 2023): MDD, ACD, SD, KD.

Each compares statistics taken across records at every (channel, time) point, so all four work for
a single channel: marginal histograms (MDD), mean autocorrelation functions (ACD), skewness (SD)
and excess kurtosis (KD). Lower is better; 0 for identical distributions.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

MDD_BINS = 20  # histogram bins per (channel, time) point, over the reference range


def marginal_distribution_difference(ref: np.ndarray, gen: np.ndarray, *, n_bins: int = MDD_BINS) -> float:
    """Mean |p_ref − p_gen| over bins of per-(channel, time) histograms binned on the reference."""
    r = ref.reshape(len(ref), -1)  # (N, C*L)
    g = gen.reshape(len(gen), -1)
    lo, hi = r.min(axis=0), r.max(axis=0)
    width = np.where(hi > lo, hi - lo, 1.0)
    diffs = []
    for data in (r, g):
        b = np.floor((data - lo) / width * n_bins).astype(np.int64)
        inside = (b >= 0) & (b < n_bins) | (data == hi)  # the top edge belongs to the last bin
        b = np.clip(b, 0, n_bins - 1)
        counts = np.zeros((r.shape[1], n_bins))
        cols = np.broadcast_to(np.arange(r.shape[1]), b.shape)
        np.add.at(counts, (cols[inside], b[inside]), 1.0)
        diffs.append(counts / len(data))
    return float(np.mean(np.abs(diffs[0] - diffs[1])))


def mean_autocorrelation(x: np.ndarray) -> np.ndarray:
    """Autocorrelation at lags 1..L-1, per channel, averaged over records: (C, L-1)."""
    z = x - x.mean(axis=-1, keepdims=True)
    n = x.shape[-1]
    spec = np.fft.rfft(z, n=2 * n, axis=-1)
    acov = np.fft.irfft(spec * np.conj(spec), axis=-1)[..., :n]  # (N, C, L)
    var = np.where(acov[..., :1] > 0, acov[..., :1], 1.0)
    return (acov / var)[..., 1:].mean(axis=0)


def autocorrelation_difference(ref: np.ndarray, gen: np.ndarray) -> float:
    """Mean |ACF_ref − ACF_gen| over lags and channels."""
    return float(np.mean(np.abs(mean_autocorrelation(ref) - mean_autocorrelation(gen))))


def skewness_difference(ref: np.ndarray, gen: np.ndarray) -> float:
    """Mean |skew_ref − skew_gen| over (channel, time) points, skewness across records."""
    return float(np.mean(np.abs(stats.skew(ref, axis=0) - stats.skew(gen, axis=0))))


def kurtosis_difference(ref: np.ndarray, gen: np.ndarray) -> float:
    """Mean |kurt_ref − kurt_gen| over (channel, time) points, excess kurtosis across records."""
    return float(np.mean(np.abs(stats.kurtosis(ref, axis=0) - stats.kurtosis(gen, axis=0))))


def tsgbench_report(ref: np.ndarray, gen: np.ndarray) -> dict[str, float]:
    """MDD, ACD, SD and KD of `gen` against `ref` (both (N, C, L))."""
    return {
        "mdd": marginal_distribution_difference(ref, gen),
        "acd": autocorrelation_difference(ref, gen),
        "sd": skewness_difference(ref, gen),
        "kd": kurtosis_difference(ref, gen),
    }
