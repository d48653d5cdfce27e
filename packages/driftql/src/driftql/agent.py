"""DriftQL, FQL and BC agents: modules, target critic, optimisers, acting and the update step.

The trainer samples; the agent never does. One call of ``update(batch)`` is one gradient step of
every network on one ``rl_buffers.TransitionBatch``::

    agent = make_agent(task_preset("cube-single"), obs_dim, action_dim, device=dev, seed=0)
    for step in range(num_steps):
        metrics = agent.update(buffer.sample(cfg.optim.batch_size, generator))
    action = agent.act(obs)                       # one forward pass (FQL: its one-step policy)

Every update draws its noise from the agent's own ``torch.Generator`` *before* the loss
computation (which ``compile=True`` wraps in ``torch.compile``), returns detached 0-dim metrics
and never calls ``.item()``. The batch value check (``cfg.check_values``) is the one host sync.

Step order, as the official JAX code (one Adam over all parameters, one ``jax.grad`` of
``critic_loss + actor_loss``): both losses are computed from the same pre-update parameters, the
critic's TD target reads the actor without gradient, the actor's Q term reads the critic through
detached parameters, then the target critic is Polyak-averaged towards the *pre-update* critic
(the official ``target_update`` reads ``self.network``, the old parameters) and both optimisers
step. Separate Adams give the same result as one Adam over disjoint parameter sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from rl_buffers.batches import TransitionBatch
from rl_nets import frozen_copy, soft_update
from rl_runtime.config import positive_int
from rl_runtime.optim import fused_adam, maybe_compile
from torch import Tensor, nn
from torch.func import functional_call

from driftql import losses
from driftql.config import AgentConfig
from driftql.networks import Actor, Critic

__all__ = ["Agent", "BCAgent", "DriftQLAgent", "FQLAgent", "QCritic", "make_agent"]

Metrics = dict[str, Tensor]


class QCritic:
    """The Q ensemble, its Polyak target and its optimiser (shared by DriftQL and FQL).

    Args:
        cfg: Agent config (``cfg.critic``, ``cfg.optim.critic_lr``).
        obs_dim: Observation features O.
        action_dim: Action features A.
        device: Where the networks live.
        generator: Source of the initial weights.

    Attributes:
        net: Online :class:`~driftql.networks.Critic`.
        target: Frozen copy, updated only by :meth:`polyak`.
        optimizer: Adam over ``net``.
    """

    def __init__(
        self,
        cfg: AgentConfig,
        obs_dim: int,
        action_dim: int,
        *,
        device: torch.device,
        generator: torch.Generator,
    ) -> None:
        self.cfg = cfg
        self.net = Critic(
            obs_dim,
            action_dim,
            hidden_sizes=cfg.critic.hidden_sizes,
            num_members=cfg.critic.num_members,
            layer_norm=cfg.critic.layer_norm,
            generator=generator,
        ).to(device)
        self.target: Critic = frozen_copy(self.net)
        self.optimizer = fused_adam(self.net.parameters(), cfg.optim.critic_lr, device=device)

    def loss(
        self,
        obs: Tensor,
        action: Tensor,
        reward: Tensor,
        not_done: Tensor,
        next_obs: Tensor,
        next_action: Tensor,
    ) -> tuple[Tensor, Metrics]:
        """TD loss of every member against the target critic at ``(s', a')``.

        Args:
            obs, next_obs: ``(B, O)``.
            action: ``(B, A)`` dataset action (clipped).
            reward, not_done: ``(B,)``.
            next_action: ``(B, A)`` the policy's action at ``s'`` (no gradient).

        Returns:
            ``(loss, metrics)`` from :func:`driftql.losses.critic_loss`.
        """
        with torch.no_grad():
            next_q = self.target(next_obs, next_action)  # (E, B)
            target = losses.td_target(
                reward,
                not_done,
                next_q,
                discount=self.cfg.critic.discount,
                q_agg=self.cfg.critic.q_agg,
            )
        return losses.critic_loss(self.net(obs, action), target)

    def q_for_actor(self, obs: Tensor, action: Tensor) -> Tensor:
        """``(E, B)`` Q values whose gradient reaches ``action`` but never the critic's weights.

        The parameters enter as detached tensors, so no weight gradient is even computed.
        """
        params = {name: p.detach() for name, p in self.net.named_parameters()}
        return functional_call(self.net, params, (obs, action))

    def polyak(self) -> None:
        """``target <- (1 - tau) target + tau net``."""
        soft_update(self.target, self.net, self.cfg.critic.tau)

    def state_dict(self) -> dict[str, Any]:
        """Online and target networks and the optimiser."""
        return {
            "net": self.net.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.net.load_state_dict(state["net"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])


class _Inputs:
    """A checked batch on the agent's device: float32, dataset action clipped (never in place)."""

    __slots__ = ("action", "next_obs", "not_done", "obs", "reward")

    def __init__(
        self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor, not_done: Tensor
    ) -> None:
        self.obs = obs
        self.action = action
        self.reward = reward
        self.next_obs = next_obs
        self.not_done = not_done


