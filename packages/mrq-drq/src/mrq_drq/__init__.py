"""MR.Q and DR.Q: model-based representations for Q-learning, and its debiased variant.

* :mod:`mrq_drq.config`: frozen configs and presets (``gym``, ``dmc``, ``dmc_visual``, ``atari``,
  ``tiny``; :func:`~mrq_drq.config.drq` turns any of them into DR.Q).
* :mod:`mrq_drq.envs`: environment construction and preprocessing, space checks.
* :mod:`mrq_drq.networks`: encoder, policy, twin Q heads.
* :mod:`mrq_drq.losses`: the losses as pure functions.
* :mod:`mrq_drq.agent`: :class:`MRQAgent` (acting, the three updates, target sync, checkpoints).
* :mod:`mrq_drq.replay`: the ``rl_buffers.ReplayBuffer`` the agent samples from.
* :mod:`mrq_drq.schedule`: the per-step schedule (sync, encoder burst, RL update, priorities).
* :mod:`mrq_drq.learner`: :class:`MRQLearner` (the schedule behind an off-policy loop),
  ``loop_config``, ``load_run_agent`` (an ``rl-train mrq-drq`` run's agent, read-only).

The names below are imported from their module on first use (``rl_runtime.lazy``), so
``mrq_drq.config`` imports without torch or the simulators (``rl-train mrq-drq --help``).
"""

from typing import TYPE_CHECKING

from rl_runtime.lazy import lazy_exports

if TYPE_CHECKING:
    from mrq_drq.agent import MRQAgent
    from mrq_drq.config import (
        PRESETS,
        EncoderConfig,
        EnvConfig,
        MRQConfig,
        PolicyConfig,
        ReplayConfig,
        ScheduleConfig,
        ValueConfig,
        atari,
        dmc,
        dmc_visual,
        drq,
        gym,
        tiny,
    )
    from mrq_drq.envs import EnvSpec, UnsupportedSpaceError, check_spaces, make_env
    from mrq_drq.learner import MRQLearner, RunAgent, load_run_agent, loop_config
    from mrq_drq.replay import make_buffer, make_sampler, transition_spec
    from mrq_drq.schedule import TrainingRound, apply_round, draw_round, training_step

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "EncoderConfig",
    "EnvConfig",
    "EnvSpec",
    "MRQAgent",
    "MRQConfig",
    "MRQLearner",
    "PolicyConfig",
    "ReplayConfig",
    "RunAgent",
    "ScheduleConfig",
    "TrainingRound",
    "UnsupportedSpaceError",
    "ValueConfig",
    "apply_round",
    "atari",
    "check_spaces",
    "dmc",
    "dmc_visual",
    "draw_round",
    "drq",
    "gym",
    "load_run_agent",
    "loop_config",
    "make_buffer",
    "make_env",
    "make_sampler",
    "tiny",
    "training_step",
    "transition_spec",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mrq_drq.agent": ("MRQAgent",),
        "mrq_drq.config": (
            "PRESETS",
            "EncoderConfig",
            "EnvConfig",
            "MRQConfig",
            "PolicyConfig",
            "ReplayConfig",
            "ScheduleConfig",
            "ValueConfig",
            "atari",
            "dmc",
            "dmc_visual",
            "drq",
            "gym",
            "tiny",
        ),
        "mrq_drq.envs": ("EnvSpec", "UnsupportedSpaceError", "check_spaces", "make_env"),
        "mrq_drq.learner": ("MRQLearner", "RunAgent", "load_run_agent", "loop_config"),
        "mrq_drq.replay": ("make_buffer", "make_sampler", "transition_spec"),
        "mrq_drq.schedule": ("TrainingRound", "apply_round", "draw_round", "training_step"),
    },
)
