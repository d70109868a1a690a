"""Diffusion-TS's four metrics (sigdiff.metrics.diffusion_ts) against independent oracles: a direct
loop over their correlational formula, the Fréchet distance in closed form and in its symmetric
form, InfoNCE by cross-entropy, their `display_scores` interval, and behavioural checks of the
post-hoc GRUs and TS2Vec (indistinguishable vs clearly different data, seeds reproduce)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from scipy import linalg

from sigdiff.data.synthetic import sines
from sigdiff.metrics import diffusion_ts as dts


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def two_draws() -> tuple[np.ndarray, np.ndarray]:
    """Two independent draws of TimeGAN's sines, (600, 5, 24) each."""
    return sines(n=600, seed=0).signals, sines(n=600, seed=1).signals


# --- correlational score ---------------------------------------------------------------------


def _corr_oracle(real: np.ndarray, fake: np.ndarray) -> float:
    """Their CrossCorrelLoss written out pair by pair on (N, C, L): standardise each channel over
    (records, time) with ddof 1, average z_i·z_j, sum |real − fake| over i ≥ j, divide by 10."""
    def pairs(x: np.ndarray) -> list[float]:
        n_ch = x.shape[1]
        z = [(x[:, c] - x[:, c].mean()) / x[:, c].std(ddof=1) for c in range(n_ch)]
        return [float(np.mean(z[i] * z[j])) for i in range(n_ch) for j in range(i + 1)]
    return float(sum(abs(a - b) for a, b in zip(pairs(real), pairs(fake), strict=True)) / 10)


def test_correlational_matches_direct_formula() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(40, 4, 16))
    fake = rng.normal(size=(40, 4, 16)) + 0.5 * real[:, :1]  # correlated with channel 0
    assert dts.correlational_score(real, fake) == pytest.approx(_corr_oracle(real, fake),
                                                                rel=1e-5)


def test_correlational_sign_flip_closed_form() -> None:
    """Channel 1 = channel 0 in real, = −channel 0 in fake: only pair (1, 0) differs, by 2·s
    with s = (n − 1)/n the ddof-1 standardised mean square (n = N·L)."""
    x = np.random.default_rng(1).normal(size=(30, 1, 10))
    real, fake = np.concatenate([x, x], axis=1), np.concatenate([x, -x], axis=1)
    n = x.size
    assert dts.correlational_score(real, fake) == pytest.approx(2 * (n - 1) / n / 10, rel=1e-5)
    assert dts.correlational_score(real, real) == 0.0


# --- Fréchet distance ------------------------------------------------------------------------


def test_frechet_closed_form_for_gaussians() -> None:
    """Diagonal Gaussians: ‖μ1 − μ2‖² + Σ (σ1 − σ2)²; sampled, within sampling error."""
    rng = np.random.default_rng(2)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([1.5, 1.0, 0.5])
    a = mu1 + s1 * rng.normal(size=(200_000, 3))
    b = mu2 + s2 * rng.normal(size=(200_000, 3))
    exact = float(np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2))  # 2.5
    assert dts.frechet_distance(a, b) == pytest.approx(exact, abs=0.03)


def test_frechet_symmetric_form_and_zero() -> None:
    """tr((Σa Σb)^½) = tr((Σa^½ Σb Σa^½)^½), computed by eigendecomposition: an independent path."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4))
    b = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4)) + 0.3
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)

    def psd_sqrt(m: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh(m)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ra = psd_sqrt(ca)
    tr_sqrt = np.trace(psd_sqrt(ra @ cb @ ra))
    oracle = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca) + np.trace(cb) - 2 * tr_sqrt
    assert dts.frechet_distance(a, b) == pytest.approx(oracle, rel=1e-6)
    assert abs(dts.frechet_distance(a, a)) < 1e-6
    assert np.allclose(linalg.sqrtm(ca @ ca).real, ca, atol=1e-6)  # the scipy path they use


# --- TS2Vec ----------------------------------------------------------------------------------


def test_contrast_is_infonce_by_cross_entropy() -> None:
    """Item i's positive is item i + n (and vice versa) among the other 2n − 1 items."""
    z = torch.randn(3, 8, 5, generator=torch.Generator().manual_seed(0))  # (G, 2n, D), n = 4
    n = 4
    sim = z @ z.transpose(1, 2)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n) + n, torch.arange(n)])  # (2n,)
    ce = F.cross_entropy(sim.reshape(-1, 2 * n), target.repeat(3), reduction="none")
    oracle = ce.reshape(3, 2 * n).mean()  # halves of equal size: the mean of the two means
    assert dts._contrast(z, n).item() == pytest.approx(oracle.item(), rel=1e-5)


