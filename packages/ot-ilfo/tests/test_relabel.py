"""OTRelabelStore: episode-end relabelling touches only the finished episode; exact resume."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from ot_ilfo import OTRelabelStore, OTRewarder, RewardConfig
from rl_buffers import ReplayBuffer, TransitionSpec, io
from rl_buffers.testing import assert_same_state

STATE_DIM = 3
CFG = RewardConfig(solver="emd")


def _experts(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(42)
    return [np.cumsum(rng.normal(size=(9, STATE_DIM)) * 0.3, axis=0) for _ in range(n)]


def _store(seed: int = 0, *, time_entry: bool = False, log=None) -> OTRelabelStore:
    obs_dim = STATE_DIM + int(time_entry)
    buf = ReplayBuffer(spec=TransitionSpec.continuous((obs_dim,), 2), capacity=100)
    return OTRelabelStore(
        buf,
        OTRewarder(_experts(), CFG),
        seed=seed,
        state_dims=STATE_DIM if time_entry else None,
        on_episode=None if log is None else log.append,
    )


def _episode(rng: np.random.Generator, length: int, obs_dim: int = STATE_DIM, *, end="trunc"):
    states = torch.as_tensor(rng.normal(size=(length + 1, obs_dim)), dtype=torch.float32)
    actions = torch.as_tensor(rng.uniform(-1, 1, size=(length, 2)), dtype=torch.float32)
    steps = []
    for t in range(length):
        last = t == length - 1
        steps.append(
            (
                states[t],
                actions[t],
                torch.tensor(1e6),  # an env reward that must never reach the buffer
                states[t + 1],
                torch.tensor(last and end == "term"),
                torch.tensor(last and end == "trunc"),
            )
        )
    return states, actions, steps


def test_relabelling_touches_only_the_finished_episode() -> None:
    rng = np.random.default_rng(0)
    log = []
    store = _store(log=log)
    _states1, _, ep1 = _episode(rng, 6)
    for step in ep1:
        store.add(*step)
    assert len(store) == 6
    first = store.buffer.sample(64, torch.Generator().manual_seed(0))
    assert float(first.reward.abs().max()) < 1e5  # OT rewards, not the env's
    before = copy.deepcopy(store.buffer.state_dict())

    states2, _, ep2 = _episode(rng, 5, end="term")
    for step in ep2[:-1]:
        store.add(*step)
        assert store.num_staged > 0
        # Staged steps are invisible to the buffer: its whole state is unchanged.
        assert_same_state(store.buffer.state_dict(), before)
    store.add(*ep2[-1])
    assert store.num_staged == 0
    assert len(store) == 11
    # The first episode's rewards are untouched; the second's are its own OT rewards.
    assert_same_state(_rewards_of(store, 0, 6), _rewards_of_state(before, 0, 6))
    expert = log[1].expert_index
    expected = store.rewarder.rewards(states2.double().numpy(), expert_index=expert).rewards
    np.testing.assert_allclose(_rewards_of(store, 6, 11).numpy(), expected, rtol=1e-6)
    assert [s.length for s in log] == [6, 5]
    assert log[1].ot_return == pytest.approx(float(expected.sum()), rel=1e-6)


def test_expert_trajectory_is_drawn_per_episode_from_the_seeded_generator() -> None:
    logs: list[list] = [[], []]
    for log in logs:
        store = _store(seed=7, log=log)
        rng = np.random.default_rng(1)
        for _ in range(12):
            for step in _episode(rng, 3)[2]:
                store.add(*step)
    draws = [s.expert_index for s in logs[0]]
    assert draws == [s.expert_index for s in logs[1]]
    assert set(draws) == {0, 1, 2}


def test_time_entry_is_left_out_of_the_state() -> None:
    rng = np.random.default_rng(2)
    log = []
    store = _store(time_entry=True, log=log)
    states, _, steps = _episode(rng, 4, obs_dim=STATE_DIM + 1)
    for step in steps:
        store.add(*step)
    expected = store.rewarder.rewards(
        states[:, :STATE_DIM].double().numpy(), expert_index=log[0].expert_index
    )
    np.testing.assert_allclose(_rewards_of(store, 0, 4).numpy(), expected.rewards, rtol=1e-6)


def test_resume_mid_episode_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    episodes = [_episode(rng, n)[2] for n in (5, 7, 4)]
    flat = [step for ep in episodes for step in ep]

    straight = _store(seed=11)
    for step in flat:
        straight.add(*step)

    first = _store(seed=11)
    cut = 8  # inside the second episode
    for step in flat[:cut]:
        first.add(*step)
    assert first.num_staged == 3
    io.save(first.state_dict(), tmp_path / "store.pt")
    resumed = _store(seed=999)  # another seed: the state must bring the generator back
    resumed.load_state_dict(io.load(tmp_path / "store.pt"))
    assert resumed.num_staged == 3
    for step in flat[cut:]:
        resumed.add(*step)
    assert_same_state(resumed.state_dict(), straight.state_dict())


def test_bad_input_is_named() -> None:
    rng = np.random.default_rng(4)
    store = _store()
    _, _, steps = _episode(rng, 3)
    obs, action, reward, next_obs, term, trunc = steps[0]
    with pytest.raises(ValueError, match=r"obs: expected shape \(3,\)"):
        store.add(obs[:2], action, reward, next_obs, term, trunc)
    with pytest.raises(ValueError, match=r"action: expected shape \(2,\)"):
        store.add(obs, action[:1], reward, next_obs, term, trunc)
    with pytest.raises(ValueError, match="next_obs: has NaN"):
        store.add(obs, action, reward, torch.full((3,), float("nan")), term, trunc)
    store.add(*steps[0])
    with pytest.raises(ValueError, match="does not continue the staged episode"):
        store.add(obs + 1, action, reward, next_obs, term, trunc)
    buf = ReplayBuffer(spec=TransitionSpec.continuous((3,), 2), capacity=10)
    with pytest.raises(ValueError, match="expert states have 3 dimensions"):
        OTRelabelStore(buf, OTRewarder([np.zeros((4, 3))]), seed=0, state_dims=2)
    with pytest.raises(ValueError, match="not an OTRelabelStore state"):
        store.load_state_dict({"format": "x"})


# ------------------------------------------------------------------------------- helpers


def _rewards_of_state(buffer_state, lo: int, hi: int) -> torch.Tensor:
    return torch.as_tensor(buffer_state["storage"]["reward"])[lo:hi]


def _rewards_of(store: OTRelabelStore, lo: int, hi: int) -> torch.Tensor:
    return _rewards_of_state(store.buffer.state_dict(), lo, hi)


def test_solver_warnings_are_shown_once_and_recorded_per_episode() -> None:
    """A run whose solves never converge is not one warning per episode: the store shows the
    first and every episode's stats say what its solve warned."""
    import warnings

    from ot_ilfo import OTConvergenceWarning

    rng = np.random.default_rng(0)
    log = []
    buf = ReplayBuffer(spec=TransitionSpec.continuous((STATE_DIM,), 2), capacity=100)
    capped = RewardConfig(solver="sinkhorn_log", max_iter=1)  # cannot converge in 1 iteration
    store = OTRelabelStore(buf, OTRewarder(_experts(), capped), seed=0, on_episode=log.append)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(4):
            for step in _episode(rng, 5)[2]:
                store.add(*step)
    shown = [w for w in caught if issubclass(w.category, OTConvergenceWarning)]
    assert len(shown) == 1
    assert "episode 0: sinkhorn_log" in str(shown[0].message)
    assert "not converged" in str(shown[0].message)
    assert len(log) == 4
    assert all(not s.converged and s.warnings for s in log)
    assert "not converged after" in log[3].warnings[0]
