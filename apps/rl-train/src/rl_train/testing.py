"""``rl-train tiny-q`` (hidden): the runtime's test agent as a subcommand.

The agent, its chain environments and its trainer live in :mod:`rl_runtime.testing`; this module
only registers them as a method, so the kill-and-resume and sweep tests can run it through the
real command line.
"""

from __future__ import annotations

from rl_runtime import testing
from rl_runtime.testing import TINY_Q_PRESETS, TinyQConfig

from rl_train.method import Method

__all__ = ["METHOD"]

METHOD = Method(
    name="tiny-q",
    config_type=TinyQConfig,
    presets=TINY_Q_PRESETS,
    train=testing.train,
    description=testing.__doc__.split("\n\n")[0] if testing.__doc__ else "",
)
