"""Evaluation, action conversion, and the mid-episode replay used on resume."""

from __future__ import annotations

import logging
import types
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from rl_runtime.config import RunConfig
from rl_runtime.evaluation import evaluate, obs_to_tensor, to_env_action
from rl_runtime.offpolicy import _Counters, _start_episode
from rl_runtime.seeding import episode_seed
from rl_runtime.testing import CHAIN_ID, ChainEnv


def test_hand_computed_returns_on_a_chain_without_slip():
    with gym.make(CHAIN_ID, length=6, slip=0.0) as env:
        right = evaluate(lambda _: 1, env, episodes=3, seed=0)
        left = evaluate(lambda _: 0, env, episodes=2, seed=0)
    # Right: 5 moves from state 0 to state 5, reward 1. Left: stuck at 0 until the 20-step limit.
    assert right.returns == (1.0, 1.0, 1.0)
    assert right.lengths == (5, 5, 5)
    assert left.returns == (0.0, 0.0)
    assert left.lengths == (20, 20)
    assert right.metrics() == {
        "eval/return": 1.0,
        "eval/return_std": 0.0,
        "eval/length": 5.0,
        "eval/episodes": 3.0,
    }


def test_evaluation_is_deterministic_per_seed_and_episodes_differ():
    with gym.make(CHAIN_ID, slip=0.4) as env:
        a = evaluate(lambda _: 1, env, episodes=8, seed=1)
        b = evaluate(lambda _: 1, env, episodes=8, seed=1)
        c = evaluate(lambda _: 1, env, episodes=8, seed=2)
    assert a == b
    assert a.lengths != c.lengths
    assert len(set(a.lengths)) > 1  # episodes get different seeds


def test_max_steps_cuts_episodes():
    with gym.make(CHAIN_ID, slip=0.0) as env:
        assert evaluate(lambda _: 0, env, episodes=1, seed=0, max_steps=4).lengths == (4,)
    with pytest.raises(ValueError, match="episodes must be >= 1"), gym.make(CHAIN_ID) as env:
        evaluate(lambda _: 0, env, episodes=0, seed=0)


def test_action_conversion_checks_shapes():
    assert to_env_action(torch.tensor(1), gym.spaces.Discrete(2)) == 1
    box = gym.spaces.Box(-1, 1, (2,), np.float32)
    a = to_env_action(torch.tensor([0.5, -0.5], dtype=torch.float64), box)
    assert a.dtype == np.float32
    assert a.tolist() == [0.5, -0.5]
    with pytest.raises(
        ValueError, match=r"action shape \(3,\) does not match the action space shape \(2,\)"
    ):
        to_env_action(torch.zeros(3), box)
    with pytest.raises(ValueError, match="expected one action, got shape"):
        to_env_action(torch.zeros(2), gym.spaces.Discrete(2))
    assert obs_to_tensor(np.zeros(3), torch.device("cpu")).dtype == torch.float32


def _fake_run(seed: int) -> Any:
    """What _start_episode reads from a Run: the seed and the logger."""
    return types.SimpleNamespace(run_cfg=RunConfig(seed=seed), log=logging.getLogger("test-replay"))


def test_replay_rebuilds_the_interrupted_episode(caplog):
    """The env after reset(episode seed) + replayed actions is the env that was interrupted."""
    run = _fake_run(5)
    actions = [1, 1, 0, 1, 1, 1]
    with gym.make(CHAIN_ID, length=12, slip=0.3) as env:
        obs, _ = env.reset(seed=episode_seed(5, "train", 3))
        for a in actions:
            obs = env.step(a)[0]
        after = [env.step(1)[0].argmax() for _ in range(4)]  # what the uninterrupted run sees next

    with gym.make(CHAIN_ID, length=12, slip=0.3) as fresh:
        c = _Counters(
            step=50, episode=3, episode_actions=list(actions), episode_return=0.0, episode_length=6
        )
        with caplog.at_level(logging.INFO, logger="test-replay"):
            replayed = _start_episode(run, fresh, c, obs)
        assert np.array_equal(replayed, obs)
        assert [fresh.step(1)[0].argmax() for _ in range(4)] == after
    assert "replayed 6 steps of episode 3" in caplog.text
    assert c.episode_length == 6


def test_replay_that_diverges_restarts_the_episode_with_a_warning(caplog):
    run = _fake_run(5)
    c = _Counters(step=50, episode=3, episode_actions=[1, 1], episode_return=0.5, episode_length=2)
    wrong = np.zeros(6, np.float32)
    wrong[4] = 1.0  # two moves right cannot reach state 4
    with ChainEnv(slip=0.0) as env, caplog.at_level(logging.WARNING, logger="test-replay"):
        obs = _start_episode(run, env, c, wrong)
    assert "did not reproduce the checkpointed observation" in caplog.text
    assert obs.argmax() == 0
    assert (c.episode_actions, c.episode_return, c.episode_length, c.step) == ([], 0.0, 0, 50)