def test_context_fid_orders_and_reproduces(two_draws: tuple[np.ndarray, np.ndarray]) -> None:
    real, other = two_draws[0][:200], two_draws[1][:200]
    shifted = np.clip(real[::-1] * 0.5, 0, 1)  # amplitude halved: clearly different
    same = dts.context_fid(real, other, seed=0, n_iters=10)
    far = dts.context_fid(real, shifted, seed=0, n_iters=10)
    assert 0 <= same < far
    assert dts.context_fid(real, other, seed=0, n_iters=10) == same
    assert abs(dts.context_fid(real, real, seed=0, n_iters=10)) < 1e-6


def test_encoder_shapes_and_loss_is_finite() -> None:
    net = dts.TSEncoder(3, output_dims=16, hidden_dims=8, depth=3)
    x = torch.randn(4, 24, 3)
    assert net(x).shape == (4, 24, 16)
    loss = dts.hierarchical_contrastive_loss(net(x[:, :12]), net(x[:, 4:16]))
    assert torch.isfinite(loss) and loss.item() > 0


# --- post-hoc GRUs ---------------------------------------------------------------------------


def test_discriminative_near_zero_for_same_generator(
        two_draws: tuple[np.ndarray, np.ndarray]) -> None:
    """Test sets of 120 + 120: |acc − 0.5| has sd ≈ 0.032 under the null; 0.12 is 3.7 sd."""
    score = dts.discriminative_score(*two_draws, seed=0, iterations=300)
    assert 0 <= score < 0.12


def test_discriminative_near_half_for_noise(two_draws: tuple[np.ndarray, np.ndarray]) -> None:
    noise = np.random.default_rng(4).uniform(size=two_draws[0].shape).astype(np.float32)
    assert dts.discriminative_score(two_draws[0], noise, seed=0, iterations=300) > 0.4


def test_predictive_real_beats_noise(two_draws: tuple[np.ndarray, np.ndarray]) -> None:
    real, other = two_draws
    noise = np.random.default_rng(5).uniform(size=real.shape).astype(np.float32)
    on_real = dts.predictive_score(real, other, seed=0, iterations=300)
    on_noise = dts.predictive_score(real, noise, seed=0, iterations=300)
    assert on_real < on_noise
    assert on_real == dts.predictive_score(real, other, seed=0, iterations=300)


def test_discriminative_reproducible(two_draws: tuple[np.ndarray, np.ndarray]) -> None:
    a = dts.discriminative_score(*two_draws, seed=3, iterations=50)
    assert a == dts.discriminative_score(*two_draws, seed=3, iterations=50)


# --- protocol and errors ---------------------------------------------------------------------


def test_summarise_matches_their_display_scores() -> None:
    values = [0.0065, 0.0035, 0.00075, 0.022, 0.00725]  # their notebook's discriminative runs
    s = dts.summarise(values)
    half = scipy.stats.sem(values) * scipy.stats.t.ppf(0.975, 4)
    assert s["mean"] == pytest.approx(0.008, abs=1e-12)
    assert s["ci95_half"] == pytest.approx(half) and s["ci95_half"] == pytest.approx(0.01023, abs=1e-5)


def test_report_structure_and_seeds(two_draws: tuple[np.ndarray, np.ndarray]) -> None:
    real, fake = two_draws[0][:100], two_draws[1]  # fake is cut to len(real)
    rep = dts.diffusion_ts_report(real, fake, seed=0, repeats=3,
                                  metrics=("correlational", "discriminative"),
                                  iterations={"discriminative": 20})
    assert set(rep) == {"correlational", "discriminative"}
    assert rep["correlational"]["n"] == 3 and len(set(rep["correlational"]["values"])) == 3
    again = dts.diffusion_ts_report(real, fake, seed=0, repeats=3, metrics=("correlational",))
    assert again["correlational"]["values"] == rep["correlational"]["values"]


@pytest.mark.parametrize("bad", [np.zeros(10), np.zeros((4, 2, 3, 5)), np.zeros((0, 2, 5))])
def test_bad_shapes_raise(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        dts.correlational_score(bad, np.zeros((4, 2, 5)))


def test_mismatched_layout_and_single_channel_raise() -> None:
    with pytest.raises(ValueError, match="must match"):
        dts.discriminative_score(np.zeros((10, 2, 5)), np.zeros((10, 3, 5)), seed=0)
    with pytest.raises(ValueError, match="C ≥ 2"):
        dts.predictive_score(np.zeros((10, 1, 5)), np.zeros((10, 1, 5)), seed=0)
    with pytest.raises(ValueError, match="unknown metrics"):
        dts.diffusion_ts_report(np.zeros((10, 2, 5)), np.zeros((10, 2, 5)), seed=0,
                                metrics=("fid",))
