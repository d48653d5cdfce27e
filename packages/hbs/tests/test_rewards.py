"""Reward functions on hand-built observation pairs, and the registry."""

from __future__ import annotations

import pytest
import torch
from hbs.envs import BL_AC, BL_DEPTH, BL_DLEVEL, BL_DNUM, BL_GOLD, BL_HP, BL_HUNGER, BL_SCORE
from hbs.rewards import (
    REWARDS,
    RewardError,
    RewardState,
    Transition,
    check_rewards,
    compute_rewards,
    message_contains,
    reward_function,
)
from hbs_testkit import LAYOUT, batch, make_obs
from hypothesis import given, settings
from hypothesis import strategies as st

NAMES = ("score", "health", "gold", "eating", "scout", "descend", "kills", "armor")


def rewards_of(prev, nxt, died=(False,), names=NAMES, state=None):
    prev_b = prev if prev.ndim == 2 else batch(prev)
    next_b = nxt if nxt.ndim == 2 else batch(nxt)
    state = state or RewardState(check_rewards(names, LAYOUT.keys), prev_b.shape[0])
    out = compute_rewards(LAYOUT, prev_b, next_b, torch.tensor(died), state)
    return {name: out[:, j].tolist() for j, name in enumerate(names)}


def test_gold_pickup_pays_gold_and_score() -> None:
    prev = make_obs(blstats={BL_GOLD: 3, BL_SCORE: 3})
    nxt = make_obs(blstats={BL_GOLD: 15, BL_SCORE: 15}, message="12 gold pieces.")
    r = rewards_of(prev, nxt)
    assert r["gold"] == [12.0]
    assert r["score"] == [12.0]
    assert r["health"] == r["kills"] == r["descend"] == r["armor"] == [0.0]


def test_kill_messages_count_you_kill_and_you_destroy_only() -> None:
    prev = make_obs()
    cases = {
        "You kill the newt!": 1.0,
        "You destroy the kobold zombie!": 1.0,
        "you kill it!  You kill the jackal!": 2.0,  # two messages on one line, any case
        "The newt is killed!": 0.0,  # passive: not the agent's kill (SOL's phrases)
        "The kitten kills the newt.": 0.0,
        "": 0.0,
    }
    for message, expected in cases.items():
        assert rewards_of(prev, make_obs(message=message))["kills"] == [expected], message


def test_descent_counts_depth_not_dlevel() -> None:
    prev = make_obs(blstats={BL_DEPTH: 3, BL_DNUM: 0, BL_DLEVEL: 3})
    # Into the Gnomish Mines: DLEVEL restarts at 1 in the new branch, DEPTH goes on.
    mines = make_obs(blstats={BL_DEPTH: 4, BL_DNUM: 2, BL_DLEVEL: 1})
    assert rewards_of(prev, mines)["descend"] == [1.0]
    trapdoor = make_obs(blstats={BL_DEPTH: 5, BL_DLEVEL: 5})
    assert rewards_of(prev, trapdoor)["descend"] == [2.0]
    up = make_obs(blstats={BL_DEPTH: 2, BL_DLEVEL: 2})
    assert rewards_of(prev, up)["descend"] == [0.0]


def test_death_blank_observation_is_not_read_as_losses() -> None:
    prev = make_obs(blstats={BL_GOLD: 40, BL_SCORE: 90, BL_HP: 3, BL_AC: 4}, seen=50)
    r = rewards_of(prev, make_obs(blank=True), died=(True,))
    assert r == {key: [0.0] for key in NAMES}


def test_health_is_zero_on_death_and_the_hp_change_otherwise() -> None:
    prev = make_obs(blstats={BL_HP: 7})
    assert rewards_of(prev, make_obs(blstats={BL_HP: 4}))["health"] == [-3.0]
    assert rewards_of(prev, make_obs(blstats={BL_HP: 9}))["health"] == [2.0]
    # a non-blank last observation of a death still pays no health change
    assert rewards_of(prev, make_obs(blstats={BL_HP: 0}), died=(True,))["health"] == [0.0]


def test_armor_class_improvement_is_positive() -> None:
    prev = make_obs(blstats={BL_AC: 6})
    assert rewards_of(prev, make_obs(blstats={BL_AC: 4}))["armor"] == [2.0]
    assert rewards_of(prev, make_obs(blstats={BL_AC: 7}))["armor"] == [-1.0]


