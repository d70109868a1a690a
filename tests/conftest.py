"""Shared test configuration: deterministic hypothesis runs, and GPU tests skipped without CUDA."""

from __future__ import annotations

import pytest
import torch
from hypothesis import settings

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
