"""The schedules of the training loops, as frozen configs that import without torch.

:class:`OffPolicyConfig` (:func:`rl_runtime.offpolicy.train_off_policy`) and
:class:`OnPolicyConfig` (:func:`rl_runtime.onpolicy.train_on_policy`) live here, beside the
run options of :mod:`rl_runtime.config`, so that a method's command line (its config dataclasses
and ``--help``) loads neither torch nor gymnasium; the loop modules re-export them.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from rl_runtime.config import flag, int_at_least, one_of, positive_int, probability

__all__ = ["OffPolicyConfig", "OnPolicyConfig", "crossed"]


def crossed(step: int, previous: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(previous, step]``: the test a loop that advances
    several steps at a time uses for "log / evaluate / checkpoint every ``every`` steps"."""
    return step // every > previous // every


@dataclasses.dataclass(frozen=True)
class OffPolicyConfig:
    """Schedule of the off-policy loop."""

    batch_size: int = 256
    """Transitions per update."""
    buffer_capacity: int = 1_000_000
    """Replay capacity in transitions."""
    random_steps: int = 10_000
    """Initial steps with uniformly random actions from the (seeded) action space."""
    learning_starts: int = 10_000
    """No updates before this many environment steps."""
    update_every: int = 1
    """Environment steps between update rounds."""
    updates_per_round: int = 1
    """Updates per round (the update-to-data ratio is updates_per_round / update_every)."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "buffer_capacity", "update_every", "updates_per_round"):
            positive_int(flag(name, "loop."), getattr(self, name))
        for name in ("random_steps", "learning_starts"):
            int_at_least(flag(name, "loop."), getattr(self, name), 0)


@dataclasses.dataclass(frozen=True)
class OnPolicyConfig:
    """Schedule of the on-policy loop."""

    num_envs: int = 8
    """Environments stepped together (N)."""
    num_steps: int = 128
    """Steps per env in a rollout (T); a rollout is N * T environment steps."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE / lambda-return lambda (1: Monte Carlo, 0: one-step TD)."""
    update_epochs: int = 4
    """Passes over each rollout."""
    num_minibatches: int = 4
    """Minibatches per pass; must divide N * T."""
    vector_mode: Literal["sync", "async"] = "sync"
    """Gymnasium vector env: sync (one process) or async (a worker process per env)."""

    def __post_init__(self) -> None:
        for name in ("num_envs", "num_steps", "update_epochs", "num_minibatches"):
            positive_int(flag(name, "loop."), getattr(self, name))
        for name in ("gamma", "gae_lambda"):
            probability(flag(name, "loop."), getattr(self, name))
        one_of("--loop.vector-mode", self.vector_mode, ("sync", "async"))
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(
                f"--loop.num-minibatches ({self.num_minibatches}) must divide num-envs x num-steps "
                f"({self.num_envs} x {self.num_steps} = {self.num_envs * self.num_steps})"
            )

    @property
    def rollout_steps(self) -> int:
        """Environment steps per rollout (N * T)."""
        return self.num_envs * self.num_steps
