"""The OT reward: hand-computed couplings and rewards, invariances, solver reporting, bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ot_ilfo import (
    OTConvergenceWarning,
    OTRewarder,
    RewardConfig,
    StateNormalizer,
    TrajectoryError,
    cost_matrix,
    solve_coupling,
)

EMD_STATE = RewardConfig(atoms="state", cost="euclidean", solver="emd")


def test_emd_two_by_two_matches_the_identity_coupling() -> None:
    cost = np.array([[0.0, 1.0], [1.0, 0.0]])
    plan, info = solve_coupling(cost, solver="emd", reg=0.05)
    np.testing.assert_allclose(plan, [[0.5, 0.0], [0.0, 0.5]])
    assert info.converged
    assert info.marginal_error == 0.0


def test_emd_three_expert_atoms_against_two_learner_atoms() -> None:
    # Expert points 0, 1, 3 (mass 1/3 each), learner points 0, 3 (mass 1/2 each). The expert
    # atom at 1 must split: 1/6 to each learner atom, and the optimum is unique.
    cost = cost_matrix(np.array([[0.0], [1.0], [3.0]]), np.array([[0.0], [3.0]]), "euclidean")
    np.testing.assert_allclose(cost, [[0, 3], [1, 2], [3, 0]])
    plan, _ = solve_coupling(cost, solver="emd", reg=0.05)
    np.testing.assert_allclose(plan, [[1 / 3, 0], [1 / 6, 1 / 6], [0, 1 / 3]], atol=1e-12)
    assert float((cost * plan).sum()) == pytest.approx(0.5)


@pytest.mark.parametrize("solver", ["sinkhorn", "sinkhorn_log"])
def test_sinkhorn_matches_hand_iterated_scaling(solver) -> None:
    cost = np.array([[0.0, 1.0, 0.3], [2.0, 0.5, 1.0]])
    reg = 0.5
    a, b = np.full(2, 0.5), np.full(3, 1 / 3)
    # Sinkhorn by hand: P = diag(u) K diag(v), alternately matching the row and column sums.
    k = np.exp(-cost / reg)
    u, v = np.ones(2), np.ones(3)
    for _ in range(2000):
        u = a / (k @ v)
        v = b / (k.T @ u)
    expected = u[:, None] * k * v[None, :]
    plan, info = solve_coupling(cost, solver=solver, reg=reg, max_iter=5000, stop_thr=1e-13)
    np.testing.assert_allclose(plan, expected, rtol=1e-9, atol=1e-12)
    assert info.converged
    np.testing.assert_allclose(plan.sum(axis=1), a, atol=1e-12)


def test_rewards_by_hand_on_one_dimensional_states() -> None:
    # Statistics over s_0, s_1 = 0, 2: mean 1, std 1 -> atoms (s - 1) / (3 + 1e-8).
    rewarder = OTRewarder([np.array([[0.0], [2.0], [4.0]])], EMD_STATE)
    scale = 3.0 + 1e-8
    np.testing.assert_allclose(rewarder.expert_atoms[0], [[1 / scale], [3 / scale]])
    # Learner lands on 2 then 3: atoms 1/3 and 2/3 (over scale); the plan pairs them in order.
    result = rewarder.rewards(np.array([[0.0], [2.0], [3.0]]))
    np.testing.assert_allclose(result.plan, [[0.5, 0.0], [0.0, 0.5]])
    sigma = 5.0 * 2 / math.sqrt(1)
    assert result.sigma == sigma
    np.testing.assert_allclose(result.rewards, [0.0, -sigma * (1 / scale) * 0.5])
    np.testing.assert_array_equal(result.matching, [0, 1])


def test_default_recipe_by_hand_on_state_pairs() -> None:
    # Paper defaults: (s, s') atoms, sqrt-Euclidean cost. Two expert states per pair.
    expert = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    rewarder = OTRewarder([expert], RewardConfig(solver="emd"))
    norm = rewarder.state_normalizer
    # Stats over (0, 0), (1, 0): mean (0.5, 0); std (0.5, 0 -> 1), floored at 0.33.
    np.testing.assert_allclose(norm.mean, [0.5, 0.0])
    np.testing.assert_allclose(norm.std, [0.5, 1.0])
    learner = expert + np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.3]])
    result = rewarder.rewards(learner)
    # Pair 0 is identical; pair 1's next state moves by 0.3 / (3 * 1 + 1e-8) in feature 2.
    shift = 0.3 / (3.0 + 1e-8)
    sigma = 5.0 * 2 / math.sqrt(2)
    np.testing.assert_allclose(result.rewards, [0.0, -sigma * math.sqrt(shift) * 0.5], rtol=1e-9)


@pytest.mark.filterwarnings("ignore::ot_ilfo.rewards.OTConvergenceWarning")
@pytest.mark.parametrize("cost", ["sqrt_euclidean", "euclidean", "sqeuclidean", "cosine"])
def test_learner_equal_to_expert_earns_the_maximal_reward(cost) -> None:
    rng = np.random.default_rng(0)
    expert = np.cumsum(rng.normal(size=(31, 4)), axis=0)
    emd = OTRewarder([expert], RewardConfig(solver="emd", cost=cost))
    same = emd.rewards(expert)
    np.testing.assert_allclose(same.rewards, 0.0, atol=1e-9)  # zero cost: the largest reward
    for scale in (0.05, 0.5):
        other = emd.rewards(expert + scale * rng.normal(size=expert.shape))
        assert other.rewards.sum() < same.rewards.sum()
    sinkhorn = OTRewarder([expert], RewardConfig(cost=cost))
    best = sinkhorn.rewards(expert).rewards.sum()
    for scale in (0.05, 0.5):
        assert sinkhorn.rewards(expert + scale * rng.normal(size=expert.shape)).rewards.sum() < best


def test_trajectories_of_different_lengths_use_uniform_marginals() -> None:
    rng = np.random.default_rng(1)
    rewarder = OTRewarder([rng.normal(size=(8, 3))])
    result = rewarder.rewards(rng.normal(size=(4, 3)))
    assert result.rewards.shape == (3,)
    np.testing.assert_allclose(result.plan.sum(axis=1), 1 / 7, atol=1e-4)
    np.testing.assert_allclose(result.plan.sum(axis=0), 1 / 3, atol=1e-6)
    assert result.sigma == pytest.approx(5.0 * 3 / math.sqrt(3))
    per_step = -result.rewards / result.sigma * 3  # plan-weighted mean cost of each step
    assert np.all(per_step <= result.cost.max(axis=0) + 1e-9)
    assert np.all(per_step >= result.cost.min(axis=0) - 1e-9)


atoms_strategy = st.integers(2, 7).flatmap(
    lambda n: st.tuples(
        st.lists(
            st.lists(st.floats(-3, 3, allow_nan=False), min_size=3, max_size=3),
            min_size=n,
            max_size=n,
        ),
        st.permutations(list(range(n - 1))),
    )
)


@settings(max_examples=30, deadline=None)
@given(data=atoms_strategy, seed=st.integers(0, 2**16))
def test_rewards_are_invariant_to_the_order_of_expert_atoms(data, seed) -> None:
    states, perm = data
    expert = np.asarray(states)
    rng = np.random.default_rng(seed)
    learner = rng.normal(size=(5, 3))
    for solver in ("sinkhorn", "emd"):
        rewarder = OTRewarder([expert], RewardConfig(solver=solver, stop_thr=1e-12, max_iter=20000))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OTConvergenceWarning)
            before = rewarder.rewards(learner)
            # Permute the expert's (s, s') atoms: the reward only sees them as a set.
            rewarder.expert_atoms[0] = rewarder.expert_atoms[0][list(perm)]
            after = rewarder.rewards(learner)
        # EMD's plan may change between tied optima, but the total cost may not.
        assert after.transport_cost == pytest.approx(before.transport_cost, abs=1e-9)
        if solver == "sinkhorn":  # the entropic plan is unique: per-step rewards are equal
            np.testing.assert_allclose(after.rewards, before.rewards, rtol=1e-6, atol=1e-9)


def test_normalizer_floor_and_constant_features() -> None:
    data = [np.array([[0.0, 5.0, 0.0], [0.2, 5.0, 10.0]])]
    norm = StateNormalizer.fit(data, std_floor=0.33)
    np.testing.assert_allclose(norm.mean, [0.1, 5.0, 5.0])
    np.testing.assert_allclose(norm.std, [0.33, 1.0, 5.0])  # floored, constant -> 1, kept
    clipped = StateNormalizer.fit(data, std_floor=0.33, clip=0.5)
    assert clipped(np.array([100.0, 5.0, 5.0]))[0] == 0.5


def test_cost_options_by_hand() -> None:
    x, y = np.array([[3.0, 4.0]]), np.array([[0.0, 0.0], [6.0, 8.0]])
    np.testing.assert_allclose(cost_matrix(x, y, "euclidean"), [[5.0, 5.0]])
    np.testing.assert_allclose(cost_matrix(x, y, "sqeuclidean"), [[25.0, 25.0]])
    np.testing.assert_allclose(cost_matrix(x, y, "sqrt_euclidean"), [[math.sqrt(5), math.sqrt(5)]])
    np.testing.assert_allclose(cost_matrix(x, y[1:], "cosine"), [[0.0]], atol=1e-12)


def test_state_action_atoms_need_actions() -> None:
    rng = np.random.default_rng(0)
    s, a = rng.normal(size=(6, 2)), rng.normal(size=(5, 1))
    rewarder = OTRewarder([s], RewardConfig(atoms="state_action", solver="emd"), expert_actions=[a])
    assert rewarder.rewards(s, a).rewards == pytest.approx(np.zeros(5), abs=1e-9)
    with pytest.raises(TrajectoryError, match="needs them"):
        rewarder.rewards(s)
    with pytest.raises(ValueError, match="state_action"):
        OTRewarder([s], RewardConfig(atoms="state_action"))
    with pytest.raises(ValueError, match="does not use them"):
        OTRewarder([s], expert_actions=[a])


def test_non_convergence_is_reported_not_hidden() -> None:
    rng = np.random.default_rng(0)
    rewarder = OTRewarder([rng.normal(size=(20, 3))], RewardConfig(max_iter=2, stop_thr=1e-12))
    with pytest.warns(OTConvergenceWarning, match="not converged"):
        result = rewarder.rewards(rng.normal(size=(20, 3)))
    assert not result.info.converged
    assert result.info.iterations <= 2


def test_underflowing_kernel_falls_back_to_the_log_domain_with_a_warning() -> None:
    cost = np.array([[0.0, 80.0], [80.0, 0.0]])
    with pytest.warns(OTConvergenceWarning, match="log domain"):
        plan, info = solve_coupling(cost, solver="sinkhorn", reg=0.05)
    assert info.fell_back
    assert info.solver == "sinkhorn_log"
    np.testing.assert_allclose(plan, [[0.5, 0.0], [0.0, 0.5]], atol=1e-12)


@pytest.mark.parametrize(
    ("learner", "match"),
    [
        (np.zeros((0, 3)), "at least 2 rows"),
        (np.zeros((1, 3)), "at least 2 rows"),
        (np.zeros((5, 4)), "4 features per step, expected 3"),
        (np.zeros(5), r"shape \(N, D\)"),
        (np.array([[0.0, 0.0, 0.0], [0.0, np.nan, 0.0]]), "NaN or inf at step 1, feature 1"),
        (np.array([["a", "b", "c"]] * 3), "numeric"),
    ],
)
def test_bad_learner_trajectories_are_named(learner, match) -> None:
    rewarder = OTRewarder([np.zeros((4, 3))])
    with pytest.raises(TrajectoryError, match=match):
        rewarder.rewards(learner)


def test_bad_expert_input_is_named() -> None:
    with pytest.raises(ValueError, match="at least one expert"):
        OTRewarder([])
    with pytest.raises(TrajectoryError, match="expert trajectory 1 states: has 2 features"):
        OTRewarder([np.zeros((4, 3)), np.zeros((4, 2))])
    with pytest.raises(TrajectoryError, match="expert trajectory 0 states: NaN"):
        OTRewarder([np.full((4, 3), np.nan)])
    with pytest.raises(IndexError, match="expert_index 3"):
        OTRewarder([np.zeros((4, 3))]).rewards(np.zeros((4, 3)), expert_index=3)
    with pytest.raises(ValueError, match="reg must be"):
        RewardConfig(reg=0.0)
    with pytest.raises(ValueError, match="solver must be one of"):
        RewardConfig(solver="exact")  # type: ignore[arg-type]
