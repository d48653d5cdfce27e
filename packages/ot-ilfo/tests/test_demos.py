"""State-only demonstrations: scripted expert quality, Minari round trip, named errors."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from ot_ilfo import (
    SCRIPTED,
    episode_return,
    load_expert_states,
    pendulum_swingup,
    rollout_states,
    save_demos,
)
from rl_buffers import DatasetError, DatasetNotFoundError


def test_scripted_pendulum_expert_is_good() -> None:
    env = gym.make("Pendulum-v1")
    expert = rollout_states(env, pendulum_swingup, episodes=3, seed=0)
    rand = rollout_states(env, lambda _: env.action_space.sample(), episodes=3, seed=0)
    assert all(ep.observations.shape == (201, 3) for ep in expert)
    assert all(ep.actions.shape == (200, 0) for ep in expert)
    assert all(bool(ep.truncations[-1]) for ep in expert)
    assert min(episode_return(ep) for ep in expert) > -400
    assert max(episode_return(ep) for ep in rand) < -500
    assert SCRIPTED["pendulum-swingup"][0] == "Pendulum-v1"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_save_load_round_trip_and_overwrite(tmp_path: Path) -> None:
    env = gym.make("Pendulum-v1")
    episodes = rollout_states(env, pendulum_swingup, episodes=2, seed=5)
    path = save_demos(
        episodes,
        "test/pendulum-v0",
        env_id="Pendulum-v1",
        observation_space=env.observation_space,
        root=tmp_path,
    )
    assert path == tmp_path / "test/pendulum-v0"
    states = load_expert_states("test/pendulum-v0", root=tmp_path, state_dim=3)
    assert len(states) == 2
    for got, ep in zip(states, episodes, strict=True):
        np.testing.assert_array_equal(got, ep.observations)
    assert len(load_expert_states("test/pendulum-v0", root=tmp_path, num_trajectories=1)) == 1

    with pytest.raises(FileExistsError, match="already exists"):
        save_demos(episodes[:1], "test/pendulum-v0", env_id="Pendulum-v1",
                   observation_space=env.observation_space, root=tmp_path)  # fmt: skip
    save_demos(episodes[:1], "test/pendulum-v0", env_id="Pendulum-v1",
               observation_space=env.observation_space, root=tmp_path, overwrite=True)  # fmt: skip
    assert len(load_expert_states("test/pendulum-v0", root=tmp_path)) == 1

    with pytest.raises(DatasetError, match="per-step shape"):
        load_expert_states("test/pendulum-v0", root=tmp_path, state_dim=4)
    with pytest.raises(ValueError, match="holds 1 trajectories, 2 were asked for"):
        load_expert_states("test/pendulum-v0", root=tmp_path, num_trajectories=2)
    with pytest.raises(DatasetNotFoundError, match="not found"):
        load_expert_states("test/missing-v0", root=tmp_path)


def test_bad_demo_input_is_named(tmp_path: Path) -> None:
    env = gym.make("Pendulum-v1")
    ep = rollout_states(env, pendulum_swingup, episodes=1, seed=0)[0]
    with_actions = ep._replace(actions=np.zeros((ep.num_steps, 1), np.float32))
    with pytest.raises(ValueError, match="state-only dataset takes"):
        save_demos([with_actions], "test/x-v0", env_id="Pendulum-v1",
                   observation_space=env.observation_space, root=tmp_path)  # fmt: skip
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        rollout_states(env, pendulum_swingup, episodes=0, seed=0)
    with pytest.raises(ValueError, match="1-D Box"):
        rollout_states(gym.make("Blackjack-v1"), lambda _: 0, episodes=1, seed=0)
