"""Hierarchical Behaviour Spaces on NetHack (``rl-train hbs``), with SOL-style discrete options
and flat PPO on the same loop and network.

``--algo hbs`` (the controller outputs a weight vector over the reward functions and an option
length), ``options`` (it picks one reward function, SOL) or ``flat`` (PPO on the score). The
default preset, ``nethack-score``, is NetHackScore-v0 at a CPU's scale (32 envs, small widths);
``nethack-challenge`` is NetHackChallenge-v0. ``--agent.source subprocess`` or ``ray`` runs the
envs in worker processes or Ray actors (``--agent.workers``). ``--preset nethack-score-growing``
is the ablation in which the reward set grows during the run.

One option per setting: the task is ``--env`` (``agent.env.task`` follows it), the algorithm
``--algo`` (``agent.algo`` follows it).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Literal

from hbs.config import EnvConfig, HBSConfig, NetworkConfig, OptionConfig, PPOConfig, smoke
from rl_runtime.config import RunConfig, RunOptions

from rl_train.method import UsageError
from rl_train.methods._support import DerivedMethod

__all__ = ["METHOD", "HBSTrainConfig", "configure", "train"]

_ENV_TASK = {"NetHackScore-v0": "score", "NetHackChallenge-v0": "challenge"}


@dataclasses.dataclass(frozen=True)
class HBSTrainConfig:
    """rl-train hbs: HBS, SOL-style options (--algo options) or flat PPO (--algo flat)."""

    env: Literal["NetHackScore-v0", "NetHackChallenge-v0"] = "NetHackScore-v0"
    """The NLE task."""
    algo: Literal["hbs", "options", "flat"] = "hbs"
    """HBS, SOL-style discrete options, or flat PPO on the task reward."""
    agent: HBSConfig = dataclasses.field(default_factory=HBSConfig)
    """Network, reward functions, controller choices, PPO and the rollout source: the
    preset's, on --env with --algo; every --agent.* option applies on top."""
    run: RunOptions = dataclasses.field(default_factory=RunConfig)
    """Seed, length, evaluation, logging and checkpoint options."""


def configure(
    base: HBSTrainConfig, *, env: str | None = None, algo: str | None = None
) -> HBSTrainConfig:
    """``base`` with the agent's task following ``env`` and its algorithm ``algo``."""
    env = base.env if env is None else env
    algo = base.algo if algo is None else algo
    if env not in _ENV_TASK:
        raise UsageError(f"--env {env}: use NetHackScore-v0 or NetHackChallenge-v0")
    task = _ENV_TASK[env]
    env_cfg = dataclasses.replace(
        base.agent.env,
        task=task,
        character="@" if task == "challenge" else base.agent.env.character,
    )
    agent = dataclasses.replace(base.agent, algo=algo, env=env_cfg)  # type: ignore[arg-type]
    return dataclasses.replace(base, env=env, algo=algo, agent=agent)  # type: ignore[arg-type]


def _check(cfg: HBSTrainConfig, defaults: HBSTrainConfig | None = None) -> None:
    del defaults
    if cfg.agent.env.task != _ENV_TASK[cfg.env]:
        raise UsageError(
            f"--env {cfg.env} differs from the run's agent config (agent.env.task "
            f"{cfg.agent.env.task}): a run keeps its task, start a new run for another"
        )
    if cfg.agent.algo != cfg.algo:
        raise UsageError(
            f"--algo {cfg.algo} differs from the run's agent config (agent.algo "
            f"{cfg.agent.algo}): a run keeps its algorithm, start a new run for another"
        )
    if cfg.algo == "flat" and cfg.agent.options.growing_rewards:
        raise UsageError(
            "--agent.options.growing-rewards grows the controller's set: not with --algo flat"
        )


