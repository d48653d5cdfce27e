"""Workspace-wide pytest setup: hypothesis profiles and the `gpu` marker's skip."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Heavy first examples (torch import, JIT warm-up) blow hypothesis' 200 ms deadline on a loaded
# 2-core machine; tests never assert wall-clock time, so the deadline is off everywhere.
settings.register_profile(
    "ci", deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=25)
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marker `gpu`)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
