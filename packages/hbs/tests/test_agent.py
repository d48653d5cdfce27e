"""The controller's distributions, the worker's reward, the losses' gradients, determinism."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hbs.agent import ControllerBatch, HBSAgent, WorkerBatch
from hbs.config import HBSConfig, OptionConfig, smoke
from hbs.envs import BL_GOLD
from hbs.losses import weights_log_prob, worker_reward
from hbs_testkit import LAYOUT, batch, make_obs
from hypothesis import given, settings
from hypothesis import strategies as st


def agent_for(algo: str = "hbs", seed: int = 0, **options) -> HBSAgent:
    cfg = dataclasses.replace(
        smoke(), algo=algo, options=dataclasses.replace(OptionConfig(), **options)
    )
    return HBSAgent(cfg, LAYOUT, 23, seed=seed)


def observations(b: int = 6) -> torch.Tensor:
    return batch(*(make_obs(seen=5 * i, blstats={BL_GOLD: i}) for i in range(b)))


@settings(max_examples=25, deadline=None)
@given(
    rewards=st.lists(st.lists(st.floats(-50, 50), min_size=3, max_size=3), min_size=1, max_size=4),
    weights=st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=1, max_size=4),
)
def test_worker_reward_is_the_weighted_sum(rewards, weights) -> None:
    n = min(len(rewards), len(weights))
    r, w = torch.tensor(rewards[:n]), torch.tensor(weights[:n])
    scales = torch.tensor([1.0, 10.0, 0.5])
    got = worker_reward(r, w, scales, 0.01)
    for i in range(n):
        expected = 0.01 * sum(w[i, k] * scales[k] * r[i, k] for k in range(3))
        assert math.isclose(float(got[i]), float(expected), rel_tol=1e-5, abs_tol=1e-5)


def test_grid_log_prob_by_hand() -> None:
    # two rewards, three levels; logits give probabilities (0.5, 0.25, 0.25) and (0.1, 0.2, 0.7)
    p = torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]]])
    w = torch.tensor([[0.5, 1.0]])  # levels 1 and 2
    logp, ent = weights_log_prob(p.log(), w, kind="grid", active=2, levels=3)
    assert torch.allclose(logp, torch.tensor([math.log(0.25) + math.log(0.7)]))
    h = -(p * p.log()).sum()
    assert torch.allclose(ent, h[None])
    # growing set: only the first reward's level counts
    logp1, _ = weights_log_prob(
        p.log(), torch.tensor([[0.5, 0.0]]), kind="grid", active=1, levels=3
    )
    assert torch.allclose(logp1, torch.tensor([math.log(0.25)]))


def test_options_log_prob_is_the_chosen_index() -> None:
    logits = torch.tensor([[0.0, math.log(3.0), 0.0]])
    logp, _ = weights_log_prob(logits, torch.tensor([[0.0, 1.0, 0.0]]), kind="options", active=3)
    assert torch.allclose(logp, torch.tensor([math.log(0.6)]))


@pytest.mark.parametrize(
    ("algo", "dist"), [("hbs", "grid"), ("hbs", "dirichlet"), ("options", "grid")]
)
def test_decisions_have_the_documented_support(algo: str, dist: str) -> None:
    agent = agent_for(algo, weights_dist=dist)
    d = agent.decide(observations(64))
    k = agent.num_rewards
    assert d.weights.shape == (64, k)
    assert set(d.length_index.tolist()) <= set(range(8))
    assert torch.isfinite(d.log_prob).all()
    if algo == "options":
        assert torch.equal(d.weights.sum(1), torch.ones(64))
        assert set(d.weights.flatten().tolist()) == {0.0, 1.0}
    elif dist == "grid":
        assert set(d.weights.flatten().tolist()) <= {0.0, 0.5, 1.0}
    else:
        assert torch.allclose(d.weights.sum(1), torch.ones(64))
        assert (d.weights >= 0).all()


@pytest.mark.parametrize("algo", ["hbs", "options"])
def test_growing_set_keeps_inactive_weights_at_zero(algo: str) -> None:
    agent = agent_for(algo, growing_rewards=(10, 20, 30))
    assert agent.active_rewards == agent.num_rewards - 3
    d = agent.decide(observations(64))
    assert (d.weights[:, agent.active_rewards :] == 0).all()
    agent.set_active_rewards(agent.num_rewards)
    assert agent.decide(observations(64)).weights[:, -3:].abs().sum() > 0


def test_same_seed_same_decisions_and_actions() -> None:
    obs = observations()
    a, b = agent_for(seed=3), agent_for(seed=3)
    da, db = a.decide(obs), b.decide(obs)
    assert all(torch.equal(x, y) for x, y in zip(da, db, strict=True))
    assert torch.equal(a.act(obs, da.weights).actions, b.act(obs, db.weights).actions)


def _batches(agent: HBSAgent) -> tuple[WorkerBatch, ControllerBatch]:
    obs = observations()
    d = agent.decide(obs)
    ws = agent.act(obs, d.weights)
    adv = torch.linspace(-1, 1, obs.shape[0])
    worker = WorkerBatch(obs, agent.worker_cond(d.weights), ws.actions, ws.log_probs,
                         ws.values, adv, ws.values + 1.0)  # fmt: skip
    controller = ControllerBatch(obs, d.weights, d.length_index, d.log_prob, d.value, adv.flip(0),
                                 d.value - 1.0)  # fmt: skip
    return worker, controller


def _grads(agent: HBSAgent) -> dict[str, bool]:
    net = agent.net
    heads = {"actor": net.actor, "weights": net.weights_head, "length": net.length_head,
             "critic": net.critic, "torso": net.torso}  # fmt: skip
    return {
        name: any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in m.parameters())
        for name, m in heads.items()
    }


def test_each_loss_reaches_the_parameters_it_should() -> None:
    agent = agent_for()
    worker, controller = _batches(agent)
    # The worker's loss: the action head, the value, the shared torso; never the controller heads.
    loss, _ = agent.losses(worker, None)
    loss.backward()
    assert _grads(agent) == {"actor": True, "weights": False, "length": False, "critic": True,
                             "torso": True}  # fmt: skip
    # Both minibatches: one loss with the worker's and the controller's terms.
    agent.net.zero_grad(set_to_none=True)
    loss, metrics = agent.losses(worker, controller)
    loss.backward()
    assert all(_grads(agent).values())
    assert {"actor_loss", "controller_actor_loss", "controller_entropy"} <= set(metrics)


def test_controller_loss_leaves_the_action_head_alone() -> None:
    from hbs.losses import controller_loss

    agent = agent_for()
    _, c = _batches(agent)
    heads = agent.net(c.obs, agent.controller_cond(c.obs.shape[0]))
    o, p = agent.cfg.options, agent.cfg.ppo
    loss, _ = controller_loss(
        heads.weight_params, heads.length_logits, heads.value, c.weights, c.length_index,
        c.log_probs, c.values, c.advantages, c.returns, kind="grid", active=o.num_rewards,
        levels=o.weight_levels, min_concentration=o.dirichlet_min_concentration,
        clip_coef=p.clip_coef, vf_coef=p.vf_coef, ent_coef=p.controller_ent_coef,
    )  # fmt: skip
    loss.backward()
    assert all(p.grad is None for p in agent.net.actor.parameters())
    assert _grads(agent)["weights"]
    assert _grads(agent)["length"]


def test_update_changes_parameters_and_round_trips() -> None:
    agent = agent_for()
    worker, controller = _batches(agent)
    before = {k: v.clone() for k, v in agent.net.state_dict().items()}
    metrics = agent.update(worker, controller)
    assert all(v.ndim == 0 and not v.requires_grad for v in metrics.values())
    assert any(not torch.equal(before[k], v) for k, v in agent.net.state_dict().items())
    clone = agent_for(seed=9)
    clone.load_state_dict(agent.state_dict())
    obs = observations()
    assert all(torch.equal(x, y) for x, y in zip(agent.decide(obs), clone.decide(obs), strict=True))
    # and the same next update
    ma, mb = agent.update(worker, controller), clone.update(worker, controller)
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def test_config_rejects_bad_options_by_flag() -> None:
    with pytest.raises(ValueError, match=r"--agent\.options\.reward-scales"):
        OptionConfig(rewards=("score", "gold"), reward_scales=(1.0,))
    with pytest.raises(ValueError, match=r"--agent\.options\.growing-rewards"):
        OptionConfig(growing_rewards=(5, 3))
    with pytest.raises(ValueError, match=r"--agent\.network\.crop must be odd"):
        dataclasses.replace(smoke().network, crop=4)
    with pytest.raises(ValueError, match="--algo"):
        HBSConfig(algo="sol")  # type: ignore[arg-type]
