"""MPPI as TD-MPC2 runs it, over any batched scorer of action sequences, and MR.Q's latent model
as such a scorer.

:func:`mppi` is the planning loop of TD-MPC2 (``TDMPC2._plan``, read in nicklashansen/tdmpc2,
MIT; re-implemented, not copied): ``iterations`` rounds of sampling ``num_samples`` sequences
(``num_pi_trajs`` of them proposed by the policy, the rest ``N(mean, std)`` clamped to
[-1, 1]), scoring them, keeping the ``num_elites`` best and refitting mean and std to them
with weights ``exp(temperature * (V - max V))``; the std is clamped to ``[min_std, max_std]``.
The executed action is the first action of one elite drawn with those weights. Every draw comes
from the caller's ``torch.Generator``, and everything runs under ``torch.no_grad``.

:func:`latent_returns` scores sequences in MR.Q's latent space: the predicted rewards,
discounted and masked by the predicted continuation, plus the discounted terminal value
``reduce_i Q_i(z_H, pi(z_H))``. One call of the model per horizon step covers all ``P``
sequences, and one call of the critic ensemble covers all ``P`` terminal states and all heads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from mbsearch.config import PlannerConfig, Reduction

__all__ = [
    "LatentModel",
    "Plan",
    "latent_returns",
    "mppi",
    "policy_prior",
    "reduce_critics",
    "shift_plan",
]

Scorer = Callable[[Tensor], Tensor]
"""``(H, P, A)`` action sequences in [-1, 1] → ``(P,)`` returns."""


class Plan(NamedTuple):
    """The outcome of one :func:`mppi` call.

    Attributes:
        action: ``(A,)`` first action of the elite sequence drawn by its weight (no noise).
        mean: ``(H, A)`` the last iteration's mean (the next warm start, once shifted).
        std: ``(H, A)`` the last iteration's std (``std[0]`` scales TD-MPC2's acting noise).
        value: 0-dim score of the chosen sequence.
    """

    action: Tensor
    mean: Tensor
    std: Tensor
    value: Tensor


def shift_plan(mean: Tensor) -> Tensor:
    """The warm start from a plan's mean: one step later, the new last step at 0 (TD-MPC2).

    Args:
        mean: ``(H, A)``.

    Returns:
        ``(H, A)``: ``[mean[1], ..., mean[H-1], 0]``.
    """
    out = torch.zeros_like(mean)
    out[:-1] = mean[1:]
    return out


@torch.no_grad()
def mppi(
    score: Scorer,
    *,
    action_dim: int,
    cfg: PlannerConfig,
    generator: torch.Generator,
    prior: Tensor | None = None,
    init_mean: Tensor | None = None,
) -> Plan:
    """Plan by MPPI (TD-MPC2's loop).

    Args:
        score: Batched returns of action sequences (all ``P`` at once).
        action_dim: A.
        cfg: Horizon, iterations, samples, elites, temperature, std clamp.
        generator: Source of every random draw (on the device of the plan).
        prior: ``(H, K, A)`` policy-proposed sequences, re-scored every iteration (``K <
            num_samples``); ``None``: none.
        init_mean: ``(H, A)`` warm start (default zeros); the std always starts at ``max_std``.

    Returns:
        :class:`Plan`.
    """
    horizon, total = cfg.horizon, cfg.num_samples
    device = generator.device
    mean = torch.zeros(horizon, action_dim, device=device)
    if init_mean is not None:
        if tuple(init_mean.shape) != (horizon, action_dim):
            raise ValueError(
                f"init_mean: expected shape ({horizon}, {action_dim}), got {tuple(init_mean.shape)}"
            )
        mean = init_mean.to(device).clone()
    std = torch.full((horizon, action_dim), cfg.max_std, device=device)
    actions = torch.empty(horizon, total, action_dim, device=device)
    k = 0
    if prior is not None:
        k = prior.shape[1]
        if prior.dim() != 3 or prior.shape[0] != horizon or prior.shape[2] != action_dim:
            raise ValueError(
                f"prior: expected shape ({horizon}, K, {action_dim}), got {tuple(prior.shape)}"
            )
        if k >= total:
            raise ValueError(f"prior: K={k} sequences leave none of the {total} to sample")
        actions[:, :k] = prior
    elites = min(cfg.num_elites, total)
    # Set by every iteration (there is at least one); typed here for the checker.
    weight = torch.full((elites,), 1.0 / elites, device=device)
    elite_actions, elite_value = actions[:, :elites], torch.zeros(elites, device=device)
    for _ in range(cfg.iterations):
        noise = torch.randn(
            horizon, total - k, action_dim, generator=generator, device=device
        )  # (H, P - K, A)
        actions[:, k:] = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(-1.0, 1.0)
        value = score(actions).nan_to_num(0.0)  # (P,)
        if tuple(value.shape) != (total,):
            raise ValueError(f"score must return shape ({total},), got {tuple(value.shape)}")
        elite_value, elite_idx = torch.topk(value, elites)
        elite_actions = actions[:, elite_idx]  # (H, E, A)
        # exp(T * (V - max V)), normalised: the maximum has weight exp(0) before normalising.
        weight = torch.exp(cfg.temperature * (elite_value - elite_value.max()))
        weight = weight / weight.sum()
        w = weight.view(1, -1, 1)  # (1, E, 1) over (H, E, A)
        mean = (w * elite_actions).sum(dim=1) / (weight.sum() + 1e-9)
        spread = (w * (elite_actions - mean.unsqueeze(1)).square()).sum(dim=1)
        std = (spread / (weight.sum() + 1e-9)).sqrt().clamp(cfg.min_std, cfg.max_std)
    # One elite drawn with its weight (TD-MPC2 draws by Gumbel-max, the same distribution).
    choice = torch.multinomial(weight, 1, generator=generator)[0]
    return Plan(elite_actions[0, choice].clone(), mean, std, elite_value[choice])


class LatentModel(Protocol):
    """A learned model the planner rolls out, batched over sequences."""

    def step(self, z: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(P, D), (P, A)`` → next latent ``(P, D)``, reward ``(P,)`` and continuation
        ``(P,)`` (1 = the episode goes on)."""
        ...

    def policy(self, z: Tensor) -> Tensor:
        """``(P, D)`` → ``(P, A)`` actions in [-1, 1]."""
        ...

    def critics(self, z: Tensor, action: Tensor) -> Tensor:
        """``(P, D), (P, A)`` → ``(N, P)`` every critic's value (in reward units), one forward."""
        ...


def reduce_critics(values: Tensor, reduction: Reduction) -> Tensor:
    """``(N, P)`` → ``(P,)``: the minimum or the mean over the critics."""
    if reduction == "min":
        return values.amin(dim=0)
    if reduction == "mean":
        return values.mean(dim=0)
    raise ValueError(f"reduction must be 'min' or 'mean', got {reduction!r}")


@torch.no_grad()
def latent_returns(
    model: LatentModel,
    z0: Tensor,
    actions: Tensor,
    *,
    discount: float,
    reduction: Reduction,
) -> Tensor:
    """``V(tau) = sum_t gamma^t c_{<t} r_t + gamma^H c_{<H} reduce_i Q_i(z_H, pi(z_H))``.

    ``c_{<t}`` is the product of the predicted continuations of the steps before ``t``, so
    rewards and the terminal value after a predicted termination do not count.

    Args:
        model: The latent model.
        z0: ``(D,)`` or ``(1, D)`` latent of the current state.
        actions: ``(H, P, A)``.
        discount: Per-step gamma.
        reduction: Critic combination at the horizon.

    Returns:
        ``(P,)`` returns.
    """
    horizon, count = actions.shape[0], actions.shape[1]
    z = z0.reshape(1, -1).expand(count, -1)  # (P, D)
    total = torch.zeros(count, device=actions.device)
    weight = torch.ones(count, device=actions.device)  # gamma^t * prod of continuations
    for t in range(horizon):
        z, reward, cont = model.step(z, actions[t])  # all P sequences in one forward
        total = total + weight * reward
        weight = weight * discount * cont
    values = model.critics(z, model.policy(z))  # (N, P): all heads in one forward
    return total + weight * reduce_critics(values, reduction)


@torch.no_grad()
def policy_prior(
    model: LatentModel,
    z0: Tensor,
    *,
    horizon: int,
    count: int,
    noise: float,
    generator: torch.Generator,
) -> Tensor:
    """``count`` sequences proposed by rolling the policy through the model.

    The first follows the policy exactly; the others add ``N(0, noise)`` to each of its actions
    (clamped to [-1, 1]) before the model steps on them, as TD-MPC2 steps on sampled actions of
    its stochastic policy.

    Returns:
        ``(H, count, A)``.
    """
    z = z0.reshape(1, -1).expand(count, -1)
    steps = []
    for t in range(horizon):
        a = model.policy(z)  # (K, A)
        if noise > 0 and count > 1:
            eps = torch.randn(a.shape, generator=generator, device=a.device) * noise
            eps[0] = 0.0  # the first proposal is the policy itself
            a = (a + eps).clamp(-1.0, 1.0)
        steps.append(a)
        if t < horizon - 1:
            z, _, _ = model.step(z, a)
    return torch.stack(steps)
