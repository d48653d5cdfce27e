"""Hierarchical Behaviour Spaces on NetHack (Matthews, Kanervisto, Foerster, D'Oro, Fujimoto,
Henaff, 2026, arXiv 2604.24558), with SOL-style discrete options (Henaff et al., 2025, arXiv
2509.00338) and flat PPO as baselines, on one network and one loop.

* :mod:`hbs.config`: the frozen configs (imports neither torch nor nle).
* :mod:`hbs.envs`: NLE tasks as N envs stepped as one batch (packed int32 observations,
  NetHack's own seeding), in-process or in subprocesses; :mod:`hbs.ray_env`: Ray actors.
* :mod:`hbs.rewards`: the reward functions, one small vectorised function each.
* :mod:`hbs.networks`: the shared controller/worker network.
* :mod:`hbs.agent`: acting (controller decisions, worker actions) and the PPO update.
* :mod:`hbs.loop`: the hierarchical rollout loop with exact resume, and evaluation.
* :mod:`hbs.metrics`: exploration records per episode.

The names below load their module on first use (``rl_runtime.lazy``), so ``hbs.config`` stays
light for ``rl-train hbs --help``.
"""

from typing import TYPE_CHECKING

from rl_runtime.lazy import lazy_exports

if TYPE_CHECKING:
    from hbs.agent import ControllerBatch, Decision, HBSAgent, WorkerBatch, WorkerStep
    from hbs.config import (
        EnvConfig,
        HBSConfig,
        NetworkConfig,
        ObservationKeyError,
        OptionConfig,
        PPOConfig,
    )
    from hbs.envs import NLEObs, NLEVecEnv, ObsLayout, PackedNLE, make_batched_env
    from hbs.loop import evaluate_hbs, train_hbs
    from hbs.metrics import ExplorationTracker
    from hbs.networks import HBSNetwork
    from hbs.rewards import REWARDS, RewardError, Transition, compute_rewards, reward_function

__all__ = [
    "REWARDS",
    "ControllerBatch",
    "Decision",
    "EnvConfig",
    "ExplorationTracker",
    "HBSAgent",
    "HBSConfig",
    "HBSNetwork",
    "NLEObs",
    "NLEVecEnv",
    "NetworkConfig",
    "ObsLayout",
    "ObservationKeyError",
    "OptionConfig",
    "PPOConfig",
    "PackedNLE",
    "RewardError",
    "Transition",
    "WorkerBatch",
    "WorkerStep",
    "compute_rewards",
    "evaluate_hbs",
    "make_batched_env",
    "reward_function",
    "train_hbs",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "hbs.agent": ("ControllerBatch", "Decision", "HBSAgent", "WorkerBatch", "WorkerStep"),
        "hbs.config": (
            "EnvConfig",
            "HBSConfig",
            "NetworkConfig",
            "ObservationKeyError",
            "OptionConfig",
            "PPOConfig",
        ),
        "hbs.envs": ("NLEObs", "NLEVecEnv", "ObsLayout", "PackedNLE", "make_batched_env"),
        "hbs.loop": ("evaluate_hbs", "train_hbs"),
        "hbs.metrics": ("ExplorationTracker",),
        "hbs.networks": ("HBSNetwork",),
        "hbs.rewards": (
            "REWARDS",
            "RewardError",
            "Transition",
            "compute_rewards",
            "reward_function",
        ),
    },
)
