"""Paired t-test p-values against scipy; Holm's adjustment by hand, by closed testing and against
statsmodels."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from sigdiff.stats import Interval, holm, paired_t_pvalue, t_interval, t_pvalue


@pytest.mark.parametrize("seed", range(5))
def test_paired_p_against_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3 + seed
    a, b = rng.normal(size=n), rng.normal(0.5, size=n)
    want = stats.ttest_rel(a, b).pvalue
    assert paired_t_pvalue(a - b) == pytest.approx(want, rel=1e-10)
    assert t_pvalue(t_interval(a - b)) == pytest.approx(stats.ttest_1samp(a - b, 0).pvalue,
                                                        rel=1e-10)


def test_p_degenerate_cases() -> None:
    assert math.isnan(paired_t_pvalue([0.3]))
    assert math.isnan(paired_t_pvalue([]))
    assert paired_t_pvalue([0.0, 0.0, 0.0]) == 1.0       # no difference at all
    assert paired_t_pvalue([-0.25, -0.25, -0.25]) == 0.0   # the same nonzero difference every seed
    assert math.isnan(t_pvalue(Interval(0.1, float("nan"), float("nan"), 1)))
    # the 95% interval excludes 0 exactly when p < 0.05
    x = np.array([0.10, 0.02, 0.07, 0.04, 0.09])
    assert t_interval(x).excludes_zero == (paired_t_pvalue(x) < 0.05)


def test_holm_by_hand() -> None:
    # m = 4, sorted 0.005, 0.01, 0.03, 0.04 → 4·0.005 = 0.02, 3·0.01 = 0.03, 2·0.03 = 0.06,
    # 1·0.04 = 0.04 → running max 0.02, 0.03, 0.06, 0.06; back in input order:
    got = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02])
    # capped at 1; ties keep their order; nan is left out of m
    np.testing.assert_allclose(holm([0.5, 0.5]), [1.0, 1.0])
    got = holm([0.01, float("nan"), 0.02])
    assert got[0] == pytest.approx(0.02) and got[2] == pytest.approx(0.02) and math.isnan(got[1])
    assert holm([]).shape == (0,)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.2, 1.5])


def _closed_testing(p: np.ndarray) -> np.ndarray:
    """Holm as the closed testing procedure over Bonferroni local tests (Marcus et al. 1976):
    adjusted p_i = max over every subset S ∋ i of min(1, |S|·min_{k∈S} p_k) — brute force."""
    m = len(p)
    out = np.zeros(m)
    for size in range(1, m + 1):
        for s in itertools.combinations(range(m), size):
            local = min(1.0, size * p[list(s)].min())
            for i in s:
                out[i] = max(out[i], local)
    return out


@pytest.mark.parametrize("seed", range(10))
def test_holm_equals_closed_testing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, size=int(rng.integers(1, 8)))
    np.testing.assert_allclose(holm(p), _closed_testing(p), rtol=1e-12)


def test_holm_against_statsmodels() -> None:
    from statsmodels.stats import multitest  # a dev dependency: the reference implementation

    p = np.random.default_rng(0).uniform(0, 0.1, size=20)
    np.testing.assert_allclose(holm(p), multitest.multipletests(p, method="holm")[1],
                               rtol=1e-12)
