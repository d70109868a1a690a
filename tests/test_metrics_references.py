"""Reference sets (floor, copier, noisy copies, residual noise, smoothed), the fixed low-pass, the
1-NN two-sample test and the alignment gate: each against an independent oracle."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from sigdiff.metrics.alignment import mmd2, mmd2_from_gram, rbf_gram
from sigdiff.metrics.evaluate import EvalConfig, evaluate_with, prepare
from sigdiff.metrics.gate import GateMeasure, GateSpec, c2st_1nn, gate_scores
from sigdiff.metrics.memorization import neighbor_ratio
from sigdiff.metrics.references import ReferenceSpec, build_references, channel_std, lowpass, smooth


def _beats(n: int, seed: int, length: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    centre = rng.uniform(0.3, 0.7, size=(n, 1, 1))
    width = rng.uniform(0.03, 0.08, size=(n, 1, 1))
    height = rng.uniform(0.5, 1.5, size=(n, 1, 1))
    return (height * np.exp(-((t - centre) ** 2) / (2 * width**2))).astype(np.float32)


SPEC = ReferenceSpec(noise_levels=(0.05, 0.1, 0.2, 0.4), residual_sigma=0.15, smooth_sigma=2.0)


@pytest.fixture(scope="module")
def refs() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    train, pool = _beats(20, 0), _beats(300, 1)
    return train, pool, build_references(train, pool, n=200, spec=SPEC, seed=3)


def test_copier_draws_training_records_with_replacement(refs) -> None:
    train, _, sets = refs
    copier = sets["copier"]
    assert copier.shape == (200, 1, 96)
    d = cdist(copier.reshape(200, -1), train.reshape(20, -1))
    assert np.all(d.min(axis=1) == 0)  # every record is a training record, exactly
    assert len(np.unique(d.argmin(axis=1))) < 200  # drawn with replacement: duplicates
    ratio = neighbor_ratio(copier, train)
    assert np.all(ratio.d1 == 0) and ratio.fraction == 1.0  # NN ratio 0 to its source


def test_noisy_copies_move_monotonically_with_noise_level(refs) -> None:
    train, _, sets = refs
    std = float(channel_std(train).ravel()[0])
    names = [f"noisy_copy@{s:g}" for s in SPEC.noise_levels]
    dcr = [np.median(neighbor_ratio(sets[n], train).d1) for n in names]
    frac = [neighbor_ratio(sets[n], train).fraction for n in names]
    assert all(a < b for a, b in itertools.pairwise(dcr))  # strictly farther as noise grows
    assert all(a >= b for a, b in itertools.pairwise(frac))  # never more memorized as noise grows
    for level, name in zip(SPEC.noise_levels, names):  # the noise is what the level says
        resid = sets[name] - sets["copier"]
        assert resid.std() == pytest.approx(level * std, rel=0.03)


def test_residual_noise_and_smoothed_are_corrupted_floor(refs) -> None:
    train, pool, sets = refs
    floor = sets["floor"]
    assert len(floor) == 200 and cdist(floor.reshape(200, -1), pool.reshape(300, -1)).min(1).max() == 0
    std = float(channel_std(train).ravel()[0])
    assert (sets["residual_noise"] - floor).std() == pytest.approx(0.15 * std, rel=0.03)
    oracle = ndimage.gaussian_filter1d(floor, 2.0, axis=-1, mode="reflect")
    np.testing.assert_allclose(sets["smoothed"], oracle, atol=1e-6)
    np.testing.assert_array_equal(build_references(train, pool, n=200, spec=SPEC, seed=3)["floor"],
                                  floor)  # deterministic in the seed
    with pytest.raises(ValueError, match="floor needs n = 400"):
        build_references(train, pool, n=400, spec=SPEC, seed=0)


def test_lowpass_is_the_ideal_projection() -> None:
    length = 128
    t = np.arange(length) / length
    low, high = np.sin(2 * np.pi * 3 * t), np.sin(2 * np.pi * 40 * t)  # bins 3 and 40 of 64
    x = np.stack([low + high, 2 * low])[:, None, :].astype(np.float32)  # (2, 1, 128)
    y = lowpass(x, 0.25)  # keeps bins ≤ 16
    np.testing.assert_allclose(y[0, 0], low, atol=1e-5)
    np.testing.assert_allclose(y[1, 0], 2 * low, atol=1e-5)
    np.testing.assert_allclose(lowpass(y, 0.25), y, atol=1e-6)  # a projection: idempotent
    img = np.broadcast_to(x[:1, :, None, :], (1, 1, 4, 128))  # images: along both axes
    np.testing.assert_allclose(lowpass(img, 0.25)[0, 0, 2], low, atol=1e-5)
    with pytest.raises(ValueError, match=r"fraction of Nyquist must lie in \(0, 1\]"):
        lowpass(x, 0.0)


def test_smooth_acts_along_every_image_axis() -> None:
    img = np.random.default_rng(0).normal(size=(2, 1, 9, 7)).astype(np.float32)
    oracle = ndimage.gaussian_filter(img, sigma=(0, 0, 1.5, 1.5), mode="reflect")
    np.testing.assert_allclose(smooth(img, 1.5), oracle, atol=1e-6)


def _c2st_oracle(a: np.ndarray, b: np.ndarray) -> float:
    z = np.concatenate([a.reshape(len(a), -1), b.reshape(len(b), -1)]).astype(np.float64)
    label = np.r_[np.zeros(len(a)), np.ones(len(b))]
    d = cdist(z, z)
    np.fill_diagonal(d, np.inf)
    hit = label[d.argmin(axis=1)] == label
    return 0.5 * (hit[label == 0].mean() + hit[label == 1].mean())


def test_c2st_1nn_matches_brute_force_and_sees_duplicates() -> None:
    a, b = _beats(40, 5), _beats(70, 6)
    assert c2st_1nn(a, b) == pytest.approx(_c2st_oracle(a, b), abs=1e-12)
    same = c2st_1nn(_beats(300, 7), _beats(300, 8))
    assert abs(same - 0.5) < 0.07  # one distribution: chance, whatever the sizes
    copies = _beats(15, 9)[np.random.default_rng(0).integers(0, 15, 300)]
    assert c2st_1nn(_beats(300, 7), copies) > 0.7  # duplicated records find each other


def test_mmd2_from_gram_equals_mmd2() -> None:
    x, y = _beats(30, 1), _beats(25, 2)
    gram, _ = rbf_gram(np.concatenate([x.reshape(30, -1), y.reshape(25, -1)]))
    assert mmd2_from_gram(gram, 30) == pytest.approx(mmd2(x, y, n_permutations=0).mmd2, abs=1e-12)


def test_gate_flags_a_metric_that_cannot_separate_floor_from_anchor() -> None:
    def gm(values: dict[str, float]) -> GateMeasure:
        rng = np.random.default_rng(0)
        return GateMeasure(values=values, draws={k: v + 0.01 * rng.standard_normal(20)
                                                 for k, v in values.items()})

    refs = {"floor": gm({"mmd2": 0.0, "c2st_1nn": 0.5}),
            "copier": gm({"mmd2": 0.1, "c2st_1nn": 0.5})}  # c2st blind to this copier
    gen = gm({"mmd2": 0.03, "c2st_1nn": 0.9})
    spec = GateSpec(anchors={"mmd2": "copier", "c2st_1nn": "copier"}, level=0.5)
    gate = gate_scores(gen, refs, spec=spec)
    assert gate["metrics"]["c2st_1nn"]["usable"] is False  # flagged, not allowed to decide
    assert gate["metrics"]["mmd2"]["score"] == pytest.approx(0.3)
    assert gate["score"] == pytest.approx(0.3) and gate["passes"] is True


def test_gate_ranks_floor_below_copier_on_ecg5000(tmp_path: Path) -> None:
    from sigdiff.datasets import load_dataset

    data = load_dataset("ecg5000").signals  # (500, 1, 140)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(data))
    train, target, pool, fresh = (data[perm[:16]], data[perm[16:116]], data[perm[116:356]],
                                  data[perm[356:]])
    cfg = EvalConfig(mmd_permutations=0, extras=())
    ctx = prepare(train, target, n=120, pool=pool, sampling_rate=250.0, config=cfg)
    real = evaluate_with(ctx, fresh[:120])  # unseen real beats, not the floor's
    copier = evaluate_with(ctx, train[rng.integers(0, 16, 120)])  # an independent copier draw
    assert real["gate"]["score"] < copier["gate"]["score"]
    assert real["gate"]["passes"] is True and copier["gate"]["passes"] is False
    assert real["gate"]["score"] < 3 * real["gate"]["se"] + 0.2
    usable = [m for m, v in copier["gate"]["metrics"].items() if v["usable"]]
    assert {"mmd2", "c2st_1nn"} <= set(usable)
