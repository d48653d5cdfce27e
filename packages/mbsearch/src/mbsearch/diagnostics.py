"""The overestimation diagnostic: how far the learned Q of the visited states is above the
discounted Monte-Carlo return of the behaviour that was actually executed.

For an episode with rewards ``r_0..r_{T-1}``, ``G_t = sum_{k>=t} gamma^(k-t) r_k`` and the
relative overestimation is ``mean_t(Q(s_t, a_t) - G_t) / mean_t |G_t|`` over the counted states
(a ratio of means, so that states whose return is near 0 do not blow it up). A truncated
episode's tail is missing, so only its states with at least ``min_tail`` steps to go are counted;
all states of a terminated episode are. Positive means the critic believes in more return than
the behaviour gets: the paper's sign of the planner amplifying the maximisation bias.

:class:`OverestimationTracker` measures it during training. It sits between the off-policy loop
and the replay (the loop's ``buffer``), sees every executed transition, and at each episode end
evaluates the critics on that episode's ``(s_t, a_t)`` in one batched forward; the learner
reports the result with its next update. Its state (the episode so far) is checkpointed with the
replay, so a resumed run measures exactly what an uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from rl_runtime.offpolicy import SeededReplay
from torch import Tensor

__all__ = [
    "OverestimationTracker",
    "counted_states",
    "discounted_returns",
    "relative_overestimation",
]


def discounted_returns(rewards: Tensor, discount: float) -> Tensor:
    """``G_t = r_t + gamma * G_{t+1}``, with ``G_T = 0`` after the last reward.

    Args:
        rewards: ``(T,)`` rewards of one episode in order.
        discount: gamma.

    Returns:
        ``(T,)`` float64 returns.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards: expected shape (T,), got {tuple(rewards.shape)}")
    r = rewards.double()
    out = torch.empty_like(r)
    running = torch.zeros((), dtype=torch.float64)
    for t in range(r.shape[0] - 1, -1, -1):
        running = r[t] + discount * running
        out[t] = running
    return out


def counted_states(length: int, *, terminated: bool, min_tail: int) -> int:
    """How many leading states of an episode have a (nearly) complete Monte-Carlo return: all
    ``length`` if it terminated, else those with at least ``min_tail`` rewards from them on
    (state ``t`` has ``length - t``)."""
    if terminated:
        return length
    return max(0, min(length, length - min_tail + 1))


def relative_overestimation(q: Tensor, returns: Tensor) -> Tensor:
    """``mean(q - returns) / mean(|returns|)``.

    Args:
        q: ``(T,)`` critic values of the visited ``(s_t, a_t)`` (reward units).
        returns: ``(T,)`` their discounted Monte-Carlo returns.

    Returns:
        0-dim float64 (NaN if every return is 0).
    """
    if q.shape != returns.shape or q.dim() != 1:
        raise ValueError(
            f"q and returns: expected equal shapes (T,), got {tuple(q.shape)}, "
            f"{tuple(returns.shape)}"
        )
    q, g = q.double(), returns.double()
    return (q - g).mean() / g.abs().mean()


CriticFn = Callable[[Tensor, Tensor], Tensor]
"""``(obs (T, *O), action (T, A)) -> (N, T)`` every critic's value in reward units."""


class OverestimationTracker:
    """The replay the off-policy loop fills, measuring the overestimation at each episode end.

    Args:
        replay: The seeded replay the learner samples from (transitions pass through).
        critics: Every critic's value of a batch of ``(s, a)`` (``MRSQAgent.critic_values``).
        discount: gamma of the Monte-Carlo returns (the agent's).
        min_tail: See :func:`counted_states`.
        active: Called at each episode end; no measurement while it says ``False`` (before
            the first update the critics are untrained).
    """

    def __init__(
        self,
        replay: SeededReplay,
        critics: CriticFn,
        *,
        discount: float,
        min_tail: int,
        active: Callable[[], bool],
    ) -> None:
        self.replay = replay
        self.critics = critics
        self.discount = discount
        self.min_tail = min_tail
        self.active = active
        self._obs: list[Tensor] = []
        self._actions: list[Tensor] = []
        self._rewards: list[float] = []
        self._pending: dict[str, Tensor] = {}

    def add(
        self,
        obs: Tensor,
        action: Tensor,
        reward: Tensor,
        next_obs: Tensor,
        terminated: Tensor,
        truncated: Tensor,
        /,
    ) -> None:
        """Store the transition in the replay and record it for the episode's measurement."""
        self.replay.add(obs, action, reward, next_obs, terminated, truncated)
        self._obs.append(obs.clone())
        self._actions.append(action.clone())
        self._rewards.append(float(reward))
        if bool(terminated) or bool(truncated):
            self._episode_end(terminated=bool(terminated))

    def _episode_end(self, *, terminated: bool) -> None:
        count = counted_states(len(self._rewards), terminated=terminated, min_tail=self.min_tail)
        if count > 0 and self.active():
            returns = discounted_returns(torch.tensor(self._rewards), self.discount)[:count]
            obs = torch.stack(self._obs[:count])
            action = torch.stack(self._actions[:count])
            values = self.critics(obs, action).double().cpu()  # (N, count)
            q_min, q_mean = values.amin(0), values.mean(0)
            self._pending = {
                "overestimation": relative_overestimation(q_min, returns),
                "overestimation_mean": relative_overestimation(q_mean, returns),
                "q_visited": q_min.mean(),
                "mc_return": returns.mean(),
            }
        self._obs, self._actions, self._rewards = [], [], []

    def pop_metrics(self) -> dict[str, Tensor]:
        """The last finished episode's measurement (once), or nothing.

        ``overestimation`` uses the minimum over the critics (the value MR.Q and MRS.Q
        bootstrap from), ``overestimation_mean`` their mean; ``q_visited`` is the mean minimum Q
        and ``mc_return`` the mean return of the counted states.
        """
        out, self._pending = self._pending, {}
        return {k: v.float() for k, v in out.items()}

    def __len__(self) -> int:
        return len(self.replay)

    def state_dict(self) -> dict[str, Any]:
        """The replay's state and the episode recorded so far."""
        return {
            "replay": self.replay.state_dict(),
            "obs": torch.stack(self._obs) if self._obs else None,
            "actions": torch.stack(self._actions) if self._actions else None,
            "rewards": list(self._rewards),
            "pending": dict(self._pending),
        }

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output."""
        self.replay.load_state_dict(state["replay"])
        obs, actions = state["obs"], state["actions"]
        self._obs = [] if obs is None else list(obs.unbind(0))
        self._actions = [] if actions is None else list(actions.unbind(0))
        self._rewards = [float(r) for r in state["rewards"]]
        self._pending = dict(state["pending"])
