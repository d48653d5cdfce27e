"""The N-agent contextual game of the paper's experiment and its offline datasets.

Agent i's reward is ``r_i(s, a) = sum_j a_i a_j / N + eps``, ``eps ~ U(-sigma, sigma)``, with
actions in [-1, 1] (continuous), or discrete actions whose values are evenly spaced in [-1, 1].
The reward is 2-IR and ignores the context s, as the paper's. The expected reward is
``a_i * mean(a)``, so the coordinated optima are all +1 and all -1 (payoff 1 each).

Contexts: continuous games draw ``s ~ U[-1, 1]^d``; discrete games draw one of ``C`` contexts
uniformly and show it one-hot, so that DR-AC can keep a policy table per context. Every agent
observes the context. Each sample is a one-step episode (``terminated``).

Behaviour policies (``GameConfig.behaviour``), for continuous and discrete actions:

* ``uniform``: every agent uniform on its actions.
* ``biased``: agent i has a bias ``b_i ~ U(-1, 1)`` drawn once per dataset; continuous actions are
  ``clip(b_i + 0.3 z)``, discrete ones ``softmax(3 b_i v)`` over the action values v. Agents pull
  in different directions, so the data holds few coordinated joint actions.
* ``noisy-good``: each agent plays the good action +1 perturbed (continuous: ``clip(0.8 +
  0.3 z)``; discrete: the +1 action) with probability 0.7, else a uniform action.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from marl_lowrank.config import GameConfig
from marl_lowrank.data import MultiAgentData, agent_names

__all__ = [
    "action_values",
    "behaviour_probs",
    "deterministic_metrics",
    "evaluate_actions",
    "expected_rewards",
    "make_game_dataset",
    "mixture_cce_gap",
    "mixture_return",
    "sample_contexts",
]


def action_values(num_actions: int) -> Tensor:
    """``(A,)`` float32 values of the discrete actions, evenly spaced in [-1, 1]."""
    return torch.linspace(-1.0, 1.0, num_actions)


def obs_dim(cfg: GameConfig) -> int:
    """Per-agent observation size: the context dimension, or the number of contexts (one-hot)."""
    return cfg.num_contexts if cfg.num_actions else cfg.context_dim


def sample_contexts(cfg: GameConfig, m: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``m`` contexts as every agent sees them.

    Returns:
        ``(obs (m, N, obs_dim) float32, context index (m,) int64)``; continuous games have no
        context index (all zeros).
    """
    n = cfg.num_agents
    if cfg.num_actions:
        idx = torch.randint(cfg.num_contexts, (m,), generator=gen)
        one_hot = torch.nn.functional.one_hot(idx, cfg.num_contexts).float()
        return one_hot[:, None, :].expand(m, n, -1).contiguous(), idx
    s = torch.rand(m, cfg.context_dim, generator=gen) * 2 - 1
    return s[:, None, :].expand(m, n, -1).contiguous(), torch.zeros(m, dtype=torch.long)


def expected_rewards(values: Tensor) -> Tensor:
    """Noise-free rewards: ``(..., N)`` action values → ``(..., N)``, ``a_i * mean_j a_j``."""
    return values * values.mean(dim=-1, keepdim=True)


def behaviour_probs(cfg: GameConfig, gen: torch.Generator) -> Tensor:
    """``(N, A)`` action probabilities of a discrete behaviour policy (the biases are drawn from
    ``gen``)."""
    n, a = cfg.num_agents, cfg.num_actions
    if cfg.behaviour == "uniform":
        return torch.full((n, a), 1.0 / a)
    if cfg.behaviour == "biased":
        bias = torch.rand(n, generator=gen) * 2 - 1
        return torch.softmax(3.0 * bias[:, None] * action_values(a)[None, :], dim=-1)
    good = torch.zeros(n, a)
    good[:, -1] = 1.0  # the +1 action
    return 0.7 * good + 0.3 / a


def _continuous_actions(cfg: GameConfig, m: int, gen: torch.Generator) -> Tensor:
    n = cfg.num_agents
    uniform = torch.rand(m, n, generator=gen) * 2 - 1
    if cfg.behaviour == "uniform":
        return uniform
    z = torch.randn(m, n, generator=gen)
    if cfg.behaviour == "biased":
        bias = torch.rand(n, generator=gen) * 2 - 1  # one bias per agent, for the whole dataset
        return (bias[None, :] + 0.3 * z).clamp(-1.0, 1.0)
    good = (0.8 + 0.3 * z).clamp(-1.0, 1.0)
    keep = torch.rand(m, n, generator=gen) < 0.7
    return torch.where(keep, good, uniform)


