"""The lending and college-admission environments (clean-room ports of ml-fairness-gym's,
Apache-2.0), array-native for training and as registered gymnasium envs:
``fairbisim/Lending-v0``, ``fairbisim/College-v0`` and ``fairbisim/CollegeDiscrete-v0``."""

from __future__ import annotations

import gymnasium as gym

from fairbisim.envs.college import CollegeArrayEnv, admit_probability
from fairbisim.envs.common import GroupCounts, Individuals, rates
from fairbisim.envs.gym_api import CollegeEnv, LendingEnv
from fairbisim.envs.lending import LendingArrayEnv

__all__ = [
    "ENV_IDS",
    "CollegeArrayEnv",
    "CollegeEnv",
    "GroupCounts",
    "Individuals",
    "LendingArrayEnv",
    "LendingEnv",
    "admit_probability",
    "rates",
]

ENV_IDS = ("fairbisim/Lending-v0", "fairbisim/College-v0", "fairbisim/CollegeDiscrete-v0")


def _register() -> None:
    known = gym.registry
    if "fairbisim/Lending-v0" not in known:
        gym.register("fairbisim/Lending-v0", entry_point="fairbisim.envs.gym_api:LendingEnv")
    if "fairbisim/College-v0" not in known:
        gym.register("fairbisim/College-v0", entry_point="fairbisim.envs.gym_api:CollegeEnv")
    if "fairbisim/CollegeDiscrete-v0" not in known:
        gym.register(
            "fairbisim/CollegeDiscrete-v0",
            entry_point="fairbisim.envs.gym_api:CollegeEnv",
            kwargs={"discrete": True},
        )


_register()
