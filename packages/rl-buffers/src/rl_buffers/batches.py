"""Typed batches returned by :class:`rl_buffers.ReplayBuffer`.

Shapes use ``B`` for the batch, ``H`` for a sub-trajectory horizon, ``n`` for an n-step window and
``O`` for one observation as passed to ``add`` (``spec.stacked_obs_shape``: ``obs_shape``, or
``(k, *obs_shape)`` with a frame history ``k > 1``). All tensors of a batch are on the buffer's
device. Observations come in the storage dtype (uint8 for pixels); actions as stored (continuous:
the spec's float dtype, ``(B, *action_shape)``; discrete: int64 indices ``(B,)``, see
:func:`rl_buffers.one_hot`).

Terminations inside a window are given as ``not_done`` (never a bare ``done``).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from rl_buffers.returns import n_step_returns

__all__ = ["NStepBatch", "SubTrajectoryBatch", "TransitionBatch", "nstep_batch"]


class TransitionBatch(NamedTuple):
    """``B`` one-step transitions.

    Attributes:
        obs: ``(B, *O)`` storage dtype.
        action: ``(B, *action_shape)`` float, or ``(B,)`` int64 for discrete actions.
        reward: ``(B,)`` float32.
        next_obs: ``(B, *O)`` storage dtype. For a truncated step this is the real last
            observation, so bootstrapping from it is correct.
        not_done: ``(B,)`` float32: 0 where the step terminated (no bootstrap), else 1.
        indices: ``(B,)`` int64 buffer slots, for ``update_priority``.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    not_done: Tensor
    indices: Tensor


class NStepBatch(NamedTuple):
    """``B`` n-step transitions for a value update (MR.Q uses ``n = 3``).

    The target is ``returns + discount * bootstrap_not_done * V(bootstrap_obs)``.

    Attributes:
        obs: ``(B, *O)`` storage dtype: the first observation of the window.
        action: ``(B, *action_shape)`` float or ``(B,)`` int64: the first action.
        returns: ``(B,)`` float32: ``sum_j gamma**j r_j`` up to and including a terminal step.
        discount: ``(B,)`` float32: ``gamma ** steps``, ``gamma**n`` unless the window terminated.
        bootstrap_not_done: ``(B,)`` float32: 0 if any of the ``n`` steps terminated, else 1.
        bootstrap_obs: ``(B, *O)`` storage dtype: the observation ``n`` steps after ``obs``
            (after a terminal: the terminal observation; it is masked by ``bootstrap_not_done``).
        indices: ``(B,)`` int64 buffer slots of the first step, for ``update_priority``.
    """

    obs: Tensor
    action: Tensor
    returns: Tensor
    discount: Tensor
    bootstrap_not_done: Tensor
    bootstrap_obs: Tensor
    indices: Tensor


class SubTrajectoryBatch(NamedTuple):
    """``B`` windows of ``H`` consecutive steps of one episode (MR.Q's encoder uses ``H = 5``).

    A window never spans two episodes, a truncation or the buffer's write head. If the episode
    terminated inside the window, the steps after the terminal are padding: ``mask`` is 0 there,
    their ``reward`` and ``action`` are 0, and their observations repeat the terminal observation.

    Attributes:
        obs: ``(B, H + 1, *O)`` storage dtype: ``obs[:, j]`` is the observation before step ``j``
            and ``obs[:, j + 1]`` the one after it.
        action: ``(B, H, *action_shape)`` float or ``(B, H)`` int64.
        reward: ``(B, H)`` float32.
        not_done: ``(B, H)`` float32, cumulative: ``prod_{i <= j} (1 - terminated_i)``, 1 while
            the episode continues after step ``j``, 0 from the terminal step onwards. The done
            target of step ``j`` is ``1 - not_done[:, j]`` where ``mask[:, j] == 1``.
        mask: ``(B, H)`` float32: 1 where step ``j`` is real (``mask[:, 0] == 1``,
            ``mask[:, j] == not_done[:, j - 1]``), the ``m_j`` of MR.Q's encoder loss.
        indices: ``(B,)`` int64 buffer slots of step 0, for ``update_priority``.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    not_done: Tensor
    mask: Tensor
    indices: Tensor

    def n_step(self, n: int, gamma: float) -> NStepBatch:
        """The first ``n`` steps of each window as an :class:`NStepBatch` (``1 <= n <= H``)."""
        horizon = self.reward.shape[1]
        if not 1 <= n <= horizon:
            raise ValueError(f"n_step: n must be in [1, {horizon}], got {n}")
        return nstep_batch(
            obs=self.obs[:, 0],
            action=self.action[:, 0],
            rewards=self.reward[:, :n],
            not_done=self.not_done[:, :n],
            bootstrap_obs=self.obs[:, n],
            indices=self.indices,
            gamma=gamma,
        )

    def transitions(self) -> TransitionBatch:
        """Step 0 of each window as a :class:`TransitionBatch`."""
        return TransitionBatch(
            obs=self.obs[:, 0],
            action=self.action[:, 0],
            reward=self.reward[:, 0],
            next_obs=self.obs[:, 1],
            not_done=self.not_done[:, 0],
            indices=self.indices,
        )


def nstep_batch(
    *,
    obs: Tensor,
    action: Tensor,
    rewards: Tensor,
    not_done: Tensor,
    bootstrap_obs: Tensor,
    indices: Tensor,
    gamma: float,
) -> NStepBatch:
    """Assemble an :class:`NStepBatch` from the first step and ``(B, n)`` rewards/not-done."""
    returns, bootstrap_not_done, discount = n_step_returns(rewards, not_done, gamma)
    return NStepBatch(
        obs=obs,
        action=action,
        returns=returns,
        discount=discount,
        bootstrap_not_done=bootstrap_not_done,
        bootstrap_obs=bootstrap_obs,
        indices=indices,
    )
