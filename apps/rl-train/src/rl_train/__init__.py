"""rl-train: the ``rl-train`` command and the runtime its method trainers share.

Modules (imported on demand; ``import rl_train`` itself stays light):

- :mod:`rl_train.config`: ``RunConfig`` (the shared runtime options), configs to/from JSON.
- :mod:`rl_train.method`: ``Method`` (a subcommand: config type, presets, train function).
- :mod:`rl_train.methods`: the registry of method subcommands.
- :mod:`rl_train.run`: ``open_run`` (run directory, config.json, logging, resume).
- :mod:`rl_train.loop`: ``train_off_policy`` (the shared off-policy loop).
- :mod:`rl_train.evaluation`: ``evaluate`` on a separate, deterministically seeded env.
- :mod:`rl_train.seeding`: seeding and RNG state capture.
- :mod:`rl_train.checkpoint`, :mod:`rl_train.logger`: checkpoints and metric sinks.
- :mod:`rl_train.plot`, :mod:`rl_train.sweep`: ``rl-train plot`` and ``rl-train sweep``.
- :mod:`rl_train.testing`: the tiny test agent (``rl-train tiny-q``, hidden).
"""

import importlib.metadata

__version__ = importlib.metadata.version("rl-train")
