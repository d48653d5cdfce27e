"""Multi-agent batches: stacking PettingZoo dicts, the ring buffer, and real parallel envs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from rl_buffers import io
from rl_buffers.multiagent import MultiAgentReplayBuffer, stack_agents, unstack_agents
from rl_buffers.samplers import LAPSampler

torch.set_num_threads(1)

AGENTS = ("agent_0", "agent_1", "agent_2")


def step_dicts(t: int, agents: tuple[str, ...] = AGENTS) -> dict[str, dict[str, Any]]:
    """Joint step ``t``: agent i observes [t, i], acts [t + i / 10] and gets reward 10 t + i."""
    return {
        "obs": {a: np.array([t, i], np.float32) for i, a in enumerate(agents)},
        "action": {a: np.array([t + i / 10], np.float32) for i, a in enumerate(agents)},
        "reward": {a: float(10 * t + i) for i, a in enumerate(agents)},
        "next_obs": {a: np.array([t + 1, i], np.float32) for i, a in enumerate(agents)},
        "terminated": {a: bool(i == 1 and t % 3 == 2) for i, a in enumerate(agents)},
        "truncated": dict.fromkeys(agents, False),
    }


def make_buffer(capacity: int = 8, **kwargs: Any) -> MultiAgentReplayBuffer:
    return MultiAgentReplayBuffer(AGENTS, capacity, obs_shape=(2,), action_shape=(1,), **kwargs)


def test_stack_agents_uses_the_given_order() -> None:
    values = {"b": np.array([2.0]), "a": np.array([1.0]), "c": np.array([3.0])}
    assert stack_agents(values, ["c", "a", "b"]).tolist() == [[3.0], [1.0], [2.0]]
    stacked = torch.tensor([[1.0], [2.0]])
    assert torch.equal(stack_agents(stacked, ["x", "y"]), stacked)
    back = unstack_agents(stack_agents(values, ["a", "b", "c"]), ["a", "b", "c"])
    assert {k: v.item() for k, v in back.items()} == {"a": 1.0, "b": 2.0, "c": 3.0}


def test_stack_agents_names_missing_and_extra_agents() -> None:
    with pytest.raises(KeyError, match=r"obs: missing agent\(s\) \['agent_2'\]"):
        stack_agents({"agent_0": 1.0, "agent_1": 2.0}, AGENTS, field="obs")
    with pytest.raises(KeyError, match=r"reward: unknown agent\(s\) \['adversary_0'\]"):
        stack_agents(
            {"agent_0": 1.0, "agent_1": 2.0, "agent_2": 0.0, "adversary_0": 3.0},
            AGENTS,
            field="reward",
        )
    with pytest.raises(
        ValueError, match=r"agent 'agent_1' has shape \(3,\), agent 'agent_0' has \(2,\)"
    ):
        stack_agents(
            {"agent_0": np.zeros(2), "agent_1": np.zeros(3), "agent_2": np.zeros(2)}, AGENTS
        )
    with pytest.raises(ValueError, match=r"expected \(3, \.\.\.\)"):
        stack_agents(np.zeros((2, 4)), AGENTS)


def test_add_and_gather_hand_computed() -> None:
    buf = make_buffer()
    for t in range(4):
        buf.add(**step_dicts(t))
    assert len(buf) == 4
    batch = buf.gather(torch.tensor([2, 0]))
    assert batch.obs.shape == (2, 3, 2)
    assert batch.obs[:, :, 0].tolist() == [[2, 2, 2], [0, 0, 0]]
    assert batch.obs[0, :, 1].tolist() == [0, 1, 2]  # agent axis in AGENTS order
    assert batch.next_obs[:, :, 0].tolist() == [[3, 3, 3], [1, 1, 1]]
    assert batch.reward.tolist() == [[20, 21, 22], [0, 1, 2]]
    assert batch.action[0, :, 0].tolist() == pytest.approx([2.0, 2.1, 2.2])
    # agent_1 terminates at t = 2.
    assert batch.not_done.tolist() == [[1, 0, 1], [1, 1, 1]]
    assert batch.team_not_done().tolist() == [0.0, 1.0]
    assert batch.state is None
    assert batch.indices.tolist() == [2, 0]


def test_ring_overwrites_oldest_and_samples_only_live_slots() -> None:
    buf = make_buffer(capacity=3)
    for t in range(5):
        buf.add(**step_dicts(t))
    assert len(buf) == 3
    batch = buf.sample(300, torch.Generator().manual_seed(0))
    assert set(batch.obs[:, 0, 0].tolist()) == {2.0, 3.0, 4.0}
    # Each live slot is drawn about equally often (uniform).
    counts = torch.bincount(batch.indices, minlength=3).float()
    assert torch.allclose(counts, torch.full((3,), 100.0), atol=25)


def test_state_dict_round_trip_resumes_identically(tmp_path: Path) -> None:
    buf = make_buffer(capacity=4)
    for t in range(6):
        buf.add(**step_dicts(t))
    other = make_buffer(capacity=4)
    io.save(buf.state_dict(), tmp_path / "marl.pt")
    state = io.load(tmp_path / "marl.pt")
    other.load_state_dict(state)
    a = buf.sample(32, torch.Generator().manual_seed(7))
    b = other.sample(32, torch.Generator().manual_seed(7))
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            assert x is None
            assert y is None
        else:
            assert torch.equal(x, y)
    buf.add(**step_dicts(6))
    other.add(**step_dicts(6))
    assert torch.equal(buf.gather(torch.arange(4)).obs, other.gather(torch.arange(4)).obs)
    wrong = MultiAgentReplayBuffer(("agent_0", "agent_2", "agent_1"), 4, (2,), (1,))
    with pytest.raises(ValueError, match="agent order differs"):
        wrong.load_state_dict(state)


def test_global_state_is_stored() -> None:
    buf = make_buffer(state_shape=(4,))
    d = step_dicts(0)
    buf.add(**d, state=np.arange(4, dtype=np.float32), next_state=np.ones(4, np.float32))
    batch = buf.gather(torch.tensor([0]))
    assert batch.state is not None
    assert batch.next_state is not None
    assert batch.state.tolist() == [[0, 1, 2, 3]]
    assert batch.next_state.tolist() == [[1, 1, 1, 1]]
    with pytest.raises(ValueError, match="pass state= and next_state="):
        buf.add(**d)
    with pytest.raises(ValueError, match="without state_shape"):
        make_buffer().add(**d, state=np.zeros(4), next_state=np.zeros(4))


def test_bad_steps_are_rejected_with_names() -> None:
    buf = make_buffer()
    d = step_dicts(0)
    with pytest.raises(KeyError, match=r"action: missing agent\(s\) \['agent_1'\]"):
        buf.add(**{**d, "action": {"agent_0": np.zeros(1), "agent_2": np.zeros(1)}})
    bad_reward = {**d["reward"], "agent_2": float("nan")}
    with pytest.raises(ValueError, match=r"reward: NaN or inf for agent\(s\) \['agent_2'\]"):
        buf.add(**{**d, "reward": bad_reward})
    with pytest.raises(ValueError, match=r"obs: expected shape \(3, 2\)"):
        buf.add(**{**d, "obs": {a: np.zeros(5, np.float32) for a in AGENTS}})
    with pytest.raises(TypeError, match="terminated: expected bools"):
        buf.add(**{**d, "terminated": dict.fromkeys(AGENTS, 0)})
    with pytest.raises(TypeError, match="obs: expected floating observations"):
        buf.add(**{**d, "obs": {a: np.zeros(2, np.int64) for a in AGENTS}})
    assert len(buf) == 0  # nothing half-written
    discrete = MultiAgentReplayBuffer(AGENTS, 4, (2,), action_dtype=torch.int64, num_actions=5)
    with pytest.raises(ValueError, match=r"index outside \[0, 5\) for agent\(s\) \['agent_1'\]"):
        discrete.add(**{**d, "action": {"agent_0": 0, "agent_1": 5, "agent_2": 4}})
    with pytest.raises(ValueError, match="must be non-empty and distinct"):
        MultiAgentReplayBuffer(("a", "a"), 4, (2,))


def test_lap_sampler_plugs_in() -> None:
    buf = make_buffer(capacity=4, sampler=LAPSampler(4))
    for t in range(4):
        buf.add(**step_dicts(t))
    batch = buf.sample(8, torch.Generator().manual_seed(0))
    td = torch.zeros(8, 3)
    td[batch.indices == batch.indices[0], 0] = 100.0  # one slot gets a huge per-agent error
    buf.update_priority(batch.indices, td)
    probs = buf.sampler.probabilities()
    assert int(probs.argmax()) == int(batch.indices[0])


@given(
    capacity=st.integers(1, 6),
    steps=st.integers(1, 15),
    perm=st.permutations(list(AGENTS)),
)
def test_every_slot_holds_the_step_written_last(capacity: int, steps: int, perm: list[str]) -> None:
    # Dicts arrive in any key order; the buffer always uses its own agent order.
    buf = make_buffer(capacity=capacity)
    for t in range(steps):
        d = step_dicts(t)
        buf.add(**{k: {a: v[a] for a in perm} for k, v in d.items()})
    assert len(buf) == min(steps, capacity)
    batch = buf.gather(torch.arange(len(buf)))
    for slot in range(len(buf)):
        t = max(t for t in range(steps) if t % capacity == slot)
        assert batch.obs[slot, :, 0].tolist() == [t, t, t]
        assert batch.obs[slot, :, 1].tolist() == [0, 1, 2]
        assert batch.reward[slot].tolist() == [10 * t, 10 * t + 1, 10 * t + 2]


# ----------------------------------------------------------------------------- real envs


def test_real_pettingzoo_parallel_env_continuous() -> None:
    simple_spread = pytest.importorskip("mpe2.simple_spread_v3")
    env = simple_spread.parallel_env(N=3, continuous_actions=True, max_cycles=6)
    obs, _ = env.reset(seed=0)
    agents = tuple(env.possible_agents)
    obs_dim = env.observation_space(agents[0]).shape[0]
    act_dim = env.action_space(agents[0]).shape[0]
    buf = MultiAgentReplayBuffer(agents, 16, (obs_dim,), (act_dim,), state_shape=env.state().shape)
    for agent in agents:
        env.action_space(agent).seed(0)
    recorded = []
    state = env.state()
    while env.agents:
        actions = {a: env.action_space(a).sample() for a in env.agents}
        next_obs, rewards, terms, truncs, _ = env.step(actions)
        next_state = env.state()
        buf.add(obs, actions, rewards, next_obs, terms, truncs, state=state, next_state=next_state)
        recorded.append((obs, actions, rewards, next_obs))
        obs, state = next_obs, next_state
    assert len(buf) == 6
    batch = buf.gather(torch.arange(6))
    for t, (o, a, r, no) in enumerate(recorded):
        for i, agent in enumerate(agents):
            assert np.array_equal(batch.obs[t, i].numpy(), o[agent])
            assert np.array_equal(batch.action[t, i].numpy(), a[agent])
            assert batch.reward[t, i].item() == pytest.approx(r[agent])
            assert np.array_equal(batch.next_obs[t, i].numpy(), no[agent])
    assert torch.equal(batch.obs[1:], batch.next_obs[:-1])  # consecutive steps chain
    assert (batch.not_done == 1.0).all()  # the episode ends by truncation only


def test_real_pettingzoo_parallel_env_discrete() -> None:
    rps = pytest.importorskip("pettingzoo.classic.rps_v2")
    env = rps.parallel_env(max_cycles=4)
    obs, _ = env.reset(seed=0)
    agents = tuple(env.possible_agents)
    n_act = int(env.action_space(agents[0]).n)
    buf = MultiAgentReplayBuffer(
        agents, 8, (), obs_dtype=torch.int64, action_dtype=torch.int64, num_actions=n_act
    )
    rng = np.random.default_rng(0)
    rewards_seen = []
    while env.agents:
        actions = {a: int(rng.integers(n_act)) for a in env.agents}
        next_obs, rewards, terms, truncs, _ = env.step(actions)
        buf.add(obs, actions, rewards, next_obs, terms, truncs)
        rewards_seen.append([rewards[a] for a in agents])
        obs = next_obs
    batch = buf.gather(torch.arange(len(buf)))
    assert batch.reward.tolist() == rewards_seen
    assert batch.action.dtype == torch.int64
    # Rock-paper-scissors is zero-sum: the two agents' rewards cancel.
    assert (batch.reward.sum(dim=1) == 0).all()
    # Each agent observes the other's last action.
    assert torch.equal(batch.next_obs[:, 0], batch.action[:, 1])


@pytest.mark.gpu
def test_buffer_on_cuda() -> None:
    buf = make_buffer(capacity=4, device="cuda")
    for t in range(3):
        buf.add(**step_dicts(t))
    batch = buf.sample(8, torch.Generator().manual_seed(0))  # uniform sampler draws on the CPU
    assert batch.obs.device.type == "cuda"
    assert torch.equal(batch.obs[:, 0, 0].long(), batch.indices)
