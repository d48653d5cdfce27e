"""MR.Q and DR.Q (``rl-train mrq-drq``): model-based representations for Q-learning.

The default preset, ``laptop``, is a small-width MR.Q on InvertedPendulum-v5 that learns within
minutes on a CPU; ``gym``, ``dmc``, ``dmc-visual`` and ``atari`` are the paper's settings.
``--algo drq`` applies DR.Q's changes (InfoNCE term, faded prioritised replay, its
hyperparameters) to whichever preset is chosen, and every ``--agent.*`` option applies on top.

One option per setting: the environment is ``--env`` (the agent config's ``env.env_id`` follows
it), the algorithm ``--algo`` (``agent.algorithm`` follows it), the run's length and evaluation
``--total-steps``, ``--eval-every`` and ``--eval-episodes`` (the agent schedule's
``total_steps``, ``eval_interval`` and ``eval_episodes`` are the paper's numbers the presets
start from, not options).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Literal

from mrq_drq import MRQConfig
from mrq_drq import config as presets
from mrq_drq.config import EnvConfig, ScheduleConfig
from rl_runtime.config import RunConfig, RunOptions

from rl_train.method import UsageError
from rl_train.methods._support import DerivedMethod, quiet_mujoco

__all__ = ["METHOD", "MRQTrainConfig", "configure", "train"]

_LOG = logging.getLogger("rlworks")


@dataclasses.dataclass(frozen=True)
class MRQTrainConfig:
    """rl-train mrq-drq: MR.Q, or DR.Q with --algo drq."""

    env: str = "InvertedPendulum-v5"
    """Environment id in the preset's suite (Gym id, DMC "domain-task", Atari game)."""
    algo: Literal["mrq", "drq"] = "mrq"
    """MR.Q, or DR.Q (the paper's changes applied to the preset's agent)."""
    drq_as_official_code: bool = False
    """With --algo drq: also apply the official DR.Q code's unannounced changes (see the README)."""
    agent: MRQConfig = dataclasses.field(default_factory=MRQConfig)
    """Networks, losses, replay, training schedule and environment preprocessing: the preset's,
    on --env, made DR.Q's by --algo drq; every --agent.* option applies on top."""
    run: RunOptions = dataclasses.field(default_factory=RunConfig)
    """Seed, length, evaluation, logging and checkpoint options."""


def configure(
    base: MRQTrainConfig,
    *,
    env: str | None = None,
    algo: Literal["mrq", "drq"] | None = None,
    drq_as_official_code: bool | None = None,
) -> MRQTrainConfig:
    """``base`` (an MR.Q preset) on ``env`` with ``algo``: the agent's environment id is ``env``
    and, for DR.Q, ``mrq_drq.config.drq`` is applied to the agent. What the command line does
    before it applies the ``--agent.*`` options.

    Args:
        base: An MR.Q config (its ``algo`` must be ``"mrq"``).
        env: The environment id (default: ``base.env``).
        algo: ``"mrq"`` or ``"drq"`` (default: ``base.algo``).
        drq_as_official_code: See the field (default: ``base``'s).
    """
    env = base.env if env is None else env
    algo = base.algo if algo is None else algo
    official = base.drq_as_official_code if drq_as_official_code is None else drq_as_official_code
    agent = dataclasses.replace(base.agent, env=dataclasses.replace(base.agent.env, env_id=env))
    if algo == "drq":
        agent = presets.drq(agent, as_official_code=official)
    return dataclasses.replace(base, env=env, algo=algo, drq_as_official_code=official, agent=agent)


def _check(cfg: MRQTrainConfig, defaults: MRQTrainConfig | None = None) -> None:
    """The agent config agrees with --env and --algo (a run's config.json on --resume could
    hold another), and --drq-as-official-code is not given without --algo drq."""
    del defaults
    # Runs of an earlier rl-train recorded the preset's agent (its env id, MR.Q's settings)
    # and derived the trained one at start; they fail here too rather than resume another agent.
    if cfg.agent.env.env_id != cfg.env:
        raise UsageError(
            f"--env {cfg.env} differs from the run's agent config (agent.env.env_id "
            f"{cfg.agent.env.env_id}): a run keeps its environment, start a new run for another"
        )
    if cfg.agent.algorithm != cfg.algo:
        raise UsageError(
            f"--algo {cfg.algo} differs from the run's agent config (agent.algorithm "
            f"{cfg.agent.algorithm}): a run keeps its algorithm, start a new run for another"
        )
    if cfg.drq_as_official_code and cfg.algo != "drq":
        raise UsageError("--drq-as-official-code changes DR.Q: it needs --algo drq")