class _AgentBase:
    """Plumbing shared by the three agents: input checks, generators, counters, checkpoints."""

    algo: str = ""

    def __init__(
        self, cfg: AgentConfig, obs_dim: int, action_dim: int, *, device: torch.device, seed: int
    ) -> None:
        positive_int("obs_dim", obs_dim)
        positive_int("action_dim", action_dim)
        if cfg.algo != self.algo:
            raise ValueError(
                f"{type(self).__name__} needs cfg.algo={self.algo!r}, got {cfg.algo!r}"
            )
        self.cfg = cfg
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.device = torch.device(device)
        self._init_gen = torch.Generator().manual_seed(seed)
        self._act_gen = torch.Generator(device=self.device).manual_seed(seed + 1)
        self._update_gen = torch.Generator(device=self.device).manual_seed(seed + 2)
        self.training_steps = 0

    @property
    def noise_dim(self) -> int:
        """Width of the policy's input noise (0 for BC)."""
        return self.cfg.noise_dim(self.action_dim)

    # ------------------------------------------------------------------ input checks

    def _obs_input(self, obs: Tensor) -> tuple[Tensor, bool]:
        """``(O,)`` or ``(B, O)`` floating -> ``((B, O) float32 on device, batched)``."""
        if not isinstance(obs, Tensor):
            raise TypeError(f"obs: expected a torch.Tensor, got {type(obs).__name__}")
        if obs.dim() not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"obs: expected shape ({self.obs_dim},) or (B, {self.obs_dim}), "
                f"got {tuple(obs.shape)}"
            )
        if not obs.dtype.is_floating_point:
            raise TypeError(f"obs: expected a floating dtype, got {obs.dtype}")
        batched = obs.dim() == 2
        x = obs.to(device=self.device, dtype=torch.float32)
        return (x if batched else x.unsqueeze(0)), batched

    def _field(self, batch: TransitionBatch, name: str, trailing: tuple[int, ...]) -> Tensor:
        x = getattr(batch, name)
        if not isinstance(x, Tensor):
            raise TypeError(f"batch.{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 1 + len(trailing) or tuple(x.shape[1:]) != trailing:
            dims = ", ".join(["B", *map(str, trailing)])
            raise ValueError(f"batch.{name}: expected shape ({dims}), got {tuple(x.shape)}")
        if not x.dtype.is_floating_point:
            raise TypeError(f"batch.{name}: expected a floating dtype, got {x.dtype}")
        return x.to(device=self.device, dtype=torch.float32)

    def _check_batch(self, batch: TransitionBatch) -> _Inputs:
        """Shapes and dtypes always; NaN/inf and the action range when ``cfg.check_values``."""
        obs = self._field(batch, "obs", (self.obs_dim,))
        action = self._field(batch, "action", (self.action_dim,))
        reward = self._field(batch, "reward", ())
        next_obs = self._field(batch, "next_obs", (self.obs_dim,))
        not_done = self._field(batch, "not_done", ())
        size = obs.shape[0]
        if size < 1:
            raise ValueError("batch: expected at least one transition, got B=0")
        for name, x in (
            ("action", action),
            ("reward", reward),
            ("next_obs", next_obs),
            ("not_done", not_done),
        ):
            if x.shape[0] != size:
                raise ValueError(
                    f"batch.{name}: expected batch size {size} (from batch.obs), got {x.shape[0]}"
                )
        if self.cfg.check_values:
            self._check_values(obs, action, reward, next_obs, not_done)
        clip = self.cfg.action_clip
        # Out of place: the caller's batch (often a view of the replay storage) is never mutated.
        return _Inputs(obs, action.clamp(-clip, clip), reward, next_obs, not_done)

    def _check_values(
        self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor, not_done: Tensor
    ) -> None:
        named = (
            ("obs", obs),
            ("action", action),
            ("reward", reward),
            ("next_obs", next_obs),
            ("not_done", not_done),
        )
        flags = [torch.isfinite(x).all() for _, x in named]
        binary = ((not_done == 0) | (not_done == 1)).all()
        # One host sync for every check.
        stats = torch.stack(
            [*(f.float() for f in flags), binary.float(), action.abs().amax().float()]
        ).tolist()
        for (name, _), ok in zip(named, stats[: len(named)], strict=True):
            if not ok:
                raise ValueError(f"batch.{name} contains NaN or inf")
        if not stats[len(named)]:
            raise ValueError("batch.not_done must hold only 0.0 or 1.0")
        max_abs = stats[-1]
        if max_abs > 1.0 + self.cfg.action_tolerance:
            raise ValueError(
                f"batch.action must lie in [-1, 1] (tolerance {self.cfg.action_tolerance}); "
                f"got max |action| = {max_abs:.6g}. Rescale the dataset's actions to [-1, 1]."
            )

    def _randn(self, *shape: int) -> Tensor:
        return torch.randn(shape, generator=self._update_gen, device=self.device)

    def _actor_critic_step(
        self, critic: QCritic, actor_optimizer: torch.optim.Optimizer, losses: tuple[Tensor, ...]
    ) -> None:
        """One step of both optimisers from ``critic_loss + actor_loss``, then the Polyak step.

        The two losses share no parameters, so one backward gives each its own gradients. The
        target moves towards the pre-update critic, as the official code.
        """
        critic_loss, actor_loss = losses
        actor_optimizer.zero_grad(set_to_none=True)
        critic.optimizer.zero_grad(set_to_none=True)
        (critic_loss + actor_loss).backward()
        critic.polyak()
        critic.optimizer.step()
        actor_optimizer.step()
        self.training_steps += 1

    # ------------------------------------------------------------------ checkpointing

    def _modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Networks (targets included), optimisers, generators, step counter and config."""
        state: dict[str, Any] = {name: m.state_dict() for name, m in self._modules().items()}
        state.update({name: o.state_dict() for name, o in self._optimizers().items()})
        state.update(
            {
                "act_generator": self._act_gen.get_state(),
                "update_generator": self._update_gen.get_state(),
                "training_steps": self.training_steps,
                "config": self.cfg.to_dict(),
                "obs_dim": self.obs_dim,
                "action_dim": self.action_dim,
            }
        )
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` (strict: same keys, config, dimensions and shapes).

        Raises:
            KeyError: Missing or unexpected keys (named).
            ValueError: A different config or different observation/action dimensions.
        """
        name = type(self).__name__
        expected = set(self.state_dict())
        missing, extra = expected - set(state), set(state) - expected
        if missing or extra:
            raise KeyError(
                f"{name}.load_state_dict: missing keys {sorted(missing)}, "
                f"unexpected keys {sorted(extra)}"
            )
        if AgentConfig.from_dict(state["config"]) != self.cfg:
            raise ValueError(f"{name}.load_state_dict: the checkpoint was made with another config")
        dims = (state["obs_dim"], state["action_dim"])
        if dims != (self.obs_dim, self.action_dim):
            raise ValueError(
                f"{name}.load_state_dict: checkpoint has (obs_dim, action_dim) = {dims}, "
                f"agent has {(self.obs_dim, self.action_dim)}"
            )
        for key, module in self._modules().items():
            module.load_state_dict(state[key])
        for key, opt in self._optimizers().items():
            opt.load_state_dict(state[key])
        self._act_gen.set_state(state["act_generator"])
        self._update_gen.set_state(state["update_generator"])
        self.training_steps = int(state["training_steps"])


class DriftQLAgent(_AgentBase):
    """DriftQL: a one-step stochastic actor ``a = clip(f(s, z))`` trained with
    ``alpha * drift_loss - Q`` and an FQL-style clipped double-Q critic.

    Args:
        cfg: Config with ``algo="driftql"`` (presets: :func:`driftql.task_preset`).
        obs_dim: Observation features O.
        action_dim: Action features A (actions live in [-1, 1]).
        device: Where networks live and updates run; batches are moved there.
        seed: Seeds the initial weights and the agent's generators (acting, update noise).
        compile: Wrap the loss computation in ``torch.compile``.

    Attributes:
        cfg: The config (never mutated).
        actor: :class:`~driftql.networks.Actor` ``f(s, z)``, ``z ~ N(0, I_noise_dim)``.
        critic: :class:`QCritic` (online, target, optimiser).
        actor_optimizer: Adam over the actor.
        training_steps: Updates done so far.
    """

    algo = "driftql"

    def __init__(
        self,
        cfg: AgentConfig,
        obs_dim: int,
        action_dim: int,
        *,
        device: torch.device,
        seed: int,
        compile: bool = False,
    ) -> None:
        super().__init__(cfg, obs_dim, action_dim, device=device, seed=seed)
        self.critic = QCritic(
            cfg, obs_dim, action_dim, device=self.device, generator=self._init_gen
        )
        self.actor = Actor(
            obs_dim,
            action_dim,
            self.noise_dim,
            hidden_sizes=cfg.actor.hidden_sizes,
            layer_norm=cfg.actor.layer_norm,
            generator=self._init_gen,
        ).to(self.device)
        self.actor_optimizer = fused_adam(
            self.actor.parameters(), cfg.optim.actor_lr, device=self.device
        )
        self._losses = maybe_compile(self._losses_eager, compile)

    @torch.no_grad()
    def act(self, obs: Tensor, *, explore: bool = False) -> Tensor:
        """One forward pass: ``clip(f(s, z), -1, 1)`` with ``z ~ N(0, I)`` (NaN -> 0, as official).

        The policy is stochastic through ``z`` whether or not ``explore`` is set (offline agent,
        evaluated like the official code with a fresh ``z``); ``explore`` exists for the common
        agent interface and changes nothing.

        Args:
            obs: ``(O,)`` or ``(B, O)`` float.
            explore: Ignored (see above).

        Returns:
            ``(A,)`` or ``(B, A)`` float32 on the agent's device.
        """
        del explore
        x, batched = self._obs_input(obs)
        z = torch.randn((x.shape[0], self.noise_dim), generator=self._act_gen, device=self.device)
        action = self.actor(x, z).clamp(-1.0, 1.0).nan_to_num(nan=0.0)
        return action if batched else action[0]

    def _losses_eager(
        self,
        obs: Tensor,
        action: Tensor,
        reward: Tensor,
        not_done: Tensor,
        next_obs: Tensor,
        next_noise: Tensor,
        drift_noise: Tensor,
        q_noise: Tensor,
    ) -> tuple[Tensor, Tensor, Metrics]:
        cfg = self.cfg
        batch, num = obs.shape[0], cfg.drift.num_samples
        with torch.no_grad():
            # The TD target reads the current actor with one fresh noise sample per next state.
            next_action = self.actor(next_obs, next_noise).clamp(-1.0, 1.0)
        critic_loss, critic_metrics = self.critic.loss(
            obs, action, reward, not_done, next_obs, next_action
        )

        # One actor pass for the N drift candidates of every state and the separate Q-term
        # sample: rows [0, B*N) are state b's candidates at b*N .. b*N+N-1, rows [B*N, B*N+B)
        # the Q-term actions.
        obs_rep = obs.repeat_interleave(num, dim=0)  # (B*N, O)
        out = self.actor(
            torch.cat([obs_rep, obs], dim=0), torch.cat([drift_noise, q_noise], dim=0)
        ).clamp(-1.0, 1.0)  # (B*N + B, A)
        gen = out[: batch * num].reshape(batch, num, self.action_dim)  # (B, N, A)
        policy_action = out[batch * num :]  # (B, A)
        drift, drift_metrics = losses.drift_loss(
            gen,
            action.unsqueeze(1),  # (B, 1, A): the single positive of each state
            temperature=cfg.drift.temperature,
            kernel=cfg.drift.kernel,
            eta=cfg.drift.eta,
            dim_scale=cfg.drift.dim_scale,
            normalize=cfg.drift.normalize,
            eps=cfg.drift.eps,
        )
        q_term, q_metrics = losses.q_loss(
            self.critic.q_for_actor(obs, policy_action),
            q_agg=cfg.actor.q_agg,
            normalize=cfg.actor.normalize_q_loss,
        )
        actor_loss = cfg.actor.alpha * drift + q_term
        metrics = {
            **critic_metrics,
            **drift_metrics,
            **q_metrics,
            "drift_loss": drift.detach(),
            "actor_loss": actor_loss.detach(),
        }
        return critic_loss, actor_loss, metrics

    def compute_losses(self, batch: TransitionBatch) -> tuple[Tensor, Tensor, Metrics]:
        """Check the batch, draw this step's noise and compute both losses (no step taken).

        Returns:
            ``(critic_loss, actor_loss, metrics)``; the losses carry their graphs (critic loss:
            critic parameters only; actor loss: actor parameters only).
        """
        x = self._check_batch(batch)
        size, noise_dim = x.obs.shape[0], self.noise_dim
        # Drawn in a fixed order outside the (optionally compiled) loss computation.
        next_noise = self._randn(size, noise_dim)
        drift_noise = self._randn(size * self.cfg.drift.num_samples, noise_dim)
        q_noise = self._randn(size, noise_dim)
        return self._losses(
            x.obs, x.action, x.reward, x.not_done, x.next_obs, next_noise, drift_noise, q_noise
        )

    def update(self, batch: TransitionBatch) -> Metrics:
        """One gradient step of the actor and the critic, then the target's Polyak step.

        Args:
            batch: ``B`` transitions: obs ``(B, O)``, action ``(B, A)`` in [-1, 1], reward
                ``(B,)``, next_obs ``(B, O)``, not_done ``(B,)``; never modified.

        Returns:
            Detached 0-dim metrics: ``critic_loss``, ``q_mean``/``q_max``/``q_min`` (online
            critic at the dataset actions), ``q_target``, ``actor_loss``, ``drift_loss``
            (unweighted), ``drift_norm``, ``drift_attract_norm``, ``drift_repel_norm``,
            ``data_mse`` (candidates vs dataset action), ``q_loss``, ``actor_q`` (Q of the
            actor's actions).

        Raises:
            ValueError / TypeError: A malformed batch (the field is named).
        """
        critic_loss, actor_loss, metrics = self.compute_losses(batch)
        self._actor_critic_step(self.critic, self.actor_optimizer, (critic_loss, actor_loss))
        return metrics

    def _modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic.net, "critic_target": self.critic.target}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_optimizer": self.actor_optimizer, "critic_optimizer": self.critic.optimizer}


