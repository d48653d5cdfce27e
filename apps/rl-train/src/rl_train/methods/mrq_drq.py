"""MR.Q and DR.Q (``rl-train mrq-drq``): model-based representations for Q-learning.

The default preset, ``laptop``, is a small-width MR.Q on InvertedPendulum-v5 that learns within
minutes on a CPU; ``gym``, ``dmc``, ``dmc-visual`` and ``atari`` are the paper's settings.
``--algo drq`` applies DR.Q's changes (InfoNCE term, faded prioritised replay, its
hyperparameters) to whichever preset is chosen.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from mrq_drq import MRQAgent, MRQConfig, check_spaces, make_buffer, make_env
from mrq_drq import config as presets
from mrq_drq.learner import MRQLearner, loop_config
from rl_runtime.config import RunConfig, RunOptions
from rl_runtime.offpolicy import SeededReplay, train_off_policy
from rl_runtime.run import open_run
from rl_runtime.seeding import derive_seed

from rl_train.method import Method

__all__ = ["METHOD", "MRQTrainConfig", "train"]


@dataclasses.dataclass(frozen=True)
class MRQTrainConfig:
    """rl-train mrq-drq: MR.Q, or DR.Q with --algo drq."""

    env: str = "InvertedPendulum-v5"
    """Environment id in the preset's suite (Gym id, DMC "domain-task", Atari game)."""
    algo: Literal["mrq", "drq"] = "mrq"
    """MR.Q, or DR.Q (the paper's changes applied on top of the preset)."""
    drq_as_official_code: bool = False
    """With --algo drq: also apply the official DR.Q code's unannounced changes (see the README)."""
    agent: MRQConfig = dataclasses.field(default_factory=MRQConfig)
    """Networks, losses, replay and schedule. schedule.total_steps/eval_* are not read here:
    the run options (--total-steps, --eval-every, --eval-episodes) govern the run."""
    run: RunOptions = dataclasses.field(default_factory=RunConfig)
    """Seed, length, evaluation, logging and checkpoint options."""

    def resolved(self) -> MRQConfig:
        """The agent config this run trains: the preset's, on ``env``, made DR.Q if asked."""
        cfg = dataclasses.replace(
            self.agent, env=dataclasses.replace(self.agent.env, env_id=self.env)
        )
        if self.algo == "drq":
            cfg = presets.drq(cfg, as_official_code=self.drq_as_official_code)
        return cfg


def train(cfg: MRQTrainConfig) -> Path:
    """Train MR.Q / DR.Q as ``cfg`` says; returns the run directory."""
    agent_cfg = cfg.resolved()
    seed = cfg.run.seed
    with (
        open_run(METHOD.name, cfg) as run,
        make_env(agent_cfg.env, seed=derive_seed(seed, "env")) as env,
        make_env(agent_cfg.env, seed=derive_seed(seed, "eval_env"), evaluation=True) as eval_env,
    ):
        spec = check_spaces(env.observation_space, env.action_space)
        agent = MRQAgent(agent_cfg, spec, device=run.device, seed=derive_seed(seed, "agent"))
        # The buffer lives beside the networks; prioritised draws use the CPU sum tree, except
        # on a GPU, where a full cumsum on the device is cheaper than moving indices back.
        on_gpu = run.device.type == "cuda"
        buffer = make_buffer(
            agent_cfg,
            spec,
            device=run.device,
            backend="scan" if on_gpu else "tree",
            sampler_device=run.device if on_gpu else "cpu",
        )
        replay = SeededReplay(buffer, seed=derive_seed(seed, "replay"))
        # One training round per environment step after the random phase: a target sync and
        # an encoder burst every target_update_interval RL updates, then one value + policy
        # update; the batches are drawn by the learner's sample(), never by the agent.
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


_LAPTOP = dataclasses.replace(
    presets.tiny("InvertedPendulum-v5"),
    schedule=dataclasses.replace(
        presets.tiny().schedule, total_steps=5_000, eval_interval=1_000, eval_episodes=5
    ),
)

METHOD = Method(
    name="mrq-drq",
    config_type=MRQTrainConfig,
    presets={
        # First = default: learns within minutes on a laptop CPU (small widths, not the paper's).
        "laptop": _preset(_LAPTOP, log_every=500, checkpoint_every=2_500),
        "gym": _preset(presets.gym()),
        "dmc": _preset(presets.dmc()),
        "dmc-visual": _preset(presets.dmc_visual(), checkpoint_every=100_000),
        "atari": _preset(presets.atari(), checkpoint_every=250_000),
    },
    train=train,
    description=(__doc__ or "").split("\n\n")[0],
)
