"""On-policy losses as pure functions: tensors in, ``(loss, metrics)`` out.

Metrics are detached 0-dim tensors (no ``.item()``, so an update step can be compiled), keyed in
the project's one vocabulary: ``actor_loss``, ``critic_loss``, ``entropy``, ``approx_kl``,
``clip_fraction`` (the trainer adds the ``train/`` namespace).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["ADV_NORM_EPS", "ppo_loss"]

ADV_NORM_EPS = 1e-8
"""Added to the advantages' standard deviation when they are normalised per minibatch."""


def _check_ppo_inputs(tensors: dict[str, Tensor], norm_adv: bool) -> None:
    ref = tensors["new_log_probs"]
    if ref.ndim != 1 or ref.shape[0] < 1:
        raise ValueError(
            f"ppo_loss: new_log_probs must be (B,) with B >= 1, got {tuple(ref.shape)}"
        )
    for name, x in tensors.items():
        if x.shape != ref.shape:
            raise ValueError(
                f"ppo_loss: {name} must have shape (B,) = {tuple(ref.shape)} like new_log_probs, "
                f"got {tuple(x.shape)}"
            )
        if not x.dtype.is_floating_point:
            raise ValueError(f"ppo_loss: {name} must be a float tensor, got {x.dtype}")
    if norm_adv and ref.shape[0] < 2:
        # The (unbiased) standard deviation of a single advantage is NaN.
        raise ValueError("ppo_loss: norm_adv needs a minibatch of at least 2 samples, got 1")


def ppo_loss(
    new_log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    new_values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    entropy: Tensor,
    *,
    clip_coef: float,
    vf_coef: float,
    ent_coef: float,
    clip_vloss: bool = True,
    norm_adv: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's clipped surrogate objective with a (clipped) value loss and an entropy bonus.

    Schulman et al. 2017, "Proximal Policy Optimization Algorithms", in the form of CleanRL's
    ``ppo.py``. With ``ratio = exp(new_log_probs - old_log_probs)`` and ``c = clip_coef``:

    * ``A`` is normalised per minibatch if ``norm_adv``: ``(A - mean(A)) / (std(A) + 1e-8)``
      (unbiased ``std``, as ``torch.std``);
    * ``actor_loss = mean(max(-A * ratio, -A * clip(ratio, 1 - c, 1 + c)))``;
    * ``critic_loss = 0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2))`` if
      ``clip_vloss``, else ``0.5 * mean((V - R)^2)``;
    * ``loss = actor_loss - ent_coef * mean(entropy) + vf_coef * critic_loss``.

    ``old_log_probs``, ``advantages``, ``old_values`` and ``returns`` are constants of the update
    and are detached here, so no gradient ever reaches them. A term whose coefficient is 0 is
    left out of ``loss`` altogether (not multiplied by 0), so with ``vf_coef=0`` the value
    predictions get no gradient (``grad`` stays ``None``), and with ``ent_coef=0`` neither does
    ``entropy``: an actor and a critic stepped by separate optimizers can share this function.

    Args:
        new_log_probs: ``(B,)`` log-probabilities of the taken actions under the current policy.
        old_log_probs: ``(B,)`` log-probabilities under the policy that collected the rollout.
        advantages: ``(B,)`` advantage estimates (e.g. GAE).
        new_values: ``(B,)`` current value predictions ``V(s)``.
        old_values: ``(B,)`` value predictions made when the rollout was collected.
        returns: ``(B,)`` value targets.
        entropy: ``(B,)`` entropy of the current policy at each state.
        clip_coef: ``c > 0``, the clipping range of the ratio and, if ``clip_vloss``, of the
            value change.
        vf_coef: Weight ``>= 0`` of the value loss in ``loss``.
        ent_coef: Weight ``>= 0`` of the entropy bonus in ``loss``.
        clip_vloss: Clip the value loss as above (CleanRL's default).
        norm_adv: Normalise the advantages per minibatch (needs ``B >= 2``).

    Returns:
        ``(loss, metrics)``: ``loss`` is a 0-dim tensor to minimise; ``metrics`` maps
        ``actor_loss``, ``critic_loss``, ``entropy`` (the mean), ``approx_kl``
        (``mean((ratio - 1) - log ratio)``, Schulman's low-variance KL estimator) and
        ``clip_fraction`` (the fraction of samples with ``|ratio - 1| > clip_coef``) to detached
        0-dim tensors.

    Raises:
        ValueError: if any tensor is not ``(B,)`` with the shape of ``new_log_probs``, is not a
            float tensor, ``norm_adv`` is set with ``B = 1``, ``clip_coef <= 0`` or a coefficient
            is negative or not finite. The message names the argument.
    """
    _check_ppo_inputs(
        {
            "new_log_probs": new_log_probs,
            "old_log_probs": old_log_probs,
            "advantages": advantages,
            "new_values": new_values,
            "old_values": old_values,
            "returns": returns,
            "entropy": entropy,
        },
        norm_adv,
    )
    if not (math.isfinite(clip_coef) and clip_coef > 0):
        raise ValueError(f"ppo_loss: clip_coef must be a finite number > 0, got {clip_coef}")
    for name, coef in (("vf_coef", vf_coef), ("ent_coef", ent_coef)):
        if not (math.isfinite(coef) and coef >= 0):
            raise ValueError(f"ppo_loss: {name} must be a finite number >= 0, got {coef}")

    old_log_probs = old_log_probs.detach()
    advantages = advantages.detach()
    old_values = old_values.detach()
    returns = returns.detach()

    if norm_adv:
        advantages = (advantages - advantages.mean()) / (advantages.std() + ADV_NORM_EPS)

    # Policy: the pessimistic (larger) of the unclipped and clipped surrogate losses, so the
    # ratio gets no gradient once it moved past 1 +/- c in the direction A rewards.
    log_ratio = new_log_probs - old_log_probs  # (B,)
    ratio = log_ratio.exp()  # (B,)
    surrogate = -advantages * ratio  # (B,)
    surrogate_clipped = -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)  # (B,)
    actor_loss = torch.maximum(surrogate, surrogate_clipped).mean()

    # Value: likewise the larger of the plain squared error and that of a prediction kept within
    # c of the old one.
    value_error = (new_values - returns).square()  # (B,)
    if clip_vloss:
        clipped_values = old_values + (new_values - old_values).clamp(-clip_coef, clip_coef)
        value_error = torch.maximum(value_error, (clipped_values - returns).square())  # (B,)
    critic_loss = 0.5 * value_error.mean()

    entropy_mean = entropy.mean()

    loss = actor_loss
    if ent_coef != 0.0:
        loss = loss - ent_coef * entropy_mean
    if vf_coef != 0.0:
        loss = loss + vf_coef * critic_loss

    with torch.no_grad():
        log_ratio_d = log_ratio.detach()
        ratio_d = ratio.detach()
        metrics = {
            "actor_loss": actor_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "entropy": entropy_mean.detach(),
            "approx_kl": (
                torch.expm1(log_ratio_d) - log_ratio_d
            ).mean(),  # r - 1 - log r, exact near r = 1
            "clip_fraction": ((ratio_d - 1.0).abs() > clip_coef).to(ratio_d.dtype).mean(),
        }
    return loss, metrics