class FQLAgent(_AgentBase):
    """Flow Q-Learning: a flow-matching BC velocity field ``v(s, x, t)`` and a one-step policy
    ``mu(s, z)`` trained with ``alpha * ||mu(s, z) - flow(s, z)||^2 - Q``; acts with ``mu``.

    Args:
        cfg: Config with ``algo="fql"`` (presets: :func:`driftql.task_preset`).
        obs_dim, action_dim, device, seed, compile: As :class:`DriftQLAgent`.

    Attributes:
        flow: Velocity field :class:`~driftql.networks.Actor` with a time input.
        actor: One-step policy :class:`~driftql.networks.Actor` ``mu(s, z)``, ``z ~ N(0, I_A)``.
        critic: :class:`QCritic`.
        actor_optimizer: One Adam over ``flow`` and ``actor``.
        training_steps: Updates done so far.
    """

    algo = "fql"

    def __init__(
        self,
        cfg: AgentConfig,
        obs_dim: int,
        action_dim: int,
        *,
        device: torch.device,
        seed: int,
        compile: bool = False,
    ) -> None:
        super().__init__(cfg, obs_dim, action_dim, device=device, seed=seed)
        self.critic = QCritic(
            cfg, obs_dim, action_dim, device=self.device, generator=self._init_gen
        )
        self.flow = Actor(
            obs_dim,
            action_dim,
            action_dim,
            time_input=True,
            hidden_sizes=cfg.actor.hidden_sizes,
            layer_norm=cfg.actor.layer_norm,
            generator=self._init_gen,
        ).to(self.device)
        self.actor = Actor(
            obs_dim,
            action_dim,
            action_dim,
            hidden_sizes=cfg.actor.hidden_sizes,
            layer_norm=cfg.actor.layer_norm,
            generator=self._init_gen,
        ).to(self.device)
        self.actor_optimizer = fused_adam(
            [*self.flow.parameters(), *self.actor.parameters()],
            cfg.optim.actor_lr,
            device=self.device,
        )
        self._losses = maybe_compile(self._losses_eager, compile)

    @torch.no_grad()
    def act(self, obs: Tensor, *, explore: bool = False) -> Tensor:
        """The one-step policy: ``clip(mu(s, z), -1, 1)``, ``z ~ N(0, I)`` (as the FQL paper).

        Args:
            obs: ``(O,)`` or ``(B, O)`` float.
            explore: Ignored (offline agent; the policy is stochastic through ``z``).

        Returns:
            ``(A,)`` or ``(B, A)`` float32 on the agent's device.
        """
        del explore
        x, batched = self._obs_input(obs)
        z = torch.randn((x.shape[0], self.action_dim), generator=self._act_gen, device=self.device)
        action = self.actor(x, z).clamp(-1.0, 1.0)
        return action if batched else action[0]

    @torch.no_grad()
    def flow_act(self, obs: Tensor) -> Tensor:
        """The behaviour flow: ``cfg.flow.steps`` Euler steps of ``v`` from ``z ~ N(0, I)``.

        Args:
            obs: ``(O,)`` or ``(B, O)`` float.

        Returns:
            ``(A,)`` or ``(B, A)`` float32 in [-1, 1] on the agent's device.
        """
        x, batched = self._obs_input(obs)
        z = torch.randn((x.shape[0], self.action_dim), generator=self._act_gen, device=self.device)
        action = losses.euler_flow(lambda a, t: self.flow(x, a, t), z, self.cfg.flow.steps)
        return action if batched else action[0]

    def _losses_eager(
        self,
        obs: Tensor,
        action: Tensor,
        reward: Tensor,
        not_done: Tensor,
        next_obs: Tensor,
        next_noise: Tensor,
        x0: Tensor,
        t: Tensor,
        distill_noise: Tensor,
    ) -> tuple[Tensor, Tensor, Metrics]:
        cfg = self.cfg
        with torch.no_grad():
            next_action = self.actor(next_obs, next_noise).clamp(-1.0, 1.0)
        critic_loss, critic_metrics = self.critic.loss(
            obs, action, reward, not_done, next_obs, next_action
        )

        # Flow matching on the straight path x_t = (1 - t) x0 + t a.
        x_t = (1.0 - t) * x0 + t * action  # (B, A)
        bc_flow, flow_metrics = losses.flow_matching_loss(self.flow(obs, x_t, t), x0, action)

        # Distil the (no-grad) Euler flow from the same noise into the one-step policy.
        with torch.no_grad():
            teacher = losses.euler_flow(
                lambda a, tt: self.flow(obs, a, tt), distill_noise, cfg.flow.steps
            )
        onestep = self.actor(obs, distill_noise)  # (B, A), raw
        distill, distill_metrics = losses.distillation_loss(onestep, teacher)
        policy_action = onestep.clamp(-1.0, 1.0)
        q_term, q_metrics = losses.q_loss(
            self.critic.q_for_actor(obs, policy_action),
            q_agg=cfg.actor.q_agg,
            normalize=cfg.actor.normalize_q_loss,
        )
        actor_loss = bc_flow + cfg.actor.alpha * distill + q_term
        metrics = {
            **critic_metrics,
            **flow_metrics,
            **distill_metrics,
            **q_metrics,
            "data_mse": (policy_action.detach() - action).square().mean(),
            "actor_loss": actor_loss.detach(),
        }
        return critic_loss, actor_loss, metrics

    def compute_losses(self, batch: TransitionBatch) -> tuple[Tensor, Tensor, Metrics]:
        """As :meth:`DriftQLAgent.compute_losses`."""
        x = self._check_batch(batch)
        size, a = x.obs.shape[0], self.action_dim
        next_noise = self._randn(size, a)
        x0 = self._randn(size, a)
        t = torch.rand((size, 1), generator=self._update_gen, device=self.device)
        distill_noise = self._randn(size, a)
        return self._losses(
            x.obs, x.action, x.reward, x.not_done, x.next_obs, next_noise, x0, t, distill_noise
        )

    def update(self, batch: TransitionBatch) -> Metrics:
        """One gradient step of flow, one-step policy and critic, then the target's Polyak step.

        Returns:
            Detached 0-dim metrics: the critic's (as :meth:`DriftQLAgent.update`),
            ``bc_flow_loss``, ``distill_loss`` (unweighted), ``q_loss``, ``actor_q``, ``data_mse``
            (one-step action vs dataset action), ``actor_loss``.
        """
        critic_loss, actor_loss, metrics = self.compute_losses(batch)
        self._actor_critic_step(self.critic, self.actor_optimizer, (critic_loss, actor_loss))
        return metrics

    def _modules(self) -> dict[str, nn.Module]:
        return {
            "flow": self.flow,
            "actor": self.actor,
            "critic": self.critic.net,
            "critic_target": self.critic.target,
        }

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_optimizer": self.actor_optimizer, "critic_optimizer": self.critic.optimizer}


