"""simple_spread: the scripted behaviour policy spreads the agents over the landmarks."""

from __future__ import annotations

import numpy as np
from marl_lowrank.config import SpreadConfig
from marl_lowrank.spread import behaviour_policy, evaluate_policy, scripted_action


def test_scripted_controller_covers_the_landmarks_and_beats_random() -> None:
    cfg = SpreadConfig()
    scripted = evaluate_policy(cfg, scripted_action, episodes=5, seed=100)
    random = evaluate_policy(
        cfg,
        behaviour_policy(SpreadConfig(behaviour="random"), np.random.default_rng(0)),
        episodes=5,
        seed=100,
    )
    assert scripted["landmark_distance"] < 0.1, scripted
    assert random["landmark_distance"] > 0.3, random
    assert scripted["return"] > random["return"] + 5, (scripted, random)
