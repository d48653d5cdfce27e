"""The N-chain: the closed form against simulation, and the planners on the same budget."""

from __future__ import annotations

import numpy as np
import pytest
from mbsearch.chain import cem, closed_form, mppi_discrete, random_shooting, short_horizon_mpc


def test_closed_form_matches_the_papers_numbers() -> None:
    assert closed_form(10, 3, 1000) == pytest.approx(1 - (1 - 1e-3) ** 1000)
    assert closed_form(10, 3, 1000) == pytest.approx(0.632, abs=1e-3)
    assert closed_form(10, 10, 1000) == pytest.approx(1e-7, rel=1e-6)
    assert closed_form(2, 1, 1) == 0.5
    with pytest.raises(ValueError, match="need actions >= 2"):
        closed_form(1, 3, 10)


@pytest.mark.parametrize(
    ("actions", "length", "budget"),
    [(2, 3, 1), (2, 5, 10), (5, 2, 10), (10, 2, 100), (10, 3, 1000), (3, 6, 300)],
)
def test_random_shooting_simulation_agrees_with_the_closed_form(actions, length, budget) -> None:
    rng = np.random.default_rng(0)
    sim = random_shooting(actions, length, budget, trials=4000, rng=rng)
    p = closed_form(actions, length, budget)
    sigma = np.sqrt(p * (1 - p) / sim.trials)
    assert abs(sim.rate - p) <= 4 * sigma + 1e-12, (sim, p)


def test_short_horizon_mpc_with_exact_values_by_hand() -> None:
    # Horizon 1: a step's executed action is right iff one of its m draws is (if none is, the
    # executed one is wrong too), so the chain is solved with probability (1 - (1 - 1/A)^m)^n.
    a, n, m = 5, 4, 3
    q = 1 - (1 - 1 / a) ** m
    sim = short_horizon_mpc(a, n, m, horizon=1, trials=6000, rng=np.random.default_rng(1))
    p = q**n
    assert abs(sim.rate - p) <= 4 * np.sqrt(p * (1 - p) / sim.trials)
    # With a generous budget, horizon 1 + exact values solves a chain full-horizon search cannot.
    easy = short_horizon_mpc(10, 10, 100, horizon=1, trials=500, rng=np.random.default_rng(2))
    assert easy.rate > 0.99
    assert closed_form(10, 10, 100) < 1e-7


def test_iterative_planners_do_no_better_than_random_shooting_on_a_sparse_chain() -> None:
    rng = np.random.default_rng(3)
    rs = closed_form(4, 4, 240)  # 1 - (1 - 1/256)^240 ~ 0.61
    for planner in (cem, mppi_discrete):
        sim = planner(4, 4, 240, trials=1500, rng=rng)
        # The distribution can only move once a success is sampled: no better than uniform.
        assert sim.rate <= rs + 4 * np.sqrt(rs * (1 - rs) / sim.trials), (planner, sim, rs)
    # A one-step chain is nearly always solved: 6 rounds of 10 draws among 3 actions.
    assert cem(3, 1, 60, trials=400, rng=rng).rate > 0.97
    assert mppi_discrete(3, 1, 60, trials=400, rng=rng).rate > 0.97
