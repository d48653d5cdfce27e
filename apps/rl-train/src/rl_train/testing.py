"""``rl-train tiny-q`` (hidden): the runtime's test agent as a subcommand.

The agent, its chain environments and its trainer live in :mod:`rl_runtime.testing`; this module
only registers them as a method, so the kill-and-resume and sweep tests can run it through the
real command line. Its configs come from :mod:`rl_runtime.testing_config`, which imports
without torch (``rl-train tiny-q --help``); the trainer is imported when a run starts.
"""

from __future__ import annotations

from pathlib import Path

from rl_runtime.testing_config import TINY_Q_PRESETS, TinyQConfig

from rl_train.method import Method

__all__ = ["METHOD", "train"]


def train(cfg: TinyQConfig) -> Path:
    """:func:`rl_runtime.testing.train` (which also registers the chain environments)."""
    from rl_runtime import testing

    return testing.train(cfg)


METHOD = Method(
    name="tiny-q",
    config_type=TinyQConfig,
    presets=TINY_Q_PRESETS,
    train=train,
    description="A tiny but real learner that drives the runtime's tests: linear Q-learning "
    "on a small chain.",
)
