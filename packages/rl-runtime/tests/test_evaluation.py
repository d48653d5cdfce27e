"""Evaluation and the seeded-episode loop, action conversion, and the mid-episode replay used on
resume."""

from __future__ import annotations

import logging
import types
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from rl_buffers import DatasetError
from rl_runtime.config import RunConfig
from rl_runtime.evaluation import (
    EpisodeRecorder,
    Step,
    evaluate,
    obs_to_tensor,
    rollout_episodes,
    to_env_action,
)
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


class _SeedSpy(gym.Wrapper):
    """Records the seed of every reset."""

    def __init__(self, env):
        super().__init__(env)
        self.seeds: list[int | None] = []

    def reset(self, *, seed=None, options=None):
        self.seeds.append(seed)
        return super().reset(seed=seed, options=options)


def test_one_seeding_rule_episode_i_gets_episode_seed_of_its_stream():
    with _SeedSpy(gym.make(CHAIN_ID)) as env:
        evaluate(lambda _: 1, env, episodes=3, seed=7)
        rollout_episodes(lambda _: 1, env, episodes=2, seed=7, stream="demos", first_episode=4)
    assert env.seeds == [
        episode_seed(7, "eval", 0),
        episode_seed(7, "eval", 1),
        episode_seed(7, "eval", 2),
        episode_seed(7, "demos", 4),
        episode_seed(7, "demos", 5),
    ]
    assert len(set(env.seeds)) == 5  # streams are independent


def test_episodes_run_one_call_at_a_time_equal_one_call():
    with gym.make(CHAIN_ID, slip=0.4) as env:
        whole = rollout_episodes(lambda _: 1, env, episodes=4, seed=3, stream="x")
        parts = [
            rollout_episodes(lambda _: 1, env, episodes=1, seed=3, stream="x", first_episode=i)
            for i in range(4)
        ]
    assert whole.lengths == tuple(p.lengths[0] for p in parts)


def test_callbacks_see_every_reset_and_step_in_order():
    events: list[tuple] = []
    with gym.make(CHAIN_ID, length=3, slip=0.0) as env:
        result = rollout_episodes(
            lambda obs: 1,
            env,
            episodes=2,
            seed=0,
            stream="eval",
            on_reset=lambda i, obs, info: events.append(("reset", i, int(obs.argmax()))),
            on_step=lambda s: events.append(
                ("step", s.episode, int(s.obs.argmax()), s.action, s.reward,
                 int(s.next_obs.argmax()), s.terminated, s.truncated)
            ),
        )  # fmt: skip
    # Two moves right from state 0 reach state 2 (reward 1, terminal) in each episode.
    assert events == [
        ("reset", 0, 0),
        ("step", 0, 0, 1, 0.0, 1, False, False),
        ("step", 0, 1, 1, 1.0, 2, True, False),
        ("reset", 1, 0),
        ("step", 1, 0, 1, 0.0, 1, False, False),
        ("step", 1, 1, 1, 1.0, 2, True, False),
    ]
    assert result.returns == (1.0, 1.0)


def test_step_budget_cuts_the_last_episode_as_truncated():
    steps: list[Step] = []
    with gym.make(CHAIN_ID, slip=0.0) as env:
        # Moving left never terminates: 20-step episodes (time limit), budget 45 = 20 + 20 + 5.
        result = rollout_episodes(
            lambda _: 0, env, episodes=10, seed=0, stream="x", step_budget=45, on_step=steps.append
        )
    assert result.lengths == (20, 20, 5)
    ends = [(s.episode, s.truncated) for s in steps if s.terminated or s.truncated]
    assert ends == [(0, True), (1, True), (2, True)]
    with pytest.raises(ValueError, match="step_budget must be >= 1"), gym.make(CHAIN_ID) as env:
        rollout_episodes(lambda _: 0, env, episodes=1, seed=0, stream="x", step_budget=0)


def test_episode_recorder_keeps_the_arrays_by_hand():
    with gym.make(CHAIN_ID, length=3, slip=0.0) as env:
        rec = EpisodeRecorder()
        rollout_episodes(lambda obs: 1, env, episodes=2, seed=0, stream="x", first_episode=5,
                         on_reset=rec.on_reset, on_step=rec.on_step)  # fmt: skip
        cut = EpisodeRecorder(keep_actions=False, obs_dtype=np.float64)
        rollout_episodes(lambda obs: 0, env, episodes=1, seed=0, stream="x", max_steps=2,
                         on_reset=cut.on_reset, on_step=cut.on_step)  # fmt: skip
    first, second = rec.episodes
    np.testing.assert_array_equal(first.observations, np.eye(3, dtype=np.float32))
    assert first.observations.dtype == np.float32
    np.testing.assert_array_equal(first.actions, [1, 1])
    np.testing.assert_array_equal(first.rewards, np.array([0.0, 1.0], np.float32))
    assert first.terminations.tolist() == [False, True]
    assert first.truncations.tolist() == [False, False]
    assert (first.episode_id, second.episode_id) == (5, 6)
    (state_only,) = cut.episodes
    assert state_only.actions.shape == (2, 0)
    assert state_only.observations.dtype == np.float64
    assert state_only.truncations.tolist() == [False, True]  # cut by max_steps


def test_episode_recorder_copies_observations_and_rejects_nan_and_misuse():
    class InPlace(gym.Env):
        """Returns the same observation array every step, mutated in place (some envs do)."""

        observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float64)
        action_space = gym.spaces.Discrete(1)

        def __init__(self, values):
            self.values, self.obs, self.t = values, np.zeros(1), 0

        def reset(self, *, seed=None, options=None):
            self.t = 0
            self.obs[0] = self.values[0]
            return self.obs, {}

        def step(self, action):
            self.t += 1
            self.obs[0] = self.values[self.t]
            return self.obs, 0.0, self.t == len(self.values) - 1, False, {}

    rec = EpisodeRecorder(where="test rollout")
    rollout_episodes(lambda _: 0, InPlace([1.0, 2.0, 3.0]), episodes=1, seed=0, stream="x",
                     on_reset=rec.on_reset, on_step=rec.on_step)  # fmt: skip
    assert rec.episodes[0].observations[:, 0].tolist() == [1.0, 2.0, 3.0]
    rec = EpisodeRecorder(where="test rollout")
    with pytest.raises(DatasetError, match="test rollout, episode 0: key 'observations' has NaN"):
        rollout_episodes(lambda _: 0, InPlace([1.0, np.nan]), episodes=1, seed=0, stream="x",
                         on_reset=rec.on_reset, on_step=rec.on_step)  # fmt: skip
    with pytest.raises(RuntimeError, match="on_reset"), gym.make(CHAIN_ID) as env:
        rollout_episodes(lambda _: 0, env, episodes=1, seed=0, stream="x",
                         on_step=EpisodeRecorder().on_step)  # fmt: skip


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
