"""DriftQL: offline RL with a one-step drift-regularised actor, with FQL and BC baselines.

Algorithms:

* :mod:`driftql.config`: frozen configs, :func:`default_config`, :func:`task_preset` and the
  per-task table :data:`TASK_PRESETS`.
* :mod:`driftql.networks`: the noise-conditioned actor MLP and the two-member Q ensemble.
* :mod:`driftql.losses`: drift field and drift loss, TD/critic loss, Q term, flow matching,
  Euler flow, distillation, BC (pure functions).
* :mod:`driftql.agent`: :class:`DriftQLAgent`, :class:`FQLAgent`, :class:`BCAgent` and
  :func:`make_agent`.

Data:

* :mod:`driftql.data`: OGBench ``.npz`` and Minari loaders, :func:`degrade`,
  :func:`make_offline_buffer`.
* :mod:`driftql.datagen`: OGBench datasets from the oracles in the ogbench wheel, Minari
  datasets from any policy (imported on use: it needs the ``ogbench`` extra for OGBench).
* :mod:`driftql.evaluation`: OGBench success rates and Minari normalised scores.

The names below are imported from their module on first use (``rl_runtime.lazy``), so
``driftql.config`` imports without torch or the simulators (``rl-train driftql --help``).
"""

from typing import TYPE_CHECKING

from rl_runtime.lazy import lazy_exports

if TYPE_CHECKING:
    from driftql.agent import Agent, BCAgent, DriftQLAgent, FQLAgent, QCritic, make_agent
    from driftql.config import (
        TASK_PRESETS,
        ActorConfig,
        AgentConfig,
        Algo,
        CriticConfig,
        DriftConfig,
        FlowConfig,
        Kernel,
        OptimConfig,
        QAgg,
        TaskPreset,
        default_config,
        resolve_task,
        task_preset,
    )
    from driftql.data import degrade, load_dataset, load_ogbench, make_offline_buffer
    from driftql.losses import DriftField, drift_field, drift_loss
    from driftql.networks import Actor, Critic

__version__ = "0.1.0"

# Algorithms (config, networks, losses, agent).
__all__ = [
    "TASK_PRESETS",
    "Actor",
    "ActorConfig",
    "Agent",
    "AgentConfig",
    "Algo",
    "BCAgent",
    "Critic",
    "CriticConfig",
    "DriftConfig",
    "DriftField",
    "DriftQLAgent",
    "FQLAgent",
    "FlowConfig",
    "Kernel",
    "OptimConfig",
    "QAgg",
    "QCritic",
    "TaskPreset",
    "default_config",
    "drift_field",
    "drift_loss",
    "make_agent",
    "resolve_task",
    "task_preset",
]

# Data (datagen and evaluation are used as submodules).
__all__ += ["degrade", "load_dataset", "load_ogbench", "make_offline_buffer"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "driftql.agent": ("Agent", "BCAgent", "DriftQLAgent", "FQLAgent", "QCritic", "make_agent"),
        "driftql.config": (
            "TASK_PRESETS",
            "ActorConfig",
            "AgentConfig",
            "Algo",
            "CriticConfig",
            "DriftConfig",
            "FlowConfig",
            "Kernel",
            "OptimConfig",
            "QAgg",
            "TaskPreset",
            "default_config",
            "resolve_task",
            "task_preset",
        ),
        "driftql.data": ("degrade", "load_dataset", "load_ogbench", "make_offline_buffer"),
        "driftql.losses": ("DriftField", "drift_field", "drift_loss"),
        "driftql.networks": ("Actor", "Critic"),
    },
)
