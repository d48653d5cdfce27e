"""Episode-end reward relabelling in front of an ``rl_buffers.ReplayBuffer``, for any learner.

:class:`OTRelabelStore` has the shape of a transition store (``add``, ``__len__``,
``state_dict``, ``load_state_dict``), so a training loop that writes one transition per
environment step uses it unchanged. It stages the running episode; when a step is
``terminated`` or ``truncated`` it draws one expert trajectory at random, computes the
optimal-transport rewards of the whole episode against it and ``extend``s the episode into the
wrapped buffer with those rewards. The environment's reward is discarded (the loop still sums
it for the true return). Nothing but the finished episode is written, and the staged steps are
part of the state, so a run checkpointed mid-episode resumes exactly.

A solve that does not converge warns (:class:`ot_ilfo.rewards.OTConvergenceWarning`) once per
store, for its first episode that warns; every episode's :class:`EpisodeStats` records whether
its solve converged and what it warned, so a long run is not one warning per episode.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from rl_buffers import ReplayBuffer
from torch import Tensor

from ot_ilfo.rewards import OTConvergenceWarning, OTResult, OTRewarder

__all__ = ["EpisodeStats", "OTRelabelStore"]

_FORMAT = "ot_ilfo.OTRelabelStore/1"
_FIELDS = ("obs", "action", "next_obs", "terminated", "truncated")


class EpisodeStats(NamedTuple):
    """What relabelling one finished episode gave."""

    episode: int
    """Index of the episode among those relabelled by this store (0-based)."""
    length: int
    """Transitions ``T``."""
    ot_return: float
    """Sum of the episode's OT rewards."""
    transport_cost: float
    """``sum C * P`` of the plan."""
    expert_index: int
    """Expert trajectory the episode was matched against."""
    converged: bool
    """Whether the transport solve converged."""
    solve_seconds: float
    """Wall time of the reward computation (cost matrix, plan, rewards)."""
    warnings: tuple[str, ...] = ()
    """What the solve warned (non-convergence, a fallback); empty when nothing."""


