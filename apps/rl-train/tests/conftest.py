"""Shared helpers: small tiny-q runs through the real command line, and their outputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from rl_buffers.testing import assert_same_state
from rl_runtime.testing import kill_at_first_checkpoint

torch.set_num_threads(1)

# A run small enough for a test (~400 env steps) that still has every phase: random warm-up,
# updates, several log entries, evaluations and checkpoints, and episodes cut by checkpoints.
SMALL = (
    "--total-steps", "400",
    "--log-every", "50",
    "--eval-every", "100",
    "--eval-episodes", "3",
    "--checkpoint-every", "100",
    "--keep-checkpoints", "10",
    "--loop.random-steps", "50",
    "--loop.learning-starts", "50",
    "--loop.update-every", "2",
    "--torch-threads", "1",
    "--quiet",
    "--no-tensorboard",
)  # fmt: skip


@pytest.fixture
def tiny_args(tmp_path: Path) -> Callable[..., list[str]]:
    """``tiny_args(name, *overrides)``: argv for a small named tiny-q run under tmp_path."""

    def make(name: str, *overrides: str) -> list[str]:
        return ["tiny-q", "--root", str(tmp_path), "--name", name, *SMALL, *overrides]

    return make


def run_dir_of(root: Path, name: str, seed: int = 0) -> Path:
    return root / "tiny-q" / "rltrain_Chain-v0" / f"{seed}-{name}"


@pytest.fixture
def run_dir(tmp_path: Path) -> Callable[..., Path]:
    """``run_dir(name, seed=0)``: the directory of a tiny-q run under tmp_path."""
    return lambda name, seed=0: run_dir_of(tmp_path, name, seed)


def metric_lines(run: Path) -> list[dict[str, Any]]:
    """metrics.jsonl entries without the time/ keys (which differ between runs)."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [
        {k: v for k, v in json.loads(line).items() if not k.startswith("time/")} for line in lines
    ]


@pytest.fixture
def metrics() -> Callable[[Path], list[dict[str, Any]]]:
    return metric_lines


@pytest.fixture
def same_state() -> Callable[..., None]:
    return assert_same_state


@pytest.fixture
def kill_at_checkpoint() -> Callable[[list[str], Path, Path], None]:
    return kill_at_first_checkpoint