def test_eating_on_finished_meal_or_better_hunger() -> None:
    prev = make_obs(blstats={BL_HUNGER: 2})
    assert rewards_of(prev, make_obs(blstats={BL_HUNGER: 1}))["eating"] == [1.0]
    done = make_obs(blstats={BL_HUNGER: 2}, message="You finish eating the food ration.")
    assert rewards_of(prev, done)["eating"] == [1.0]
    assert rewards_of(prev, make_obs(blstats={BL_HUNGER: 3}))["eating"] == [0.0]


def test_scout_pays_newly_seen_squares_once_per_level() -> None:
    state = RewardState(check_rewards(("scout",), LAYOUT.keys), 1)

    def step(prev, nxt):
        return rewards_of(prev, nxt, names=("scout",), state=state)["scout"][0]

    a10, a25 = make_obs(seen=10), make_obs(seen=25)
    assert step(a10, a25) == 15.0  # the reset observation's 10 are not paid
    assert step(a25, a10) == 0.0  # forgetting squares costs nothing
    assert step(a10, a25) == 0.0  # seeing them again pays nothing
    assert step(a25, make_obs(seen=30)) == 5.0
    # another level: its own count
    lvl2 = make_obs(seen=7, blstats={BL_DEPTH: 2, BL_DLEVEL: 2})
    assert step(make_obs(seen=30), lvl2) == 7.0
    state.reset(torch.tensor([True]))  # a new episode forgets the levels
    assert step(a10, a25) == 15.0


def test_rewards_are_independent_per_env() -> None:
    prev = batch(make_obs(blstats={BL_GOLD: 1}), make_obs(blstats={BL_HP: 5}))
    nxt = batch(make_obs(blstats={BL_GOLD: 4}), make_obs(blank=True))
    r = rewards_of(prev, nxt, died=(False, True))
    assert r["gold"] == [3.0, 0.0]
    assert r["health"] == [0.0, 0.0]


@settings(max_examples=30, deadline=None)
@given(
    gold=st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), min_size=1, max_size=6),
    perm_seed=st.integers(0, 1000),
)
def test_permuting_envs_permutes_rewards(gold: list[tuple[int, int]], perm_seed: int) -> None:
    prev = batch(*(make_obs(blstats={BL_GOLD: a, BL_SCORE: a}, seen=a % 40) for a, _ in gold))
    nxt = batch(*(make_obs(blstats={BL_GOLD: b, BL_SCORE: b}, seen=b % 40) for _, b in gold))
    died = [False] * len(gold)
    perm = torch.randperm(len(gold), generator=torch.Generator().manual_seed(perm_seed))
    full = rewards_of(prev, nxt, died=died)
    permuted = rewards_of(prev[perm], nxt[perm], died=died)
    for name in NAMES:
        assert permuted[name] == [full[name][i] for i in perm.tolist()]
    assert full["gold"] == [float(b - a) for a, b in gold]


def test_message_contains_ignores_case_and_empty_lines() -> None:
    msgs = batch(make_obs(message="YOU KILL the newt!"), make_obs()).reshape(2, -1)
    message = LAYOUT.split(msgs).message
    assert message is not None
    assert message_contains(message, "you kill").tolist() == [1, 0]


def test_a_user_reward_is_one_function() -> None:
    @reward_function("test_experience")
    def experience(t: Transition) -> torch.Tensor:
        return (t.next.blstats[:, 19] - t.prev.blstats[:, 19]).float()

    try:
        r = rewards_of(make_obs(), make_obs(blstats={19: 20}), names=("gold", "test_experience"))
        assert r == {"gold": [0.0], "test_experience": [20.0]}
        with pytest.raises(ValueError, match="already registered"):
            reward_function("test_experience")(experience)
    finally:
        del REWARDS["test_experience"]


def test_unknown_reward_and_missing_key_are_named() -> None:
    with pytest.raises(RewardError, match="unknown reward function 'speed'"):
        check_rewards(("score", "speed"), LAYOUT.keys)
    with pytest.raises(RewardError, match="'kills' reads the 'message' observation"):
        check_rewards(("kills",), ("glyphs", "blstats"))
