"""rl-runtime: the training runtime every rlworks method shares.

Modules (imported on demand; ``import rl_runtime`` itself stays light):

- :mod:`rl_runtime.config`: ``RunConfig`` (the shared run options), the config codec
  (``to_jsonable``/``from_jsonable``) and the field validators every method config uses.
- :mod:`rl_runtime.run`: ``open_run`` (run directory, config.json, logging, resume, lock).
- :mod:`rl_runtime.checkpoint`: atomic, verified checkpoints; a read-only reader for other runs.
- :mod:`rl_runtime.logger`: ``metrics.jsonl``, TensorBoard and W&B sinks, metric means.
- :mod:`rl_runtime.seeding`: seeding, derived seeds, RNG state capture.
- :mod:`rl_runtime.evaluation`: the one seeded-episode evaluation/rollout loop.
- :mod:`rl_runtime.offpolicy`, :mod:`rl_runtime.offline`, :mod:`rl_runtime.onpolicy`: the loops.
- :mod:`rl_runtime.vecenv`: the batched-env protocol and its adapters (gymnasium vector envs,
  torch and JAX array-native envs).
- :mod:`rl_runtime.losses`: PPO's clipped objective.
- :mod:`rl_runtime.optim`: fused Adam(W) and the ``torch.compile`` switch.
- :mod:`rl_runtime.testing`: the tiny test agent and chain environments.
"""

import importlib.metadata

__version__ = importlib.metadata.version("rl-runtime")
