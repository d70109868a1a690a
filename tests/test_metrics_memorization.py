"""Exact chunked nearest neighbours and the memorization metrics, against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sigdiff.metrics.memorization import (
    dcr_comparison,
    memorization_report,
    most_copied,
    neighbor_ratio,
)
from sigdiff.metrics.neighbors import knn


def brute_knn(q: np.ndarray, r: np.ndarray, k: int, exclude_self: bool = False):
    """Every pair by float64 differences (no expansion), a stable sort: lowest index on ties."""
    r64 = r.reshape(len(r), -1).astype(np.float64)
    d = np.concatenate([
        np.sqrt(((q[s : s + 16, None, :].astype(np.float64) - r64[None]) ** 2).sum(-1))
        for s in range(0, len(q), 16)]) if len(q) else np.zeros((0, len(r)))
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, axis=1), idx


METHODS = ("screen", "clusters")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("memory_mb, query_chunk", [(256, 1024), (0.01, 7)])
def test_knn_matches_brute_force(memory_mb: float, query_chunk: int, method: str) -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(400, 30)).astype(np.float32) + 50.0  # offset stresses float32
    q = rng.normal(size=(123, 30)).astype(np.float32) + 50.0
    nb = knn(q, ref, k=4, memory_mb=memory_mb, query_chunk=query_chunk, method=method)
    d, i = brute_knn(q, ref, 4)
    np.testing.assert_allclose(nb.distances, d, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(nb.indices, i)


@pytest.mark.parametrize("method", METHODS)
def test_knn_exclude_self_matches_brute_force(method: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 12)).astype(np.float32)
    nb = knn(x, x, k=3, exclude_self=True, memory_mb=0.005, query_chunk=33, method=method)
    d, i = brute_knn(x, x, 3, exclude_self=True)
    np.testing.assert_allclose(nb.distances, d, rtol=1e-10)
    np.testing.assert_array_equal(nb.indices, i)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 40), m=st.integers(1, 20), dim=st.integers(1, 9), seed=st.integers(0, 99))
def test_knn_property_distances_exact(n: int, m: int, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, dim)).astype(np.float32)
    q = rng.normal(size=(m, dim)).astype(np.float32)
    for method in METHODS:
        nb = knn(q, ref, k=2, memory_mb=0.0005, query_chunk=3, method=method)
        np.testing.assert_allclose(nb.distances, brute_knn(q, ref, 2)[0], rtol=1e-9, atol=1e-12)


def _beats_like(n: int, rng: np.random.Generator, *, copies: int = 20) -> np.ndarray:
    """Signals like the memorization benchmark's: a few smooth shapes, each repeated with
    noise, plus exact duplicates (float32, length 140)."""
    t = np.linspace(0, 1, 140)
    shapes = np.stack([np.sin(2 * np.pi * f * t + p) * a
                       for f, p, a in rng.uniform([1, 0, 1], [6, 6, 4], size=(n // copies, 3))])
    x = shapes[rng.integers(0, len(shapes), n)] + 0.1 * rng.normal(size=(n, 140))
    x[: n // 50] = x[n // 50 : 2 * (n // 50)]  # exact duplicates: ties broken by lowest index
    return x.astype(np.float32)


@pytest.mark.parametrize("exclude_self", [False, True])
def test_cluster_search_agrees_exactly_with_sklearn_brute_force(exclude_self: bool) -> None:
    """The clustered search (tens of clusters here) returns exactly brute force's neighbours:
    scikit-learn's brute force in float64 and a stable float64 sort of every pair as oracles."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(5)
    ref = _beats_like(1600 if exclude_self else 6000, rng)
    q = ref if exclude_self else _beats_like(500, rng)  # ref itself: each record among others
    full_d, full_i = brute_knn(q, ref, 6, exclude_self=exclude_self)
    for k in (1, 2, 5):
        nb = knn(q, ref, k=k, exclude_self=exclude_self, method="clusters")
        np.testing.assert_allclose(nb.distances, full_d[:, :k], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(nb.indices, full_i[:, :k])  # lowest index among duplicates
        auto = knn(q, ref, k=k, exclude_self=exclude_self, method="auto")
        np.testing.assert_array_equal(auto.indices, nb.indices)
    threads = torch.get_num_threads()
    for n in (1, 3):  # query blocks one after the other, or side by side on threads
        torch.set_num_threads(n)
        try:
            again = knn(q, ref, k=5, exclude_self=exclude_self, method="clusters")
        finally:
            torch.set_num_threads(threads)
        np.testing.assert_array_equal(again.indices, nb.indices)
        np.testing.assert_array_equal(again.distances, nb.distances)
    if not exclude_self:
        sk_d, sk_i = NearestNeighbors(n_neighbors=5, algorithm="brute").fit(
            ref.astype(np.float64)).kneighbors(q.astype(np.float64))
        np.testing.assert_allclose(nb.distances, sk_d, rtol=1e-9, atol=1e-9)
        # rows whose 6 nearest are all separated by more than sklearn's float64 error
        untied = np.diff(full_d, axis=1).min(axis=1) > 1e-9
        assert untied.mean() > 0.9
        np.testing.assert_array_equal(nb.indices[untied], sk_i[untied])


def test_cluster_summary_never_overestimates_a_distance() -> None:
    """The bound the clustered search rests on: ‖a(q) − a(r)‖ ≤ ‖q − r‖ for any pair, and every
    member lies within its cluster's radius."""
    from sigdiff.metrics.neighbors import _ClusterIndex, _principal_axes

    rng = np.random.default_rng(6)
    ref = _beats_like(3000, rng)
    centre = ref.mean(axis=0, dtype=np.float64)
    axes, captured = _principal_axes(ref, centre)
    index = _ClusterIndex.build(ref, centre, axes)
    q = np.concatenate([_beats_like(200, rng), rng.normal(size=(100, 140)).astype(np.float32)])
    a_q, a_r = index.embed(q), index.embed(ref[:500])
    bound = np.linalg.norm(a_q[:, None] - a_r[None], axis=2)
    full = np.sqrt(((q[:, None].astype(np.float64) - ref[None, :500]) ** 2).sum(-1))
    assert (bound <= full * (1 + 1e-12) + 1e-12).all()
    emb = index.embed(ref)
    for c in range(len(index.radius)):
        members = index.order[index.offsets[c] : index.offsets[c + 1]]
        assert (np.linalg.norm(emb[members] - index.centroids[c], axis=1)
                <= index.radius[c]).all()
    assert 0.9 < captured <= 1.0  # smooth shapes: the leading axes hold the energy


def test_knn_rejects_k_at_least_n() -> None:
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"k = 3 .*n = 3, excluding"):
        knn(x, x, k=3, exclude_self=True)


