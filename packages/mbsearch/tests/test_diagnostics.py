"""The overestimation diagnostic on hand-computed trajectories."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mbsearch.diagnostics import (
    OverestimationTracker,
    counted_states,
    discounted_returns,
    relative_overestimation,
)
from mbsearch_testkit import SPEC, micro
from mrq_drq.replay import make_buffer
from rl_runtime.offpolicy import SeededReplay


def test_returns_and_overestimation_by_hand() -> None:
    rewards = torch.tensor([1.0, 2.0, 3.0])
    g = discounted_returns(rewards, 0.5)
    # G_2 = 3, G_1 = 2 + 0.5 * 3 = 3.5, G_0 = 1 + 0.5 * 3.5 = 2.75
    torch.testing.assert_close(g, torch.tensor([2.75, 3.5, 3.0], dtype=torch.float64))
    q = torch.tensor([3.0, 3.0, 3.0])
    # mean(q - G) = (0.25 - 0.5 + 0) / 3; mean |G| = 9.25 / 3
    assert float(relative_overestimation(q, g)) == pytest.approx(-0.25 / 9.25)
    assert float(relative_overestimation(g.float() * 1.5, g)) == pytest.approx(0.5)
    negative = torch.tensor([-2.0, -4.0])
    # Negative returns: overestimating is still positive (divided by |G|).
    assert float(relative_overestimation(torch.tensor([-1.0, -3.0]), negative)) == pytest.approx(
        1.0 / 3.0
    )
    with pytest.raises(ValueError, match="equal shapes"):
        relative_overestimation(torch.zeros(3), torch.zeros(2))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=20),
    st.floats(0.0, 0.999),
)
def test_returns_satisfy_the_bellman_recursion(rewards: list[float], gamma: float) -> None:
    r = torch.tensor(rewards, dtype=torch.float64)
    g = discounted_returns(r, gamma)
    nxt = torch.cat([g[1:], torch.zeros(1, dtype=torch.float64)])
    torch.testing.assert_close(g, r + gamma * nxt)


def test_counted_states() -> None:
    assert counted_states(10, terminated=True, min_tail=460) == 10
    assert counted_states(1000, terminated=False, min_tail=460) == 541  # t <= 540
    assert counted_states(100, terminated=False, min_tail=460) == 0
    assert counted_states(7, terminated=False, min_tail=0) == 7


def test_tracker_measures_each_finished_episode() -> None:
    cfg = micro()
    replay = SeededReplay(make_buffer(cfg.mrq, SPEC), seed=0)
    seen: list[torch.Tensor] = []

    def critics(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        seen.append(obs)
        q = obs[:, 0] * 0 + 5.0  # every critic says 5, the second says 7
        return torch.stack([q, q + 2.0])

    on = [False]
    tracker = OverestimationTracker(replay, critics, discount=0.5, min_tail=2, active=lambda: on[0])

    def episode(rewards: list[float], *, terminated: bool) -> None:
        for i, r in enumerate(rewards):
            last = i == len(rewards) - 1
            tracker.add(
                torch.full((5,), float(i)), torch.zeros(2), torch.tensor(r),
                torch.full((5,), float(i + 1)), torch.tensor(last and terminated),
                torch.tensor(last and not terminated),
            )  # fmt: skip

    episode([1.0, 1.0], terminated=True)  # inactive: nothing measured
    assert tracker.pop_metrics() == {}
    assert not seen
    assert len(tracker) == 2
    on[0] = True
    episode([4.0, 2.0, 2.0], terminated=False)  # truncated: states with >= 2 rewards to go
    m = tracker.pop_metrics()
    # G = [4 + 0.5 * (2 + 0.5 * 2), 2 + 0.5 * 2] = [5.5, 3.0] for the 2 counted states.
    assert seen[-1].shape == (2, 5)
    assert float(m["mc_return"]) == pytest.approx(4.25)
    assert float(m["q_visited"]) == pytest.approx(5.0)
    assert float(m["overestimation"]) == pytest.approx((5 - 4.25) / 4.25)
    assert float(m["overestimation_mean"]) == pytest.approx((6 - 4.25) / 4.25)
    assert tracker.pop_metrics() == {}  # reported once
    assert len(tracker) == 5

    # The episode in progress survives a checkpoint.
    episode([3.0], terminated=False)  # 1 step, truncated: none counted
    tracker.add(torch.zeros(5), torch.zeros(2), torch.tensor(1.0), torch.ones(5),
                torch.tensor(False), torch.tensor(False))  # fmt: skip
    state = tracker.state_dict()
    other = OverestimationTracker(
        SeededReplay(make_buffer(cfg.mrq, SPEC), seed=1), critics, discount=0.5, min_tail=2,
        active=lambda: True,
    )  # fmt: skip
    other.load_state_dict(state)
    for t in (tracker, other):
        t.add(torch.ones(5), torch.zeros(2), torch.tensor(3.0), torch.ones(5),
              torch.tensor(True), torch.tensor(False))  # fmt: skip
    a, b = tracker.pop_metrics(), other.pop_metrics()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert float(a["mc_return"]) == pytest.approx(((1 + 1.5) + 3) / 2)
    assert math.isfinite(float(a["overestimation"]))