class BCAgent(_AgentBase):
    """Plain behaviour cloning: deterministic ``a = clip(f(s))`` with the DriftQL actor's network
    (no noise input), trained by MSE to the dataset action. No critic.

    Args:
        cfg: Config with ``algo="bc"``.
        obs_dim, action_dim, device, seed, compile: As :class:`DriftQLAgent`.

    Attributes:
        actor: :class:`~driftql.networks.Actor` with ``noise_dim=0``.
        actor_optimizer: Adam over the actor.
        training_steps: Updates done so far.
    """

    algo = "bc"

    def __init__(
        self,
        cfg: AgentConfig,
        obs_dim: int,
        action_dim: int,
        *,
        device: torch.device,
        seed: int,
        compile: bool = False,
    ) -> None:
        super().__init__(cfg, obs_dim, action_dim, device=device, seed=seed)
        self.actor = Actor(
            obs_dim,
            action_dim,
            0,
            hidden_sizes=cfg.actor.hidden_sizes,
            layer_norm=cfg.actor.layer_norm,
            generator=self._init_gen,
        ).to(self.device)
        self.actor_optimizer = fused_adam(
            self.actor.parameters(), cfg.optim.actor_lr, device=self.device
        )
        self._losses = maybe_compile(self._losses_eager, compile)

    @torch.no_grad()
    def act(self, obs: Tensor, *, explore: bool = False) -> Tensor:
        """``clip(f(s), -1, 1)`` (deterministic; ``explore`` is ignored).

        Args:
            obs: ``(O,)`` or ``(B, O)`` float.
            explore: Ignored.

        Returns:
            ``(A,)`` or ``(B, A)`` float32 on the agent's device.
        """
        del explore
        x, batched = self._obs_input(obs)
        action = self.actor(x).clamp(-1.0, 1.0)
        return action if batched else action[0]

    def _losses_eager(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Metrics]:
        pred = self.actor(obs)
        loss, metrics = losses.bc_loss(pred, action)
        metrics["data_mse"] = (pred.detach().clamp(-1.0, 1.0) - action).square().mean()
        metrics["actor_loss"] = loss.detach()
        return loss, metrics

    def compute_losses(self, batch: TransitionBatch) -> tuple[Tensor, Metrics]:
        """Check the batch and compute the BC loss (no step taken)."""
        x = self._check_batch(batch)
        return self._losses(x.obs, x.action)

    def update(self, batch: TransitionBatch) -> Metrics:
        """One gradient step of the actor.

        Returns:
            Detached 0-dim metrics: ``bc_loss``, ``actor_loss`` (the same), ``data_mse``
            (clipped action vs dataset action).
        """
        loss, metrics = self.compute_losses(batch)
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_optimizer.step()
        self.training_steps += 1
        return metrics

    def _modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_optimizer": self.actor_optimizer}


