"""Pure functions on sampled windows: n-step returns and one-hot actions."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["n_step_returns", "one_hot"]


def n_step_returns(
    rewards: Tensor, not_done: Tensor, gamma: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Discounted n-step returns that stop at a termination.

    With ``c_j = prod_{i <= j} not_done_i`` (1 while no step up to ``j`` has terminated) and the
    reward mask ``m_0 = 1``, ``m_j = c_{j-1}``:

    * ``returns = sum_j gamma**j * m_j * rewards_j``: the reward of the terminating step counts;
      nothing after it does (no reward of a following episode can leak in);
    * ``bootstrap_not_done = c_{n-1}``: 0 if any step terminated, so no value is bootstrapped
      through a terminal;
    * ``discount = gamma ** (sum_j m_j)``: the discount of the bootstrap value, ``gamma**n`` when
      the window did not terminate.

    The value target is ``returns + discount * bootstrap_not_done * V(bootstrap_obs)``.
    MR.Q's official ``multi_step_reward`` multiplies each reward by its *own* not-done flag,
    which drops the terminating reward and keeps later ones; this function does not.

    Args:
        rewards: ``(B, n)`` float rewards of ``n`` consecutive steps.
        not_done: ``(B, n)`` float or bool, ``1`` where step ``j`` did not terminate. Per-step
            flags or the already cumulative mask give the same result (the running product is
            taken here).
        gamma: Discount factor in ``[0, 1]``.

    Returns:
        ``(returns, bootstrap_not_done, discount)``, each ``(B,)`` in ``rewards.dtype``.

    Raises:
        ValueError: on mismatched or non-2-D shapes, or ``gamma`` outside ``[0, 1]``.
    """
    if rewards.ndim != 2 or not_done.shape != rewards.shape:
        raise ValueError(
            f"n_step_returns: expected rewards (B, n) and not_done (B, n), got "
            f"{tuple(rewards.shape)} and {tuple(not_done.shape)}"
        )
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"n_step_returns: gamma must be in [0, 1], got {gamma}")
    dtype = rewards.dtype
    n = rewards.shape[1]
    c = torch.cumprod(
        not_done.to(dtype), dim=1
    )  # (B, n): 1 until (and excluding) the first terminal
    mask = torch.cat([torch.ones_like(c[:, :1]), c[:, :-1]], dim=1)  # (B, n): steps that happened
    gammas = gamma ** torch.arange(n, device=rewards.device, dtype=dtype)  # (n,)
    returns = (rewards * mask * gammas).sum(dim=1)
    steps = mask.sum(dim=1)
    discount = torch.pow(torch.tensor(gamma, dtype=dtype, device=rewards.device), steps)
    return returns, c[:, -1], discount


def one_hot(actions: Tensor, num_actions: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """One-hot encode stored discrete actions.

    Args:
        actions: ``(...)`` int64 action indices in ``[0, num_actions)``.
        num_actions: Number of actions ``A``.
        dtype: Output dtype.

    Returns:
        ``(..., A)`` tensor with a single 1 per action.
    """
    if actions.dtype != torch.int64:
        raise TypeError(f"one_hot: actions must be int64 indices, got {actions.dtype}")
    return torch.nn.functional.one_hot(actions, num_actions).to(dtype)