def train(cfg: HBSTrainConfig) -> Path:
    """Train as ``cfg`` says; returns the run directory."""
    # Imported here, not at the top: the command line (``--help``) needs only the configs.
    from hbs.agent import HBSAgent
    from hbs.envs import NLEVecEnv, ObsLayout, make_batched_env
    from hbs.loop import train_hbs
    from hbs.rewards import RewardError, check_rewards
    from rl_runtime.run import open_run
    from rl_runtime.seeding import derive_seed

    _check(cfg)
    a = cfg.agent
    try:
        layout = ObsLayout(a.env.observation_keys)
        check_rewards(a.options.rewards, layout.keys)
    except (ValueError, RewardError) as e:
        raise UsageError(str(e)) from e
    with open_run(METHOD.name, cfg) as run:
        if a.source == "ray":
            # Ray's workers use this interpreter, not `uv run` in a copy of the working
            # directory (read when ray is imported).
            os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
            import ray

            if not ray.is_initialized():
                ray.init(num_cpus=a.workers, include_dashboard=False, log_to_driver=False)
        envs = make_batched_env(
            a.env, a.ppo.num_envs, source=a.source, workers=a.workers, device="cpu"
        )
        eval_envs = None
        if cfg.run.eval_episodes:
            eval_envs = NLEVecEnv(a.env, min(cfg.run.eval_episodes, a.ppo.num_envs))
        try:
            agent = HBSAgent(
                a,
                layout,
                int(envs.single_action_space.n),  # pyright: ignore[reportAttributeAccessIssue]
                device=run.device,
                seed=derive_seed(cfg.run.seed, "agent"),
            )
            train_hbs(run, envs=envs, agent=agent, cfg=a, layout=layout, eval_envs=eval_envs)
        finally:
            envs.close()
            if eval_envs is not None:
                eval_envs.close()
        return run.dir


def _on_choices(first: HBSTrainConfig, name: str, preset: HBSTrainConfig) -> HBSTrainConfig:
    del name
    return configure(preset, env=first.env, algo=first.algo)


_CPU_NETWORK = NetworkConfig(
    glyph_embed=8,
    crop=9,
    conv_channels=0,
    message_buckets=512,
    message_embed=16,
    blstats_hidden=32,
    hidden=(128,),
)

_SCORE = HBSTrainConfig(
    agent=HBSConfig(
        network=_CPU_NETWORK,
        # One pass per rollout as SOL (num_epochs 1); the minibatches as large as a CPU likes.
        ppo=PPOConfig(num_envs=32, num_steps=32, update_epochs=1, num_minibatches=2),
    ),
    run=RunConfig(
        total_steps=2_000_000,
        eval_every=100_000,
        eval_episodes=4,
        log_every=10_240,
        checkpoint_every=102_400,
        torch_threads=1,
    ),
)

METHOD = DerivedMethod(
    name="hbs",
    config_type=HBSTrainConfig,
    presets={
        # First = default: NetHackScore at a CPU's scale (the paper runs billions of steps).
        "nethack-score": _SCORE,
        "nethack-challenge": configure(_SCORE, env="NetHackChallenge-v0"),
        # The growing-reward-set ablation: 3 rewards at the start, one more every 100k steps.
        "nethack-score-growing": dataclasses.replace(
            _SCORE,
            agent=dataclasses.replace(
                _SCORE.agent,
                options=OptionConfig(growing_rewards=(100_000, 200_000, 300_000, 400_000, 500_000)),
            ),
        ),
        # Tiny, for tests and a first look.
        "smoke": HBSTrainConfig(
            agent=dataclasses.replace(smoke(), ppo=dataclasses.replace(smoke().ppo, num_steps=32)),
            run=RunConfig(
                total_steps=256,
                eval_every=128,
                eval_episodes=0,
                log_every=64,
                checkpoint_every=128,
                torch_threads=1,
            ),
        ),
    },
    train=train,
    description=(__doc__ or "").split("\n\n")[0],
    derive=_on_choices,
    fixed={HBSConfig: frozenset({"algo"}), EnvConfig: frozenset({"task"})},
    check=_check,
)
