"""Decentralised TD3+BC with parameter sharing: one actor (plus agent id) acts for every agent,
each agent i has its own critic Q^i from the chosen interaction-rank class (all agents' critics
evaluated in one call, ``(B, N)``).

Per update (TD3+BC, Fujimoto & Gu 2021, per agent):

* critic: ``y^i = r^i + gamma not_done min_k Q'_k^i(s', a~')``, ``a~' = clip(pi'(o') + clip(noise))``
  for every agent; each critic regresses ``Q_k^i(s, a)`` on ``y^i``;
* actor (every ``policy_freq`` updates): ``-lambda mean_i Q_1^i(s, pi(o_i), a_-i) + mean_i
  (pi(o_i) - a_i)^2`` with ``lambda = alpha / mean|Q|``; agent i's own action is live, the
  others' are detached (decentralised: agent i improves its own action only);
* soft target updates.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from rl_buffers import MultiAgentBatch
from rl_nets import soft_update
from torch import Tensor, nn

from marl_lowrank.config import TD3BCConfig
from marl_lowrank.losses import critic_loss, td3bc_actor_loss
from marl_lowrank.networks import Actor, make_critic

__all__ = ["TD3BCAgent"]


class TD3BCAgent:
    """Decentralised TD3+BC over ``N`` agents (module doc).

    Args:
        cfg: The configuration.
        num_agents: ``N``.
        obs_dim: Per-agent observation size.
        action_dim: Per-agent action size (actions in [-1, 1]).
        obs_mean: ``(obs_dim,)`` observation mean for normalisation (TD3+BC normalises states),
            or None.
        obs_std: ``(obs_dim,)`` observation std, or None.
        device: Where the networks live.
        seed: Seed of the initialisation and of the target-smoothing noise.
    """

    def __init__(
        self,
        cfg: TD3BCConfig,
        num_agents: int,
        obs_dim: int,
        action_dim: int,
        *,
        obs_mean: Tensor | None = None,
        obs_std: Tensor | None = None,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.actor = Actor(
            num_agents, obs_dim, action_dim, cfg.actor_hidden_sizes, agent_id=cfg.critic.agent_id
        ).to(self.device)
        self.critics = nn.ModuleList(
            make_critic(cfg.critic, num_agents, obs_dim, action_dim)
            for _ in range(cfg.critic.num_critics)
        ).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=cfg.critic_lr)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        mean = torch.zeros(obs_dim) if obs_mean is None else obs_mean.float()
        std = torch.ones(obs_dim) if obs_std is None else obs_std.float()
        self.obs_mean = mean.to(self.device)
        self.obs_std = std.clamp_min(1e-3).to(self.device)
        self.updates = 0

    def _norm(self, obs: Tensor) -> Tensor:
        return (obs - self.obs_mean) / self.obs_std

    @torch.no_grad()
    def act(self, obs: Tensor, *, explore: bool = False) -> Tensor:
        """Deterministic joint action (offline: no exploration). ``(B, N, D)`` or ``(N, D)`` →
        the same leading shape with ``action_dim``."""
        del explore
        single = obs.ndim == 2
        x = obs[None] if single else obs
        a = self.actor(self._norm(x.to(self.device, torch.float32)))
        return a[0] if single else a

    def update(self, batch: MultiAgentBatch) -> dict[str, Tensor]:
        """One TD3+BC step on a joint batch; detached 0-dim metrics."""
        cfg = self.cfg
        obs, next_obs = self._norm(batch.obs), self._norm(batch.next_obs)
        action = batch.action
        with torch.no_grad():
            noise = torch.randn(action.shape, generator=self.generator, device=self.device)
            noise = (noise * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            if cfg.discount > 0:
                next_action = (self.actor_target(next_obs) + noise).clamp(-1.0, 1.0)
                targets = [c(next_obs, next_action) for c in self.critics_target]
                next_q = torch.stack(targets).amin(dim=0)
                target = batch.reward + cfg.discount * batch.not_done * next_q  # (B, N)
            else:  # a contextual game (one step): the target is the reward, no bootstrap
                target = batch.reward
        qs = [c(obs, action) for c in self.critics]
        loss, metrics = critic_loss(qs, target)
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        self.updates += 1
        if self.updates % cfg.policy_freq == 0:
            pi = self.actor(obs)  # (B, N, A), live
            others = pi.detach() if cfg.others == "policy" else action
            # Agent i's critic at its own live action against the others' (detached) actions.
            q = self.critics[0](obs, others, own=pi)  # (B, N)
            actor_loss, actor_metrics = td3bc_actor_loss(q, pi, action, cfg.alpha)
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            soft_update(self.critics_target, self.critics, cfg.tau)
            soft_update(self.actor_target, self.actor, cfg.tau)
            metrics.update(actor_metrics)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, optimisers, normalisation, counter and generator."""
        return {
            "actor": self.actor.state_dict(),
            "critics": self.critics.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critics_target": self.critics_target.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "obs_mean": self.obs_mean.cpu(),
            "obs_std": self.obs_std.cpu(),
            "updates": self.updates,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.actor.load_state_dict(state["actor"])
        self.critics.load_state_dict(state["critics"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.critics_target.load_state_dict(state["critics_target"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.obs_mean = state["obs_mean"].to(self.device)
        self.obs_std = state["obs_std"].to(self.device)
        self.updates = int(state["updates"])
        self.generator.set_state(state["generator"])
