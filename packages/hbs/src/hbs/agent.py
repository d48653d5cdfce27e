"""The agent: one network, the controller's and the worker's policies on it, and their PPO
update (one optimiser step on the sum of both losses, as SOL trains all policies at once).

Controller actions (at option boundaries only; :mod:`hbs.loop` decides when):

* ``hbs``: a weight vector ``w`` over the K reward functions, from the ``grid`` distribution (a
  categorical per reward over ``weight_levels`` values evenly spaced in [0, 1], independent
  across rewards) or ``dirichlet`` (on the simplex);
* ``options``: one reward function's index (``w`` its one-hot), SOL's discrete options;
* both: an option length ``2^j``, ``j = 0..max_length_exponent``.

The worker acts on the observation and ``[w, 0]``; the controller on ``[0, 1]``. ``flat`` has no
controller: its worker's condition is fixed.

Sampling uses the agent's own ``torch.Generator`` (Gumbel-max for the categoricals) except the
Dirichlet's gamma draws, which torch only offers on the global generator (the run checkpoints
and restores both).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from hbs.config import HBSConfig
from hbs.envs import ObsLayout
from hbs.losses import (
    categorical_log_prob_entropy,
    controller_loss,
    dirichlet,
    weights_log_prob,
    worker_loss,
)
from hbs.networks import HBSNetwork

__all__ = ["ControllerBatch", "Decision", "HBSAgent", "WorkerBatch", "WorkerStep"]


class Decision(NamedTuple):
    """Controller decisions for B envs.

    Attributes:
        weights: ``(B, K)`` float32 weight vectors (one-hot for options).
        length_index: ``(B,)`` int64 ``j``; the option lasts ``2^j`` steps.
        log_prob: ``(B,)`` float32 log-probability of (weights, length).
        value: ``(B,)`` float32 controller value ``V(s, [0, 1])``.
    """

    weights: Tensor
    length_index: Tensor
    log_prob: Tensor
    value: Tensor


class WorkerStep(NamedTuple):
    """Worker actions for N envs: ``actions`` ``(N,)`` int64, ``log_probs`` and ``values``
    ``(N,)`` float32."""

    actions: Tensor
    log_probs: Tensor
    values: Tensor


class WorkerBatch(NamedTuple):
    """A worker minibatch of M steps.

    Attributes:
        obs: ``(M, D)`` int32 packed observations.
        cond: ``(M, K + 1)`` float32 conditions ``[w, 0]``.
        actions: ``(M,)`` int64.
        log_probs, values, advantages, returns: ``(M,)`` float32 (behaviour log-probabilities
            and values, GAE advantages, value targets).
    """

    obs: Tensor
    cond: Tensor
    actions: Tensor
    log_probs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor


class ControllerBatch(NamedTuple):
    """A controller minibatch of M decisions.

    Attributes:
        obs: ``(M, D)`` int32 packed observations at the decisions.
        weights: ``(M, K)`` float32 chosen weights.
        length_index: ``(M,)`` int64 chosen length indices.
        log_probs, values, advantages, returns: ``(M,)`` float32.
    """

    obs: Tensor
    weights: Tensor
    length_index: Tensor
    log_probs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor


def _gumbel_argmax(logits: Tensor, generator: torch.Generator) -> Tensor:
    u = torch.rand(logits.shape, generator=generator, device=logits.device)
    return (logits - torch.log(-torch.log(u.clamp(1e-20, 1.0)))).argmax(-1)


class HBSAgent:
    """Networks, optimiser and generator of one run.

    Args:
        cfg: The config.
        layout: Packed observation layout.
        num_actions: A.
        device: Torch device.
        seed: Seed of the network's initialisation and of the sampling generator.
    """

    def __init__(
        self,
        cfg: HBSConfig,
        layout: ObsLayout,
        num_actions: int,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):  # the initialisation follows ``seed`` alone
            torch.manual_seed(seed)
            self.net = HBSNetwork(cfg, layout, num_actions).to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.ppo.lr, eps=1e-5)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.active_rewards = cfg.options.num_rewards - len(cfg.options.growing_rewards)
        """How many of the reward functions (the first ones) the controller may weight now."""

    # ---------------------------------------------------------------- conditions

    @property
    def num_rewards(self) -> int:
        return self.cfg.options.num_rewards

    def controller_cond(self, b: int) -> Tensor:
        """``(b, K + 1)`` the controller's condition ``[0, 1]``."""
        c = torch.zeros(b, self.num_rewards + 1, device=self.device)
        c[:, -1] = 1.0
        return c

    def worker_cond(self, weights: Tensor) -> Tensor:
        """``(B, K + 1)`` the worker's condition ``[w, 0]``."""
        return F.pad(weights.float(), (0, 1))

    def flat_weights(self, b: int) -> Tensor:
        """``(b, K)`` flat PPO's fixed condition: the one-hot of the first reward function
        (by convention score; the worker's reward is the task reward either way)."""
        w = torch.zeros(b, self.num_rewards, device=self.device)
        w[:, 0] = 1.0
        return w

    def set_active_rewards(self, count: int) -> None:
        """Growing-reward-set ablation: the controller weights the first ``count`` functions."""
        if not 1 <= count <= self.num_rewards:
            raise ValueError(f"active reward count must be in [1, {self.num_rewards}]")
        self.active_rewards = count

    # ---------------------------------------------------------------- distributions

    @property
    def weights_kind(self) -> Literal["options", "grid", "dirichlet"]:
        """The controller's weight distribution (options: a categorical over K)."""
        return "options" if self.cfg.algo == "options" else self.cfg.options.weights_dist

    def _sample_weights(self, params: Tensor, explore: bool) -> Tensor:
        o, k = self.cfg.options, self.active_rewards
        b = params.shape[0]
        w = torch.zeros(b, self.num_rewards, device=self.device)
        if self.cfg.algo == "options":
            logits = params[:, :k]
            index = _gumbel_argmax(logits, self.generator) if explore else logits.argmax(-1)
            w[torch.arange(b, device=self.device), index] = 1.0
        elif o.weights_dist == "grid":
            logits = params[:, :k]  # (B, k, levels)
            level = _gumbel_argmax(logits, self.generator) if explore else logits.argmax(-1)
            w[:, :k] = level.float() / (o.weight_levels - 1)
        elif k == 1:
            w[:, 0] = 1.0
        else:
            dist = dirichlet(params, k, o.dirichlet_min_concentration)
            w[:, :k] = dist.sample() if explore else dist.mean
        return w

    # ---------------------------------------------------------------- acting

    @torch.no_grad()
    def decide(self, obs: Tensor, *, explore: bool = True) -> Decision:
        """Controller decisions for ``(B, D)`` observations."""
        return self.decide_and_value(obs, explore=explore)[0]

    @torch.no_grad()
    def decide_and_value(
        self,
        obs: Tensor,
        value_obs: Tensor | None = None,
        value_cond: Tensor | None = None,
        *,
        explore: bool = True,
    ) -> tuple[Decision, Tensor | None]:
        """Controller decisions for ``(B, D)`` observations and, in the same forward pass,
        ``V(value_obs, value_cond)`` for ``(B', D)`` other rows (the loop's option-end
        bootstraps), or None."""
        b = obs.shape[0]
        cond = self.controller_cond(b)
        if value_obs is not None:
            assert value_cond is not None
            obs, cond = torch.cat([obs, value_obs]), torch.cat([cond, value_cond])
        all_heads = self.net(obs, cond)
        extra = all_heads.value[b:] if value_obs is not None else None
        heads = type(all_heads)(*(x[:b] for x in all_heads))
        weights = self._sample_weights(heads.weight_params, explore)
        if explore:
            length = _gumbel_argmax(heads.length_logits, self.generator)
        else:
            length = heads.length_logits.argmax(-1)
        o = self.cfg.options
        logp_w, _ = weights_log_prob(
            heads.weight_params,
            weights,
            kind=self.weights_kind,
            active=self.active_rewards,
            levels=o.weight_levels,
            min_concentration=o.dirichlet_min_concentration,
        )
        logp_l, _ = categorical_log_prob_entropy(heads.length_logits, length)
        return Decision(weights, length, logp_w + logp_l, heads.value), extra

    @torch.no_grad()
    def act(self, obs: Tensor, weights: Tensor, *, explore: bool = True) -> WorkerStep:
        """Worker actions for ``(N, D)`` observations under ``(N, K)`` weights."""
        heads = self.net(obs, self.worker_cond(weights))
        logp = torch.log_softmax(heads.action_logits, -1)
        if explore:
            actions = _gumbel_argmax(heads.action_logits, self.generator)
        else:
            actions = heads.action_logits.argmax(-1)
        return WorkerStep(actions, logp.gather(1, actions[:, None])[:, 0], heads.value)

    @torch.no_grad()
    def value(self, obs: Tensor, cond: Tensor) -> Tensor:
        """``(B,)`` ``V(s, c)`` for ``(B, D)`` observations and ``(B, K + 1)`` conditions."""
        return self.net(obs, cond).value

    # ---------------------------------------------------------------- learning

    def losses(
        self, worker: WorkerBatch, controller: ControllerBatch | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The summed PPO loss of a worker and a controller minibatch (one forward on both;
        :func:`hbs.losses.worker_loss` + ``controller_loss_coef`` x
        :func:`hbs.losses.controller_loss`).

        The controller's term is left out when its minibatch holds fewer than 2 decisions (its
        advantages could not be normalised).
        """
        p = self.cfg.ppo
        m = worker.obs.shape[0]
        use_controller = controller is not None and controller.obs.shape[0] >= 2
        obs, cond = worker.obs, worker.cond
        if use_controller:
            assert controller is not None
            obs = torch.cat([obs, controller.obs])
            cond = torch.cat([cond, self.controller_cond(controller.obs.shape[0])])
        heads = self.net(obs, cond)  # rows [0, m): worker, [m, ...): controller
        loss, metrics = worker_loss(
            heads.action_logits[:m],
            heads.value[:m],
            worker.actions,
            worker.log_probs,
            worker.values,
            worker.advantages,
            worker.returns,
            clip_coef=p.clip_coef,
            vf_coef=p.vf_coef,
            ent_coef=p.ent_coef,
        )
        if use_controller:
            assert controller is not None
            o = self.cfg.options
            c_loss, c_metrics = controller_loss(
                heads.weight_params[m:],
                heads.length_logits[m:],
                heads.value[m:],
                controller.weights,
                controller.length_index,
                controller.log_probs,
                controller.values,
                controller.advantages,
                controller.returns,
                kind=self.weights_kind,
                active=self.active_rewards,
                levels=o.weight_levels,
                min_concentration=o.dirichlet_min_concentration,
                clip_coef=p.clip_coef,
                vf_coef=p.vf_coef,
                ent_coef=p.controller_ent_coef,
            )
            loss = loss + p.controller_loss_coef * c_loss
            metrics.update(c_metrics)
        return loss, metrics

    def update(
        self, worker: WorkerBatch, controller: ControllerBatch | None = None
    ) -> dict[str, Tensor]:
        """One optimiser step on :meth:`losses`; returns detached 0-dim metrics."""
        loss, metrics = self.losses(worker, controller)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.net.parameters(), self.cfg.ppo.max_grad_norm
        )
        self.optimizer.step()
        metrics["grad_norm"] = grad_norm.detach()
        return metrics

    def set_lr(self, lr: float) -> None:
        """Set the optimiser's learning rate (annealing)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "active_rewards": self.active_rewards,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.active_rewards = int(state["active_rewards"])
