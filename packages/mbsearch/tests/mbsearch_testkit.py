"""Small configs and specs shared by the tests."""

from __future__ import annotations

import dataclasses

from mbsearch.config import Arm, MRSQConfig, PlannerConfig, arm
from mrq_drq.config import tiny
from mrq_drq.envs import EnvSpec

SPEC = EnvSpec(
    obs_shape=(5,), pixels=False, discrete=False, action_dim=2,
    action_low=(-2.0, -1.0), action_high=(2.0, 3.0),
)  # fmt: skip

SMALL_PLANNER = PlannerConfig(num_samples=64, num_pi_trajs=4, num_elites=8, iterations=3)


def micro(name: Arm = "mrsq", *, planner: PlannerConfig | None = SMALL_PLANNER) -> MRSQConfig:
    """An arm at width 16 (SimNorm groups of 8), batch 8, sync + 5 encoder updates every 5."""
    base = tiny()
    mrq = dataclasses.replace(
        base,
        encoder=dataclasses.replace(
            base.encoder, zs_dim=16, za_dim=8, zsa_dim=16, hidden_dim=16, num_bins=9
        ),
        value=dataclasses.replace(base.value, hidden_dim=16),
        policy=dataclasses.replace(base.policy, hidden_dim=16),
        replay=dataclasses.replace(base.replay, capacity=500, batch_size=8),
        schedule=dataclasses.replace(
            base.schedule, target_update_interval=5, encoder_updates_per_sync=5
        ),
    )
    cfg = arm(name, mrq)
    if planner is None:
        return cfg
    return dataclasses.replace(
        cfg,
        planner=dataclasses.replace(
            planner, enabled=cfg.planner.enabled, value_reduction=cfg.planner.value_reduction
        ),
    )
