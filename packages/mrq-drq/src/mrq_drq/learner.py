"""MR.Q as an off-policy training loop sees it, and MR.Q agents read back from finished runs.

:class:`MRQLearner` puts MR.Q's per-step schedule (:mod:`mrq_drq.schedule`) behind the agent
contract of ``rl_runtime.offpolicy.train_off_policy``: the loop calls ``sample()`` then
``update(batch)`` once per environment step, and each call is one training round: every
``target_update_interval`` RL updates, a hard target sync at the buffer's reward scale and a
burst of ``encoder_updates_per_sync`` encoder updates; then one value + policy update whose TD
errors become the sampled slots' priorities. :func:`loop_config` is the loop schedule that
matches the paper: uniform random actions for ``schedule.random_steps`` steps, then one round
per step. Any trainer that feeds MR.Q (``rl-train mrq-drq``, OT rewards in ``rl-train ot-ilfo
--learner mrq``) uses these two.

:func:`load_run_agent` rebuilds the agent of an ``rl-train mrq-drq`` run from its newest good
checkpoint (for demonstrations, behaviour policies of datasets), reading the run's directory
only: it may still be training.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from rl_buffers import ReplayBuffer
from rl_runtime.checkpoint import read_latest_checkpoint
from rl_runtime.offpolicy import OffPolicyConfig
from rl_runtime.run import read_run_info
from torch import Tensor

from mrq_drq.agent import MRQAgent
from mrq_drq.config import MRQConfig
from mrq_drq.envs import check_spaces, make_env
from mrq_drq.schedule import TrainingRound, apply_round, draw_round

__all__ = ["RUN_METHOD", "MRQLearner", "RunAgent", "load_run_agent", "loop_config"]

RUN_METHOD = "mrq-drq"
"""The ``method`` entry of the runs :func:`load_run_agent` reads (``rl-train mrq-drq``)."""

_LOG = logging.getLogger("rlworks")


class MRQLearner:
    """MR.Q behind the off-policy loop's agent contract: one training round per ``update``.

    The batches are drawn by :meth:`sample` (the trainer's side, never the agent's) with
    ``generator``; :meth:`update` applies them. Only the agent is checkpointed through
    :meth:`state_dict`: the buffer and the generator belong to the loop's transition store
    (``rl_runtime.offpolicy.SeededReplay``, ``ot_ilfo.learners.RelabelledReplay``).

    Args:
        agent: The MR.Q / DR.Q agent.
        buffer: Its replay buffer (:func:`mrq_drq.replay.make_buffer`).
        generator: The sampling generator, on ``buffer.sampler.device``.
    """

    def __init__(self, agent: MRQAgent, buffer: ReplayBuffer, generator: torch.Generator) -> None:
        self.agent = agent
        self.buffer = buffer
        self.generator = generator

    def act(self, obs: Tensor, *, explore: bool) -> Tensor:
        """The agent's action for one observation (in the environment's units)."""
        return self.agent.act(obs, explore=explore)

    def sample(self) -> TrainingRound:
        """The batches of the next round: the encoder burst (drawn lazily) if a sync is due, and
        the n-step batch of the RL update."""
        return draw_round(self.agent, self.buffer, self.generator)

    def update(self, batch: TrainingRound, /) -> Mapping[str, Tensor]:
        """Sync and encoder burst if due, one value + policy update, new priorities.

        Returns:
            Detached 0-dim metrics: the RL update's, and after a sync the encoder update's
            (``encoder_*``, ``dynamics_*``, ...) averaged over the burst.
        """
        return apply_round(self.agent, self.buffer, batch)

    def state_dict(self) -> dict[str, Any]:
        """The agent's state (networks, targets, optimisers, reward scales, counters)."""
        return self.agent.state_dict()

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output."""
        self.agent.load_state_dict(state)


def loop_config(cfg: MRQConfig) -> OffPolicyConfig:
    """The off-policy loop's schedule for MR.Q, as the official code: ``schedule.random_steps``
    uniformly random actions, training from then on (the random phase has filled the buffer),
    one :class:`MRQLearner` round per environment step.

    The sync interval and the burst are counted by the agent in RL updates, not by the loop.
    """
    return OffPolicyConfig(
        batch_size=cfg.replay.batch_size,
        buffer_capacity=cfg.replay.capacity,
        random_steps=cfg.schedule.random_steps,
        learning_starts=cfg.schedule.random_steps,
        update_every=1,
        updates_per_round=1,
    )


class RunAgent(NamedTuple):
    """An agent read back from a run."""

    agent: MRQAgent
    """The agent, its weights from the checkpoint; ``agent.cfg`` is the config it trained with
    (``agent.cfg.env`` builds its environment)."""
    step: int
    """The checkpoint's step."""
    path: Path
    """The checkpoint file."""


def load_run_agent(
    run_dir: Path,
    *,
    device: torch.device | str = "cpu",
    log: logging.Logger | None = None,
) -> RunAgent:
    """The MR.Q agent of an ``rl-train mrq-drq`` run, from its newest good checkpoint.

    The config comes from the checkpoint itself (the agent's state records the config it was
    built with, decoded with :meth:`MRQConfig.from_dict`), so the agent is exactly the one that
    trained. The run's directory is only read, never locked or written: corrupt checkpoints
    are skipped, a checkpoint being written is ignored (see
    ``rl_runtime.checkpoint.read_latest_checkpoint``).

    Args:
        run_dir: The run directory (with ``config.json`` and ``checkpoints/``).
        device: Where the agent's networks go.
        log: Where warnings about skipped files go; default the ``rlworks`` logger.

    Raises:
        FileNotFoundError: not a run directory, or the run has no checkpoint yet.
        ValueError: not an ``mrq-drq`` run, or a checkpoint without an MR.Q agent.
        rl_runtime.checkpoint.NoGoodCheckpointError: every checkpoint is corrupt.
    """
    log = _LOG if log is None else log
    info = read_run_info(run_dir)
    if info["method"] != RUN_METHOD:
        raise ValueError(f"{run_dir} holds a {info['method']!r} run, not an {RUN_METHOD} one")
    found = read_latest_checkpoint(run_dir, log=log)
    state = found.state.get("agent")
    if not isinstance(state, Mapping) or not isinstance(state.get("config"), Mapping):
        raise ValueError(f"{found.path}: no MR.Q agent state (with its config) in the checkpoint")
    cfg = MRQConfig.from_dict(state["config"])
    with make_env(cfg.env, seed=0) as env:
        spec = check_spaces(env.observation_space, env.action_space)
    agent = MRQAgent(cfg, spec, device=device)
    agent.load_state_dict(state)
    log.info("restored the MR.Q agent of %s at step %d", run_dir, found.step)
    return RunAgent(agent, found.step, found.path)