def _signals(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2, 40)).astype(np.float32)


def test_verbatim_copies_score_one_and_dcr_zero() -> None:
    train, holdout = _signals(300, 0), _signals(100, 1)
    copies = train[np.random.default_rng(2).integers(0, 300, 150)]
    rep = memorization_report(copies, train, holdout)
    assert rep["memorized_fraction"] == {"generated": 1.0, "floor": 0.0}
    assert rep["dcr"]["median_dcr_generated"] == 0.0
    assert rep["dcr"]["median_ratio"] == 0.0
    assert rep["dcr"]["p_closer"] < 1e-10
    assert rep["exact_copies"]["generated"] == 150


def test_fresh_samples_sit_at_the_floor() -> None:
    train, holdout, fresh = _signals(300, 0), _signals(150, 1), _signals(150, 2)
    rep = memorization_report(fresh, train, holdout)
    assert rep["memorized_fraction"]["generated"] == 0.0
    assert 0.9 < rep["dcr"]["median_ratio"] < 1.1
    assert rep["dcr"]["p_closer"] > 0.01


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8])
def test_noisy_copies_caught_in_proportion(fraction: float) -> None:
    rng = np.random.default_rng(3)
    train = _signals(400, 4)
    n, n_copy = 200, int(fraction * 200)
    copies = train[rng.choice(400, n_copy, replace=False)]
    copies = copies + 0.05 * rng.normal(size=copies.shape).astype(np.float32)
    gen = np.concatenate([copies, _signals(n - n_copy, 5)])
    assert neighbor_ratio(gen, train).fraction == pytest.approx(fraction, abs=0.02)


def test_memorization_falls_as_perturbation_grows() -> None:
    rng = np.random.default_rng(6)
    train = _signals(300, 7)
    fracs = [neighbor_ratio(train + s * rng.normal(size=train.shape).astype(np.float32),
                            train).fraction for s in (0.0, 0.2, 0.4, 0.8, 1.6)]
    assert fracs[0] == 1.0 and fracs[-1] < 0.05
    assert all(a >= b for a, b in itertools.pairwise(fracs))


def test_threshold_and_duplicated_training_records() -> None:
    train = np.repeat(_signals(10, 8), 2, axis=0)  # every record twice: d2 = 0 for a copy
    rr = neighbor_ratio(train[:4], train, threshold=0.1)
    assert rr.fraction == 1.0 and rr.threshold == 0.1
    with pytest.raises(ValueError, match="threshold"):
        neighbor_ratio(train, train, threshold=0.0)


def test_most_copied_counts() -> None:
    nearest = np.array([3, 3, 5, 3, 7, 5])
    memorized = np.array([True, True, True, True, False, True])
    assert most_copied(nearest, memorized, top=2) == [
        {"train_index": 3, "count": 3}, {"train_index": 5, "count": 2}]


def test_dcr_comparison_fields() -> None:
    out = dcr_comparison(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]))
    assert out["median_ratio"] == 0.5 and out["median_dcr_holdout"] == 4.0


@pytest.mark.parametrize(
    "samples, match",
    [
        (np.full((5, 2, 40), np.nan, np.float32), "memorization: samples contains NaN"),
        (np.zeros((5, 3, 40), np.float32), r"memorization: train has \(C, L\) = \(2, 40\) but samples"),
        (np.zeros((5, 40), np.float32), r"memorization: train has \(C, L\) = \(2, 40\)"),
    ],
)
def test_bad_input_names_array_and_metric(samples: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        neighbor_ratio(samples, _signals(10, 0))


def test_too_few_training_records() -> None:
    with pytest.raises(ValueError, match="train has n = 1"):
        neighbor_ratio(_signals(3, 0), _signals(1, 1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_knn_on_gpu_matches_cpu() -> None:
    rng = np.random.default_rng(9)
    ref = rng.normal(size=(3000, 140)).astype(np.float32)
    q = rng.normal(size=(500, 140)).astype(np.float32)
    cpu = knn(q, ref, k=2, memory_mb=1)
    gpu = knn(q, ref, k=2, memory_mb=1, device="cuda")
    np.testing.assert_allclose(gpu.distances, cpu.distances, rtol=1e-12)
    np.testing.assert_array_equal(gpu.indices, cpu.indices)
