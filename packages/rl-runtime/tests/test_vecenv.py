"""rl_runtime.vecenv: same-step autoreset with per-episode seeds, replay, array and JAX envs."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from rl_runtime.testing import CHAIN_ID, FixedLengthEnv, TorchChainEnv
from rl_runtime.vecenv import ArrayVecEnv, GymVectorEnv, JaxVecEnv, make_gym_vector_env


def test_gym_step_returns_final_and_reset_observations_in_the_same_step() -> None:
    envs = make_gym_vector_env(lambda: FixedLengthEnv(2, 1.0, truncate=True), 2)
    asked: list[int] = []

    def seed_of(i: int) -> int:
        asked.append(i)
        return 100 + i

    obs = envs.reset([1, 2])
    assert obs.tolist() == [[2.0], [2.0]]
    r = envs.step(torch.zeros(2, dtype=torch.int64), seed_of)
    assert r.obs.tolist() == [[1.0], [1.0]]
    assert asked == []
    r = envs.step(torch.zeros(2, dtype=torch.int64), seed_of)
    assert r.final_obs.tolist() == [[0.0], [0.0]]  # the true last observation
    assert r.obs.tolist() == [[2.0], [2.0]]  # the next episode's first, in the same step
    assert r.truncated.tolist() == [True, True]
    assert r.terminated.tolist() == [False, False]
    assert r.reward.dtype == torch.float32
    assert r.reward.tolist() == [1.0, 1.0]
    assert asked == [0, 1]
    envs.close()


def test_sync_and_async_see_the_same_seeded_episodes() -> None:
    rng = np.random.default_rng(0)
    actions = torch.as_tensor(rng.integers(0, 2, size=(60, 4)))
    streams = []
    for mode in ("sync", "async"):
        envs = make_gym_vector_env(CHAIN_ID, 4, mode=mode)  # type: ignore[arg-type]
        counter = [0]

        def seed_of(i: int, counter: list[int] = counter) -> int:
            counter[0] += 1
            return 1000 * i + counter[0]

        obs = [envs.reset([0, 1, 2, 3])]
        obs += [envs.step(a, seed_of).obs for a in actions]
        envs.close()
        streams.append(torch.stack(obs))
    assert torch.equal(streams[0], streams[1])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_replay_rebuilds_each_sub_env_from_its_seed_and_actions(mode: str) -> None:
    envs = make_gym_vector_env(CHAIN_ID, 2, mode=mode)  # type: ignore[arg-type]
    obs = envs.reset([7, 8])
    taken: list[list[int]] = [[], []]
    for t in range(3):  # fewer than the 5 moves that end an episode
        a = torch.tensor([t % 2, 1])
        obs = envs.step(a, lambda i: 0).obs
        for i in range(2):
            taken[i].append(int(a[i]))
    replayed = envs.replay([7, 8], taken)
    assert torch.equal(replayed, obs)
    # and the vector env steps on from there exactly as the original would
    fresh = make_gym_vector_env(CHAIN_ID, 2)
    fresh.reset([7, 8])
    for t in range(3):
        fresh.step(torch.tensor([t % 2, 1]), lambda i: 0)
    a = torch.tensor([1, 1])
    assert torch.equal(envs.step(a, lambda i: 0).obs, fresh.step(a, lambda i: 0).obs)
    envs.close()
    fresh.close()


def test_next_step_autoreset_is_refused_with_the_fix() -> None:
    vec = gym.vector.SyncVectorEnv([lambda: gym.make(CHAIN_ID)] * 2)  # NEXT_STEP by default
    with pytest.raises(ValueError, match=r"NEXT_STEP.*AutoresetMode.DISABLED"):
        GymVectorEnv(vec, device="cpu")
    vec.close()


def test_same_step_vector_env_reports_the_final_observation() -> None:
    vec = gym.vector.SyncVectorEnv(
        [lambda: FixedLengthEnv(2, 1.0)] * 2, autoreset_mode=AutoresetMode.SAME_STEP
    )
    envs = GymVectorEnv(vec, device="cpu")
    envs.reset([0, 1])
    envs.step(torch.zeros(2, dtype=torch.int64), lambda i: 0)
    r = envs.step(torch.zeros(2, dtype=torch.int64), lambda i: 0)
    assert r.final_obs.tolist() == [[0.0], [0.0]]
    assert r.obs.tolist() == [[2.0], [2.0]]
    assert r.terminated.tolist() == [True, True]
    envs.close()


def test_wrong_action_shape_is_named() -> None:
    envs = make_gym_vector_env(CHAIN_ID, 2)
    envs.reset([0, 1])
    with pytest.raises(ValueError, match=r"actions: expected shape \(2,\), got \(3,\)"):
        envs.step(torch.zeros(3, dtype=torch.int64), lambda i: 0)
    envs.close()


def test_array_env_autoresets_with_its_seeds_and_round_trips_its_state() -> None:
    envs = ArrayVecEnv(TorchChainEnv(3, max_steps=4, slip=0.3))
    envs.reset([1, 2, 3])
    right = torch.ones(3, dtype=torch.int64)
    asked: list[int] = []
    for _ in range(3):
        envs.step(right, lambda i: asked.append(i) or 50 + i)  # type: ignore[func-returns-value]
    state = envs.env_state()
    after = [envs.step(right, lambda i: 9).obs for _ in range(6)]
    restored = ArrayVecEnv(TorchChainEnv(3, max_steps=4, slip=0.3))
    obs = restored.load_env_state(state)
    assert torch.equal(obs, state["obs"])
    again = [restored.step(right, lambda i: 9).obs for _ in range(6)]
    assert all(torch.equal(a, b) for a, b in zip(after, again, strict=True))
    # every env ended within 4 steps: it was reset on the spot with its own seed
    r = ArrayVecEnv(TorchChainEnv(1, max_steps=1))
    r.reset([0])
    out = r.step(torch.ones(1, dtype=torch.int64), lambda i: 5)
    assert out.truncated.tolist() == [True] or out.terminated.tolist() == [True]
    assert out.obs[0, 0] == 1.0  # back at the start
    assert out.final_obs[0, 0] == 0.0  # moved (or slipped) away from it


class _JaxCounter:
    """A gymnax-style JAX env: a counter started at a random 0..2, +action each step; reaching
    5 terminates with reward 1, 8 steps truncate."""

    default_params = None

    def reset_env(self, key: Any, params: Any) -> Any:
        import jax
        import jax.numpy as jnp

        pos = jax.random.randint(key, (), 0, 3)
        state = {"pos": pos, "t": jnp.int32(0)}
        return self._obs(state), state

    def _obs(self, state: Any) -> Any:
        import jax.numpy as jnp

        return jnp.stack([state["pos"], state["t"]]).astype(jnp.float32)

    def step_env(self, key: Any, state: Any, action: Any, params: Any) -> Any:
        import jax.numpy as jnp

        new = {"pos": state["pos"] + action, "t": state["t"] + 1}
        goal = new["pos"] >= 5
        done = goal | (new["t"] >= 8)
        info = {"discount": jnp.where(goal, 0.0, 1.0)}
        return self._obs(new), new, goal.astype(jnp.float32), done, info


def test_jax_env_through_dlpack_with_same_step_autoreset_and_state() -> None:
    jax = pytest.importorskip("jax")
    space = gym.spaces.Box(0.0, 10.0, (2,), np.float32)
    make = lambda: ArrayVecEnv(  # noqa: E731
        JaxVecEnv(
            _JaxCounter(), None, num_envs=2, observation_space=space,
            action_space=gym.spaces.Discrete(2), seed=0,
        )
    )  # fmt: skip
    envs = make()
    obs = envs.reset([11, 12])
    assert obs.shape == (2, 2)
    assert obs.dtype == torch.float32
    expected = [
        int(jax.random.randint(jax.random.key(s), (), 0, 3)) for s in (11, 12)
    ]  # the reset draws from the episode's own seed
    assert obs[:, 0].tolist() == expected
    # env 0 moves (terminates after 5 - start steps), env 1 waits (truncates at step 8)
    actions = torch.tensor([1, 0], dtype=torch.int32)
    ends: list[tuple[int, bool, bool]] = []
    state = None
    since = [0, 0]  # step at which each env's current episode started
    for t in range(8):
        if t == 2:
            state = envs.env_state()
        r = envs.step(actions, lambda i: 40 + i)
        for i in range(2):
            if r.terminated[i] or r.truncated[i]:
                ends.append((t, bool(r.terminated[i]), bool(r.truncated[i])))
                assert r.obs[i, 1] == 0.0
                assert r.final_obs[i, 1] == t + 1 - since[i]
                since[i] = t + 1
    assert (5 - expected[0] - 1, True, False) in ends
    assert (7, False, True) in ends
    # the state round-trips: the same steps again give the same observations
    again = make()
    again.load_env_state(state)
    envs2 = make()
    envs2.load_env_state(state)
    for _ in range(4):
        a = again.step(actions, lambda i: 40 + i).obs
        b = envs2.step(actions, lambda i: 40 + i).obs
        assert torch.equal(a, b)


def test_jax_arrays_reach_torch_without_a_copy() -> None:
    pytest.importorskip("jax")
    space = gym.spaces.Box(0.0, 10.0, (2,), np.float32)
    env = JaxVecEnv(
        _JaxCounter(), None, num_envs=3, observation_space=space,
        action_space=gym.spaces.Discrete(2), seed=0,
    )  # fmt: skip
    obs, reward, _, _ = env.step(torch.ones(3, dtype=torch.int32))
    assert obs.data_ptr() == env._obs.unsafe_buffer_pointer()  # the same memory
    assert reward.shape == (3,)
