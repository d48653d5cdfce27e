"""Test settings for driftql: one torch thread, and small-config / batch factories as fixtures."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import torch
from driftql import AgentConfig, default_config
from rl_buffers import TransitionBatch

torch.set_num_threads(1)

OBS_DIM = 3
ACTION_DIM = 2


def small_config(algo: str = "driftql", **drift: Any) -> AgentConfig:
    """``default_config(algo)`` with 2 x 32 networks, N = 4 candidates and fast learning rates
    (``drift`` overrides DriftConfig fields)."""
    cfg = default_config(algo)  # pyright: ignore[reportArgumentType]
    return dataclasses.replace(
        cfg,
        actor=dataclasses.replace(cfg.actor, hidden_sizes=(32, 32)),
        critic=dataclasses.replace(cfg.critic, hidden_sizes=(32, 32)),
        drift=dataclasses.replace(cfg.drift, **{"num_samples": 4, **drift}),
        optim=dataclasses.replace(cfg.optim, actor_lr=1e-3, critic_lr=1e-3),
    )


def random_batch(
    size: int = 16,
    *,
    obs_dim: int = OBS_DIM,
    action_dim: int = ACTION_DIM,
    seed: int = 0,
) -> TransitionBatch:
    """A valid batch: actions in [-1, 1], a few terminal transitions."""
    g = torch.Generator().manual_seed(seed)
    return TransitionBatch(
        obs=torch.randn(size, obs_dim, generator=g),
        action=torch.rand(size, action_dim, generator=g) * 2 - 1,
        reward=torch.randn(size, generator=g),
        next_obs=torch.randn(size, obs_dim, generator=g),
        not_done=(torch.rand(size, generator=g) > 0.2).float(),
        indices=torch.arange(size),
    )


@pytest.fixture
def make_config() -> Callable[..., AgentConfig]:
    """Factory: ``make_config(algo="driftql", **drift_overrides)``, small networks."""
    return small_config


@pytest.fixture
def make_batch() -> Callable[..., TransitionBatch]:
    """Factory: ``make_batch(size=16, obs_dim=3, action_dim=2, seed=0)``."""
    return random_batch
