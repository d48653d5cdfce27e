"""The lending and college environments against ml-fairness-gym's specification: by hand, and
by seeded statistics with stated tolerances."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from fairbisim.config import CollegeConfig, LendingConfig
from fairbisim.envs import ENV_IDS, CollegeArrayEnv, LendingArrayEnv
from gymnasium.utils.env_checker import check_env
from rl_runtime.vecenv import ArrayVecEnv

ALL = torch.ones(1, dtype=torch.bool)


def _reset(env, seeds):
    n = env.num_envs
    return env.reset(torch.as_tensor(seeds, dtype=torch.int64), torch.ones(n, dtype=torch.bool))


def _std_tol(p: float, n: float) -> float:
    """5 standard errors of a frequency p estimated from n draws (false alarm < 1e-6)."""
    return 5 * math.sqrt(max(p * (1 - p), 1e-12) / n) + 1e-9


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_env_checker_and_seeding(env_id: str) -> None:
    env = gym.make(env_id)
    check_env(env.unwrapped)
    a, _ = env.reset(seed=3)
    b, _ = env.reset(seed=3)
    np.testing.assert_array_equal(a, b)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(20)]
    runs = []
    for _ in range(2):
        env.reset(seed=7)
        runs.append([env.step(x)[:2] for x in actions])
    for (o1, r1), (o2, r2) in zip(*runs, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2


# ------------------------------------------------------------------------------------------
# Lending


def test_lending_initial_distributions_match_the_specification() -> None:
    cfg = LendingConfig()
    n = 40_000
    env = LendingArrayEnv(cfg, n)
    _reset(env, np.arange(n))
    group, cluster = env.group.numpy(), env.cluster.numpy()
    assert abs((group == 1).mean() - 0.5) < _std_tol(0.5, n)
    for g in range(2):
        sel = cluster[group == g]
        for c, p in enumerate(cfg.cluster_probs[g]):
            assert abs((sel == c).mean() - p) < _std_tol(p, len(sel)), (g, c)
    # repayment probability per cluster (the applicants' will-repay flags)
    repay = env.repay.numpy()
    for c, p in enumerate(cfg.success_probs):
        sel = repay[cluster == c]
        if len(sel) > 1000:
            assert abs(sel.mean() - p) < _std_tol(p, len(sel)), c
    obs = env._obs()
    assert obs.shape == (n, 11)
    assert torch.equal(obs[:, :7].argmax(-1), env.cluster)
    assert torch.equal(obs[:, 7:9].argmax(-1), env.group)


def _set_applicant(env: LendingArrayEnv, group: int, cluster: int, repay: bool) -> None:
    env.group[:] = group
    env.cluster[:] = cluster
    env.repay[:] = repay


@pytest.mark.parametrize(
    ("cluster", "repay", "to"), [(3, True, 4), (3, False, 2), (6, True, 6), (0, False, 0)]
)
def test_lending_accept_moves_cash_and_credit_by_hand(cluster: int, repay: bool, to: int) -> None:
    cfg = LendingConfig(
        cluster_probs=((0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.1), (0.1, 0.1, 0.2, 0.3, 0.3, 0.0, 0.0))
    )
    env = LendingArrayEnv(cfg, 1)
    _reset(env, [0])
    _set_applicant(env, 0, cluster, repay)
    before = env.probs.clone()
    _, reward, terminated, truncated = env.step(torch.tensor([1]))
    assert float(reward) == (1.0 if repay else -1.0)  # interest 1.0 x loan 1, or -loan
    assert float(env.cash) == 10_000 + float(reward)
    expected = before.clone()
    if to != cluster:
        expected[0, 0, cluster] -= 0.01
        expected[0, 0, to] += 0.01
    torch.testing.assert_close(env.probs, expected, atol=1e-12, rtol=0)
    ind = env.last_individuals
    assert ind is not None
    assert int(ind.next_feature_accept[0, 0].argmax()) == to
    assert int(ind.next_feature_reject[0, 0].argmax()) == cluster
    assert bool(ind.accepted[0, 0])
    assert bool(ind.qualified[0, 0]) == repay
    assert not bool(terminated)
    assert not bool(truncated)


def test_lending_reject_changes_nothing_and_shift_is_capped_by_the_mass() -> None:
    env = LendingArrayEnv(LendingConfig(), 1)
    _reset(env, [1])
    _set_applicant(env, 1, 2, False)
    before = env.probs.clone()
    _, reward, _, _ = env.step(torch.tensor([0]))
    assert float(reward) == 0.0
    assert float(env.cash) == 10_000
    assert torch.equal(env.probs, before)
    # A cluster holding less than the increment gives all it has.
    env.probs[0, 1] = torch.tensor([0.004, 0.096, 0.2, 0.3, 0.3, 0.1, 0.0], dtype=torch.float64)
    _set_applicant(env, 1, 0, True)
    env.step(torch.tensor([1]))
    torch.testing.assert_close(
        env.probs[0, 1, :2], torch.tensor([0.0, 0.1], dtype=torch.float64), atol=1e-12, rtol=0
    )


def test_lending_episode_ends_when_cash_runs_out_and_at_the_time_limit() -> None:
    env = LendingArrayEnv(LendingConfig(bank_starting_cash=1.5, max_steps=5), 1)
    _reset(env, [0])
    _set_applicant(env, 0, 3, False)
    _, _, terminated, _ = env.step(torch.tensor([1]))  # 1.5 - 1 = 0.5 < 1 loan
    assert bool(terminated)
    env2 = LendingArrayEnv(LendingConfig(max_steps=3), 1)
    _reset(env2, [0])
    flags = [env2.step(torch.tensor([0]))[3].item() for _ in range(3)]
    assert flags == [False, False, True]


def test_lending_tpr_observation_and_counts() -> None:
    env = LendingArrayEnv(LendingConfig(), 1)
    _reset(env, [0])
    _set_applicant(env, 0, 4, True)
    obs, *_ = env.step(torch.tensor([1]))  # group 0: 1 qualified, accepted -> TPR 1
    assert obs[0, -2:].tolist() == [1.0, 0.0]
    _set_applicant(env, 0, 4, True)
    obs, *_ = env.step(torch.tensor([0]))  # a second qualified one rejected -> TPR 1/2
    assert obs[0, -2:].tolist() == [0.5, 0.0]


def test_lending_credit_shift_statistics() -> None:
    """Accepting every applicant for 200 steps: each group's mean cluster drifts by the expected
    amount, sum over accepted of 0.01 (p_up - p_down) per applicant (seeded, 4000 envs, the mean
    over envs is compared with a 5-standard-error tolerance estimated from the envs)."""
    cfg = LendingConfig()
    n, steps = 4000, 200
    env = LendingArrayEnv(cfg, n)
    _reset(env, np.arange(n))
    clusters = torch.arange(7, dtype=torch.float64)
    start = (env.probs * clusters).sum(-1)  # (N, 2)
    for _ in range(steps):
        env.step(torch.ones(n, dtype=torch.int64))
    end = (env.probs * clusters).sum(-1)
    drift = (end - start).mean(0)
    # Expected first-step drift per applicant of group g: 0.01 * (2 p_repay - 1) on the
    # clusters that can move; the sign is what matters: group 0 (mean repay ~0.6) rises,
    # group 1 (~0.5) barely moves, and group 0 rises more.
    assert drift[0] > 0.0
    assert drift[0] > drift[1]
    sem = (end - start).std(0) / math.sqrt(n)
    assert float(sem.max()) < 0.02


# ------------------------------------------------------------------------------------------
# College admission


def test_college_initial_distributions_match_the_specification() -> None:
    cfg = CollegeConfig()
    n = 5000
    env = CollegeArrayEnv(cfg, n)
    _reset(env, np.arange(n))
    g, x = env.groups.numpy().ravel(), env.scores.numpy().ravel()
    m = len(g)
    assert abs((g == 1).mean() - 0.4) < _std_tol(0.4, m)
    assert env.scores.shape == (n, 20)
    # P(eligible | g) for a normal clipped to [0, 1]: 1 - Phi((mu (1.1) - mu) / sigma)
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    for grp, mu, sigma in ((0, 0.8, 0.1), (1, 0.6, 0.3)):
        sel = x[g == grp]
        p = 1 - phi(0.1 * mu / sigma)
        assert abs((sel >= 1.1 * mu).mean() - p) < _std_tol(p, len(sel)), grp
        p0 = phi((0 - mu) / sigma)  # clipped at 0
        assert abs((sel == 0).mean() - p0) < _std_tol(p0, len(sel)), grp
    elig = env.eligible.numpy().ravel()
    np.testing.assert_array_equal(elig, x >= np.where(g == 0, 0.88, 0.66))


def _round(cfg: CollegeConfig, scores, groups, threshold: float, epsilon: float = 0.0):
    env = CollegeArrayEnv(cfg, 1)
    _reset(env, [0])
    env.scores = torch.tensor([scores], dtype=torch.float64)
    env.groups = torch.tensor([groups])
    env.step(torch.tensor([[threshold, epsilon]], dtype=torch.float64))
    return env


def test_college_gaming_rule_and_costs_by_hand() -> None:
    scores = [0.65, 0.65, 0.50, 0.10, 0.10, 0.90]
    groups = [0, 1, 0, 0, 1, 1]
    cfg = CollegeConfig(num_applicants=6, gaming_control=float("inf"))
    env = _round(cfg, scores, groups, 0.7)
    ind = env.last_individuals
    assert ind is not None
    # costs: 0.8*0.05=0.04, 1.2*0.05=0.06, 0.8*0.2=0.16, 0.8*0.6=0.48, 1.2*0.6=0.72: all <= 1,
    # every one below the threshold games up to it; 0.9 is above.
    assert ind.accepted[0].tolist() == [True] * 6
    # theta = 1: group 1 at 0.1 would pay 1.08 > 1 and stays out; group 0 pays 0.72.
    env = _round(cfg, scores, groups, 1.0)
    assert env.last_individuals.accepted[0].tolist() == [True, True, True, True, False, True]
    # gaming_control 0.1 caps the move: 0.5 -> 0.7 is 0.2 points, refused.
    capped = CollegeConfig(num_applicants=6, gaming_control=0.1)
    env = _round(capped, scores, groups, 0.7)
    assert env.last_individuals.accepted[0].tolist() == [True, True, False, False, False, True]
    # subsidy: group 1 pays 0.8 of its cost, so at theta 1 x=0.1 pays 0.864 <= 1 and games.
    sub = CollegeConfig(num_applicants=6, gaming_control=float("inf"), subsidize=True)
    env = _round(sub, scores, groups, 1.0)
    assert env.last_individuals.accepted[0].tolist() == [True] * 6


def test_college_burden_epsilon_and_no_gaming() -> None:
    cfg = CollegeConfig(num_applicants=2, gaming_control=float("inf"))
    # both eligible applicants below the threshold: burden = cost, whether they game or not
    env = _round(cfg, [0.90, 0.70], [0, 1], 0.95)
    torch.testing.assert_close(
        env.burden[0], torch.tensor([0.8 * 0.05, 1.2 * 0.25], dtype=torch.float64)
    )
    # epsilon 0.95: gaming pays only when 1 - cost - 0.95 >= 0, i.e. cost <= 0.05: group 0's
    # 0.04 does, group 1's 0.06 does not (gaming off for the random admissions: threshold 1).
    eps_cfg = CollegeConfig(num_applicants=2, gaming_control=float("inf"))
    env = CollegeArrayEnv(eps_cfg, 1)
    _reset(env, [0])
    env.scores = torch.tensor([[0.65, 0.65]], dtype=torch.float64)
    env.groups = torch.tensor([[0, 1]])
    env.step(torch.tensor([[0.7, 0.95]], dtype=torch.float64))
    assert env.manipulated[0].tolist() == [True, False]
    off = CollegeConfig(num_applicants=2, gaming=False)
    env = _round(off, [0.90, 0.70], [0, 1], 0.95)
    assert env.last_individuals.accepted[0].tolist() == [False, False]
    # epsilon 1: everyone admitted at random whatever the threshold
    env = _round(off, [0.1, 0.2], [0, 1], 1.0, epsilon=1.0)
    assert env.last_individuals.accepted[0].tolist() == [True, True]


def test_college_epsilon_statistics_and_reward() -> None:
    """With gaming off and theta = 1, admissions are the epsilon coin plus the scores clipped at
    exactly 1: frequency eps + (1 - eps) P(x = 1), within 5 standard errors (2000 envs x 20)."""
    cfg = CollegeConfig(gaming=False, epsilons=(0.3,), num_thresholds=2)
    n = 2000
    env = CollegeArrayEnv(cfg, n)
    _reset(env, np.arange(n))
    _, reward, _, _ = env.step(torch.full((n,), 1))  # index 1: threshold 1.0, eps 0.3
    ind = env.last_individuals
    freq = ind.accepted.double().mean().item()
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    at_one = 0.6 * (1 - phi(0.2 / 0.1)) + 0.4 * (1 - phi(0.4 / 0.3))
    p = 0.3 + 0.7 * at_one
    assert abs(freq - p) < _std_tol(p, n * 20)
    expected = torch.where(ind.accepted, torch.where(ind.qualified, 1.0, -1.0), 0.0).sum(1) / 20
    torch.testing.assert_close(reward, expected.float())


def test_college_score_map_acts_as_group_thresholds() -> None:
    cfg = CollegeConfig(num_applicants=2, gaming=False)
    env = CollegeArrayEnv(cfg, 1)
    _reset(env, [0])
    env.scores = torch.tensor([[0.6, 0.6]], dtype=torch.float64)
    env.groups = torch.tensor([[0, 1]])
    env.set_score_map(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.2]))
    env.step(torch.tensor([[0.7, 0.0]], dtype=torch.float64))
    assert env.last_individuals.accepted[0].tolist() == [False, True]


# ------------------------------------------------------------------------------------------
# Batching, seeding and checkpointing


@pytest.mark.parametrize("kind", ["lending", "college"])
def test_batch_is_seeded_per_env_and_state_round_trips(kind: str) -> None:
    def make(n: int):
        if kind == "lending":
            return LendingArrayEnv(LendingConfig(max_steps=7), n)
        return CollegeArrayEnv(CollegeConfig(max_steps=7), n)

    batch = make(3)
    vec = ArrayVecEnv(batch)
    vec.reset([11, 12, 13])
    actions = torch.tensor([1, 0, 1]) if kind == "lending" else torch.tensor([5, 10, 15])
    for _ in range(4):
        vec.step(actions, lambda i: 100 + i)
    state = vec.env_state()
    after = [vec.step(actions, lambda i: 100 + i) for _ in range(6)]
    # env 1 alone, from the same seed with the same actions, sees the same numbers
    alone = make(1)
    one = ArrayVecEnv(alone)
    one.reset([12])
    for _ in range(4):
        one.step(actions[1:2], lambda i: 101)
    solo = [one.step(actions[1:2], lambda i: 101) for _ in range(6)]
    for b, s in zip(after, solo, strict=True):
        assert torch.equal(b.obs[1], s.obs[0])
        assert torch.equal(b.reward[1], s.reward[0])
    # restore the checkpointed state: the same continuation
    vec.load_env_state(state)
    again = [vec.step(actions, lambda i: 100 + i) for _ in range(6)]
    for a, b in zip(after, again, strict=True):
        assert torch.equal(a.obs, b.obs)
        assert torch.equal(a.reward, b.reward)
