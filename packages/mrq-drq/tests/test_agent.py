"""Agent behaviour: gradient isolation, purity, determinism, checkpoints, schedule, bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from mrq_drq import MRQAgent
from mrq_drq.envs import EnvSpec
from mrq_drq_testkit import (
    DISCRETE_SPEC,
    PIXEL_SPEC,
    VECTOR_SPEC,
    encoder_batch,
    filled_buffer,
    micro,
    params,
    rl_batch,
    same,
    train_steps,
)
from rl_buffers import io as rio

SPECS = {"vector": VECTOR_SPEC, "discrete": DISCRETE_SPEC, "pixels": PIXEL_SPEC}


def _setup(kind: str = "vector", algorithm: str = "mrq", seed: int = 0):
    cfg = micro(algorithm=algorithm)
    spec = SPECS[kind]
    agent = MRQAgent(cfg, spec, seed=seed)
    buf = filled_buffer(cfg, spec, seed=seed)
    agent.sync_targets(buf.reward_scale())
    return cfg, spec, agent, buf


@pytest.mark.parametrize("kind", ["vector", "discrete", "pixels"])
def test_value_and_policy_updates_never_change_the_encoder_or_targets(kind: str):
    cfg, _, agent, buf = _setup(kind)
    enc, value, policy = params(agent.encoder), params(agent.value), params(agent.policy)
    targets = [
        params(agent.encoder_target),
        params(agent.value_target),
        params(agent.policy_target),
    ]
    agent.update_rl(rl_batch(cfg, buf))
    assert same(params(agent.encoder), enc)
    assert all(p.grad is None for p in agent.encoder.parameters())
    assert not same(params(agent.value), value)
    assert not same(params(agent.policy), policy)
    for net, before in zip(
        (agent.encoder_target, agent.value_target, agent.policy_target), targets, strict=True
    ):
        assert same(params(net), before)
        assert all(not p.requires_grad and p.grad is None for p in net.parameters())


@pytest.mark.parametrize("kind", ["vector", "discrete", "pixels"])
def test_encoder_update_changes_only_the_encoder(kind: str):
    cfg, _, agent, buf = _setup(kind)
    enc, value, policy = params(agent.encoder), params(agent.value), params(agent.policy)
    enc_target = params(agent.encoder_target)
    agent.update_encoder(encoder_batch(cfg, buf))
    assert not same(params(agent.encoder), enc)
    assert same(params(agent.value), value)
    assert same(params(agent.policy), policy)
    assert same(params(agent.encoder_target), enc_target)
    assert all(p.grad is None for p in agent.encoder_target.parameters())


@pytest.mark.parametrize("kind", ["vector", "discrete"])
def test_policy_loss_gives_gradient_to_the_policy_only(kind: str):
    cfg, spec, agent, buf = _setup(kind)
    batch = rl_batch(cfg, buf)
    zs = agent.encoder.zs(batch.obs.float()).detach()
    gumbel = torch.zeros(zs.shape[0], spec.action_dim) if spec.discrete else None
    loss, _ = agent._policy_losses_eager(zs, gumbel)
    loss.backward()
    assert all(p.grad is not None for p in agent.policy.parameters())
    for net in (agent.encoder, agent.value):
        assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("kind", ["vector", "discrete", "pixels"])
@pytest.mark.parametrize("algorithm", ["mrq", "drq"])
def test_updates_leave_the_input_batch_unchanged(kind: str, algorithm: str):
    cfg, _, agent, buf = _setup(kind, algorithm)
    enc_batch, batch = encoder_batch(cfg, buf), rl_batch(cfg, buf)
    enc_copy = [t.clone() for t in enc_batch]
    copy = [t.clone() for t in batch]
    metrics = agent.update_encoder(enc_batch)
    rl_metrics, td = agent.update_rl(batch)
    assert all(torch.equal(a, b) for a, b in zip(enc_batch, enc_copy, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(batch, copy, strict=True))
    for m in (metrics, rl_metrics):
        for name, value in m.items():
            assert value.dim() == 0, name
            assert not value.requires_grad, name
            assert torch.isfinite(value), name
    assert td.shape == (cfg.replay.batch_size,)
    assert not td.requires_grad
    assert torch.all(td >= 0)


@pytest.mark.parametrize("kind", ["vector", "pixels"])
@pytest.mark.parametrize("algorithm", ["mrq", "drq"])
def test_two_runs_with_the_same_seed_are_bitwise_equal(kind: str, algorithm: str):
    runs = []
    for _ in range(2):
        _, _, agent, buf = _setup(kind, algorithm, seed=3)
        train_steps(agent, buf, 12, seed=5)
        runs.append(agent)
    a, b = runs
    for name in ("encoder", "value", "policy", "encoder_target", "value_target", "policy_target"):
        assert same(params(getattr(a, name)), params(getattr(b, name))), name
    obs = np.zeros(a.spec.env_obs_shape, dtype=np.uint8 if a.spec.pixels else np.float32)
    assert torch.equal(a.act(obs, explore=True), b.act(obs, explore=True))


def test_different_seeds_give_different_weights():
    a = MRQAgent(micro(), VECTOR_SPEC, seed=0)
    b = MRQAgent(micro(), VECTOR_SPEC, seed=1)
    assert not same(params(a.encoder), params(b.encoder))


@pytest.mark.parametrize("kind", ["vector", "discrete", "pixels"])
def test_checkpoint_round_trip_gives_the_same_actions_and_next_update(kind: str, tmp_path: Path):
    cfg, spec, agent, buf = _setup(kind, "drq")
    train_steps(agent, buf, 12, seed=1)
    rio.save(agent.state_dict(), tmp_path / "agent.pt")
    other = MRQAgent(cfg, spec, seed=123)
    other.load_state_dict(rio.load(tmp_path / "agent.pt"))
    assert other.training_steps == agent.training_steps
    assert torch.equal(other.reward_scale, agent.reward_scale)
    rng = np.random.default_rng(0)
    from mrq_drq_testkit import random_obs

    obs = np.stack([random_obs(spec, rng) for _ in range(3)])
    for explore in (False, True):
        assert torch.equal(agent.act(obs, explore=explore), other.act(obs, explore=explore))
    enc_batch, batch = encoder_batch(cfg, buf, seed=9), rl_batch(cfg, buf, seed=9)
    m1 = agent.update_encoder(enc_batch)
    m2 = other.update_encoder(enc_batch)
    (r1, td1), (r2, td2) = agent.update_rl(batch), other.update_rl(batch)
    assert all(torch.equal(m1[k], m2[k]) for k in m1)
    assert all(torch.equal(r1[k], r2[k]) for k in r1)
    assert torch.equal(td1, td2)
    for name in ("encoder", "value", "policy"):
        assert same(params(getattr(agent, name)), params(getattr(other, name)))


def test_load_state_dict_rejects_another_config():
    agent = MRQAgent(micro(), VECTOR_SPEC)
    other = MRQAgent(micro(algorithm="drq"), VECTOR_SPEC)
    with pytest.raises(ValueError, match="different config"):
        other.load_state_dict(agent.state_dict())
    state = agent.state_dict()
    del state["reward_scale"]
    with pytest.raises(KeyError, match="reward_scale"):
        agent.load_state_dict(state)


def test_schedule_sync_is_due_every_interval_and_shifts_reward_scales():
    cfg, _, agent, buf = _setup()
    interval = cfg.schedule.target_update_interval
    agent = MRQAgent(cfg, VECTOR_SPEC)
    assert agent.sync_due  # before the first RL update
    assert agent.reward_scale.item() == 1.0
    assert agent.target_reward_scale.item() == 0.0
    agent.sync_targets(2.5)
    assert agent.target_reward_scale.item() == 1.0
    assert agent.reward_scale.item() == 2.5
    due = []
    for _ in range(2 * interval):
        agent.update_rl(rl_batch(cfg, buf))
        due.append(agent.sync_due)
    assert [i + 1 for i, d in enumerate(due) if d] == [interval, 2 * interval]
    # The targets are exact copies right after a sync and stale before it.
    assert not same(params(agent.value_target), params(agent.value))
    agent.sync_targets(4.0)
    assert same(params(agent.value_target), params(agent.value))
    assert same(params(agent.encoder_target), params(agent.encoder))
    assert same(params(agent.policy_target), params(agent.policy))
    assert agent.target_reward_scale.item() == 2.5
    assert agent.reward_scale.item() == 4.0


def test_without_reward_scaling_both_scales_stay_one():
    cfg = micro()
    cfg = dataclasses.replace(cfg, value=dataclasses.replace(cfg.value, reward_scaling=False))
    agent = MRQAgent(cfg, VECTOR_SPEC)
    agent.sync_targets(7.0)
    assert agent.reward_scale.item() == 1.0
    assert agent.target_reward_scale.item() == 1.0


def test_terminal_loss_switches_on_only_after_a_termination():
    cfg, _, agent, buf = _setup()
    batch = encoder_batch(cfg, buf)
    no_term = batch._replace(
        not_done=torch.ones_like(batch.not_done), mask=torch.ones_like(batch.mask)
    )
    agent.update_encoder(no_term)
    assert not bool(agent.env_terminates)
    terminal = no_term.not_done.clone()
    terminal[0, 2:] = 0.0
    mask = no_term.mask.clone()
    mask[0, 3:] = 0.0
    agent.update_encoder(no_term._replace(not_done=terminal, mask=mask))
    assert bool(agent.env_terminates)
    agent.update_encoder(no_term)
    assert bool(agent.env_terminates)  # stays on


def test_act_respects_bounds_and_shapes():
    agent = MRQAgent(micro(), VECTOR_SPEC)
    obs = np.random.default_rng(0).standard_normal((64, 5)).astype(np.float32) * 10
    actions = agent.act(obs, explore=True)
    assert isinstance(actions, torch.Tensor)  # a tensor, as every agent's act returns
    assert actions.shape == (64, 2)
    assert actions.dtype == torch.float32
    low, high = torch.tensor(VECTOR_SPEC.action_low), torch.tensor(VECTOR_SPEC.action_high)
    assert torch.all(actions >= low - 1e-6)
    assert torch.all(actions <= high + 1e-6)
    single = agent.act(torch.as_tensor(obs[0]), explore=False)
    assert single.shape == (2,)
    assert torch.equal(single, agent.act(obs[0], explore=False))  # deterministic when greedy
    discrete = MRQAgent(micro(), DISCRETE_SPEC)
    acts = discrete.act(obs, explore=True)
    assert acts.shape == (64,)
    assert acts.dtype == torch.int64
    assert torch.all((acts >= 0) & (acts < 3))
    one = discrete.act(obs[0], explore=False)
    assert one.shape == ()
    assert int(one) in range(3)


def test_bad_inputs_are_rejected_with_named_errors():
    cfg, _, agent, buf = _setup()
    with pytest.raises(ValueError, match="obs: expected shape"):
        agent.act(np.zeros(4, dtype=np.float32), explore=False)
    with pytest.raises(TypeError, match="floating"):
        agent.act(np.zeros(5, dtype=np.int64), explore=False)
    batch = rl_batch(cfg, buf)
    with pytest.raises(ValueError, match=r"batch\.action"):
        agent.update_rl(batch._replace(action=batch.action[:, :1]))
    with pytest.raises(ValueError, match=r"batch\.returns"):
        agent.update_rl(batch._replace(returns=batch.returns[:-1]))
    with pytest.raises(ValueError, match=r"batch\.bootstrap_obs"):
        agent.update_rl(batch._replace(bootstrap_obs=batch.bootstrap_obs[:, :3]))
    enc = encoder_batch(cfg, buf)
    with pytest.raises(ValueError, match="encoder horizon"):
        agent.update_encoder(enc._replace(reward=enc.reward[:, :2]))
    pixel_agent = MRQAgent(micro(), PIXEL_SPEC)
    with pytest.raises(TypeError, match="uint8"):
        pixel_agent.act(np.zeros(PIXEL_SPEC.env_obs_shape, dtype=np.float32), explore=False)
    with pytest.raises(ValueError, match="reward_scale must be a scalar"):
        agent.sync_targets(torch.ones(2))


def test_spec_with_unit_bounds_skips_action_rescaling():
    spec = EnvSpec(
        obs_shape=(5,), pixels=False, discrete=False, action_dim=2,
        action_low=(-1.0, -1.0), action_high=(1.0, 1.0),
    )  # fmt: skip
    agent = MRQAgent(micro(), spec)
    assert agent.action_mid is None
    a = agent.act(np.zeros(5, dtype=np.float32), explore=False)
    assert torch.all(a.abs() <= 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["mrq", "drq"])
def test_compiled_updates_match_eager(algorithm: str):
    cfg = micro(algorithm=algorithm)
    eager = MRQAgent(cfg, VECTOR_SPEC, seed=0)
    compiled = MRQAgent(cfg, VECTOR_SPEC, seed=0, compile=True)
    buf = filled_buffer(cfg, VECTOR_SPEC)
    for agent in (eager, compiled):
        agent.sync_targets(buf.reward_scale())
    for step in range(3):
        e = eager.update_encoder(encoder_batch(cfg, buf, seed=step))
        c = compiled.update_encoder(encoder_batch(cfg, buf, seed=step))
        for k in e:
            torch.testing.assert_close(c[k], e[k], rtol=1e-4, atol=1e-5)
        (er, etd), (cr, ctd) = (
            eager.update_rl(rl_batch(cfg, buf, seed=step)),
            compiled.update_rl(rl_batch(cfg, buf, seed=step)),
        )
        for k in er:
            torch.testing.assert_close(cr[k], er[k], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ctd, etd, rtol=1e-4, atol=1e-5)
    for name in ("encoder", "value", "policy"):
        a, b = params(getattr(eager, name)), params(getattr(compiled, name))
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5)
