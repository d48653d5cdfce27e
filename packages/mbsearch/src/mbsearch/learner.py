"""MRS.Q behind the off-policy loop's agent contract: MR.Q's training rounds, planned actions.

:class:`MRSQLearner` is :class:`mrq_drq.learner.MRQLearner` (the same sample / update schedule:
target sync, encoder burst, one value + policy update per environment step, LAP priorities) with
the MRS.Q agent's ``act`` (MPPI, or MR.Q's policy for the ``mrq`` arm) and its checkpoint (MR.Q's
state plus the planner's), and reports the overestimation diagnostic with its updates.
:func:`make_replay` builds the replay the loop fills: MR.Q's buffer, wrapped by the diagnostic's
tracker when it is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from mrq_drq.learner import MRQLearner
from mrq_drq.replay import make_buffer
from mrq_drq.schedule import TrainingRound
from rl_runtime.offpolicy import SeededReplay
from torch import Tensor

from mbsearch.agent import MRSQAgent
from mbsearch.diagnostics import OverestimationTracker

__all__ = ["MRSQLearner", "make_replay"]


def make_replay(
    agent: MRSQAgent,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    backend: str = "tree",
    sampler_device: torch.device | str = "cpu",
) -> SeededReplay | OverestimationTracker:
    """MR.Q's replay for ``agent`` (``mrq_drq.make_buffer``) with its seeded generator, behind
    an :class:`OverestimationTracker` when ``cfg.diagnostic.overestimation``."""
    cfg = agent.cfg
    buffer = make_buffer(
        cfg.mrq,
        agent.spec,
        device=device,
        backend="scan" if backend == "scan" else "tree",
        sampler_device=sampler_device,
    )
    replay = SeededReplay(buffer, seed=seed)
    if not cfg.diagnostic.overestimation:
        return replay
    return OverestimationTracker(
        replay,
        agent.critic_values,
        discount=cfg.mrq.value.discount,
        min_tail=cfg.diagnostic.min_tail,
        active=lambda: agent.mrq.training_steps > 0,
    )


class MRSQLearner(MRQLearner):
    """MR.Q's training rounds for an :class:`MRSQAgent`; acts with its planner.

    Args:
        agent: The MRS.Q agent.
        replay: What :func:`make_replay` built.
    """

    def __init__(self, agent: MRSQAgent, replay: SeededReplay | OverestimationTracker) -> None:
        seeded = replay.replay if isinstance(replay, OverestimationTracker) else replay
        super().__init__(agent.mrq, seeded.buffer, seeded.generator)
        self.mrsq = agent
        self.tracker = replay if isinstance(replay, OverestimationTracker) else None

    def act(self, obs: Tensor, *, explore: bool) -> Tensor:
        """The planned action (or MR.Q's, for the ``mrq`` arm), in the environment's units."""
        return self.mrsq.act(obs, explore=explore)

    def update(self, batch: TrainingRound, /) -> Mapping[str, Tensor]:
        """MR.Q's round; plus the last finished episode's overestimation, once."""
        metrics = dict(super().update(batch))
        if self.tracker is not None:
            metrics.update(self.tracker.pop_metrics())
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """The MRS.Q agent's state (MR.Q's and the planner's)."""
        return self.mrsq.state_dict()

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output."""
        self.mrsq.load_state_dict(state)