def train(cfg: MRQTrainConfig) -> Path:
    """Train MR.Q / DR.Q as ``cfg`` says; returns the run directory."""
    # Imported here, not at the top: the command line (``--help``) needs only the configs.
    import gymnasium as gym
    from mrq_drq import MRQAgent, check_spaces, make_buffer, make_env
    from mrq_drq.learner import MRQLearner, loop_config
    from rl_runtime.offpolicy import SeededReplay, train_off_policy
    from rl_runtime.run import open_run
    from rl_runtime.seeding import derive_seed

    _check(cfg)
    agent_cfg = cfg.agent
    seed = cfg.run.seed
    quiet_mujoco(_LOG)
    with open_run(METHOD.name, cfg) as run:
        try:
            env = make_env(agent_cfg.env, seed=derive_seed(seed, "env"))
            eval_env = make_env(agent_cfg.env, seed=derive_seed(seed, "eval_env"), evaluation=True)
        except (ValueError, gym.error.Error) as e:
            raise UsageError(
                f"--env {cfg.env}: {e} (the preset's suite is {agent_cfg.env.suite!r}; "
                "--preset gym, dmc, dmc-visual or atari picks the suite)"
            ) from e
        with env, eval_env:
            spec = check_spaces(env.observation_space, env.action_space)
            agent = MRQAgent(agent_cfg, spec, device=run.device, seed=derive_seed(seed, "agent"))
            # The buffer lives beside the networks; prioritised draws use the CPU sum tree,
            # except on a GPU, where a full cumsum on the device is cheaper than moving indices.
            on_gpu = run.device.type == "cuda"
            buffer = make_buffer(
                agent_cfg,
                spec,
                device=run.device,
                backend="scan" if on_gpu else "tree",
                sampler_device=run.device if on_gpu else "cpu",
            )
            replay = SeededReplay(buffer, seed=derive_seed(seed, "replay"))
            # One training round per environment step after the random phase: a target sync
            # and an encoder burst every target_update_interval RL updates, then one value +
            # policy update; the batches are drawn by the learner's sample(), never the agent.
            learner = MRQLearner(agent, replay.buffer, replay.generator)
            train_off_policy(
                run,
                env=env,
                eval_env=eval_env,
                agent=learner,
                buffer=replay,
                sample=learner.sample,
                cfg=loop_config(agent_cfg),
            )
        return run.dir


def _preset(agent: MRQConfig, **run: Any) -> MRQTrainConfig:
    s = agent.schedule
    return MRQTrainConfig(
        env=agent.env.env_id,
        agent=agent,
        run=RunConfig(
            total_steps=s.total_steps,
            eval_every=s.eval_interval,
            eval_episodes=s.eval_episodes,
            **run,
        ),
    )


def _on_choices(first: MRQTrainConfig, name: str, preset: MRQTrainConfig) -> MRQTrainConfig:
    del name
    return configure(
        preset, env=first.env, algo=first.algo, drq_as_official_code=first.drq_as_official_code
    )


_LAPTOP = dataclasses.replace(
    presets.tiny("InvertedPendulum-v5"),
    schedule=dataclasses.replace(
        presets.tiny().schedule, total_steps=5_000, eval_interval=1_000, eval_episodes=5
    ),
)

METHOD = DerivedMethod(
    name="mrq-drq",
    config_type=MRQTrainConfig,
    presets={
        # First = default: learns within minutes on a laptop CPU (small widths, not the paper's).
        # One torch thread: its small networks run as fast on 1 as on 2 (59.5 s against 59.0 s
        # of training on 2 cores, same curve), and a second thread on a loaded machine only
        # contends; the paper-size presets keep torch's default (all cores).
        "laptop": _preset(_LAPTOP, log_every=500, checkpoint_every=2_500, torch_threads=1),
        "gym": _preset(presets.gym()),
        "dmc": _preset(presets.dmc()),
        "dmc-visual": _preset(presets.dmc_visual(), checkpoint_every=100_000),
        "atari": _preset(presets.atari(), checkpoint_every=250_000),
    },
    train=train,
    description=(__doc__ or "").split("\n\n")[0],
    derive=_on_choices,
    # Set by --env and --algo, or the run options' business: not options of their own.
    fixed={
        MRQConfig: frozenset({"algorithm"}),
        EnvConfig: frozenset({"env_id"}),
        ScheduleConfig: frozenset({"total_steps", "eval_interval", "eval_episodes"}),
    },
    check=_check,
)
