"""The MRS.Q agent: MR.Q's hooks, the ensemble minimum by hand, a planner that touches nothing,
determinism and checkpoints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from mbsearch.agent import MRSQAgent, extensions
from mbsearch.config import arm, gym_arm, small_mrq, tiny_arm
from mbsearch_testkit import SPEC, micro
from mrq_drq.agent import AgentExtensions, MRQAgent
from mrq_drq.config import gym, tiny
from mrq_drq.envs import EnvSpec


def _obs(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(5).astype(np.float32)


def test_arms_are_the_papers() -> None:
    mrsq, mpc, mrq = (gym_arm(name) for name in ("mrsq", "mpc", "mrq"))
    assert (mrsq.critics.num_critics, mrsq.critics.target_critics) == (10, None)
    assert (mrsq.planner.value_reduction, mrsq.latent_simnorm) == ("min", 8)
    assert mrsq.mrq.policy.exploration_noise == 0.0
    assert mrsq.mrq.encoder.done_weight == 1.0
    p = mrsq.planner
    assert (p.horizon, p.iterations, p.num_samples, p.num_pi_trajs, p.num_elites) == (
        3, 6, 512, 24, 64
    )  # fmt: skip
    assert (p.temperature, p.min_std, p.max_std) == (0.5, 0.05, 2.0)
    # MR.Q+MPC: MR.Q unchanged, acting by planning with the mean of its 2 critics.
    assert mpc.mrq == mrq.mrq == gym("HalfCheetah-v5")
    assert tiny_arm("mpc").mrq == small_mrq("InvertedPendulum-v5")
    assert small_mrq().encoder.num_bins == 65
    assert mpc.planner.enabled
    assert not mrq.planner.enabled
    assert (mpc.critics.num_critics, mpc.planner.value_reduction, mpc.latent_simnorm) == (
        2, "mean", None
    )  # fmt: skip
    assert mpc.mrq.policy.exploration_noise == 0.2
    assert mpc.mrq.encoder.done_weight == 0.1
    with pytest.raises(ValueError, match=r"latent_simnorm \(8\) must divide mrq.encoder.zs_dim"):
        dataclasses.replace(mrsq, mrq=dataclasses.replace(
            mrsq.mrq, encoder=dataclasses.replace(mrsq.mrq.encoder, zs_dim=60)))  # fmt: skip
    with pytest.raises(ValueError, match=r"critics\.target_critics"):
        dataclasses.replace(mrsq.critics, target_critics=11)


def test_default_hooks_leave_mr_q_unchanged() -> None:
    """MR.Q with AgentExtensions() is MR.Q: the same weights, from the same draws."""
    cfg = micro("mrq").mrq
    a = MRQAgent(cfg, SPEC, seed=3)
    b = MRQAgent(cfg, SPEC, seed=3, extensions=AgentExtensions())
    sa, sb = a.state_dict(), b.state_dict()
    for key in ("encoder", "value", "policy"):
        assert sa[key].keys() == sb[key].keys()
        for name in sa[key]:
            assert torch.equal(sa[key][name], sb[key][name]), (key, name)


def test_mrsq_networks_have_ten_batched_critics_and_simplex_latents() -> None:
    agent = MRSQAgent(micro("mrsq"), SPEC, seed=0)
    x = torch.as_tensor(np.stack([_obs(i) for i in range(4)]))
    zs = agent.mrq.encoder.zs(x)
    groups = zs.reshape(4, -1, 8)
    torch.testing.assert_close(groups.sum(-1), torch.ones(4, 2))
    assert bool((groups >= 0).all())
    pred = agent.mrq.encoder.model(agent.mrq.encoder.zsa(zs, torch.zeros(4, 2)))
    torch.testing.assert_close(pred.next_zs.reshape(4, -1, 8).sum(-1), torch.ones(4, 2))
    zsa = agent.mrq.encoder.zsa(zs, torch.zeros(4, 2))
    q = agent.mrq.value(zsa)
    assert q.shape == (10, 4)
    ensemble = agent.mrq.value.ensemble
    assert ensemble is not None
    for n in range(10):  # one batched forward == each member on its own
        torch.testing.assert_close(q[n], ensemble.member(n)(zsa).squeeze(-1))


def _value_target(agent: MRSQAgent, heads: torch.Tensor | None):
    """The MR.Q value step's target, and the same by hand from the target networks."""
    mrq = agent.mrq
    gen = torch.Generator().manual_seed(1)
    b = 6
    obs, next_obs = torch.randn(b, 5, generator=gen), torch.randn(b, 5, generator=gen)
    action = torch.rand(b, 2, generator=gen) * 2 - 1
    returns, discount = torch.randn(b, generator=gen), torch.full((b,), 0.97)
    noise = torch.randn(b, 2, generator=gen)
    scale, tscale = torch.tensor(2.0), torch.tensor(0.5)
    _, _, target, _ = mrq._value_losses_eager(
        obs, action, returns, discount, next_obs, noise, None, scale, tscale, heads
    )
    with torch.no_grad():
        nzs = mrq.encoder_target.zs(next_obs)
        na, _ = mrq.policy_target(nzs)
        na = (na + (noise * 0.2).clamp(-0.3, 0.3)).clamp(-1, 1)
        qs = mrq.value_target(mrq.encoder_target.zsa(nzs, na))  # (10, B)
        picked = qs if heads is None else qs[heads]
        by_hand = torch.stack(
            [torch.stack([picked[i, j] for i in range(picked.shape[0])]).min() for j in range(b)]
        )
        expected = (returns + discount * by_hand * tscale) / scale
    return target, expected, qs


