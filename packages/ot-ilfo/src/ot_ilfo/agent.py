"""The paper's learner: TD3 with a time-to-horizon input, time augmentation and the PAL loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from rl_buffers import TransitionBatch
from rl_nets import frozen_copy, soft_update
from torch import Tensor

from ot_ilfo.config import TD3Config
from ot_ilfo.losses import actor_loss, critic_loss, td_target
from ot_ilfo.networks import Actor, TwinCritic

__all__ = ["TD3Agent"]


class TD3Agent:
    """TD3 (Fujimoto et al. 2018) with the settings of the paper's code.

    With ``cfg.time_input`` the last observation entry is the time to horizon ``(T - t) / T``
    (:class:`ot_ilfo.envs.TimeToHorizon`). Bootstrapping then stops where the next observation's
    time is 0 (the fixed-horizon episode is over) as well as on true terminations; with
    ``cfg.aug_time`` the critic is trained at a uniformly drawn time ``k / T`` (``k`` in
    ``1..T``) in place of the recorded one, so every stored transition teaches the value at
    every time left, while the actor keeps the recorded time.

    Actions live in ``[-1, 1]^A``: wrap environments with other bounds in
    ``gymnasium.wrappers.RescaleAction``.

    Args:
        cfg: Settings (defaults: the paper's).
        obs_dim: Observation features, the time entry included when ``cfg.time_input``.
        action_dim: ``A``.
        device: Where networks live and batches must be.
        seed: Seeds the initialisation and the agent's generator (exploration, target-policy
            noise, time augmentation).
    """

    def __init__(
        self,
        cfg: TD3Config,
        obs_dim: int,
        action_dim: int,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        if obs_dim < (2 if cfg.time_input else 1) or action_dim < 1:
            raise ValueError(
                f"TD3Agent: obs_dim {obs_dim} (time_input={cfg.time_input}) and action_dim "
                f"{action_dim} are too small"
            )
        self.cfg = cfg
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.actor = Actor(obs_dim, action_dim, cfg.hidden_sizes).to(self.device)
            self.critic = TwinCritic(obs_dim, action_dim, cfg.hidden_sizes).to(self.device)
        self.actor_target = frozen_copy(self.actor)
        self.critic_target = frozen_copy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.generator = torch.Generator(self.device).manual_seed(seed + 1)
        # Input normalisation of the state entries (not the time entry); identity until set.
        self.obs_mean = torch.zeros(self.state_dims, device=self.device)
        self.obs_std = torch.ones(self.state_dims, device=self.device)
        self.training_steps = 0

    @property
    def state_dims(self) -> int:
        """Observation entries that are the state (all but the time entry, if any)."""
        return self.obs_dim - 1 if self.cfg.time_input else self.obs_dim

    def set_obs_normalizer(self, mean: Tensor, std: Tensor) -> None:
        """Normalise the state entries as ``(s - mean) / std`` in every network input.

        Args:
            mean: ``(state_dims,)``.
            std: ``(state_dims,)``, finite and > 0.
        """
        for name, t in (("mean", mean), ("std", std)):
            if tuple(t.shape) != (self.state_dims,):
                raise ValueError(
                    f"{name}: expected shape ({self.state_dims},), got {tuple(t.shape)}"
                )
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name}: has NaN or inf")
        if not bool((std > 0).all()):
            raise ValueError("std: must be > 0 everywhere")
        self.obs_mean = mean.to(self.device, torch.float32).clone()
        self.obs_std = std.to(self.device, torch.float32).clone()

    def _norm(self, obs: Tensor) -> Tensor:
        k = self.state_dims
        state = (obs[..., :k] - self.obs_mean) / self.obs_std
        return torch.cat([state, obs[..., k:]], dim=-1)

    def _check_obs(self, obs: Tensor, name: str, batched: bool) -> Tensor:
        if not obs.is_floating_point():
            raise TypeError(f"{name}: expected a floating tensor, got {obs.dtype}")
        if obs.dim() not in ((2,) if batched else (1, 2)) or obs.shape[-1] != self.obs_dim:
            want = (
                f"(B, {self.obs_dim})" if batched else f"({self.obs_dim},) or (B, {self.obs_dim})"
            )
            raise ValueError(f"{name}: expected shape {want}, got {tuple(obs.shape)}")
        if not bool(torch.isfinite(obs).all()):
            raise ValueError(f"{name}: has NaN or inf")
        return obs.to(self.device, torch.float32)

    @torch.no_grad()
    def act(self, obs: Tensor, *, explore: bool) -> Tensor:
        """Action for one observation ``(obs_dim,)`` or a batch ``(B, obs_dim)``.

        Returns:
            ``(A,)`` or ``(B, A)`` in ``[-1, 1]``, with ``N(0, expl_noise)`` noise when exploring.
        """
        x = self._check_obs(torch.as_tensor(obs), "obs", batched=False)
        action = self.actor(self._norm(x))
        if explore and self.cfg.expl_noise > 0:
            noise = (
                torch.randn(action.shape, generator=self.generator, device=self.device)
                * self.cfg.expl_noise
            )
            action = (action + noise).clamp(-1.0, 1.0)
        return action

    def _check_batch(self, batch: TransitionBatch) -> None:
        b = batch.obs.shape[0]
        self._check_obs(batch.obs, "batch.obs", batched=True)
        self._check_obs(batch.next_obs, "batch.next_obs", batched=True)
        for name, t, shape in (
            ("batch.action", batch.action, (b, self.action_dim)),
            ("batch.reward", batch.reward, (b,)),
            ("batch.not_done", batch.not_done, (b,)),
            ("batch.next_obs", batch.next_obs, (b, self.obs_dim)),
        ):
            if tuple(t.shape) != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {tuple(t.shape)}")

    def update(self, batch: TransitionBatch, /) -> dict[str, Tensor]:
        """One critic step, and every ``policy_freq`` steps an actor step and target updates.

        Args:
            batch: ``B`` transitions on :attr:`device` (``obs``/``next_obs`` ``(B, obs_dim)``,
                ``action`` ``(B, A)``, ``reward``/``not_done`` ``(B,)``); not modified.

        Returns:
            Detached 0-dim tensors: ``critic_loss``, ``q_mean``, ``td_abs_mean``,
            ``q_target`` (mean TD target), ``critic_grad_norm``, ``bootstrap_fraction`` and, on
            actor steps, ``actor_loss`` and ``actor_grad_norm``.
        """
        cfg = self.cfg
        self._check_batch(batch)
        obs = batch.obs.float()
        next_obs = batch.next_obs.float()
        action = batch.action.float()
        reward = batch.reward.float()
        not_done = batch.not_done.float()
        b = obs.shape[0]
        critic_obs, critic_next = obs, next_obs
        if cfg.time_input:
            k = self.state_dims
            if cfg.aug_time:
                steps_left = torch.randint(
                    1, cfg.horizon + 1, (b, 1), generator=self.generator, device=self.device
                ).float()
                critic_obs = torch.cat([obs[:, :k], steps_left / cfg.horizon], dim=1)
                critic_next = torch.cat([next_obs[:, :k], (steps_left - 1) / cfg.horizon], dim=1)
            # No value is left after the horizon: stop bootstrapping where the next time is 0.
            not_done = not_done * (critic_next[:, k] > 0).float()

        with torch.no_grad():
            noise = (
                torch.randn(action.shape, generator=self.generator, device=self.device)
                * cfg.policy_noise
            ).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_in = self._norm(critic_next)
            next_action = (self.actor_target(next_in) + noise).clamp(-1.0, 1.0)
            target = td_target(
                reward, not_done, self.critic_target(next_in, next_action), cfg.discount
            )
        q = self.critic(self._norm(critic_obs), action)  # (2, B)
        loss, metrics = critic_loss(
            q, target, kind=cfg.critic_loss, alpha=cfg.pal_alpha, min_priority=cfg.pal_min_priority
        )
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.critic.parameters(), cfg.critic_grad_clip or float("inf")
        )
        self.critic_opt.step()
        out = {
            "critic_loss": loss.detach(),
            **metrics,
            "q_target": target.mean(),
            "critic_grad_norm": grad_norm.detach(),
            "bootstrap_fraction": not_done.mean(),
        }
        self.training_steps += 1

        if self.training_steps % cfg.policy_freq == 0:
            # The critic is frozen during the actor step so the policy loss leaves it no grads.
            self.critic.requires_grad_(False)
            norm_obs = self._norm(obs)
            a_loss, _ = actor_loss(self.critic(norm_obs, self.actor(norm_obs))[0])
            self.actor_opt.zero_grad(set_to_none=True)
            a_loss.backward()
            self.critic.requires_grad_(True)
            a_norm = torch.nn.utils.clip_grad_norm_(
                self.actor.parameters(), cfg.actor_grad_clip or float("inf")
            )
            self.actor_opt.step()
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.actor_target, self.actor, cfg.tau)
            out["actor_loss"] = a_loss.detach()
            out["actor_grad_norm"] = a_norm.detach()
        return out

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, optimisers, normaliser, generator and step counter."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "obs_mean": self.obs_mean.clone(),
            "obs_std": self.obs_std.clone(),
            "generator": self.generator.get_state(),
            "training_steps": self.training_steps,
        }

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output into an agent built with the same config and dims."""
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.set_obs_normalizer(state["obs_mean"], state["obs_std"])
        self.generator.set_state(state["generator"])
        self.training_steps = int(state["training_steps"])
