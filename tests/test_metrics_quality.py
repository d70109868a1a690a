"""The quality axis (sigdiff.metrics.quality): random-convolution features and the cross-validated
classifier two-sample test, against independent oracles (scikit-learn's AUC, a direct dilated
convolution, the null distribution of the Mann-Whitney statistic), and the new references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from sigdiff.metrics.quality import (
    MIN_PER_CLASS,
    QualityBasis,
    _channel_mask,
    _conv,
    _kernels,
    auc_delong,
    c2st,
    dilations,
    fit_features,
)
from sigdiff.metrics.references import (
    ReferenceSpec,
    build_references,
    channel_std,
    mode_clusters,
)


def _waves(n: int, rng: np.random.Generator, *, length: int = 64, channels: int = 1
           ) -> np.ndarray:
    """Random-phase, random-frequency sines: (n, C, L)."""
    t = np.arange(length)
    f = rng.uniform(0.05, 0.15, size=(n, channels, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, channels, 1))
    return np.sin(2 * np.pi * f * t + phase).astype(np.float32)


def test_kernels_are_minirockets() -> None:
    w = _kernels()
    assert w.shape == (84, 9)
    assert len({tuple(r) for r in w}) == 84  # C(9, 3) distinct kernels
    np.testing.assert_array_equal(w.sum(axis=1), 0.0)  # zero-sum: blind to a constant offset
    assert {tuple(np.flatnonzero(r == 2)) for r in w} == set(itertools.combinations(range(9), 3))


def test_dilations_span_the_length() -> None:
    np.testing.assert_array_equal(dilations(9), [1])
    d = dilations(140)
    assert d[0] == 1 and d[-1] == (140 - 1) // 8 and np.all(np.diff(d) > 0)


def test_convolution_equals_a_direct_dilated_correlation() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 50)).astype(np.float32)
    w = _kernels()
    for d in (1, 3):
        out = _conv(torch.from_numpy(x), torch.from_numpy(w[:, None, :]), d).numpy()
        padded = np.pad(x[:, 0], ((0, 0), (4 * d, 4 * d)))
        for k in (0, 41, 83):
            direct = np.array([[sum(w[k, j] * row[i + j * d] for j in range(9))
                                for i in range(50)] for row in padded])
            np.testing.assert_allclose(out[:, k], direct, atol=1e-5)


def test_channel_subsets_are_nonempty_and_bounded() -> None:
    g = torch.Generator().manual_seed(0)
    mask = _channel_mask(12, g)
    sizes = mask.sum(dim=1)
    assert mask.shape == (84, 12) and sizes.min() >= 1 and sizes.max() <= 9
    assert len(set(sizes.tolist())) > 1  # the subset sizes vary
    assert torch.equal(_channel_mask(1, g), torch.ones(84, 1))


def test_features_are_proportions_and_deterministic() -> None:
    rng = np.random.default_rng(1)
    real = _waves(40, rng, channels=3)
    fm = fit_features(real, seed=5)
    f = fm(real)
    assert f.shape == (40, fm.size) and f.min() >= 0 and f.max() <= 1
    np.testing.assert_array_equal(f, fit_features(real, seed=5)(real))
    # the biases are quantiles of the real outputs: at the median bias about half are positive
    assert 0.35 < f.reshape(40, -1, 5)[:, :, 2].mean() < 0.65


def test_images_are_read_along_both_axes() -> None:
    rng = np.random.default_rng(2)
    imgs = rng.standard_normal((20, 1, 8, 8)).astype(np.float32)
    fm = fit_features(imgs, seed=0)
    assert fm.weights[0].shape[1] == 2  # row- and column-major scans as two channels
    assert fm(imgs).shape == (20, fm.size)


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    pos = rng.integers(0, 6, 30).astype(float)
    neg = rng.integers(0, 5, 25).astype(float)
    auc, _ = auc_delong(pos, neg)
    y = np.r_[np.ones(30), np.zeros(25)]
    assert auc == pytest.approx(roc_auc_score(y, np.r_[pos, neg]), abs=1e-12)


def test_delong_variance_matches_the_null_variance_of_mann_whitney() -> None:
    # under H0 with continuous scores Var(AUC) = (m + n + 1) / (12 m n) (Mann & Whitney 1947);
    # DeLong's estimate is unbiased for it on average
    rng = np.random.default_rng(4)
    m, n = 40, 30
    est = [auc_delong(rng.standard_normal(m), rng.standard_normal(n))[1] for _ in range(400)]
    assert np.mean(est) == pytest.approx((m + n + 1) / (12 * m * n), rel=0.08)


def test_two_draws_of_one_distribution_score_zero_and_the_se_is_calibrated() -> None:
    rng = np.random.default_rng(5)
    scores, ses = [], []
    for r in range(12):
        a, b = _waves(80, rng), _waves(80, rng)
        basis = QualityBasis.fit(a, seed=r)
        out = basis.measure(b)
        scores.append(out["score"])
        ses.append(out["se"])
    scores = np.array(scores)
    assert abs(scores.mean()) < 3 * scores.std(ddof=1) / np.sqrt(len(scores)) + 0.02
    # the reported SE is the spread of the score across independent draws (within a factor)
    assert 0.5 < scores.std(ddof=1) / np.mean(ses) < 2.0


@pytest.mark.parametrize("corrupt", ["noise", "blur", "copies", "other"])
def test_corrupted_sets_score_far_above_real(corrupt: str) -> None:
    rng = np.random.default_rng(6)
    real, fresh = _waves(100, rng), _waves(100, rng)
    cand = {"noise": fresh + 0.1 * rng.standard_normal(fresh.shape).astype(np.float32),
            "blur": ndimage.gaussian_filter1d(fresh, 1.5, axis=-1),
            "copies": _waves(8, rng)[rng.integers(0, 8, 100)],
            "other": np.sign(fresh)}[corrupt]
    basis = QualityBasis.fit(real, seed=0)
    floor, bad = basis.measure(fresh), basis.measure(cand)
    assert bad["score"] > floor["score"] + 4 * np.hypot(bad["se"], floor["se"])
    assert bad["score"] > 0.5


def test_c2st_is_seeded_and_refuses_tiny_sets() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((60, 20)), rng.standard_normal((60, 20)) + 0.3
    assert c2st(a, b, seed=1) == c2st(a, b, seed=1)
    with pytest.raises(ValueError, match="at least 10 records per set"):
        c2st(a[:9], b, seed=0)
    basis = QualityBasis.fit(_waves(30, rng), seed=0)
    small = basis.measure(_waves(MIN_PER_CLASS - 1, rng))
    assert small["score"] is None and "needs at least" in small["skipped"]


def test_quality_ladder_references() -> None:
    rng = np.random.default_rng(8)
    # two well-separated modes of different sizes in the floor pool
    base = _waves(200, rng)
    pool = np.concatenate([base[:120], base[120:] * 0 + np.sign(base[120:])])
    train = _waves(16, rng)
    spec = ReferenceSpec()
    sets = build_references(train, pool, n=150, spec=spec, seed=0)
    assert tuple(sets) == spec.names
    floor, std = sets["floor"], channel_std(train)
    for level in spec.real_noise_levels:
        diff = sets[f"noisy_real@{level:g}"] - floor
        assert diff.std() == pytest.approx(level * float(std.squeeze()), rel=0.05)
    np.testing.assert_allclose(
        sets["smoothed@1"], ndimage.gaussian_filter1d(floor, 1.0, axis=-1, mode="reflect"),
        atol=1e-6)
    labels = mode_clusters(pool, clusters=spec.mode_clusters or 4, seed=0)
    counts = np.bincount(labels)
    assert np.all(np.diff(counts) <= 0)  # numbered by size, largest first
    dropped = sets["mode_dropped"]
    assert len(dropped) == min(150, int((labels != 1).sum()))
    # every record comes from the pool outside the second-largest cluster
    kept = pool[labels != 1].reshape(int((labels != 1).sum()), -1)
    for rec in dropped.reshape(len(dropped), -1)[:20]:
        assert np.any(np.all(kept == rec, axis=1))


def test_reference_spec_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="mode_clusters"):
        ReferenceSpec(mode_clusters=1)
    with pytest.raises(ValueError, match="positive"):
        ReferenceSpec(real_noise_levels=(0.1, -0.2))
    names = ReferenceSpec(light_smooth_sigma=None, mode_clusters=None, real_noise_levels=()).names
    assert "mode_dropped" not in names and not any(n.startswith("smoothed@") for n in names)


def test_evaluate_reports_quality_and_memorization_as_two_axes(tmp_path) -> None:
    from sigdiff.metrics.evaluate import EvalConfig, evaluate, flatten_report

    rng = np.random.default_rng(9)
    train, holdout, pool = _waves(16, rng), _waves(120, rng), _waves(200, rng)
    noisy = _waves(150, rng) + 0.2 * rng.standard_normal((150, 1, 64)).astype(np.float32)
    rep = evaluate(train, holdout, noisy, sampling_rate=1.0, pool=pool, out_dir=tmp_path,
                   config=EvalConfig(mmd_permutations=0, extras=()), progress=False)
    q = rep["quality"]
    assert set(q["references"]) == set(rep["meta"]["references"])
    assert q["references"]["floor"]["score"] < 0.3 < q["score"]  # novel but noisy: poor quality
    assert q["references"]["copier"]["score"] > 0.5  # 16 records repeated: diversity lost
    assert rep["memorization"]["memorized_fraction"]["generated"] < 0.05  # and it copies nothing
    assert all(q["floor_beats"].values())
    row = flatten_report(rep)
    assert row["quality.score"] == q["score"]
    assert row["quality.score@mode_dropped"] == q["references"]["mode_dropped"]["score"]
    table = (tmp_path / "metrics.md").read_text()
    assert table.index("**Quality") < table.index("**Memorization") < table.index("Alignment gate")


def test_tiny_real_sets_say_what_they_cannot_measure() -> None:
    from sigdiff.metrics.evaluate import EvalConfig, evaluate, markdown_table

    rng = np.random.default_rng(10)
    rep = evaluate(_waves(20, rng), _waves(12, rng), _waves(30, rng), sampling_rate=1.0,
                   config=EvalConfig(mmd_permutations=0, extras=(), k=2), progress=False)
    assert "mode_dropped" not in rep["meta"]["references"]  # 6 floor records: too few to cluster
    assert "too few to cluster" in rep["meta"]["skipped"]["mode_dropped"]
    assert rep["quality"]["score"] is None and "needs at least" in rep["quality"]["skipped"]
    assert "Quality (against held-out real records): not measured" in markdown_table(rep)
