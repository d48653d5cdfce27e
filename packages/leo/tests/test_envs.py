"""The Gridworld's dynamics, optimistic resets, and Craftax's one-hot observations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from leo.envs import CraftaxGoalEnv, Gridworld, optimistic_slots

LEFT, RIGHT, UP, DOWN = range(4)


def test_gridworld_moves_are_clipped_and_blocked_by_walls() -> None:
    env = Gridworld(1, size=4, wall_threshold=0.0, reset_ratio=1)
    env.walls[1, 2] = 1  # a wall above the centre (2, 2)
    assert env.reset(0).tolist() == [[2.0, 2.0]]
    assert env.step(torch.tensor([UP])).next_obs.tolist() == [[2.0, 2.0]]  # blocked
    assert env.step(torch.tensor([LEFT])).next_obs.tolist() == [[2.0, 1.0]]
    env.step(torch.tensor([LEFT]))
    assert env.step(torch.tensor([LEFT])).next_obs.tolist() == [[2.0, 0.0]]  # the border
    assert env.step(torch.tensor([DOWN])).next_obs.tolist() == [[3.0, 0.0]]


def test_gridworld_episodes_end_at_the_time_limit_and_restart_at_the_centre() -> None:
    env = Gridworld(16, size=8, reset_ratio=4, max_steps=60, seed=3)
    env.reset(0)
    start = env.clock.clone()
    assert bool(((start >= 0) & (start < 50)).all())
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        before = env.clock.clone()
        res = env.step(torch.randint(0, 4, (16,), generator=gen))
        ended = res.done
        assert torch.equal(ended, before == 59)  # ends exactly at the limit
        assert bool((res.obs[ended] == 4.0).all())  # restarted at the centre
        assert torch.equal(res.obs[~ended], res.next_obs[~ended])


@settings(max_examples=50, deadline=None)
@given(done=st.lists(st.booleans(), min_size=1, max_size=64), resets=st.integers(1, 8))
def test_optimistic_slots_share_a_world_only_past_the_fresh_count(done, resets) -> None:
    d = torch.tensor(done)
    slots = optimistic_slots(d, resets)[d]
    k = int(d.sum())
    assert slots.tolist() == [i % resets for i in range(k)]
    counts = torch.bincount(slots, minlength=resets) if k else torch.zeros(resets)
    assert int(counts.max()) <= -(-k // resets) if k else True
    if k <= resets:
        assert len(set(slots.tolist())) == k  # every ended env its own fresh world


def test_reset_ratio_sets_how_many_fresh_starts_a_step_draws() -> None:
    # ratio = N: one fresh start time per step, shared by every env that ends at that step
    env = Gridworld(8, size=6, reset_ratio=8, max_steps=60, seed=1)
    env.reset(0)
    env.clock = torch.full((8,), 59)  # all end at the next step
    env.step(torch.zeros(8, dtype=torch.int64))
    assert len(set(env.clock.tolist())) == 1
    # ratio = 1: a fresh start for every env
    env = Gridworld(8, size=6, reset_ratio=1, max_steps=60, seed=1)
    env.reset(0)
    env.clock = torch.full((8,), 59)
    env.step(torch.zeros(8, dtype=torch.int64))
    assert len(set(env.clock.tolist())) > 1
    with pytest.raises(ValueError, match="must divide"):
        Gridworld(10, reset_ratio=4)


def test_gridworld_state_round_trip_continues_exactly() -> None:
    env = Gridworld(8, size=6, reset_ratio=4, max_steps=60, seed=2)
    env.reset(0)
    acts = torch.randint(0, 4, (80, 8), generator=torch.Generator().manual_seed(0))
    for a in acts[:30]:
        env.step(a)
    state = env.state_dict()
    first = [env.step(a).obs for a in acts[30:]]
    env.load_state_dict(state)
    again = [env.step(a).obs for a in acts[30:]]
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))


def test_craftax_classic_one_hot_observations_goals_and_resume() -> None:
    """One compile: reset, step, the one-hot layout's invariants, goals, state round trip."""
    env = CraftaxGoalEnv("craftax-classic", 4, reset_ratio=2, seed=0)
    lay, goals = env.layout, env.goals
    obs = env.reset(0)
    assert obs.shape == (4, 1562)
    assert obs.dtype == torch.float32
    assert env.num_actions == 17
    acts = torch.randint(0, 17, (6, 4), generator=torch.Generator().manual_seed(0))
    res = env.step(acts[0])
    for x in (obs, res.next_obs):
        grid = x[:, : lay.map_size].view(4, 7, 9, 22)
        assert bool((grid[..., :17].sum(-1) == 1).all())  # one block per cell
        assert bool((grid[..., 17:].sum(-1) >= 1).all())  # a mob or the "no mob" channel
        inv = x[:, lay.flat_slice("inventory")].view(4, 12, 10)
        assert bool((inv.sum(-1) == 1).all())  # one count slot per item
        ach = goals.achieved(x)
        blocks = [i for i, n in enumerate(goals.names) if n.startswith("block_map/")]
        # one block on each of the 4 sides (WOOD / INVALID never occur in the world)
        assert ach[:, blocks].sum(-1).tolist() == [4] * 4
    # at the start: no wood yet, health 9 (intrinsics slot 9)
    assert not bool(goals.achieved(obs)[:, 0].any())
    assert bool((obs[:, lay.flat_index("intrinsics", 0, 9)] == 1).all())
    state = env.state_dict()
    first = [env.step(a).obs.clone() for a in acts[1:]]
    env.load_state_dict(state)
    again = [env.step(a).obs.clone() for a in acts[1:]]
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))


@pytest.mark.slow
def test_craftax_full_observation_layout() -> None:
    env = CraftaxGoalEnv("craftax", 2, reset_ratio=2, seed=0)
    obs = env.reset(0)
    assert obs.shape == (2, 9637)
    assert env.num_actions == 43
    ach = env.goals.achieved(obs)
    names = env.goals.names
    assert all(ach[:, names.index("dungeon_level/dlvl_0")].tolist())  # the overworld
    res = env.step(torch.zeros(2, dtype=torch.int64))
    assert res.next_obs.shape == (2, 9637)
