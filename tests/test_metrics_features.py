"""Fréchet distance and the cached self-supervised encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import linalg

from sigdiff.metrics.features import EncoderConfig, frechet_distance, load_or_train

TINY = EncoderConfig(width=8, features=8, epochs=1, batch_size=16)


def test_frechet_distance_closed_form() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4000, 3)), 2.0 * rng.normal(size=(4000, 3)) + 1.0
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (np.sum((a.mean(0) - b.mean(0)) ** 2)
                + np.trace(ca + cb - 2 * np.real(linalg.sqrtm(ca @ cb))))
    assert frechet_distance(a, b) == pytest.approx(expected)
    assert frechet_distance(a, b) == pytest.approx(3 * 1.0 + 3 * (1 - 2) ** 2, rel=0.1)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_encoder_is_cached_with_its_seed_and_reloads_identically(tmp_path: Path) -> None:
    data = np.random.default_rng(1).normal(size=(32, 1, 32)).astype(np.float32)
    first = load_or_train(data, seed=7, cfg=TINY, cache_dir=tmp_path)
    cards = list(tmp_path.glob("*.json"))
    assert len(cards) == 1 and json.loads(cards[0].read_text())["seed"] == 7
    second = load_or_train(data, seed=7, cfg=TINY, cache_dir=tmp_path)
    np.testing.assert_array_equal(first(data), second(data))
    retrained = load_or_train(data, seed=7, cfg=TINY, cache_dir=tmp_path / "other")
    np.testing.assert_allclose(first(data), retrained(data), rtol=1e-5, atol=1e-6)
    assert load_or_train(data, seed=8, cfg=TINY, cache_dir=tmp_path).key != first.key
