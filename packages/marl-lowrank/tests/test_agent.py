"""Decentralised TD3+BC: the agent contract (inputs untouched, targets without gradients,
determinism, checkpoint round trip) and learning the game's coordinated optimum."""

from __future__ import annotations

import copy

import torch
from marl_lowrank.agent import TD3BCAgent
from marl_lowrank.config import CriticConfig, GameConfig, TD3BCConfig
from marl_lowrank.data import MultiAgentBatches
from marl_lowrank.game import evaluate_actions, make_game_dataset

GAME = GameConfig(num_agents=5, dataset_size=2000)


def _agent(kind: str = "ir2", *, discount: float = 0.0, seed: int = 0) -> TD3BCAgent:
    cfg = TD3BCConfig(
        batch_size=64,
        discount=discount,
        actor_lr=1e-3,
        critic_lr=1e-3,
        critic=CriticConfig(kind=kind, hidden_sizes=(32,), num_critics=2),  # pyright: ignore[reportArgumentType]
    )
    return TD3BCAgent(cfg, GAME.num_agents, GAME.context_dim, 1, seed=seed)


def _batches(seed: int = 0) -> MultiAgentBatches:
    return MultiAgentBatches(make_game_dataset(GAME, 0), batch_size=64, seed=seed, device="cpu")


def test_update_leaves_the_batch_and_targets_alone_and_is_deterministic() -> None:
    a, b = _agent(discount=0.9), _agent(discount=0.9)
    batch = _batches().sample()
    before = [t.clone() for t in (batch.obs, batch.action, batch.reward)]
    for _ in range(4):
        a.update(batch)
        b.update(batch)
    for old, new in zip(before, (batch.obs, batch.action, batch.reward), strict=True):
        assert torch.equal(old, new)
    assert all(p.grad is None for p in a.critics_target.parameters())
    assert all(p.grad is None for p in a.actor_target.parameters())
    for p, q in zip(a.actor.parameters(), b.actor.parameters(), strict=True):
        assert torch.equal(p, q)


def test_checkpoint_round_trip_gives_the_same_actions_and_next_update() -> None:
    a = _agent(discount=0.9)
    src = _batches()
    for _ in range(3):
        a.update(src.sample())
    b = _agent(discount=0.9, seed=7)
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # as from a file: no shared tensors
    obs = src.sample().obs
    assert torch.equal(a.act(obs), b.act(obs))
    batch = src.sample()
    ma, mb = a.update(batch), b.update(batch)
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    for p, q in zip(a.critics.parameters(), b.critics.parameters(), strict=True):
        assert torch.equal(p, q)


def test_ir2_td3bc_learns_the_coordinated_optimum_from_uniform_data() -> None:
    agent = _agent("ir2")
    src = _batches()
    for _ in range(400):
        agent.update(src.sample())
    result = evaluate_actions(GAME, agent.act, contexts=256, seed=1)
    # Uniform behaviour (and a random policy) earn 1/(3N) ~ 0.07 on average; the optimum is 1.
    assert result["return"] > 0.8, result
    assert result["optimum_distance"] < 0.2, result