def make_game_dataset(cfg: GameConfig, seed: int) -> MultiAgentData:
    """``cfg.dataset_size`` joint samples from ``cfg.behaviour`` (reproducible from ``seed``)."""
    gen = torch.Generator().manual_seed(seed)
    m, n = cfg.dataset_size, cfg.num_agents
    obs, _ = sample_contexts(cfg, m, gen)
    meta: dict[str, object] = {
        "env": "game",
        "num_agents": n,
        "sigma": cfg.sigma,
        "context_dim": cfg.context_dim,
        "num_actions": cfg.num_actions,
        "num_contexts": cfg.num_contexts,
        "behaviour": cfg.behaviour,
        "seed": seed,
    }
    if cfg.num_actions:
        probs = behaviour_probs(cfg, gen)  # (N, A)
        action = torch.multinomial(probs, m, replacement=True, generator=gen).T.contiguous()
        values = action_values(cfg.num_actions)[action]  # (M, N)
        meta["behaviour_probs"] = probs.tolist()
    else:
        values = _continuous_actions(cfg, m, gen)
        action = values[:, :, None].contiguous()  # (M, N, 1)
    noise = (torch.rand(m, n, generator=gen) * 2 - 1) * cfg.sigma
    reward = (expected_rewards(values) + noise).float()
    return MultiAgentData(
        obs=obs,
        action=action,
        reward=reward,
        next_obs=obs.clone(),
        terminated=torch.ones(m, dtype=torch.bool),
        agents=agent_names(n),
        meta=meta,
    )


def deterministic_metrics(values: Tensor) -> dict[str, float]:
    """Exact metrics of deterministic continuous joint actions, averaged over contexts.

    Args:
        values: ``(M, N)`` actions in [-1, 1], one row per evaluation context.

    Returns:
        ``return`` (mean over agents of the expected reward, at most 1), ``optimum_distance``
        (RMS distance to the nearer coordinated optimum, all +1 or all -1: 0 at an optimum, 1
        at all zeros) and ``nash_gap`` (the largest gain of a unilateral deviation,
        ``max_i max_{a'} r_i(a', a_-i) - r_i(a)``; the best deviation is +1 or -1, the reward
        being convex in a_i).
    """
    n = values.shape[-1]
    r = expected_rewards(values)  # (M, N)
    others = values.sum(dim=-1, keepdim=True) - values  # S_{-i}
    best = (others.abs() + 1.0) / n  # max over a' in {-1, +1} of (a' S_-i + a'^2) / N
    dist = torch.minimum((values - 1).pow(2).mean(dim=-1), (values + 1).pow(2).mean(dim=-1)).sqrt()
    return {
        "return": float(r.mean()),
        "optimum_distance": float(dist.mean()),
        "nash_gap": float((best - r).amax(dim=-1).mean()),
    }


def _moments(iterates: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """First and second moments of each agent's action value: ``(T, C, N)`` each."""
    return iterates @ values, iterates @ values.pow(2)


def mixture_return(iterates: Tensor, values: Tensor) -> float:
    """Exact expected reward (mean over agents and contexts) of the uniform mixture of product
    policies ``iterates (T, C, N, A)`` (contexts uniform)."""
    n = iterates.shape[2]
    m1, m2 = _moments(iterates, values)
    total = m1.sum(dim=-1, keepdim=True)
    v = (m1 * (total - m1) + m2) / n  # E[a_i sum_j a_j] / N under a product policy
    return float(v.mean())


def mixture_cce_gap(iterates: Tensor, values: Tensor) -> float:
    """The exact coarse-correlated-equilibrium gap of the uniform mixture of the product
    policies ``iterates (T, C, N, A)`` in the discrete game (contexts uniform).

    Every unilateral deviation is enumerated: agent i replaces its action in context c by a
    fixed action k while the others keep the mixture's correlated play. Because the reward is a
    sum of pair terms that each involve agent i, the mixture's per-iterate marginals give each
    deviation's value exactly (no joint enumeration)::

        dev_i(c, k) = mean_t (v_k (S_t - m_ti) + v_k^2) / N,   V_i(c) = mean_t (m_ti (S_t - m_ti)
        + q_ti) / N,   gap = max(0, max_i mean_c (max_k dev_i(c, k) - V_i(c)))

    with ``m``, ``q`` the first and second moments of the action value and ``S_t = sum_j m_tj``.
    """
    n = iterates.shape[2]
    m1, m2 = _moments(iterates, values)  # (T, C, N)
    rest = m1.sum(dim=-1, keepdim=True) - m1  # sum over the others, (T, C, N)
    value = ((m1 * rest + m2) / n).mean(dim=0)  # (C, N)
    dev = (values * rest[..., None] + values.pow(2)) / n  # (T, C, N, A)
    best = dev.mean(dim=0).amax(dim=-1)  # (C, N)
    return max(0.0, float((best - value).mean(dim=0).amax()))


def evaluate_actions(
    cfg: GameConfig, act: Callable[[Tensor], Tensor], *, contexts: int, seed: int
) -> dict[str, float]:
    """:func:`deterministic_metrics` of a deterministic continuous joint policy over
    ``contexts`` fresh contexts (drawn from ``seed``).

    Args:
        cfg: The game.
        act: ``(M, N, obs_dim)`` observations → ``(M, N, 1)`` actions in [-1, 1].
        contexts: Evaluation contexts.
        seed: Seed of the contexts.
    """
    obs, _ = sample_contexts(cfg, contexts, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        values = act(obs)[..., 0].clamp(-1.0, 1.0).cpu()
    return deterministic_metrics(values)
