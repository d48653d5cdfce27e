"""Losses of DriftQL, FQL and BC as pure functions: tensors in, ``(loss, metrics)`` out.

Notation: ``B`` states, ``N`` actor candidates per state, ``P`` positives per state (DriftQL uses
one: the dataset action), ``A`` action features, ``E`` critic ensemble members. Metrics are
detached 0-dim tensors.

The drift field (DriftQL, following Drifting Models with the official code's choices):

    d(x, y)  = ||x - y|| / sqrt(A)                      (dim_scale; sqrt(. + eps) inside)
    logit    = -d / tau               (Laplace)   or    -d^2 / (2 tau^2)   (Gaussian)
    V+_i     = sum_p softmax_p(logit(g_i, y_p)) (y_p - g_i)           (one positive: y - g_i)
    V-_i     = sum_{k != i} softmax_k(logit(g_i, g_k)) (g_k - g_i)    (self-pair masked)
    V_i      = V+_i - V-_i
    loss     = mean over (B, N, A) of (g_i - sg(clip(g_i + eta V_i, -1, 1)))^2

The two softmaxes are separate (attraction is not diluted by the N - 1 repulsion terms), and the
loss is a per-element mean: the official code's scale, for which the published alphas were tuned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from driftql.config import Kernel, QAgg

__all__ = [
    "DriftField",
    "Metrics",
    "aggregate_q",
    "bc_loss",
    "critic_loss",
    "distillation_loss",
    "drift_field",
    "drift_loss",
    "euler_flow",
    "flow_matching_loss",
    "q_loss",
    "td_target",
]

Metrics = dict[str, Tensor]


class DriftField(NamedTuple):
    """The drift field at each candidate and its two parts.

    Attributes:
        total: ``(B, N, A)`` ``V = attract - repel``.
        attract: ``(B, N, A)`` ``V+``: kernel-weighted displacement towards the positives.
        repel: ``(B, N, A)`` ``V-``: kernel-weighted displacement towards the other candidates
            (it enters ``V`` with a minus sign, so it pushes candidates apart).
    """

    total: Tensor
    attract: Tensor
    repel: Tensor


def _norm(x: Tensor, eps: float) -> Tensor:
    """``sqrt(sum(x^2, -1) + eps)``: the official norm (finite gradient at 0)."""
    return (x.square().sum(-1) + eps).sqrt()


def _kernel_logits(dist: Tensor, temperature: float, kernel: Kernel) -> Tensor:
    if kernel == "laplace":
        return -dist / temperature
    if kernel == "gaussian":
        return -dist.square() / (2.0 * temperature * temperature)
    raise ValueError(f"kernel must be 'laplace' or 'gaussian', got {kernel!r}")


def drift_field(
    gen: Tensor,
    pos: Tensor,
    *,
    temperature: float,
    kernel: Kernel = "laplace",
    dim_scale: bool = True,
    normalize: bool = False,
    eps: float = 1e-12,
) -> DriftField:
    """The drift field ``V = V+ - V-`` at every candidate, one state at a time (batched).

    Args:
        gen: ``(B, N, A)`` candidates of each state, ``N >= 2``.
        pos: ``(B, P, A)`` positives of each state (DriftQL: ``P = 1``, the dataset action).
        temperature: Kernel temperature ``tau > 0``.
        kernel: ``"laplace"`` or ``"gaussian"``.
        dim_scale: Divide distances by ``sqrt(A)``.
        normalize: Divide each state's field (and its parts) by
            ``sqrt(mean_N ||V_i||^2 / A + eps)``.
        eps: Added under every square root.

    Returns:
        A :class:`DriftField` of ``(B, N, A)`` tensors (differentiable; callers detach).
    """
    if gen.dim() != 3 or pos.dim() != 3:
        raise ValueError(
            f"gen and pos must be (B, N, A) and (B, P, A), got {tuple(gen.shape)} and "
            f"{tuple(pos.shape)}"
        )
    batch, num, action_dim = gen.shape
    if pos.shape[0] != batch or pos.shape[2] != action_dim or pos.shape[1] < 1:
        raise ValueError(
            f"pos must be ({batch}, P >= 1, {action_dim}) to match gen, got {tuple(pos.shape)}"
        )
    if num < 2:
        raise ValueError(f"gen needs N >= 2 candidates per state (one to repel), got N={num}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    scale = float(action_dim) ** 0.5 if dim_scale else 1.0

    # Pairwise distances from each candidate i to each positive p / other candidate k.
    dist_pos = _norm(pos.unsqueeze(1) - gen.unsqueeze(2), eps) / scale  # (B, N, P)
    dist_neg = _norm(gen.unsqueeze(1) - gen.unsqueeze(2), eps) / scale  # (B, N, N)
    logit_pos = _kernel_logits(dist_pos, temperature, kernel)
    logit_neg = _kernel_logits(dist_neg, temperature, kernel)
    # A candidate must not repel itself: its self-logit is -inf, so its softmax weight is 0
    # (the official code sets the self-distance to 1e6, which underflows to the same 0).
    eye = torch.eye(num, dtype=torch.bool, device=gen.device)
    logit_neg = logit_neg.masked_fill(eye, float("-inf"))

    # Separate softmaxes over positives and over the other candidates (rows sum to 1).
    w_pos = torch.softmax(logit_pos, dim=-1)  # (B, N, P)
    w_neg = torch.softmax(logit_neg, dim=-1)  # (B, N, N)
    # sum_j w_ij (y_j - g_i) = (W @ Y)_i - g_i, since each row of W sums to 1.
    attract = torch.bmm(w_pos, pos) - gen  # (B, N, A)
    repel = torch.bmm(w_neg, gen) - gen  # (B, N, A)
    total = attract - repel
    if normalize:
        # Per state: RMS of V per action dimension, (B, 1, 1).
        lam = (total.square().sum(-1).mean(-1) / action_dim + eps).sqrt()[:, None, None]
        total, attract, repel = total / lam, attract / lam, repel / lam
    return DriftField(total, attract, repel)


def drift_loss(
    gen: Tensor,
    pos: Tensor,
    *,
    temperature: float,
    kernel: Kernel = "laplace",
    eta: float = 1.0,
    dim_scale: bool = True,
    normalize: bool = False,
    eps: float = 1e-12,
) -> tuple[Tensor, Metrics]:
    """DriftQL's drift regulariser: regress candidates onto ``sg(clip(gen + eta * V, -1, 1))``.

    The field is computed without gradient, so the gradient w.r.t. candidate ``i`` is
    ``-2 (target_i - g_i) / (B N A)``: a pull to the dataset action plus a push away from the
    kernel-weighted other candidates, zero where ``V_i = 0`` or clipping holds ``g_i`` in place.

    Args:
        gen: ``(B, N, A)`` candidates in [-1, 1] (the actor's clipped outputs; grad flows).
        pos: ``(B, P, A)`` positives (clipped dataset actions; no grad needed).
        temperature, kernel, dim_scale, normalize, eps: See :func:`drift_field`.
        eta: Step size of the target.

    Returns:
        ``(loss, metrics)``: the 0-dim per-element mean squared error, and ``drift_norm``,
        ``drift_attract_norm``, ``drift_repel_norm`` (mean ``||.||`` over candidates) and
        ``data_mse`` (mean squared distance of the candidates to the first positive).
    """
    with torch.no_grad():
        field = drift_field(
            gen.detach(),
            pos.detach(),
            temperature=temperature,
            kernel=kernel,
            dim_scale=dim_scale,
            normalize=normalize,
            eps=eps,
        )
        target = (gen.detach() + eta * field.total).clamp(-1.0, 1.0)
        metrics = {
            "drift_norm": _norm(field.total, eps).mean(),
            "drift_attract_norm": _norm(field.attract, eps).mean(),
            "drift_repel_norm": _norm(field.repel, eps).mean(),
            "data_mse": (gen.detach() - pos[:, :1].detach()).square().mean(),
        }
    loss = (gen - target).square().mean()
    return loss, metrics


def aggregate_q(q: Tensor, agg: QAgg) -> Tensor:
    """Combine ``(E, B)`` ensemble values into ``(B,)`` by ``min`` or ``mean``."""
    if agg == "min":
        return q.amin(dim=0)
    if agg == "mean":
        return q.mean(dim=0)
    raise ValueError(f"q_agg must be 'min' or 'mean', got {agg!r}")


def td_target(
    reward: Tensor, not_done: Tensor, next_q: Tensor, *, discount: float, q_agg: QAgg
) -> Tensor:
    """``r + discount * not_done * agg_e(Q_target_e(s', a'))``.

    Args:
        reward: ``(B,)``.
        not_done: ``(B,)`` 0 where the transition terminated (no bootstrap), else 1.
        next_q: ``(E, B)`` target-critic values at ``(s', a')``.
        discount: Gamma.
        q_agg: How to combine the members.

    Returns:
        ``(B,)`` target (carries no gradient if ``next_q`` carries none).
    """
    return reward + discount * not_done * aggregate_q(next_q, q_agg)


def critic_loss(q: Tensor, target: Tensor) -> tuple[Tensor, Metrics]:
    """Mean over members and batch of ``(Q_e(s, a) - target)^2``.

    Args:
        q: ``(E, B)`` online-critic values at the dataset action.
        target: ``(B,)`` TD target (no gradient).

    Returns:
        ``(loss, metrics)`` with ``critic_loss``, ``q_mean``, ``q_max``, ``q_min``,
        ``q_target`` (mean target).
    """
    loss = (q - target.detach()).square().mean()
    qd = q.detach()
    return loss, {
        "critic_loss": loss.detach(),
        "q_mean": qd.mean(),
        "q_max": qd.amax(),
        "q_min": qd.amin(),
        "q_target": target.detach().mean(),
    }


def q_loss(q: Tensor, *, q_agg: QAgg, normalize: bool) -> tuple[Tensor, Metrics]:
    """The actor's Q term ``-mean_B agg_e Q_e(s, pi(s))``.

    Args:
        q: ``(E, B)`` critic values at the actor's actions (grad flows to the actions only).
        q_agg: How to combine the members (official ``q_agg_actor``).
        normalize: Multiply by ``sg(1 / (mean |Q| + 1e-6))`` (TD3+BC's lambda).

    Returns:
        ``(loss, metrics)`` with ``q_loss`` and ``actor_q`` (mean aggregated value of the
        actor's actions).
    """
    value = aggregate_q(q, q_agg)  # (B,)
    loss = -value.mean()
    if normalize:
        loss = loss / (value.detach().abs().mean() + 1e-6)
    return loss, {"q_loss": loss.detach(), "actor_q": value.detach().mean()}


def flow_matching_loss(velocity: Tensor, x0: Tensor, x1: Tensor) -> tuple[Tensor, Metrics]:
    """FQL's behaviour-cloning flow loss: ``mean (v(s, x_t, t) - (x1 - x0))^2``.

    Args:
        velocity: ``(B, A)`` predicted velocity at ``x_t = (1 - t) x0 + t x1``.
        x0: ``(B, A)`` noise.
        x1: ``(B, A)`` dataset actions.

    Returns:
        ``(loss, {"bc_flow_loss": loss})``.
    """
    loss = (velocity - (x1 - x0)).square().mean()
    return loss, {"bc_flow_loss": loss.detach()}


def euler_flow(
    velocity_fn: Callable[[Tensor, Tensor], Tensor], noise: Tensor, steps: int
) -> Tensor:
    """Integrate ``dx/dt = v(x, t)`` from ``x(0) = noise`` to ``t = 1`` with ``steps`` Euler steps.

    Args:
        velocity_fn: ``(x (B, A), t (B, 1)) -> (B, A)``.
        noise: ``(B, A)`` starting point.
        steps: Number of equal steps (FQL: 10); step ``i`` evaluates at ``t = i / steps``.

    Returns:
        ``(B, A)`` endpoint clipped to [-1, 1].
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x = noise
    for i in range(steps):
        t = torch.full((*noise.shape[:-1], 1), i / steps, dtype=noise.dtype, device=noise.device)
        x = x + velocity_fn(x, t) / steps
    return x.clamp(-1.0, 1.0)


def distillation_loss(action: Tensor, teacher: Tensor) -> tuple[Tensor, Metrics]:
    """FQL's one-step distillation: ``mean (mu(s, z) - sg(flow(s, z)))^2`` (raw ``mu`` output).

    Returns:
        ``(loss, {"distill_loss": loss})`` (unweighted; the agent multiplies by alpha).
    """
    loss = (action - teacher.detach()).square().mean()
    return loss, {"distill_loss": loss.detach()}


def bc_loss(action: Tensor, data_action: Tensor) -> tuple[Tensor, Metrics]:
    """Plain behaviour cloning: ``mean (pi(s) - a)^2`` on the raw (unclipped) output.

    Returns:
        ``(loss, {"bc_loss": loss})``.
    """
    loss = (action - data_action).square().mean()
    return loss, {"bc_loss": loss.detach()}
