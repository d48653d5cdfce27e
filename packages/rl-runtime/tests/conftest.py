"""Fixtures of the runtime's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from rl_buffers.testing import assert_same_state
from rl_runtime.testing import kill_at_first_checkpoint

torch.set_num_threads(1)


@pytest.fixture
def same_state() -> Callable[..., None]:
    return assert_same_state


@pytest.fixture
def kill_at_checkpoint() -> Callable[[list[str], Path, Path], None]:
    return kill_at_first_checkpoint
