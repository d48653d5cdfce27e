"""rl-train: the ``rl-train`` command, one subcommand per method, and its plot and sweep.

The runtime the trainers use (run directories, checkpoints, logging, seeding, evaluation and the
loops) is the shared package :mod:`rl_runtime`. Modules here (imported on demand):

- :mod:`rl_train.cli`: the ``rl-train`` entry point.
- :mod:`rl_train.method`: ``Method`` (a subcommand: config type, presets, train function).
- :mod:`rl_train.methods`: the registry of method subcommands, each needing its install extra.
- :mod:`rl_train.plot`, :mod:`rl_train.sweep`: ``rl-train plot`` and ``rl-train sweep``.
- :mod:`rl_train.testing`: the runtime's test agent as ``rl-train tiny-q`` (hidden).
"""

import importlib.metadata

__version__ = importlib.metadata.version("rl-train")
