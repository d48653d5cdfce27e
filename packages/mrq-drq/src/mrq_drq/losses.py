"""MR.Q / DR.Q losses as pure functions: tensors in, tensors out, no modules or optimizers.

Shapes use ``B`` (batch), ``H`` (encoder unroll horizon), ``D`` (zs width), ``K`` (reward bins),
``N`` (Q heads, 2). All reductions follow the official code: a per-step loss is a mean over the
**whole** batch (masked-out samples count in the denominator as zeros), and the encoder loss is
the **sum** over the ``H`` unroll steps of those per-step means.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from rl_nets import TwoHot
from torch import Tensor

__all__ = [
    "EncoderLosses",
    "encoder_loss",
    "info_nce",
    "lap_priority",
    "masked_mse",
    "policy_loss",
    "termination_mask",
    "two_hot_cross_entropy",
    "value_loss",
    "value_target",
]


def termination_mask(not_done: Tensor) -> Tensor:
    """Which unroll steps are still inside the episode.

    Step ``i`` of a sub-trajectory is trained only if no earlier step ended the episode:
    ``mask[:, i] = prod_{j < i} not_done[:, j]`` (so ``mask[:, 0] = 1``). The step on which the
    episode terminates is itself kept: its reward, terminal flag and next state are real.

    Args:
        not_done: ``(B, H)`` float, 1 where transition ``i`` did not terminate the episode.

    Returns:
        ``(B, H)`` float mask in {0, 1}.
    """
    ones = torch.ones_like(not_done[:, :1])
    # Exclusive cumulative product: shift right by one step.
    return torch.cat([ones, torch.cumprod(not_done[:, :-1], dim=1)], dim=1)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Squared error with masked-out samples zeroed, averaged over every element (official code).

    Args:
        pred: ``(B, ..., D)`` predictions.
        target: Same shape as ``pred``.
        mask: ``(B, ...)`` float mask, broadcast over the last dimension of ``pred``.

    Returns:
        0-dim tensor: ``mean((pred - target)^2 * mask[..., None])``.
    """
    return (F.mse_loss(pred, target, reduction="none") * mask.unsqueeze(-1)).mean()


def two_hot_cross_entropy(logits: Tensor, target: Tensor, two_hot: TwoHot) -> Tensor:
    """Per-element cross-entropy between ``softmax(logits)`` and the two-hot code of ``target``.

    Args:
        logits: ``(..., K)`` reward logits.
        target: ``(...)`` raw (unscaled) rewards.
        two_hot: The bins.

    Returns:
        ``(...)`` losses.
    """
    return two_hot.loss(logits, target)


def info_nce(pred: Tensor, target: Tensor, temperature: float) -> Tensor:
    """One-directional InfoNCE with in-batch negatives, per anchor (DR.Q's MI term).

    Both inputs are L2-normalised; anchor ``b`` of ``pred`` must pick ``target[b]`` among all
    ``B`` targets of its group with logits ``<pred_b, target_c> / temperature``.

    Args:
        pred: ``(G, B, D)`` predicted next-state embeddings (G independent groups, e.g. unroll
            steps; a ``(B, D)`` input is treated as one group).
        target: Same shape: target next-state embeddings.
        temperature: Softmax temperature (DR.Q: 0.1).

    Returns:
        ``(G, B)`` (or ``(B,)``) per-anchor losses, unreduced so that the caller can mask each
        sample individually (the official code's ``(B,) * (B, 1)`` mask broadcasts to ``B x B``
        instead; see the README).
    """
    squeeze = pred.dim() == 2
    if squeeze:
        pred, target = pred.unsqueeze(0), target.unsqueeze(0)
    u = F.normalize(pred, dim=-1)
    v = F.normalize(target, dim=-1)
    logits = torch.bmm(u, v.transpose(1, 2)) / temperature  # (G, B, B)
    groups, batch = logits.shape[0], logits.shape[1]
    labels = torch.arange(batch, device=logits.device).expand(groups, batch)
    # cross_entropy wants the class dimension second: (G, B, B) -> (G, B(classes), B).
    loss = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")  # (G, B)
    return loss.squeeze(0) if squeeze else loss


class EncoderLosses(NamedTuple):
    """Encoder loss terms, each summed over the unroll and unweighted (0-dim tensors).

    Attributes:
        total: Weighted sum that is minimised.
        dynamics: Latent dynamics MSE against the target encoder's next zs.
        reward: Two-hot reward cross-entropy.
        done: Terminal MSE (0 when it is switched off).
        info_nce: DR.Q's InfoNCE term (0 when its weight is 0).
    """

    total: Tensor
    dynamics: Tensor
    reward: Tensor
    done: Tensor
    info_nce: Tensor


