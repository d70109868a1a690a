"""Student-t intervals over seeds or repeats: the one implementation the report, the frontier and
the metric validation share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["CONFIDENCE", "Interval", "t_interval"]

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
