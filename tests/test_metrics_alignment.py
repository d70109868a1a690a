"""Alignment metrics against POT, prdc and scipy, plus statistical behaviour of MMD²."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import ot
import prdc as prdc_ref
import pytest
from scipy import stats

from sigdiff.metrics.alignment import (
    alpha_beta_authenticity,
    fit_pca,
    marginal_distances,
    mmd2,
    pca_distances,
    prdc,
    random_projections,
    sliced_wasserstein,
    wasserstein_1d,
)
from sigdiff.metrics.tsgbench import tsgbench_report


def _gauss(n: int, seed: int, *, shift: float = 0.0, scale: float = 1.0, shape=(1, 16)):
    rng = np.random.default_rng(seed)
    return (shift + scale * rng.normal(size=(n, *shape))).astype(np.float32)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_wasserstein_1d_matches_pot_and_scipy(p: float) -> None:
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=70), rng.normal(1.0, 2.0, size=45)
    uw, vw = rng.random(70), rng.random(45)
    ours = wasserstein_1d(u, v, u_weights=uw, v_weights=vw, p=p)
    assert ours == pytest.approx(ot.wasserstein_1d(u, v, uw / uw.sum(), vw / vw.sum(), p=p))
    if p == 1.0:
        assert ours == pytest.approx(stats.wasserstein_distance(u, v, uw, vw))


def test_sliced_wasserstein_matches_pot_with_same_projections() -> None:
    x, y = _gauss(120, 1), _gauss(90, 2, shift=0.3)
    proj = random_projections(16, 40, seed=3)
    ref = ot.sliced_wasserstein_distance(
        x.reshape(120, -1).astype(np.float64), y.reshape(90, -1).astype(np.float64), projections=proj)
    assert sliced_wasserstein(x, y, projections=proj) == pytest.approx(ref, rel=1e-9)


def test_marginals_match_scipy() -> None:
    x, y = _gauss(50, 1, shape=(2, 10)), _gauss(60, 2, shift=0.5, shape=(2, 10))
    out = marginal_distances(x, y)
    for c in range(2):
        u, v = x[:, c].ravel(), y[:, c].ravel()
        assert out["wasserstein"][c] == pytest.approx(stats.wasserstein_distance(u, v))
        assert out["ks"][c] == pytest.approx(stats.ks_2samp(u, v).statistic)


@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_prdc_matches_reference_implementation(shift: float) -> None:
    real, fake = _gauss(300, 4), _gauss(250, 5, shift=shift)
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        ref = prdc_ref.compute_prdc(real.reshape(300, -1), fake.reshape(250, -1), nearest_k=5)
    ours = prdc(real, fake, k=5, memory_mb=0.05)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(ref[key]), abs=1e-12), key


def test_prdc_rejects_k_too_large() -> None:
    with pytest.raises(ValueError, match=r"PRDC: k = 5 .*generated set"):
        prdc(_gauss(20, 0), _gauss(5, 1), k=5)


def test_mmd2_unbiased_estimator_by_direct_sum() -> None:
    x = _gauss(15, 6).reshape(15, -1).astype(np.float64)
    y = _gauss(12, 7, shift=0.5).reshape(12, -1).astype(np.float64)
    res = mmd2(x, y, kernel="median", n_permutations=10)
    (bw,) = res.bandwidths
    k = lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * bw * bw))  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    direct = ((kxx.sum() - np.trace(kxx)) / (15 * 14) + (kyy.sum() - np.trace(kyy)) / (12 * 11)
              - 2 * kxy.mean())
    assert res.mmd2 == pytest.approx(direct, rel=1e-9)


def test_mmd2_same_distribution_near_zero_with_uniform_p_values() -> None:
    pvals, values = [], []
    for seed in range(40):
        res = mmd2(_gauss(60, 2 * seed), _gauss(60, 2 * seed + 1), n_permutations=99, seed=seed)
        pvals.append(res.p_value)
        values.append(res.mmd2)
    assert abs(np.mean(values)) < 0.01
    assert stats.kstest(pvals, "uniform").pvalue > 0.01
    assert np.mean(np.array(pvals) < 0.05) <= 0.15


@pytest.mark.parametrize("shift, scale", [(0.5, 1.0), (0.0, 1.6)])
def test_mmd2_detects_shift_and_rescale(shift: float, scale: float) -> None:
    res = mmd2(_gauss(200, 1), _gauss(200, 2, shift=shift, scale=scale), n_permutations=99)
    assert res.mmd2 > 0.0 and res.p_value <= 0.02


def test_mmd2_unknown_kernel() -> None:
    with pytest.raises(ValueError, match="valid choices: median, multi"):
        mmd2(_gauss(5, 0), _gauss(5, 1), kernel="laplace")


def test_pca_distances_zero_for_identical_and_grow_with_shift() -> None:
    train = _gauss(300, 0)
    pca = fit_pca(train, n_components=3)
    assert pca_distances(train, train, pca=pca) == {"pca_wasserstein": 0.0, "pca_js": 0.0}
    near = pca_distances(_gauss(300, 1), train, pca=pca)
    far = pca_distances(_gauss(300, 1, shift=1.0), train, pca=pca)
    assert far["pca_wasserstein"] > near["pca_wasserstein"]
    assert far["pca_js"] > near["pca_js"]
    with pytest.raises(ValueError, match="n_components"):
        fit_pca(train, n_components=17)


def test_pca_wasserstein_matches_scipy_per_component() -> None:
    train, y = _gauss(100, 0), _gauss(80, 1, shift=0.2)
    pca = fit_pca(train, n_components=2)
    zx, zy = pca.transform(train), pca.transform(y)
    expected = np.mean([stats.wasserstein_distance(zy[:, j], zx[:, j]) for j in range(2)])
    assert pca_distances(y, train, pca=pca)["pca_wasserstein"] == pytest.approx(expected)


def test_alpha_beta_authenticity_copies_are_inauthentic() -> None:
    real = _gauss(200, 0)
    copies = alpha_beta_authenticity(real, real.copy())
    assert copies["authenticity"] == 0.0 and copies["alpha_precision"] > 0.9
    fresh = alpha_beta_authenticity(real, _gauss(200, 1))
    assert fresh["authenticity"] > 0.3
    far = alpha_beta_authenticity(real, _gauss(200, 1, shift=3.0))
    assert far["alpha_precision"] < fresh["alpha_precision"]


def test_tsgbench_zero_for_identical_and_positive_for_shift() -> None:
    x = _gauss(200, 0, shape=(2, 20))
    assert tsgbench_report(x, x) == {"mdd": 0.0, "acd": 0.0, "sd": 0.0, "kd": 0.0}
    out = tsgbench_report(x, _gauss(200, 1, shift=0.5, shape=(2, 20)))
    assert out["mdd"] > tsgbench_report(x, _gauss(200, 1, shape=(2, 20)))["mdd"]