Agent = DriftQLAgent | FQLAgent | BCAgent
"""Any of the three agents (they share ``act``, ``update``, ``state_dict``, ``load_state_dict``)."""


def make_agent(
    cfg: AgentConfig,
    obs_dim: int,
    action_dim: int,
    *,
    device: torch.device,
    seed: int,
    compile: bool = False,
) -> Agent:
    """Build the agent ``cfg.algo`` names.

    Args:
        cfg: Full config (:func:`driftql.task_preset` / :func:`driftql.default_config`).
        obs_dim: Observation features O.
        action_dim: Action features A; dataset and policy actions live in [-1, 1].
        device: Where the networks live and updates run.
        seed: Seeds the initial weights and the agent's generators.
        compile: Wrap the loss computation in ``torch.compile``.

    Returns:
        A :class:`DriftQLAgent`, :class:`FQLAgent` or :class:`BCAgent`.
    """
    if cfg.algo == "driftql":
        return DriftQLAgent(cfg, obs_dim, action_dim, device=device, seed=seed, compile=compile)
    if cfg.algo == "fql":
        return FQLAgent(cfg, obs_dim, action_dim, device=device, seed=seed, compile=compile)
    return BCAgent(cfg, obs_dim, action_dim, device=device, seed=seed, compile=compile)
