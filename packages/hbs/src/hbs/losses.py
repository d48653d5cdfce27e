"""The worker's reward and the two PPO losses, as pure functions (tensors in, ``(loss, metrics)``
out; metrics are detached 0-dim tensors).

* :func:`worker_reward`: ``scale * sum_k w_k * s_k * r_k``, the reward of an option with weights
  ``w`` (HBS's linear behaviour space; a one-hot ``w`` is SOL's option ``k``).
* :func:`weights_log_prob`: log-probability and entropy of the controller's weight choice under
  each distribution (``options``: categorical over K; ``grid``: one categorical per reward over
  evenly spaced levels, independent; ``dirichlet``), restricted to the first ``active`` rewards
  (the growing-set ablation: the others are 0 and cost no probability).
* :func:`worker_loss` and :func:`controller_loss`: ``rl_runtime.losses.ppo_loss`` on the worker's
  action and on the controller's (weights, length) pair.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from rl_runtime.losses import ppo_loss
from torch import Tensor

__all__ = [
    "categorical_log_prob_entropy",
    "controller_loss",
    "dirichlet",
    "weights_log_prob",
    "worker_loss",
    "worker_reward",
]


def worker_reward(rewards: Tensor, weights: Tensor, scales: Tensor, scale: float) -> Tensor:
    """``(N,)`` ``scale * sum_k weights[:, k] * scales[k] * rewards[:, k]``.

    Args:
        rewards: ``(N, K)`` reward functions' values of one step.
        weights: ``(N, K)`` each env's option weights.
        scales: ``(K,)`` per-function scales.
        scale: Global scale.
    """
    if rewards.shape != weights.shape or scales.shape != rewards.shape[1:]:
        raise ValueError(
            f"worker_reward: rewards {tuple(rewards.shape)}, weights {tuple(weights.shape)} and "
            f"scales {tuple(scales.shape)} must be (N, K), (N, K), (K,)"
        )
    return scale * (rewards * scales * weights).sum(1)


def categorical_log_prob_entropy(logits: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Log-probability of ``index`` and entropy of ``Categorical(logits)`` over the last dim
    (``logits`` ``(..., C)``, ``index`` ``(...)``)."""
    logp = torch.log_softmax(logits, -1)
    chosen = logp.gather(-1, index[..., None]).squeeze(-1)
    return chosen, -(logp.exp() * logp).sum(-1)


def dirichlet(
    params: Tensor, active: int, min_concentration: float
) -> torch.distributions.Dirichlet:
    """The Dirichlet of the first ``active`` rewards: concentrations ``softplus(params) + min``."""
    return torch.distributions.Dirichlet(F.softplus(params[:, :active]) + min_concentration)


def weights_log_prob(
    params: Tensor,
    weights: Tensor,
    *,
    kind: Literal["options", "grid", "dirichlet"],
    active: int,
    levels: int = 3,
    min_concentration: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """``(B,)`` log-probability of the controller's ``weights`` and ``(B,)`` entropy.

    Args:
        params: The weight head: ``(B, K)`` logits (options), ``(B, K, levels)`` logits (grid),
            ``(B, K)`` pre-activations (dirichlet).
        weights: ``(B, K)`` the chosen weights (one-hot; levels ``i / (levels - 1)``; simplex).
        kind: The distribution.
        active: Rewards the controller may weight (the first ones); weights beyond are 0.
        levels: Grid levels.
        min_concentration: Dirichlet concentration floor.
    """
    if kind == "options":
        return categorical_log_prob_entropy(params[:, :active], weights.argmax(-1))
    if kind == "grid":
        level = (weights[:, :active] * (levels - 1)).round().long()  # (B, active)
        logp, ent = categorical_log_prob_entropy(params[:, :active], level)  # (B, active) each
        return logp.sum(1), ent.sum(1)
    if active == 1:  # a Dirichlet over one reward is the point w = 1
        zero = params.new_zeros(params.shape[0])
        return zero, zero
    dist = dirichlet(params, active, min_concentration)
    w = weights[:, :active].clamp_min(1e-6)  # a draw can underflow to 0; log_prob needs > 0
    return dist.log_prob(w / w.sum(-1, keepdim=True)), dist.entropy()


def worker_loss(
    action_logits: Tensor,
    values: Tensor,
    actions: Tensor,
    old_log_probs: Tensor,
    old_values: Tensor,
    advantages: Tensor,
    returns: Tensor,
    *,
    clip_coef: float,
    vf_coef: float,
    ent_coef: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO on the worker's actions: ``action_logits`` ``(M, A)``, ``values`` ``(M,)`` from the
    network; the rest ``(M,)`` from the rollout."""
    logp, entropy = categorical_log_prob_entropy(action_logits, actions)
    return ppo_loss(
        logp,
        old_log_probs,
        advantages,
        values,
        old_values,
        returns,
        entropy,
        clip_coef=clip_coef,
        vf_coef=vf_coef,
        ent_coef=ent_coef,
    )


def controller_loss(
    weight_params: Tensor,
    length_logits: Tensor,
    values: Tensor,
    weights: Tensor,
    length_index: Tensor,
    old_log_probs: Tensor,
    old_values: Tensor,
    advantages: Tensor,
    returns: Tensor,
    *,
    kind: Literal["options", "grid", "dirichlet"],
    active: int,
    levels: int,
    min_concentration: float,
    clip_coef: float,
    vf_coef: float,
    ent_coef: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO on the controller's joint action (weights, length): its log-probability is the sum of
    both parts', its entropy too (independent given the state). Metrics are prefixed
    ``controller_``."""
    logp_w, ent_w = weights_log_prob(
        weight_params,
        weights,
        kind=kind,
        active=active,
        levels=levels,
        min_concentration=min_concentration,
    )
    logp_l, ent_l = categorical_log_prob_entropy(length_logits, length_index)
    loss, metrics = ppo_loss(
        logp_w + logp_l,
        old_log_probs,
        advantages,
        values,
        old_values,
        returns,
        ent_w + ent_l,
        clip_coef=clip_coef,
        vf_coef=vf_coef,
        ent_coef=ent_coef,
    )
    return loss, {f"controller_{k}": v for k, v in metrics.items()}
