"""The metric loss on a toy MDP with a known bisimulation distance, the Bisimulator's loss
terms by hand, A-PPO's advantage by hand, and: at initialisation the Bisimulator's MDP is the
original one."""

from __future__ import annotations

import copy

import pytest
import torch
from fairbisim.agent import FairLearner, FairVecEnv, Recorder, make_array_env
from fairbisim.config import BisimulatorConfig, FairBisimConfig
from fairbisim.losses import alignment_loss, appo_advantages, metric_td_loss, pair_backup
from fairbisim.networks import MetricNet, ObservationMap, RewardNet
from rl_runtime.schedules import OnPolicyConfig


def test_pair_backup_and_metric_loss_by_hand() -> None:
    # two pairs, actions (reject, accept); the policy weights 0.5/0.5 and 0/1
    w = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    r0 = torch.tensor([[0.0, 1.0], [0.0, 0.2]])
    r1 = torch.tensor([[0.0, 0.0], [0.0, 0.2]])
    nxt = torch.tensor([[2.0, 4.0], [4.0, 4.0]])
    not_done = torch.tensor([1.0, 0.0])
    backup = pair_backup(w, r0, r1, nxt, not_done, 0.5)
    # pair 0: 0.5 (0 + 0.5 * 2) + 0.5 (1 + 0.5 * 4) = 2; pair 1: 1 * (0 + 0) = 0
    assert backup.tolist() == pytest.approx([2.0, 0.0])
    loss, m = metric_td_loss(torch.tensor([1.0, 0.5]), backup)
    assert float(loss) == pytest.approx(((1 - 2) ** 2 + 0.5**2) / 2)
    assert float(m["metric_distance"]) == pytest.approx(0.75)
    # observations 0.5 apart (L1) regressed on a distance of 2: (0.5 - 2)^2
    a = alignment_loss(
        torch.tensor([[0.0, 0.5]]), torch.tensor([[0.25, 0.25]]), torch.tensor([2.0])
    )
    assert float(a) == pytest.approx(1.5**2)


@pytest.mark.parametrize(
    ("rewards", "swap", "expected"),
    [
        ((1.0, 0.0), False, 1 / (1 - 0.5)),  # self-loops: d = |1 - 0| + g d
        ((1.0, 0.0), True, 1 / (1 - 0.5)),  # s0 <-> s1: d(s0,s1) = 1 + g d(s1,s0)
        ((0.3, 0.3), False, 0.0),  # same rewards, same dynamics: bisimilar
    ],
)
def test_metric_learns_the_known_distance_of_a_two_state_mdp(
    rewards: tuple[float, float], swap: bool, expected: float
) -> None:
    """Two states with deterministic transitions; the pi-bisimulation distance is known in
    closed form. TD regression with a slowly tracking target converges to it."""
    gamma = 0.5
    torch.manual_seed(0)
    net = MetricNet(1, (32, 32))
    target = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    s0, s1 = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    n0, n1 = (s1, s0) if swap else (s0, s1)
    r0, r1 = torch.tensor([[rewards[0]]]), torch.tensor([[rewards[1]]])
    one = torch.ones(1, 1)  # one action, taken with probability 1
    for _ in range(1500):
        backup = pair_backup(one, r0, r1, target(n0, n1)[:, None], torch.ones(1), gamma)
        loss, _ = metric_td_loss(net(s0, s1), backup)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p, tp in zip(net.parameters(), target.parameters(), strict=True):
                tp.lerp_(p, 0.05)
    with torch.no_grad():
        assert float(net(s0, s1)) == pytest.approx(expected, abs=0.05)
        assert float(net(s1, s0)) == pytest.approx(float(net(s0, s1)), abs=1e-6)


def test_observation_map_and_reward_correction_start_as_the_identity_and_zero() -> None:
    m = ObservationMap(7)
    x = torch.eye(7)[torch.tensor([0, 3, 6])]
    g = torch.tensor([0, 1, 1])
    assert torch.equal(m(x, g), x)
    assert float(m.deviation(x, g).sum().detach()) == 0.0
    delta = RewardNet(7, (16,), zero_init=True)
    assert torch.equal(delta(x, g, torch.tensor([True, False, True])), torch.zeros(3))


