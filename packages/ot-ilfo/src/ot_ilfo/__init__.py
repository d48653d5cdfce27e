"""Imitation learning from observation with optimal-transport rewards (Chang, Fujimoto, Meger,
Dudek, RLJ 2024, arXiv 2310.01632).

* :mod:`ot_ilfo.rewards`: the OT reward on POT (expert normalisation, atoms, costs, Sinkhorn /
  log-Sinkhorn / EMD plans, per-step rewards).
* :mod:`ot_ilfo.relabel`: :class:`OTRelabelStore`, episode-end relabelling in front of an
  ``rl_buffers.ReplayBuffer``, for any off-policy learner.
* :mod:`ot_ilfo.agent`: the paper's learner, TD3 with time-to-horizon input and PAL loss.
* :mod:`ot_ilfo.demos`: state-only expert demonstrations as Minari datasets.
* :mod:`ot_ilfo.scripted`: scripted experts (:data:`SCRIPTED`), without gymnasium or torch.
* :mod:`ot_ilfo.learners`: learners set up for an off-policy loop: :func:`make_td3_learner`, any
  :class:`OffPolicyLearner`, and :class:`RelabelledReplay` in front of its buffer.

The names below are imported from their module on first use (``rl_runtime.lazy``), so
``ot_ilfo.config`` imports without torch, POT or the simulators (``rl-train ot-ilfo --help``).
"""

from typing import TYPE_CHECKING

from rl_runtime.lazy import lazy_exports

if TYPE_CHECKING:
    from ot_ilfo.agent import TD3Agent
    from ot_ilfo.config import (
        AtomKind,
        CostKind,
        CriticLoss,
        RewardConfig,
        SolverKind,
        TD3Config,
    )
    from ot_ilfo.demos import (
        STATE_ONLY_ACTION_SPACE,
        episode_return,
        load_expert_states,
        rollout_states,
        save_demos,
    )
    from ot_ilfo.envs import TimeToHorizon
    from ot_ilfo.learners import OffPolicyLearner, RelabelledReplay, TD3Learner, make_td3_learner
    from ot_ilfo.relabel import EpisodeStats, OTRelabelStore
    from ot_ilfo.rewards import (
        OTConvergenceWarning,
        OTResult,
        OTRewarder,
        SolveInfo,
        StateNormalizer,
        TrajectoryError,
        check_trajectory,
        cost_matrix,
        solve_coupling,
    )
    from ot_ilfo.scripted import SCRIPTED, pendulum_swingup

__version__ = "0.1.0"

__all__ = [
    "SCRIPTED",
    "STATE_ONLY_ACTION_SPACE",
    "AtomKind",
    "CostKind",
    "CriticLoss",
    "EpisodeStats",
    "OTConvergenceWarning",
    "OTRelabelStore",
    "OTResult",
    "OTRewarder",
    "OffPolicyLearner",
    "RelabelledReplay",
    "RewardConfig",
    "SolveInfo",
    "SolverKind",
    "StateNormalizer",
    "TD3Agent",
    "TD3Config",
    "TD3Learner",
    "TimeToHorizon",
    "TrajectoryError",
    "check_trajectory",
    "cost_matrix",
    "episode_return",
    "load_expert_states",
    "make_td3_learner",
    "pendulum_swingup",
    "rollout_states",
    "save_demos",
    "solve_coupling",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ot_ilfo.agent": ("TD3Agent",),
        "ot_ilfo.config": (
            "AtomKind",
            "CostKind",
            "CriticLoss",
            "RewardConfig",
            "SolverKind",
            "TD3Config",
        ),
        "ot_ilfo.demos": (
            "STATE_ONLY_ACTION_SPACE",
            "episode_return",
            "load_expert_states",
            "rollout_states",
            "save_demos",
        ),
        "ot_ilfo.envs": ("TimeToHorizon",),
        "ot_ilfo.learners": (
            "OffPolicyLearner",
            "RelabelledReplay",
            "TD3Learner",
            "make_td3_learner",
        ),
        "ot_ilfo.relabel": ("EpisodeStats", "OTRelabelStore"),
        "ot_ilfo.rewards": (
            "OTConvergenceWarning",
            "OTResult",
            "OTRewarder",
            "SolveInfo",
            "StateNormalizer",
            "TrajectoryError",
            "check_trajectory",
            "cost_matrix",
            "solve_coupling",
        ),
        "ot_ilfo.scripted": ("SCRIPTED", "pendulum_swingup"),
    },
)
