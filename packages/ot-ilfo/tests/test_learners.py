"""ot_ilfo.learners: TD3 set up for OT imitation, and relabelled replay in front of any learner."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
from ot_ilfo import OTRewarder, RewardConfig, TD3Config
from ot_ilfo.learners import RelabelledReplay, make_td3_learner
from rl_buffers import ReplayBuffer, TransitionSpec
from rl_buffers.testing import assert_same_state
from torch import Tensor

STATE_DIM = 3
ACTION_DIM = 2
HORIZON = 8
TD3 = TD3Config(hidden_sizes=(16,), horizon=HORIZON)  # time input: obs = 3 states + time


def _rewarder() -> OTRewarder:
    rng = np.random.default_rng(42)
    experts = [5.0 + np.cumsum(rng.normal(size=(HORIZON + 1, STATE_DIM)), axis=0)]
    return OTRewarder(experts, RewardConfig(solver="emd"))


def _td3(rewarder: OTRewarder, *, replay_seed: int = 7):
    return make_td3_learner(
        TD3,
        STATE_DIM + 1,
        ACTION_DIM,
        normalizer=rewarder.state_normalizer,
        batch_size=4,
        capacity=50,
        seed=0,
        replay_seed=replay_seed,
    )


def _episode(rng: np.random.Generator, replay: RelabelledReplay) -> Tensor:
    """Add one HORIZON-step episode (truncated at its end); returns its states ``(T + 1, 4)``."""
    states = torch.as_tensor(rng.normal(size=(HORIZON + 1, STATE_DIM)), dtype=torch.float32)
    time = torch.linspace(1.0, 0.0, HORIZON + 1).unsqueeze(1)  # (T + 1, 1): (T - t) / T
    obs = torch.cat([states, time], dim=1)
    for t in range(HORIZON):
        action = torch.as_tensor(rng.uniform(-1, 1, ACTION_DIM), dtype=torch.float32)
        last = t == HORIZON - 1
        replay.add(
            obs[t], action, torch.tensor(1e6), obs[t + 1], torch.tensor(False), torch.tensor(last)
        )
    return obs


def test_td3_is_set_up_with_the_expert_normaliser_and_its_own_buffer() -> None:
    rewarder = _rewarder()
    learner = _td3(rewarder)
    norm = rewarder.state_normalizer
    # The state entries are normalised with the expert's statistics, the time entry is not.
    assert torch.allclose(learner.agent.obs_mean, torch.as_tensor(norm.mean, dtype=torch.float32))
    assert torch.allclose(learner.agent.obs_std, torch.as_tensor(norm.std, dtype=torch.float32))
    assert learner.agent.state_dims == STATE_DIM
    assert learner.buffer.spec.obs_shape == (STATE_DIM + 1,)
    assert learner.buffer.capacity == 50
    assert learner.generator.device == learner.buffer.sampler.device
    # A normaliser of another dimension is refused by name.
    with pytest.raises(ValueError, match=r"mean: expected shape \(4,\)"):
        make_td3_learner(
            TD3Config(hidden_sizes=(16,), time_input=False),
            STATE_DIM + 1,
            ACTION_DIM,
            normalizer=rewarder.state_normalizer,
            batch_size=4,
            capacity=50,
        )


def test_relabelled_episodes_reach_the_learner_and_it_trains_on_them() -> None:
    rewarder = _rewarder()
    learner = _td3(rewarder)
    ended: list[tuple[int, int]] = []
    replay = RelabelledReplay(
        learner,
        rewarder,
        seed=0,
        state_dims=STATE_DIM,
        on_episode=lambda step, stats: ended.append((step, stats.length)),
    )
    rng = np.random.default_rng(0)
    obs = _episode(rng, replay)
    assert len(replay) == len(learner.buffer) == HORIZON
    assert (replay.steps, ended) == (HORIZON, [(HORIZON, HORIZON)])
    # The buffer holds the OT rewards of the episode's states (time entry left out).
    expected = rewarder.rewards(obs[:, :STATE_DIM].double().numpy()).rewards
    stored = learner.buffer.state_dict()["storage"]["reward"][:HORIZON]
    np.testing.assert_allclose(stored.numpy(), expected, rtol=1e-6)

    _episode(rng, replay)
    assert ended[-1] == (2 * HORIZON, HORIZON)
    batch = learner.sample()
    assert batch.obs.shape == (4, STATE_DIM + 1)
    assert float(batch.reward.max()) < 1e5  # never the environment's reward
    metrics = learner.update(batch)
    assert all(v.dim() == 0 and not v.requires_grad for v in metrics.values())
    assert learner.agent.training_steps == 1


def test_replay_state_restores_staged_steps_generator_and_counter() -> None:
    rewarder = _rewarder()
    a = _td3(rewarder)
    replay_a = RelabelledReplay(a, rewarder, seed=3, state_dims=STATE_DIM)
    rng = np.random.default_rng(1)
    _episode(rng, replay_a)
    a.sample()  # the generator has moved
    state = replay_a.state_dict()
    assert state["steps"] == HORIZON

    b = _td3(rewarder, replay_seed=99)  # another sampling seed: the state must win
    replay_b = RelabelledReplay(b, rewarder, seed=3, state_dims=STATE_DIM)
    replay_b.load_state_dict(state)
    assert replay_b.steps == HORIZON
    assert_same_state(replay_b.state_dict(), state)
    assert torch.equal(a.sample().indices, b.sample().indices)


class _AnyLearner:
    """A learner from elsewhere: only the protocol's shape (here, batches of indices)."""

    def __init__(self) -> None:
        spec = TransitionSpec.continuous((STATE_DIM,), ACTION_DIM)
        self.buffer = ReplayBuffer(spec=spec, capacity=20)
        self.generator = torch.Generator().manual_seed(0)

    def act(self, obs: Tensor, *, explore: bool) -> Tensor:
        return torch.zeros(ACTION_DIM)

    def sample(self) -> Tensor:
        return self.buffer.sample(2, self.generator).indices

    def update(self, batch: Tensor, /) -> Mapping[str, Tensor]:
        return {"critic_loss": batch.float().mean()}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        pass


def test_any_off_policy_learner_takes_the_relabelled_episodes() -> None:
    learner = _AnyLearner()
    rewarder = _rewarder()
    replay = RelabelledReplay(learner, rewarder, seed=0)
    rng = np.random.default_rng(2)
    states = torch.as_tensor(rng.normal(size=(4, STATE_DIM)), dtype=torch.float32)
    for t in range(3):
        end = torch.tensor(t == 2)
        replay.add(states[t], torch.zeros(ACTION_DIM), torch.tensor(0.0), states[t + 1], end, end)
    assert len(learner.buffer) == 3
    assert learner.sample().shape == (2,)
    assert replay.state_dict()["generator"].equal(learner.generator.get_state())
