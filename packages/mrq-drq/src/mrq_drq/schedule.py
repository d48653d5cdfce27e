"""MR.Q's per-step training schedule, split into drawing batches and applying updates.

Every ``target_update_interval`` RL updates: hard target sync at the buffer's current reward
scale, then ``encoder_updates_per_sync`` encoder updates back to back; every step: one value +
policy update, whose TD errors become the sampled slots' LAP priorities.

The two halves keep sampling out of the agent (house style): :func:`draw_round` samples,
:func:`apply_round` updates. :func:`training_step` is both, for loops that need no split.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from rl_buffers import NStepBatch, ReplayBuffer, SubTrajectoryBatch
from torch import Tensor

from mrq_drq.agent import MRQAgent

__all__ = ["TrainingRound", "apply_round", "draw_round", "training_step"]


class TrainingRound(NamedTuple):
    """The batches of one environment step's training."""

    reward_scale: Tensor | None
    """0-dim: the buffer's mean |r| when a target sync is due, else None."""
    encoder_batches: Iterator[SubTrajectoryBatch]
    """The encoder burst after a sync, drawn lazily one batch per update (so a pixel burst
    never holds all its batches at once; the order of draws is the same as drawing them up
    front); empty when no sync is due."""
    rl_batch: NStepBatch
    """The n-step batch of this step's value and policy update."""


def draw_round(agent: MRQAgent, buffer: ReplayBuffer, generator: torch.Generator) -> TrainingRound:
    """Sample what the next training step needs (the encoder burst lazily).

    Args:
        agent: Decides whether a sync is due and gives the batch shapes (its config).
        buffer: The replay buffer (windows of at least ``encoder.horizon`` steps).
        generator: Sampling generator, on ``buffer.sampler.device``.
    """
    cfg = agent.cfg
    size = cfg.replay.batch_size
    scale: Tensor | None = None
    burst = 0
    if agent.sync_due:
        scale = torch.as_tensor(buffer.reward_scale())
        burst = cfg.schedule.encoder_updates_per_sync
    encoder_batches = (
        buffer.sample_subtrajectory(size, generator, horizon=cfg.encoder.horizon)
        for _ in range(burst)
    )
    rl = buffer.sample_nstep(size, generator, n=cfg.value.n_step, gamma=cfg.value.discount)
    return TrainingRound(scale, encoder_batches, rl)


def apply_round(agent: MRQAgent, buffer: ReplayBuffer, batches: TrainingRound) -> dict[str, Tensor]:
    """Sync and encoder burst if due, then one RL update; writes the new priorities.

    Returns:
        Detached 0-dim metrics: the RL update's, plus the encoder update's metrics averaged
        over the burst when there was one.
    """
    metrics: dict[str, Tensor] = {}
    if batches.reward_scale is not None:
        agent.sync_targets(batches.reward_scale)
        sums: dict[str, Tensor] = {}
        count = 0
        for batch in batches.encoder_batches:
            for key, value in agent.update_encoder(batch).items():
                sums[key] = sums[key] + value if key in sums else value
            count += 1
        metrics.update({key: value / count for key, value in sums.items()})
    rl_metrics, td_error = agent.update_rl(batches.rl_batch)
    buffer.update_priority(batches.rl_batch.indices, td_error)
    metrics.update(rl_metrics)
    return metrics


def training_step(
    agent: MRQAgent, buffer: ReplayBuffer, generator: torch.Generator
) -> dict[str, Tensor]:
    """:func:`draw_round` then :func:`apply_round`: one environment step's training."""
    return apply_round(agent, buffer, draw_round(agent, buffer, generator))
