"""fairbisim: the Bisimulator (Rezaei-Shoshtari et al., arXiv 2412.17123) and its baselines on
the lending and college-admission environments.

Only the configs are imported here (cheap); the learners, environments and evaluation live in
``fairbisim.agent``, ``fairbisim.envs`` and ``fairbisim.evaluation``.
"""

from fairbisim.config import (
    ALGOS,
    ENVS,
    APPOConfig,
    BisimulatorConfig,
    CollegeConfig,
    DQNConfig,
    FairBisimConfig,
    LendingConfig,
    PPOConfig,
    RPPOConfig,
)

__all__ = [
    "ALGOS",
    "ENVS",
    "APPOConfig",
    "BisimulatorConfig",
    "CollegeConfig",
    "DQNConfig",
    "FairBisimConfig",
    "LendingConfig",
    "PPOConfig",
    "RPPOConfig",
]

__version__ = "0.1.0"
