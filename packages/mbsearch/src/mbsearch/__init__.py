"""MRS.Q: short-horizon MPPI search on MR.Q with a critic ensemble minimum and SimNorm latents,
the N-chain analysis and the overestimation diagnostic.

* :mod:`mbsearch.config`: frozen configs; :func:`~mbsearch.config.arm` builds the arms ``mrq``,
  ``mpc`` and ``mrsq`` from any MR.Q preset.
* :mod:`mbsearch.planner`: MPPI (TD-MPC2's loop) and MR.Q's latent model as its scorer.
* :mod:`mbsearch.agent`: :class:`MRSQAgent` (MR.Q's agent with the ensemble and SimNorm hooks,
  acting by planning).
* :mod:`mbsearch.diagnostics`: the relative overestimation against Monte-Carlo returns.
* :mod:`mbsearch.learner`: the agent behind ``rl_runtime``'s off-policy loop.
* :mod:`mbsearch.chain`: the absorbing N-chain (closed form, simulated planners).

Names are imported on first use, so ``mbsearch.config`` imports without torch.
"""

from typing import TYPE_CHECKING

from rl_runtime.lazy import lazy_exports

if TYPE_CHECKING:
    from mbsearch.agent import MRQLatentModel, MRSQAgent, extensions
    from mbsearch.config import (
        ARMS,
        Arm,
        CriticConfig,
        DiagnosticConfig,
        MRSQConfig,
        PlannerConfig,
        arm,
        gym_arm,
        tiny_arm,
    )
    from mbsearch.diagnostics import (
        OverestimationTracker,
        discounted_returns,
        relative_overestimation,
    )
    from mbsearch.learner import MRSQLearner, make_replay
    from mbsearch.planner import Plan, latent_returns, mppi, policy_prior, shift_plan

__version__ = "0.1.0"

__all__ = [
    "ARMS",
    "Arm",
    "CriticConfig",
    "DiagnosticConfig",
    "MRQLatentModel",
    "MRSQAgent",
    "MRSQConfig",
    "MRSQLearner",
    "OverestimationTracker",
    "Plan",
    "PlannerConfig",
    "arm",
    "discounted_returns",
    "extensions",
    "gym_arm",
    "latent_returns",
    "make_replay",
    "mppi",
    "policy_prior",
    "relative_overestimation",
    "shift_plan",
    "tiny_arm",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mbsearch.agent": ("MRQLatentModel", "MRSQAgent", "extensions"),
        "mbsearch.config": (
            "ARMS",
            "Arm",
            "CriticConfig",
            "DiagnosticConfig",
            "MRSQConfig",
            "PlannerConfig",
            "arm",
            "gym_arm",
            "tiny_arm",
        ),
        "mbsearch.diagnostics": (
            "OverestimationTracker",
            "discounted_returns",
            "relative_overestimation",
        ),
        "mbsearch.learner": ("MRSQLearner", "make_replay"),
        "mbsearch.planner": ("Plan", "latent_returns", "mppi", "policy_prior", "shift_plan"),
    },
)
