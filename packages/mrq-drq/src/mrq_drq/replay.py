"""Building the ``rl_buffers.ReplayBuffer`` MR.Q / DR.Q sample from.

The buffer keeps frames once (frame history rebuilt on sampling), exposes windows of
``max(encoder horizon, n-step)`` steps that never cross an episode boundary or a truncation (as
MR.Q's sampling mask), and draws starts with the configured sampler: LAP for MR.Q, LAP x age
fading for DR.Q, or uniform.
"""

from __future__ import annotations

from typing import Literal

import torch
from rl_buffers import (
    FadedLAPSampler,
    LAPSampler,
    ReplayBuffer,
    Sampler,
    TransitionSpec,
    UniformSampler,
)

from mrq_drq.config import MRQConfig
from mrq_drq.envs import EnvSpec

__all__ = ["make_buffer", "make_sampler", "transition_spec"]


def transition_spec(spec: EnvSpec) -> TransitionSpec:
    """The buffer's transition spec for an environment.

    Observations are stored as frames of ``spec.frame_shape`` (uint8 pixels or float32 vectors)
    with ``spec.history`` stacked frames per observation; continuous actions as float32
    ``(action_dim,)`` in the environment's units, discrete ones as int64 indices.
    """
    obs_dtype = torch.uint8 if spec.pixels else torch.float32
    if spec.discrete:
        return TransitionSpec.discrete(
            spec.frame_shape, spec.action_dim, obs_dtype=obs_dtype, history=spec.history
        )
    return TransitionSpec.continuous(
        spec.frame_shape, spec.action_dim, obs_dtype=obs_dtype, history=spec.history
    )


def make_sampler(
    cfg: MRQConfig,
    *,
    backend: Literal["tree", "scan"] = "tree",
    device: torch.device | str = "cpu",
) -> Sampler:
    """The sampler ``cfg.replay.sampling`` names.

    Args:
        cfg: Run config (capacity, LAP ``alpha`` / ``min_priority``, fade settings).
        backend: ``"tree"`` (CPU sum tree, O(log n) per draw) or ``"scan"`` (cumsum over all
            slots on ``device``, for GPU buffers).
        device: Where prioritised draws happen (CPU for ``"tree"``); the sampling generator must
            live there.
    """
    r = cfg.replay
    if r.sampling == "uniform":
        return UniformSampler(r.capacity)
    if r.sampling == "lap":
        return LAPSampler(
            r.capacity, alpha=r.alpha, min_priority=r.min_priority, backend=backend, device=device
        )
    return FadedLAPSampler(
        r.capacity,
        alpha=r.alpha,
        min_priority=r.min_priority,
        fade=r.fade_decay,
        floor=r.fade_floor,
        backend=backend,
        device=device,
    )


def make_buffer(
    cfg: MRQConfig,
    spec: EnvSpec,
    *,
    device: torch.device | str = "cpu",
    backend: Literal["tree", "scan"] = "tree",
    sampler_device: torch.device | str = "cpu",
) -> ReplayBuffer:
    """Replay buffer for MR.Q / DR.Q: windows of ``cfg.sub_trajectory_length`` steps.

    Sample encoder batches with ``buffer.sample_subtrajectory(B, gen, horizon=cfg.encoder.horizon)``
    and RL batches with ``buffer.sample_nstep(B, gen, n=cfg.value.n_step,
    gamma=cfg.value.discount)``, where ``gen`` is a ``torch.Generator`` on
    ``buffer.sampler.device``.

    Args:
        cfg: Run config.
        spec: Environment spec (:func:`mrq_drq.envs.check_spaces`).
        device: Where transitions are stored and batches returned.
        backend: Sampler backend (see :func:`make_sampler`).
        sampler_device: Where prioritised draws happen.
    """
    return ReplayBuffer(
        spec=transition_spec(spec),
        capacity=cfg.replay.capacity,
        device=device,
        sampler=make_sampler(cfg, backend=backend, device=sampler_device),
        horizon=cfg.sub_trajectory_length,
    )
