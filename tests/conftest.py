"""Shared test configuration: deterministic hypothesis runs, and GPU tests skipped without CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

from sigdiff.data.store import write_store

# Property tests explore the same examples on every run, so CI cannot flake on a new draw.
settings.register_profile("sigdiff", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("sigdiff")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sines_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 labelled sines (1 × 32, 2·sin + 1, frequency 1–3 Hz at 32 Hz), read-only for tests."""
    rng = np.random.default_rng(0)
    t = np.arange(32) / 32
    freq = rng.uniform(1, 3, size=(48, 1, 1))
    x = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6, size=(48, 1, 1))).astype(np.float32)
    path = tmp_path_factory.mktemp("data") / "sines.zarr"
    write_store(path, 2.0 * x + 1.0, sampling_rate=32.0, labels=rng.integers(0, 3, 48))
    return path