def encoder_loss(
    pred_zs: Tensor,
    pred_reward_logits: Tensor,
    pred_done: Tensor,
    target_zs: Tensor,
    reward: Tensor,
    not_done: Tensor,
    mask: Tensor,
    *,
    two_hot: TwoHot,
    dyn_weight: float,
    reward_weight: float,
    done_weight: float | Tensor,
    infonce_weight: float,
    infonce_temperature: float,
) -> EncoderLosses:
    """MR.Q's model loss over an ``H``-step latent unroll (plus DR.Q's InfoNCE term).

    Step ``i`` compares the MDP head's prediction from the unrolled latent with the real
    transition ``i``; every term is masked per sample by ``mask`` (:func:`termination_mask`),
    so nothing after a termination is learned.

    Args:
        pred_zs: ``(B, H, D)`` predicted next zs of each unroll step.
        pred_reward_logits: ``(B, H, K)`` predicted reward logits.
        pred_done: ``(B, H)`` predicted terminal flag (regressed onto ``1 - not_done``).
        target_zs: ``(B, H, D)`` target encoder's zs of the real next states.
        reward: ``(B, H)`` raw rewards.
        not_done: ``(B, H)`` float, 0 where transition ``i`` terminated the episode (per-step or
            cumulative flags: they agree wherever ``mask`` is 1).
        mask: ``(B, H)`` float, 1 for steps at or before the first termination
            (``termination_mask(not_done)``).
        two_hot: Reward bins.
        dyn_weight: Weight of the dynamics term.
        reward_weight: Weight of the reward term.
        done_weight: Weight of the terminal term (a 0-dim tensor lets the caller switch it on
            without recompiling, e.g. once a termination has been seen).
        infonce_weight: Weight of the InfoNCE term; 0 skips computing it.
        infonce_temperature: InfoNCE temperature.

    Returns:
        :class:`EncoderLosses`.
    """
    horizon = pred_zs.shape[1]
    # Per-step batch means summed over H == H * mean over (B, H).
    dynamics = masked_mse(pred_zs, target_zs, mask) * horizon
    reward_ce = two_hot_cross_entropy(pred_reward_logits, reward, two_hot)  # (B, H)
    reward_term = (reward_ce * mask).mean() * horizon
    done = ((pred_done - (1.0 - not_done)).square() * mask).mean() * horizon
    if infonce_weight > 0:
        # (B, H, D) -> (H, B, D): negatives come from the same unroll step of other samples.
        nce = info_nce(
            pred_zs.transpose(0, 1), target_zs.transpose(0, 1), infonce_temperature
        )  # (H, B)
        nce_term = (nce * mask.transpose(0, 1)).mean() * horizon
    else:
        nce_term = torch.zeros((), device=pred_zs.device, dtype=pred_zs.dtype)
    total = (
        dyn_weight * dynamics
        + reward_weight * reward_term
        + done_weight * done
        + infonce_weight * nce_term
    )
    return EncoderLosses(total, dynamics, reward_term, done, nce_term)


def value_target(
    reward: Tensor,
    discount: Tensor,
    next_q: Tensor,
    *,
    reward_scale: Tensor | float,
    target_reward_scale: Tensor | float,
) -> Tensor:
    """n-step TD target in units of the current reward scale.

    ``Q`` is learned on rewards divided by ``reward_scale`` (the buffer's mean ``|r|``). The
    target network was trained under the previous scale, so its output is first multiplied back
    to raw units by ``target_reward_scale``:
    ``(R_n + discount_n * Q'(s_n, a') * target_reward_scale) / reward_scale``.
    With both scales 1 this is the plain n-step target.

    Args:
        reward: ``(B,)`` raw n-step return ``sum_i gamma^i r_i`` (stopped at a termination).
        discount: ``(B,)`` ``gamma^n`` times 0 if the episode terminated within the n steps.
        next_q: ``(B,)`` target critic's value at the n-th next state (min over heads).
        reward_scale: Current scale.
        target_reward_scale: Scale the target critic was trained with.

    Returns:
        ``(B,)`` targets.
    """
    return (reward + discount * next_q * target_reward_scale) / reward_scale


def value_loss(q: Tensor, target: Tensor) -> Tensor:
    """Huber loss (threshold 1) of every Q head against the shared target.

    Args:
        q: ``(N, B)`` predictions of the N heads.
        target: ``(B,)`` targets.

    Returns:
        0-dim mean over heads and batch.
    """
    return F.smooth_l1_loss(q, target.expand_as(q))


def lap_priority(q: Tensor, target: Tensor, *, alpha: float, min_priority: float) -> Tensor:
    """LAP priority ``max(max_heads |q - target|, min_priority) ** alpha``.

    Args:
        q: ``(N, B)`` predictions.
        target: ``(B,)`` targets.
        alpha: Exponent (MR.Q: 0.4).
        min_priority: Floor (MR.Q: 1, the Huber threshold).

    Returns:
        ``(B,)`` priorities, detached.
    """
    td = (q - target).abs().amax(dim=0)
    return td.clamp(min=min_priority).pow(alpha).detach()


def policy_loss(q: Tensor, pre_activation: Tensor, *, pre_activ_weight: float) -> Tensor:
    """Deterministic policy gradient loss, averaged over all Q heads, plus a pre-tanh penalty.

    Args:
        q: ``(N, B)`` critic values of the policy's actions.
        pre_activation: ``(B, A)`` policy outputs before tanh / Gumbel-softmax.
        pre_activ_weight: Weight of ``mean(pre_activation^2)``.

    Returns:
        0-dim loss ``-mean(q) + pre_activ_weight * mean(pre_activation^2)``.
    """
    return -q.mean() + pre_activ_weight * pre_activation.square().mean()