def test_appo_advantage_by_hand() -> None:
    adv = torch.tensor([1.0, 1.0, 1.0])
    gap = torch.tensor([0.0, 0.1, 0.1])
    gap_adv = torch.tensor([0.5, 0.5, -0.5])
    out = appo_advantages(adv, gap, gap_adv, beta0=1.0, beta1=0.25, beta2=0.25, omega=0.005)
    # gap below omega: A; above: A + 0.25 (0.005 - 0.1) + 0.25 min(0, -A_gap)
    assert out.tolist() == pytest.approx([1.0, 1 - 0.02375 - 0.125, 1 - 0.02375])


@pytest.mark.parametrize("env_name", ["lending", "college"])
def test_at_initialisation_the_bisimulators_mdp_is_the_original(env_name: str) -> None:
    """Same seeds, same actions: the Bisimulator's env gives the true rewards, its learner sees
    the true observations, and the college jury's rule is unchanged."""
    cfg = FairBisimConfig(algo="bisimulator", env_name=env_name)  # type: ignore[arg-type]
    base = FairBisimConfig(algo="ppo", env_name=env_name)  # type: ignore[arg-type]
    loop = OnPolicyConfig(num_envs=4, num_steps=8, update_epochs=1, num_minibatches=1)
    cpu = torch.device("cpu")
    runs = []
    for c, reward in ((cfg, "bisimulator"), (base, "true")):
        rec = Recorder()
        env = make_array_env(c, 4)
        learner = FairLearner(c, loop, env, rec, device=cpu, seed=0)
        fe = FairVecEnv(env, learner, reward=reward, recorder=rec)  # type: ignore[arg-type]
        obs = fe.reset([1, 2, 3, 4])
        torch.testing.assert_close(learner.learner_obs(obs), obs, rtol=0, atol=0)
        gen = torch.Generator().manual_seed(5)
        out = []
        for _ in range(30):
            a = torch.randint(int(env.single_action_space.n), (4,), generator=gen)
            r = fe.step(a, lambda i: 99 + i)
            out.append((r.obs, r.reward, env.last_individuals.accepted))
        runs.append(out)
    for (o1, r1, a1), (o2, r2, a2) in zip(*runs, strict=True):
        assert torch.equal(o1, o2)
        assert torch.equal(r1, r2)
        assert torch.equal(a1, a2)


def test_a_bisimulator_update_moves_the_mdp_towards_equal_treatment() -> None:
    """One rollout's worth of updates on lending: the matched pairs' bisimulation distance drops
    and r_phi rewards accepting group 1 more (relative to group 0) than the true reward."""
    cfg = FairBisimConfig(
        algo="bisimulator",
        bisim=BisimulatorConfig(warmup_rollouts=0, metric_steps=100, bisim_steps=150, lr=3e-3),
    )
    loop = OnPolicyConfig(num_envs=16, num_steps=64, update_epochs=1, num_minibatches=1)
    rec = Recorder()
    env = make_array_env(cfg, 16)
    learner = FairLearner(cfg, loop, env, rec, device=torch.device("cpu"), seed=0)
    fe = FairVecEnv(env, learner, reward="bisimulator", recorder=rec)
    obs = fe.reset(list(range(16)))
    for _ in range(64):
        ps = learner.policy_step(obs)
        obs = fe.step(ps.actions, lambda i: 50 + i).obs
    ind, step_obs = rec.flat_individuals()
    metrics = learner._bisimulator_step(ind, step_obs)
    assert float(metrics["bisimulator_loss"]) >= 0
    # delta(accept) for the same cluster: larger for group 1 than group 0 (a learned subsidy)
    x = torch.eye(7)[torch.tensor([2, 3, 4])]
    yes = torch.ones(3, dtype=torch.bool)
    with torch.no_grad():
        d0 = learner.delta(x, torch.zeros(3, dtype=torch.long), yes)
        d1 = learner.delta(x, torch.ones(3, dtype=torch.long), yes)
    assert float((d1 - d0).mean()) > 0
