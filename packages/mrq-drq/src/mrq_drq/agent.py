"""The MR.Q / DR.Q agent: networks, targets, optimizers, and the three updates.

The agent never samples from a buffer and never logs. The trainer drives the schedule::

    if agent.sync_due:                               # every target_update_interval RL steps
        agent.sync_targets(buffer.reward_scale())     # hard copies + reward-scale shift
        for _ in range(cfg.schedule.encoder_updates_per_sync):
            agent.update_encoder(buffer.sample_subtrajectory(B, gen, horizon=H))
    batch = buffer.sample_nstep(B, gen, n=cfg.value.n_step, gamma=cfg.value.discount)
    metrics, td_error = agent.update_rl(batch)
    buffer.update_priority(batch.indices, td_error)

Every update returns detached 0-dim tensors (no ``.item()``, so nothing waits for the device) and
draws its noise from the agent's own ``torch.Generator`` before entering the (optionally
``torch.compile``-d) loss functions, which are therefore pure and deterministic.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from rl_buffers.batches import NStepBatch, SubTrajectoryBatch
from rl_nets import TwoHot, frozen_copy, hard_update, shift_images
from rl_runtime.optim import fused_adam, maybe_compile
from torch import Tensor, nn
from torch.func import functional_call

from mrq_drq import losses
from mrq_drq.config import MRQConfig
from mrq_drq.envs import EnvSpec
from mrq_drq.networks import Encoder, Policy, Value, build_networks

__all__ = ["AgentExtensions", "MRQAgent"]

Metrics = dict[str, Tensor]


@dataclasses.dataclass(frozen=True)
class AgentExtensions:
    """Hooks for methods built on MR.Q (mbsearch's MRS.Q); the defaults are MR.Q, unchanged
    (same networks, same random draws, same checkpoints)."""

    num_critics: int = 2
    """Q heads on zsa."""
    batched_critics: bool = False
    """Hold the heads as one ``rl_nets.EnsembleMLP`` (all heads in one batched forward)."""
    target_critics: int | None = None
    """The TD target's minimum is over this many heads drawn at random (without replacement,
    one draw per update, from the update generator); ``None``: over all heads (MR.Q)."""
    latent_simnorm: int | None = None
    """SimNorm group size on zs and the predicted next zs (``None``: MR.Q's LN + activation)."""

    def __post_init__(self) -> None:
        if self.num_critics < 1:
            raise ValueError(f"num_critics must be >= 1, got {self.num_critics}")
        if self.target_critics is not None and not 1 <= self.target_critics <= self.num_critics:
            raise ValueError(
                f"target_critics must be in [1, num_critics={self.num_critics}], "
                f"got {self.target_critics}"
            )
        if self.latent_simnorm is not None and self.latent_simnorm < 1:
            raise ValueError(f"latent_simnorm must be >= 1, got {self.latent_simnorm}")


def _detached(module: nn.Module) -> dict[str, Tensor]:
    """The module's parameters as tensors that do not require grad (same storage)."""
    return {name: p.detach() for name, p in module.named_parameters()}


class MRQAgent:
    """MR.Q (and DR.Q, by configuration) for continuous or discrete actions, state or pixels.

    Args:
        cfg: Full config (presets in :mod:`mrq_drq.config`).
        spec: The environment's spaces, from :func:`mrq_drq.envs.check_spaces`.
        device: Where networks live and updates run; batches are moved there.
        seed: Seeds the initial weights and the agent's two generators (acting noise, update
            noise); the global torch RNG is not used for anything that matters.
        compile: Wrap the three loss computations in ``torch.compile``.
        extensions: Hooks for methods built on MR.Q (:class:`AgentExtensions`); default MR.Q.

    Attributes:
        cfg: The config (never mutated).
        spec: The environment spec.
        encoder, value, policy: Online networks.
        encoder_target, value_target, policy_target: Hard-synced copies (no grad).
        reward_scale: 0-dim tensor, the buffer's mean ``|r|`` at the last sync.
        target_reward_scale: 0-dim tensor, the scale the target critic was trained with.
        training_steps: RL updates done so far.
    """

    def __init__(
        self,
        cfg: MRQConfig,
        spec: EnvSpec,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
        compile: bool = False,
        extensions: AgentExtensions | None = None,
    ) -> None:
        self.cfg = cfg
        self.spec = spec
        self.device = torch.device(device)
        self.extensions = AgentExtensions() if extensions is None else extensions
        ext = self.extensions
        init_gen = torch.Generator().manual_seed(seed)
        encoder, value, policy = build_networks(
            spec,
            cfg.encoder,
            cfg.value,
            cfg.policy,
            generator=init_gen,
            num_critics=ext.num_critics,
            batched_critics=ext.batched_critics,
            latent_simnorm=ext.latent_simnorm,
        )
        self.encoder: Encoder = encoder.to(self.device)
        self.value: Value = value.to(self.device)
        self.policy: Policy = policy.to(self.device)
        self.encoder_target: Encoder = frozen_copy(self.encoder)
        self.value_target: Value = frozen_copy(self.value)
        self.policy_target: Policy = frozen_copy(self.policy)

        def adamw(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
            # AdamW (decoupled weight decay) for all three, as the official code.
            return fused_adam(
                module.parameters(),
                lr,
                weight_decay=weight_decay,
                decoupled=True,
                device=self.device,
            )

        self.encoder_optimizer = adamw(self.encoder, cfg.encoder.lr, cfg.encoder.weight_decay)
        self.value_optimizer = adamw(self.value, cfg.value.lr, cfg.value.weight_decay)
        self.policy_optimizer = adamw(self.policy, cfg.policy.lr, cfg.policy.weight_decay)
        self.two_hot = TwoHot(
            cfg.encoder.num_bins, -cfg.encoder.bin_range, cfg.encoder.bin_range
        ).to(self.device)

        self._act_gen = torch.Generator(device=self.device).manual_seed(seed + 1)
        self._update_gen = torch.Generator(device=self.device).manual_seed(seed + 2)
        # As the official code: scale 1 before the first sync, target scale 0 (its first target
        # is built from a freshly initialised critic).
        self.reward_scale = torch.ones((), device=self.device)
        self.target_reward_scale = torch.zeros((), device=self.device)
        # Whether any encoder batch has held a termination; switches the terminal loss on.
        self.env_terminates = torch.zeros((), dtype=torch.bool, device=self.device)
        self.training_steps = 0

        # Continuous actions map to the networks' [-1, 1] as (a - action_mid) / action_half
        # (None for discrete spaces and for spaces already in [-1, 1]); public for methods built
        # on MR.Q (mbsearch's planner maps its plans back the same way).
        if spec.discrete:
            self.action_mid = self.action_half = None
        else:
            assert spec.action_low is not None
            assert spec.action_high is not None
            low = torch.tensor(spec.action_low, dtype=torch.float32, device=self.device)
            high = torch.tensor(spec.action_high, dtype=torch.float32, device=self.device)
            unit = bool(torch.all(low == -1)) and bool(torch.all(high == 1))
            self.action_mid = None if unit else (high + low) / 2
            self.action_half = None if unit else (high - low) / 2

        self._encoder_losses = maybe_compile(self._encoder_losses_eager, compile)
        self._value_losses = maybe_compile(self._value_losses_eager, compile)
        self._policy_losses = maybe_compile(self._policy_losses_eager, compile)

    # ------------------------------------------------------------------ derived settings

    @property
    def exploration_noise(self) -> float:
        """Std of the acting noise (halved for discrete actions, whose one-hots live in [0, 1])."""
        return self.cfg.policy.exploration_noise * (0.5 if self.spec.discrete else 1.0)

    @property
    def target_policy_noise(self) -> float:
        """Std of the target-action noise (halved for discrete actions)."""
        return self.cfg.value.target_policy_noise * (0.5 if self.spec.discrete else 1.0)

    @property
    def noise_clip(self) -> float:
        """Clip of the target-action noise (halved for discrete actions)."""
        return self.cfg.value.noise_clip * (0.5 if self.spec.discrete else 1.0)

    @property
    def sync_due(self) -> bool:
        """Whether the next RL update must be preceded by :meth:`sync_targets` and the encoder
        burst: before RL updates 0, 250, 500, ... (``target_update_interval``)."""
        return self.training_steps % self.cfg.schedule.target_update_interval == 0

    # ------------------------------------------------------------------ input conversion

    def obs_batch(self, obs: Tensor, lead: int, field: str) -> Tensor:
        """Check ``(*lead_dims, *env_obs_shape)`` and return network input on the device.

        Pixels stay uint8 with the frame history folded into the channels; vectors become float32.
        """
        expected = self.spec.env_obs_shape
        if obs.dim() != lead + len(expected) or tuple(obs.shape[lead:]) != expected:
            raise ValueError(
                f"{field}: expected shape (<{lead} batch dims>, {', '.join(map(str, expected))}), "
                f"got {tuple(obs.shape)}"
            )
        obs = obs.to(self.device, non_blocking=True)
        if self.spec.pixels:
            if obs.dtype != torch.uint8:
                raise TypeError(f"{field}: pixel observations must be uint8, got {obs.dtype}")
            # (..., history, C, H, W) -> (..., history * C, H, W)
            return obs.reshape(*obs.shape[:lead], *self.spec.obs_shape)
        if not obs.dtype.is_floating_point:
            raise TypeError(f"{field}: state observations must be floating, got {obs.dtype}")
        return obs.float()

    def action_input(self, action: Tensor, lead: int, field: str) -> Tensor:
        """Stored env actions ``(*lead_dims[, A])`` → network actions in [-1, 1] or one-hot."""
        if self.spec.discrete:
            if action.dim() != lead or action.dtype != torch.int64:
                raise ValueError(
                    f"{field}: discrete actions must be int64 indices of shape (<{lead} batch "
                    f"dims>,), got {action.dtype} {tuple(action.shape)}"
                )
            return F.one_hot(action.to(self.device), self.spec.action_dim).float()
        if action.dim() != lead + 1 or action.shape[-1] != self.spec.action_dim:
            raise ValueError(
                f"{field}: expected shape (<{lead} batch dims>, {self.spec.action_dim}), "
                f"got {tuple(action.shape)}"
            )
        if not action.dtype.is_floating_point:
            raise TypeError(f"{field}: continuous actions must be floating, got {action.dtype}")
        a = action.to(self.device).float()
        if self.action_mid is not None and self.action_half is not None:
            a = (a - self.action_mid) / self.action_half
        return a

    def _check_vector(self, x: Tensor, shape: tuple[int, ...], field: str) -> Tensor:
        if tuple(x.shape) != shape:
            raise ValueError(f"{field}: expected shape {shape}, got {tuple(x.shape)}")
        if not x.dtype.is_floating_point:
            raise TypeError(f"{field}: expected a floating dtype, got {x.dtype}")
        return x.to(self.device).float()

    def _gumbel(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        # Standard Gumbel: -log(Exp(1)).
        e = torch.empty(shape, device=self.device).exponential_(generator=generator)
        return -e.log()

    def _augment(self, images: Tensor) -> Tensor:
        """Random shift of ``(N, C, H, W)`` uint8 images, one independent shift per image."""
        pad = self.cfg.encoder.augmentation_pad
        shifts = torch.randint(
            -pad, pad + 1, (images.shape[0], 2), generator=self._update_gen, device=self.device
        )
        return shift_images(images, shifts)

    @property
    def _augmenting(self) -> bool:
        return self.spec.pixels and self.cfg.encoder.pixel_augmentation

    # ------------------------------------------------------------------ acting

    @torch.no_grad()
    def act(self, obs: NDArray[Any] | Tensor, *, explore: bool) -> Tensor:
        """Actions for one observation or a batch.

        Continuous: ``tanh`` policy output, plus ``N(0, 0.2)`` noise when exploring, clipped to
        [-1, 1] and mapped onto the action bounds. Discrete: ``argmax`` of the Gumbel-softmax
        output (so, as in the official code, a sample from ``softmax(logits)`` even when not
        exploring), plus ``N(0, 0.1)`` noise when exploring. Random warm-up actions are the
        trainer's job (``env.action_space.sample()``).

        Args:
            obs: ``env_obs_shape`` or ``(B, *env_obs_shape)`` (uint8 for pixels).
            explore: Add exploration noise.

        Returns:
            On the agent's device: ``(A,)`` / ``(B, A)`` float32 continuous actions, or a 0-d /
            ``(B,)`` int64 tensor of discrete actions (``int(action)`` works for a single one);
            :func:`rl_runtime.evaluation.to_env_action` turns one into the env's action.
        """
        x = torch.as_tensor(obs)
        batched = x.dim() == len(self.spec.env_obs_shape) + 1
        if not batched:
            x = x.unsqueeze(0)
        x = self.obs_batch(x, 1, "obs")
        zs = self.encoder.zs(x)
        batch = zs.shape[0]
        if self.spec.discrete:
            gumbel = self._gumbel((batch, self.spec.action_dim), self._act_gen)
            probs, _ = self.policy(zs, gumbel)
            if explore:
                noise = torch.randn(probs.shape, generator=self._act_gen, device=self.device)
                probs = probs + noise * self.exploration_noise
            out = probs.argmax(dim=-1)
        else:
            action, _ = self.policy(zs)
            if explore:
                noise = torch.randn(action.shape, generator=self._act_gen, device=self.device)
                action = action + noise * self.exploration_noise
            action = action.clamp(-1.0, 1.0)
            if self.action_mid is not None and self.action_half is not None:
                action = self.action_mid + action * self.action_half
            out = action.float()
        return out if batched else out[0]

    # ------------------------------------------------------------------ schedule

    @torch.no_grad()
    def sync_targets(self, reward_scale: float | Tensor) -> None:
        """Hard-copy encoder, value and policy into their targets and shift the reward scales.

        ``target_reward_scale ← reward_scale ← new`` (the target critic was trained under the
        old scale). With ``cfg.value.reward_scaling=False`` both stay 1.

        Args:
            reward_scale: The buffer's current mean ``|r|`` (floored at 1e-8).
        """
        hard_update(self.encoder_target, self.encoder)
        hard_update(self.value_target, self.value)
        hard_update(self.policy_target, self.policy)
        if self.cfg.value.reward_scaling:
            new = torch.as_tensor(reward_scale, dtype=torch.float32, device=self.device)
            if new.dim() != 0:
                raise ValueError(f"reward_scale must be a scalar, got shape {tuple(new.shape)}")
            self.target_reward_scale.copy_(self.reward_scale)
            self.reward_scale.copy_(new.clamp(min=1e-8))
        else:
            self.target_reward_scale.fill_(1.0)
            self.reward_scale.fill_(1.0)

    # ------------------------------------------------------------------ encoder update

    def _encoder_losses_eager(
        self,
        obs0: Tensor,
        next_obs: Tensor,
        action: Tensor,
        reward: Tensor,
        not_done: Tensor,
        mask: Tensor,
        done_weight: Tensor,
    ) -> losses.EncoderLosses:
        cfg = self.cfg.encoder
        batch, horizon = reward.shape
        with torch.no_grad():
            # All H target states in one call: (B * H, *obs) -> (B, H, zs_dim).
            target_zs = self.encoder_target.zs(next_obs).reshape(batch, horizon, -1)
        zs = self.encoder.zs(obs0)  # (B, zs_dim)
        za = self.encoder.za(action)  # (B, H, za_dim): every action embedded at once
        dones, next_zs, logits = [], [], []
        for i in range(horizon):
            # The prediction, not f(s_i), is fed back: the model is unrolled in latent space.
            pred = self.encoder.model(self.encoder.zsa_from_za(zs, za[:, i]))
            zs = pred.next_zs
            dones.append(pred.done)
            next_zs.append(pred.next_zs)
            logits.append(pred.reward_logits)
        return losses.encoder_loss(
            torch.stack(next_zs, dim=1),  # (B, H, zs_dim)
            torch.stack(logits, dim=1),  # (B, H, bins)
            torch.stack(dones, dim=1),  # (B, H)
            target_zs,
            reward,
            not_done,
            mask,
            two_hot=self.two_hot,
            dyn_weight=cfg.dyn_weight,
            reward_weight=cfg.reward_weight,
            done_weight=done_weight,
            infonce_weight=cfg.infonce_weight,
            infonce_temperature=cfg.infonce_temperature,
        )

    def update_encoder(self, batch: SubTrajectoryBatch) -> Metrics:
        """One gradient step of the encoder on sub-trajectories (MR.Q's model loss).

        Args:
            batch: ``B`` windows of ``H = cfg.encoder.horizon`` steps (``obs`` ``(B, H+1, *O)``).

        Returns:
            Detached 0-dim metrics: ``encoder_loss`` (weighted total), ``dynamics_loss``,
            ``reward_loss``, ``done_loss``, ``infonce_loss`` (each summed over the unroll,
            unweighted).
        """
        horizon = self.cfg.encoder.horizon
        if batch.reward.dim() != 2 or batch.reward.shape[1] != horizon:
            raise ValueError(
                f"batch.reward: expected shape (B, {horizon}) for encoder horizon {horizon}, "
                f"got {tuple(batch.reward.shape)}"
            )
        size = batch.reward.shape[0]
        obs = self.obs_batch(batch.obs, 2, "batch.obs")  # (B, H+1, *obs)
        if obs.shape[:2] != (size, horizon + 1):
            raise ValueError(
                f"batch.obs: expected leading dims ({size}, {horizon + 1}), got {tuple(obs.shape)}"
            )
        action = self.action_input(batch.action, 2, "batch.action")  # (B, H, A)
        reward = self._check_vector(batch.reward, (size, horizon), "batch.reward")
        not_done = self._check_vector(batch.not_done, (size, horizon), "batch.not_done")
        mask = self._check_vector(batch.mask, (size, horizon), "batch.mask")
        if self._augmenting:
            # One independent shift per image, as the official code: (B*(H+1), C, H, W).
            obs = self._augment(obs.flatten(0, 1)).reshape(obs.shape)
        # Switch the terminal loss on for good once a termination has been seen (the official
        # code keys it on the buffer having ever stored one).
        self.env_terminates |= ((1.0 - not_done) * mask).amax() > 0
        done_weight = self.env_terminates.float() * self.cfg.encoder.done_weight

        out = self._encoder_losses(
            obs[:, 0], obs[:, 1:].flatten(0, 1), action, reward, not_done, mask, done_weight
        )
        self.encoder_optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        self.encoder_optimizer.step()
        return {
            "encoder_loss": out.total.detach(),
            "dynamics_loss": out.dynamics.detach(),
            "reward_loss": out.reward.detach(),
            "done_loss": out.done.detach(),
            "infonce_loss": out.info_nce.detach(),
        }

    # ------------------------------------------------------------------ value + policy update

    def _value_losses_eager(
        self,
        obs: Tensor,
        action: Tensor,
        returns: Tensor,
        discount: Tensor,
        next_obs: Tensor,
        target_noise: Tensor,
        target_gumbel: Tensor | None,
        reward_scale: Tensor,
        target_reward_scale: Tensor,
        target_heads: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        with torch.no_grad():
            next_zs = self.encoder_target.zs(next_obs)
            next_action, _ = self.policy_target(next_zs, target_gumbel)
            noise = (target_noise * self.target_policy_noise).clamp(
                -self.noise_clip, self.noise_clip
            )
            next_action = next_action + noise
            if self.spec.discrete:
                next_action = F.one_hot(next_action.argmax(-1), self.spec.action_dim).float()
            else:
                next_action = next_action.clamp(-1.0, 1.0)
            next_qs = self.value_target(self.encoder_target.zsa(next_zs, next_action))  # (N, B)
            if target_heads is not None:  # AgentExtensions.target_critics: a random subset
                next_qs = next_qs.index_select(0, target_heads)
            next_q = next_qs.amin(0)
            target = losses.value_target(
                returns,
                discount,
                next_q,
                reward_scale=reward_scale,
                target_reward_scale=target_reward_scale,
            )
            # The critic reads the online encoder's embeddings, but never trains it.
            zs = self.encoder.zs(obs)
            zsa = self.encoder.zsa(zs, action)
        q = self.value(zsa)  # (2, B)
        return losses.value_loss(q, target), q.detach(), target, zs

    def _policy_losses_eager(self, zs: Tensor, gumbel: Tensor | None) -> tuple[Tensor, Tensor]:
        action, pre = self.policy(zs, gumbel)
        # The gradient reaches the action through g and Q, but their weights get none (their
        # parameters enter as detached tensors, so no weight gradient is even computed).
        enc = self.encoder
        za = enc.action_act(
            F.linear(action, enc.action_embed.weight.detach(), enc.action_embed.bias.detach())
        )
        zsa = functional_call(
            enc.sa_encoder, _detached(enc.sa_encoder), (torch.cat([zs, za], dim=-1),)
        )
        q = functional_call(self.value, _detached(self.value), (zsa,))  # (2, B)
        loss = losses.policy_loss(q, pre, pre_activ_weight=self.cfg.policy.pre_activ_weight)
        return loss, pre.detach()

    def update_rl(self, batch: NStepBatch) -> tuple[Metrics, Tensor]:
        """One value step then one policy step on n-step transitions; counts a training step.

        Args:
            batch: ``B`` windows of ``n = cfg.value.n_step`` steps.

        Returns:
            ``(metrics, td_error)``. ``td_error``: ``(B,)`` detached ``max_heads |Q - target|``
            (in scaled units) for ``buffer.update_priority(batch.indices, td_error)``. Metrics
            (detached 0-dim): ``critic_loss`` (the value heads' Huber loss), ``actor_loss``,
            ``q_mean`` (mean of both heads), ``q_target``, ``td_error`` (mean),
            ``critic_grad_norm`` (value step, before clipping), ``pre_activation_sq`` (mean
            squared pre-tanh output), ``reward_scale``.
        """
        size = batch.obs.shape[0] if batch.obs.dim() > 0 else -1
        returns = self._check_vector(batch.returns, (size,), "batch.returns")
        discount = self._check_vector(batch.discount, (size,), "batch.discount")
        bootstrap = self._check_vector(
            batch.bootstrap_not_done, (size,), "batch.bootstrap_not_done"
        )
        obs = self.obs_batch(batch.obs, 1, "batch.obs")
        next_obs = self.obs_batch(batch.bootstrap_obs, 1, "batch.bootstrap_obs")
        if obs.shape[0] != size or next_obs.shape[0] != size:
            raise ValueError(
                f"batch.obs / batch.bootstrap_obs: expected batch size {size}, got "
                f"{obs.shape[0]} and {next_obs.shape[0]}"
            )
        action = self.action_input(batch.action, 1, "batch.action")
        if action.shape[0] != size:
            raise ValueError(f"batch.action: expected batch size {size}, got {action.shape[0]}")
        if self._augmenting:
            both = self._augment(torch.cat([obs, next_obs], dim=0))  # independent shifts
            obs, next_obs = both[:size], both[size:]
        num_actions = self.spec.action_dim
        gen = self._update_gen
        target_noise = torch.randn((size, num_actions), generator=gen, device=self.device)
        target_gumbel = policy_gumbel = None
        if self.spec.discrete:
            target_gumbel = self._gumbel((size, num_actions), gen)
            policy_gumbel = self._gumbel((size, num_actions), gen)
        target_heads = None
        if self.extensions.target_critics is not None:
            target_heads = torch.randperm(
                self.extensions.num_critics, generator=gen, device=self.device
            )[: self.extensions.target_critics]

        value_loss, q, target, zs = self._value_losses(
            obs,
            action,
            returns,
            discount * bootstrap,
            next_obs,
            target_noise,
            target_gumbel,
            self.reward_scale,
            self.target_reward_scale,
            target_heads,
        )
        self.value_optimizer.zero_grad(set_to_none=True)
        value_loss.backward()
        clip = self.cfg.value.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.value.parameters(), clip if clip is not None else math.inf
        )
        self.value_optimizer.step()

        policy_loss, pre = self._policy_losses(zs, policy_gumbel)
        self.policy_optimizer.zero_grad(set_to_none=True)
        policy_loss.backward()
        self.policy_optimizer.step()
        self.training_steps += 1

        td_error = (q - target).abs().amax(dim=0)
        metrics = {
            "critic_loss": value_loss.detach(),
            "actor_loss": policy_loss.detach(),
            "q_mean": q.mean(),
            "q_target": target.mean(),
            "td_error": td_error.mean(),
            "critic_grad_norm": grad_norm.detach(),
            "pre_activation_sq": pre.square().mean(),
            "reward_scale": self.reward_scale.clone(),
        }
        return metrics, td_error

    # ------------------------------------------------------------------ checkpointing

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, optimizers, reward scales, counters and generator states."""
        return {
            "encoder": self.encoder.state_dict(),
            "value": self.value.state_dict(),
            "policy": self.policy.state_dict(),
            "encoder_target": self.encoder_target.state_dict(),
            "value_target": self.value_target.state_dict(),
            "policy_target": self.policy_target.state_dict(),
            "encoder_optimizer": self.encoder_optimizer.state_dict(),
            "value_optimizer": self.value_optimizer.state_dict(),
            "policy_optimizer": self.policy_optimizer.state_dict(),
            "reward_scale": self.reward_scale.clone(),
            "target_reward_scale": self.target_reward_scale.clone(),
            "env_terminates": self.env_terminates.clone(),
            "training_steps": self.training_steps,
            "act_generator": self._act_gen.get_state(),
            "update_generator": self._update_gen.get_state(),
            "config": self.cfg.to_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` (strict: every key and tensor shape must match)."""
        expected = set(self.state_dict())
        missing, extra = expected - set(state), set(state) - expected
        if missing or extra:
            raise KeyError(
                f"MRQAgent.load_state_dict: missing keys {sorted(missing)}, unexpected {sorted(extra)}"
            )
        if state["config"] != self.cfg.to_dict():
            raise ValueError(
                "MRQAgent.load_state_dict: the checkpoint was made with a different config"
            )
        for name in (
            "encoder",
            "value",
            "policy",
            "encoder_target",
            "value_target",
            "policy_target",
        ):
            getattr(self, name).load_state_dict(state[name])
        for name in ("encoder_optimizer", "value_optimizer", "policy_optimizer"):
            getattr(self, name).load_state_dict(state[name])
        self.reward_scale.copy_(state["reward_scale"])
        self.target_reward_scale.copy_(state["target_reward_scale"])
        self.env_terminates.copy_(state["env_terminates"])
        self.training_steps = int(state["training_steps"])
        self._act_gen.set_state(state["act_generator"])
        self._update_gen.set_state(state["update_generator"])
