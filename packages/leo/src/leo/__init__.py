"""LEO (Learning Everything all at Once; Matthews et al., ICML 2026, arXiv 2605.23551): all-goals
Q-learning in one forward pass, with goal-conditioned PQN (UVFA), PQN+HER, goal-conditioned PPO,
Dual LEO (PPO) and Dual LEO (PQN), on Craftax-Classic-Symbolic, Craftax-Symbolic and a torch
Gridworld.

* :mod:`leo.config`: frozen configs (no torch).
* :mod:`leo.goals`: goal sets with upstream's names and order, observation layouts.
* :mod:`leo.envs`: the Gridworld (torch) and Craftax (JAX, DLPack) with optimistic resets.
* :mod:`leo.networks`, :mod:`leo.losses`, :mod:`leo.agent`: networks, losses, agents.
* :mod:`leo.loop`: the goal-conditioned on-policy loop and the goal test.

Names below are imported from their module on first use (``rl_runtime.lazy``), so
``leo.config`` imports without torch, JAX or Craftax (``rl-train leo --help``).
"""

from typing import TYPE_CHECKING

from rl_runtime.lazy import lazy_exports

if TYPE_CHECKING:
    from leo.agent import (
        DualLEOPQNAgent,
        GoalAgent,
        LEOAgent,
        LEOLearner,
        PPOAgent,
        PPOLearner,
        PQNAgent,
        Rollout,
        UVFALearner,
        make_agent,
    )
    from leo.config import EnvConfig, EvalConfig, NetworkConfig, PPOConfig, QConfig
    from leo.envs import CraftaxGoalEnv, EnvStep, GoalEnv, Gridworld, optimistic_slots
    from leo.goals import GoalSet, ObsLayout, craftax_classic_goals, craftax_goals, gridworld_goals
    from leo.loop import GoalTracker, evaluate_goals, train_goals
    from leo.networks import ActorCritic, BatchRenorm, LEONetwork, UVFANetwork

__version__ = "0.1.0"

_EXPORTS = {
    "leo.agent": (
        "DualLEOPQNAgent",
        "GoalAgent",
        "LEOAgent",
        "LEOLearner",
        "PPOAgent",
        "PPOLearner",
        "PQNAgent",
        "Rollout",
        "UVFALearner",
        "make_agent",
    ),
    "leo.config": ("EnvConfig", "EvalConfig", "NetworkConfig", "PPOConfig", "QConfig"),
    "leo.envs": ("CraftaxGoalEnv", "EnvStep", "GoalEnv", "Gridworld", "optimistic_slots"),
    "leo.goals": (
        "GoalSet",
        "ObsLayout",
        "craftax_classic_goals",
        "craftax_goals",
        "gridworld_goals",
    ),
    "leo.loop": ("GoalTracker", "evaluate_goals", "train_goals"),
    "leo.networks": ("ActorCritic", "BatchRenorm", "LEONetwork", "UVFANetwork"),
}

__all__ = [
    "ActorCritic",
    "BatchRenorm",
    "CraftaxGoalEnv",
    "DualLEOPQNAgent",
    "EnvConfig",
    "EnvStep",
    "EvalConfig",
    "GoalAgent",
    "GoalEnv",
    "GoalSet",
    "GoalTracker",
    "Gridworld",
    "LEOAgent",
    "LEOLearner",
    "LEONetwork",
    "NetworkConfig",
    "ObsLayout",
    "PPOAgent",
    "PPOConfig",
    "PPOLearner",
    "PQNAgent",
    "QConfig",
    "Rollout",
    "UVFALearner",
    "UVFANetwork",
    "craftax_classic_goals",
    "craftax_goals",
    "evaluate_goals",
    "gridworld_goals",
    "make_agent",
    "optimistic_slots",
    "train_goals",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
