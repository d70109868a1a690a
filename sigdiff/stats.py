"""Student-t intervals over seeds or repeats, their paired t-test p-values and Holm's adjustment:
the one implementation the report, the frontier and the metric validation share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["CONFIDENCE", "Interval", "holm", "paired_t_pvalue", "t_interval", "t_pvalue"]

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """Mean and two-sided Student-t confidence interval over n values (nan bounds when n < 2)."""

    mean: float
    low: float
    high: float
    n: int
    se: float = float("nan")  # standard error s/√n (nan when n < 2 or not known)

    def fmt(self, digits: int = 3) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "n/a"
        if self.n < 2:
            return f"{self.mean:.{digits}g} (n=1)"
        return f"{self.mean:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"

    @property
    def excludes_zero(self) -> bool:
        return self.n >= 2 and (self.low > 0 or self.high < 0)


def t_interval(values: Sequence[float] | np.ndarray, *, confidence: float = CONFIDENCE) -> Interval:
    """mean ± t_{(1+c)/2, n-1} · s/√n over the finite values (s: sample std, ddof 1)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), 1)
    se = float(x.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * se
    return Interval(mean, mean - half, mean + half, n, se)


def t_pvalue(iv: Interval) -> float:
    """Two-sided p-value of the one-sample t-test of mean 0 behind an interval — for a paired
    difference, the paired t-test: t = mean/SE with n − 1 degrees of freedom (scipy's
    ``ttest_rel`` / ``ttest_1samp``). nan when n < 2; when every difference is equal (SE 0) the
    limit: 1 for a mean of exactly 0, else 0."""
    if iv.n < 2 or math.isnan(iv.mean) or math.isnan(iv.se):
        return float("nan")
    if iv.se == 0:
        return 1.0 if iv.mean == 0 else 0.0
    return float(2 * stats.t.sf(abs(iv.mean / iv.se), iv.n - 1))


def paired_t_pvalue(values: Sequence[float] | np.ndarray) -> float:
    """Two-sided paired t-test p-value of per-pair differences (mean 0 under the null)."""
    return t_pvalue(t_interval(values))


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment (Holm 1979) of a family of p-values, in the input order.

    Sorted ascending p_(1) ≤ … ≤ p_(m): adjusted p_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)).
    Rejecting where the adjusted p ≤ α controls the family-wise error rate at α. A nan p-value
    (a test that could not be run) stays nan and does not count in m."""
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"holm needs a 1-D sequence of p-values, got shape {p.shape}")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p[ok].tolist()}")
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])  # (m − j + 1)·p_(j), j from 1
    out[order] = np.maximum.accumulate(stepped)
    return out