def test_td_target_uses_the_minimum_of_all_ten_critics() -> None:
    agent = MRSQAgent(micro("mrsq"), SPEC, seed=0)
    target, expected, qs = _value_target(agent, None)
    torch.testing.assert_close(target, expected)
    assert qs.shape[0] == 10
    # ... and the "min of 2 random heads" ablation uses only the drawn pair.
    heads = torch.tensor([7, 2])
    target2, expected2, _ = _value_target(agent, heads)
    torch.testing.assert_close(target2, expected2)
    assert bool((target2 >= target - 1e-6).all())


def test_min_of_two_random_heads_draws_a_pair_per_update() -> None:
    cfg = micro("mrsq")
    cfg = dataclasses.replace(cfg, critics=dataclasses.replace(cfg.critics, target_critics=2))
    assert extensions(cfg).target_critics == 2
    agent = MRSQAgent(cfg, SPEC, seed=0)
    assert agent.mrq.extensions.target_critics == 2


def _snapshot(agent: MRSQAgent) -> dict[str, torch.Tensor]:
    out = {}
    for module_name in ("encoder", "value", "policy", "encoder_target", "value_target"):
        for name, p in getattr(agent.mrq, module_name).named_parameters():
            out[f"{module_name}.{name}"] = p.detach().clone()
            if p.grad is not None:
                out[f"{module_name}.{name}.grad"] = p.grad.clone()
    return out


@pytest.mark.parametrize("name", ["mrsq", "mpc"])
def test_planning_leaves_parameters_and_gradients_unchanged(name: str) -> None:
    agent = MRSQAgent(micro(name), SPEC, seed=0)
    gen = torch.Generator().manual_seed(0)
    for module in (agent.mrq.encoder, agent.mrq.value, agent.mrq.policy):
        for p in module.parameters():
            p.grad = torch.randn(p.shape, generator=gen)
    before = _snapshot(agent)
    for explore in (True, False, True):
        action = agent.act(_obs(), explore=explore)
        assert not action.requires_grad
        assert action.grad_fn is None
    after = _snapshot(agent)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_actions_are_within_bounds_and_deterministic() -> None:
    a, b = MRSQAgent(micro(), SPEC, seed=5), MRSQAgent(micro(), SPEC, seed=5)
    low, high = torch.tensor(SPEC.action_low), torch.tensor(SPEC.action_high)
    for i in range(4):
        x, y = a.act(_obs(i), explore=True), b.act(_obs(i), explore=True)
        assert torch.equal(x, y)
        assert bool(((x >= low) & (x <= high)).all())
    c = MRSQAgent(micro(), SPEC, seed=6)
    assert not torch.equal(c.act(_obs(0), explore=True), MRSQAgent(micro(), SPEC, seed=5).act(
        _obs(0), explore=True))  # fmt: skip


def test_checkpoint_round_trip_plans_the_same() -> None:
    a = MRSQAgent(micro(), SPEC, seed=0)
    for i in range(3):
        a.act(_obs(i), explore=True)  # moves the warm start and the generator
    state = a.state_dict()
    b = MRSQAgent(micro(), SPEC, seed=1)
    b.load_state_dict(state)
    for i in range(3):
        assert torch.equal(a.act(_obs(10 + i), explore=True), b.act(_obs(10 + i), explore=True))
        assert torch.equal(a.act(_obs(20 + i), explore=False), b.act(_obs(20 + i), explore=False))
    other = MRSQAgent(micro("mpc"), SPEC, seed=0)
    with pytest.raises(ValueError, match="different config"):
        other.load_state_dict(state)
    with pytest.raises(KeyError, match="expected keys"):
        b.load_state_dict({"mrq": state["mrq"]})


def test_mrq_arm_acts_with_the_policy_and_planning_rejects_discrete_actions() -> None:
    agent = MRSQAgent(micro("mrq"), SPEC, seed=0)
    torch.testing.assert_close(
        agent.act(_obs(), explore=False), agent.mrq.act(_obs(), explore=False)
    )
    discrete = EnvSpec(obs_shape=(5,), pixels=False, discrete=True, action_dim=3)
    with pytest.raises(ValueError, match="MPPI plans over continuous actions"):
        MRSQAgent(micro("mrsq"), discrete, seed=0)
    MRSQAgent(micro("mrq"), discrete, seed=0)  # the policy arm takes them
    with pytest.raises(ValueError, match="the planner takes one observation"):
        MRSQAgent(micro(), SPEC).act(np.zeros((2, 5), np.float32), explore=False)


def test_critic_values_are_in_reward_units() -> None:
    agent = MRSQAgent(micro(), SPEC, seed=0)
    obs = torch.randn(3, 5)
    act = torch.tensor([[0.0, 1.0], [1.0, -1.0], [-2.0, 3.0]])  # env units
    base = agent.critic_values(obs, act)
    agent.mrq.reward_scale.fill_(4.0)
    torch.testing.assert_close(agent.critic_values(obs, act), 4.0 * base)
    assert base.shape == (10, 3)


def test_arm_works_on_any_mrq_preset() -> None:
    cfg = arm("mrsq", tiny("Hopper-v5"))
    assert cfg.mrq.env.env_id == "Hopper-v5"
    assert cfg.mrq.encoder.zs_dim == 64
