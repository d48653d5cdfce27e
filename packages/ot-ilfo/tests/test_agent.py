"""TD3 learner: losses on hand tensors, gradient isolation, determinism, checkpoint round trip."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from ot_ilfo import TD3Agent, TD3Config, TimeToHorizon
from ot_ilfo.losses import critic_loss, pal, td_target
from rl_buffers import TransitionBatch, io

SMALL = TD3Config(hidden_sizes=(16, 16), horizon=10, policy_freq=2)


def _batch(seed: int = 0, b: int = 8, obs_dim: int = 4, time_left: float | None = None):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(b, obs_dim, generator=g)
    next_obs = torch.randn(b, obs_dim, generator=g)
    if time_left is not None:
        obs[:, -1] = time_left + 0.1
        next_obs[:, -1] = time_left
    return TransitionBatch(
        obs=obs,
        action=torch.rand(b, 2, generator=g) * 2 - 1,
        reward=torch.randn(b, generator=g),
        next_obs=next_obs,
        not_done=torch.ones(b),
        indices=torch.arange(b),
    )


def test_pal_by_hand() -> None:
    td = torch.tensor([0.5, -2.0])
    # |0.5| < 1: 1^0.4 * 0.5 * 0.25; |-2| >= 1: 1 * 2^1.4 / 1.4.
    expected = (0.125 + 2**1.4 / 1.4) / 2
    assert float(pal(td, alpha=0.4, min_priority=1.0)) == pytest.approx(expected)
    # min_priority 4: both quadratic with weight 4^0.4.
    assert float(pal(td, alpha=0.4, min_priority=4.0)) == pytest.approx(
        4**0.4 * 0.5 * (0.25 + 4.0) / 2
    )


def test_critic_losses_and_target_by_hand() -> None:
    q = torch.tensor([[1.0, 0.0], [3.0, 0.5]])  # (2 critics, B=2)
    target = torch.tensor([0.0, 0.0])
    mse, metrics = critic_loss(q, target, kind="mse", alpha=0.4, min_priority=1.0)
    assert float(mse) == pytest.approx((1 + 0) / 2 + (9 + 0.25) / 2)
    assert float(metrics["td_abs_mean"]) == pytest.approx((1 + 0 + 3 + 0.5) / 4)
    loss, _ = critic_loss(q, target, kind="pal", alpha=0.4, min_priority=1.0)
    pal1 = (1 / 1.4 + 0.0) / 2  # |1| is not < 1: the power branch, 1^1.4 / 1.4
    pal2 = (3**1.4 / 1.4 + 0.5 * 0.25) / 2
    norm = (3**0.4 + 1.0) / 2  # per sample max |td| over critics, floored at 1, ^0.4
    assert float(loss) == pytest.approx((pal1 + pal2) / norm)
    y = td_target(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0]), q, 0.5)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.5 * 1.0, 2.0]))


def test_no_bootstrap_past_the_horizon() -> None:
    cfg = TD3Config(hidden_sizes=(16, 16), horizon=10, aug_time=False)
    agent = TD3Agent(cfg, 4, 2, seed=0)
    out = agent.update(_batch(time_left=0.0))
    assert float(out["bootstrap_fraction"]) == 0.0
    assert float(out["q_target"]) == pytest.approx(float(_batch(time_left=0.0).reward.mean()))
    assert float(agent.update(_batch(time_left=0.5))["bootstrap_fraction"]) == 1.0
    # With time augmentation the critic sees k / T for k in 1..T: k = 1 ends bootstrapping.
    aug = TD3Agent(TD3Config(hidden_sizes=(16, 16), horizon=2), 4, 2, seed=0)
    fractions = [
        float(aug.update(_batch(s, b=64, time_left=0.5))["bootstrap_fraction"]) for s in range(4)
    ]
    assert 0.3 < sum(fractions) / 4 < 0.7


def test_gradient_isolation_and_input_unchanged() -> None:
    agent = TD3Agent(SMALL, 4, 2, seed=0)
    twin = copy.deepcopy(agent)
    twin_cfg = TD3Config(hidden_sizes=(16, 16), horizon=10, policy_freq=1000)
    twin.cfg = twin_cfg  # same state, but no actor step on the second update
    batch = _batch()
    saved = [t.clone() for t in batch]
    for a in (agent, twin):
        a.update(_batch(1))
        a.update(batch)  # agent: training step 2 -> actor step; twin: none
    for t, s in zip(batch, saved, strict=True):
        assert torch.equal(t, s)
    # The critic's gradients come from the critic loss only: the actor step added nothing.
    for p, q in zip(agent.critic.parameters(), twin.critic.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)
        assert p.requires_grad
    for net in (agent.actor_target, agent.critic_target):
        assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    assert all(p.grad is not None for p in agent.actor.parameters())
    assert all(p.grad is None for p in twin.actor.parameters())


def _params(agent: TD3Agent) -> list[torch.Tensor]:
    nets = (agent.actor, agent.critic, agent.actor_target, agent.critic_target)
    return [p.detach().clone() for net in nets for p in net.parameters()]


def test_same_seed_same_parameters_bitwise() -> None:
    runs = []
    for _ in range(2):
        agent = TD3Agent(SMALL, 4, 2, seed=3)
        for s in range(6):
            agent.update(_batch(s))
        runs.append([*_params(agent), agent.act(torch.zeros(4), explore=True)])
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)
    other = TD3Agent(SMALL, 4, 2, seed=4)
    assert not torch.equal(_params(other)[0], runs[0][0])


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    agent = TD3Agent(SMALL, 4, 2, seed=0)
    agent.set_obs_normalizer(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 1.0, 2.0]))
    for s in range(3):
        agent.update(_batch(s))
    io.save(agent.state_dict(), tmp_path / "agent.pt")
    restored = TD3Agent(SMALL, 4, 2, seed=99)
    restored.load_state_dict(io.load(tmp_path / "agent.pt"))
    obs = torch.randn(5, 4)
    for explore in (False, True):
        torch.testing.assert_close(
            agent.act(obs, explore=explore), restored.act(obs, explore=explore), rtol=0, atol=0
        )
    m1, m2 = agent.update(_batch(7)), restored.update(_batch(7))
    assert m1.keys() == m2.keys()
    for k in m1:
        assert torch.equal(m1[k], m2[k]), k
        assert m1[k].dim() == 0
        assert not m1[k].requires_grad
    for a, b in zip(_params(agent), _params(restored), strict=True):
        assert torch.equal(a, b)


def test_act_shapes_and_bounds() -> None:
    agent = TD3Agent(SMALL, 4, 2, seed=0)
    one = agent.act(torch.randn(4) * 100, explore=True)
    assert one.shape == (2,)
    many = agent.act(torch.randn(7, 4), explore=False)
    assert many.shape == (7, 2)
    assert float(many.abs().max()) <= 1.0


def test_bad_input_is_named() -> None:
    agent = TD3Agent(SMALL, 4, 2, seed=0)
    with pytest.raises(ValueError, match=r"obs: expected shape \(4,\) or \(B, 4\), got \(3,\)"):
        agent.act(torch.zeros(3), explore=False)
    with pytest.raises(TypeError, match="floating"):
        agent.act(torch.zeros(4, dtype=torch.int64), explore=False)
    with pytest.raises(ValueError, match="obs: has NaN"):
        agent.act(torch.full((4,), math.nan), explore=False)
    bad = _batch()._replace(action=torch.zeros(8, 3))
    with pytest.raises(ValueError, match=r"batch.action: expected shape \(8, 2\)"):
        agent.update(bad)
    with pytest.raises(ValueError, match=r"batch.reward"):
        agent.update(_batch()._replace(reward=torch.zeros(8, 1)))
    with pytest.raises(ValueError, match="std: must be > 0"):
        agent.set_obs_normalizer(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="tau must be"):
        TD3Config(tau=0.0)


def test_time_to_horizon_wrapper() -> None:
    import gymnasium as gym

    env = TimeToHorizon(gym.make("Pendulum-v1"), horizon=4)
    obs, _ = env.reset(seed=0)
    times = [float(obs[-1])]
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        times.append(float(obs[-1]))
        done = terminated or truncated or len(times) > 5
    assert times[:5] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert obs.shape == (4,)
    assert obs.dtype.name == "float32"
    assert TimeToHorizon(gym.make("Pendulum-v1")).horizon == 200
    with pytest.raises(ValueError, match="1-D Box"):
        TimeToHorizon(gym.make("Blackjack-v1"))