class OTRelabelStore:
    """Stage each episode, then store it with optimal-transport rewards at its end.

    Args:
        buffer: Where finished episodes go (with ``extend``); 1-D float observations.
        rewarder: Computes the rewards (its expert trajectories are drawn from uniformly).
        seed: Seed of the generator that draws the expert trajectory per episode.
        state_dims: Use only the first ``state_dims`` observation entries as the state for the
            rewards (e.g. to leave out a time-to-horizon entry appended by
            :class:`ot_ilfo.envs.TimeToHorizon`); None uses the whole observation.
        on_episode: Called with the :class:`EpisodeStats` of every relabelled episode (logging).

    Raises:
        ValueError: the buffer stores pixels or frame stacks, or ``state_dims`` does not match
            the rewarder's state dimension.
    """

    def __init__(
        self,
        buffer: ReplayBuffer,
        rewarder: OTRewarder,
        *,
        seed: int,
        state_dims: int | None = None,
        on_episode: Callable[[EpisodeStats], None] | None = None,
    ) -> None:
        obs_shape = buffer.spec.stacked_obs_shape
        if buffer.spec.pixels or len(obs_shape) != 1:
            raise ValueError(
                f"OTRelabelStore needs flat state observations, the buffer stores {obs_shape}"
            )
        dims = obs_shape[0] if state_dims is None else state_dims
        if not 1 <= dims <= obs_shape[0]:
            raise ValueError(f"state_dims must be in [1, {obs_shape[0]}], got {state_dims}")
        if dims != rewarder.state_dim:
            raise ValueError(
                f"the rewarder's expert states have {rewarder.state_dim} dimensions, the "
                f"store passes {dims} observation entries (state_dims={state_dims})"
            )
        self.buffer = buffer
        self.rewarder = rewarder
        self.state_dims = dims
        self.on_episode = on_episode
        self._warned = False  # an OT warning was shown (display only, not state)
        self.generator = torch.Generator().manual_seed(seed)
        self.episodes = 0
        self.last_result: OTResult | None = None
        self._staged: dict[str, list[Tensor]] = {k: [] for k in _FIELDS}

    @property
    def num_staged(self) -> int:
        """Steps of the running episode, not yet in the buffer."""
        return len(self._staged["obs"])

    def __len__(self) -> int:
        """Transitions in the buffer (staged steps are not counted)."""
        return len(self.buffer)

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
        """Stage one transition; at the end of an episode, relabel it and store it.

        Args:
            obs: ``(D,)`` float observation.
            action: ``spec.action_shape`` action.
            reward: ``()`` the environment's reward: ignored (the loop logs the true return).
            next_obs: ``(D,)`` the next observation (the real last one on truncation).
            terminated: ``()`` bool.
            truncated: ``()`` bool.

        Raises:
            ValueError: wrong shapes, NaN/inf, or an ``obs`` that does not continue the staged
                episode.
            ot_ilfo.rewards.TrajectoryError: the finished episode cannot be scored.
        """
        del reward  # replaced by the optimal-transport reward at the episode's end
        spec = self.buffer.spec
        obs_t, next_t = torch.as_tensor(obs), torch.as_tensor(next_obs)
        for name, t in (("obs", obs_t), ("next_obs", next_t)):
            if tuple(t.shape) != spec.stacked_obs_shape:
                raise ValueError(
                    f"{name}: expected shape {spec.stacked_obs_shape}, got {tuple(t.shape)}"
                )
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name}: has NaN or inf")
        action_t = torch.as_tensor(action)
        if tuple(action_t.shape) != spec.action_shape:
            raise ValueError(
                f"action: expected shape {spec.action_shape}, got {tuple(action_t.shape)}"
            )
        term_t = torch.as_tensor(terminated, dtype=torch.bool).reshape(())
        trunc_t = torch.as_tensor(truncated, dtype=torch.bool).reshape(())
        if self.num_staged and not torch.equal(obs_t.cpu(), self._staged["next_obs"][-1]):
            raise ValueError(
                "obs does not continue the staged episode (it differs from the previous "
                "next_obs, and the previous step was neither terminated nor truncated)"
            )
        for key, t in zip(_FIELDS, (obs_t, action_t, next_t, term_t, trunc_t), strict=True):
            self._staged[key].append(t.detach().cpu().clone())
        if bool(term_t) or bool(trunc_t):
            self._finish_episode()

    def _finish_episode(self) -> None:
        st = {k: torch.stack(v) for k, v in self._staged.items()}  # each (T, ...)
        k = self.state_dims
        # s_0..s_T: the observations, then the episode's last next observation (the real one,
        # terminal or truncated); only the first state_dims entries are the state.
        states = torch.cat([st["obs"][:, :k], st["next_obs"][-1:, :k]]).double().numpy()
        actions = None
        if self.rewarder.cfg.atoms == "state_action":
            actions = st["action"].double().reshape(st["action"].shape[0], -1).numpy()
        expert = int(torch.randint(self.rewarder.num_experts, (1,), generator=self.generator))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            # Recorded in the stats (below); shown once per store, not once per episode.
            warnings.simplefilter("ignore", OTConvergenceWarning)
            result = self.rewarder.rewards(states, actions, expert_index=expert)
        seconds = time.perf_counter() - t0
        if result.info.warnings and not self._warned:
            self._warned = True
            warnings.warn(
                OTConvergenceWarning(
                    f"episode {self.episodes}: {'; '.join(result.info.warnings)} (shown once; "
                    "the episode statistics record every solve's convergence)"
                ),
                stacklevel=2,
            )
        self.buffer.extend(
            st["obs"],
            st["action"],
            torch.as_tensor(result.rewards, dtype=torch.float32),
            st["next_obs"],
            st["terminated"],
            st["truncated"],
        )
        self._staged = {key: [] for key in _FIELDS}
        self.last_result = result
        stats = EpisodeStats(
            episode=self.episodes,
            length=int(result.rewards.shape[0]),
            ot_return=float(np.sum(result.rewards)),
            transport_cost=result.transport_cost,
            expert_index=expert,
            converged=result.info.converged,
            solve_seconds=seconds,
            warnings=result.info.warnings,
        )
        self.episodes += 1
        if self.on_episode is not None:
            self.on_episode(stats)

    def state_dict(self) -> dict[str, Any]:
        """The buffer's state, the staged steps, the expert-draw generator and the counter."""
        staged = {k: torch.stack(v) for k, v in self._staged.items()} if self.num_staged else None
        return {
            "format": _FORMAT,
            "buffer": self.buffer.state_dict(),
            "staged": staged,
            "generator": self.generator.get_state(),
            "episodes": self.episodes,
        }

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output (the buffer must be built as the saved one)."""
        if state.get("format") != _FORMAT:
            raise ValueError(
                f"load_state_dict: not an OTRelabelStore state (format {state.get('format')!r})"
            )
        self.buffer.load_state_dict(state["buffer"])
        staged = state["staged"]
        self._staged = {k: [] for k in _FIELDS}
        if staged is not None:
            lengths = {int(staged[k].shape[0]) for k in _FIELDS}
            if len(lengths) != 1:
                raise ValueError(f"load_state_dict: staged fields have different lengths {lengths}")
            for key in _FIELDS:
                self._staged[key] = [t.clone() for t in staged[key].unbind(0)]
        self.generator.set_state(state["generator"])
        self.episodes = int(state["episodes"])
