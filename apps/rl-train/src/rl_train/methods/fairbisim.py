"""The Bisimulator and fairness baselines (``rl-train fairbisim``) on lending and college
admission.

``--env lending|college`` picks the environment, ``--algo`` the learner: ``bisimulator`` (PPO,
or DQN with ``--agent.bisim.solver dqn``, on the MDP whose reward r_phi and observation map
o_psi the Bisimulator learns), ``ppo`` and ``dqn`` on the true reward, ``rppo`` (reward penalty)
and ``appo`` (POCAR's advantage regularisation). Every run ends with a held-out fairness
evaluation (per-group acceptance and true-positive rates, their gaps, utility, credit
distributions), logged as ``eval/...`` and written to ``fairness.json`` in the run directory.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Literal

from fairbisim.config import FairBisimConfig
from rl_runtime.config import RunConfig, RunOptions, int_at_least, positive_int
from rl_runtime.schedules import OnPolicyConfig

from rl_train.method import UsageError
from rl_train.methods._support import DerivedMethod

__all__ = ["METHOD", "FairBisimTrainConfig", "train"]

_LOG = logging.getLogger("rlworks")


@dataclasses.dataclass(frozen=True)
class FairBisimTrainConfig:
    """rl-train fairbisim: the Bisimulator, PPO, DQN, R-PPO or A-PPO on lending or college."""

    env: Literal["lending", "college"] = "lending"
    """lending (delayed impact) or college (strategic admission)."""
    algo: Literal["bisimulator", "ppo", "dqn", "rppo", "appo"] = "bisimulator"
    """The learner."""
    agent: FairBisimConfig = dataclasses.field(default_factory=FairBisimConfig)
    """Environments, solvers, baselines and the Bisimulator (--env and --algo set its copies)."""
    loop: OnPolicyConfig = dataclasses.field(
        default_factory=lambda: OnPolicyConfig(num_envs=8, num_steps=128, gamma=0.99)
    )
    """The on-policy loop's schedule."""
    fairness_episodes: int = 4
    """Episodes of the final held-out fairness evaluation."""
    fairness_steps: int = 0
    """Their length (0: the environment's max_steps)."""
    fairness_policy: Literal["sample", "greedy"] = "sample"
    """sample: PPO's actions drawn from its policy (DQN is greedy either way); greedy: argmax."""
    run: RunOptions = dataclasses.field(default_factory=RunConfig)
    """Seed, length, evaluation, logging and checkpoint options."""

    def __post_init__(self) -> None:
        positive_int("--fairness-episodes", self.fairness_episodes)
        int_at_least("--fairness-steps", self.fairness_steps, 0)


def _derive(first: FairBisimTrainConfig, name: str, preset: FairBisimTrainConfig) -> Any:
    del name
    agent = dataclasses.replace(preset.agent, algo=first.algo, env_name=first.env)
    return dataclasses.replace(preset, env=first.env, algo=first.algo, agent=agent)


def _check(cfg: FairBisimTrainConfig, defaults: FairBisimTrainConfig | None = None) -> None:
    del defaults
    if (cfg.agent.env_name, cfg.agent.algo) != (cfg.env, cfg.algo):
        raise UsageError(
            f"--env {cfg.env} --algo {cfg.algo} differ from the run's agent config "
            f"({cfg.agent.env_name}, {cfg.agent.algo}): a run keeps both, start a new run"
        )


def train(cfg: FairBisimTrainConfig) -> Path:
    """Train as ``cfg`` says, then evaluate fairness; returns the run directory."""
    # Heavy imports here, not at the top: --help needs only the configs.
    import torch
    from fairbisim.agent import FairLearner, FairVecEnv, Recorder, make_array_env
    from fairbisim.evaluation import evaluate_fairness
    from rl_buffers.io import atomic_write
    from rl_runtime.onpolicy import train_on_policy
    from rl_runtime.run import open_run
    from rl_runtime.seeding import derive_seed, episode_seed

    _check(cfg)
    agent_cfg = cfg.agent
    seed = cfg.run.seed
    with open_run(METHOD.name, cfg) as run:
        recorder = Recorder()
        env = make_array_env(agent_cfg, cfg.loop.num_envs, run.device)
        learner = FairLearner(
            agent_cfg, cfg.loop, env, recorder, device=run.device, seed=derive_seed(seed, "agent")
        )
        reward = {"rppo": "penalty", "bisimulator": "bisimulator"}.get(cfg.algo, "true")
        envs = FairVecEnv(env, learner, reward=reward, recorder=recorder)  # type: ignore[arg-type]
        n_eval = max(1, min(cfg.run.eval_episodes, 4))
        eval_env = FairVecEnv(make_array_env(agent_cfg, n_eval, run.device), learner)
        train_on_policy(run, envs=envs, eval_env=eval_env, agent=learner, cfg=cfg.loop)

        # The held-out fairness evaluation (deterministic given the agent: a resumed run that
        # was already complete logs the same line again, after metrics.jsonl was cut back).
        env_cfg = getattr(agent_cfg, cfg.env)
        steps = cfg.fairness_steps or env_cfg.max_steps
        seeds = [episode_seed(seed, "fairness", i) for i in range(cfg.fairness_episodes)]
        with torch.no_grad():
            result = evaluate_fairness(
                learner,
                agent_cfg,
                episodes=cfg.fairness_episodes,
                max_steps=steps,
                seeds=seeds,
                device=run.device,
                policy=cfg.fairness_policy,
            )
        final_step = learner.rollouts * cfg.loop.rollout_steps
        scalars = {f"eval/{k}": v for k, v in result.items() if isinstance(v, float)}
        run.logger.log(final_step, scalars)
        import json

        with atomic_write(run.dir / "fairness.json", "w") as f:
            json.dump({"step": final_step, "algo": cfg.algo, "env": cfg.env, **result}, f, indent=1)
        run.log.info(
            "fairness: acceptance gap %.3f, TPR gap %.3f, utility %.3f",
            result["acceptance_gap"],
            result["tpr_gap"],
            result["utility"],
        )
        return run.dir


def _preset(env: Literal["lending", "college"], total: int, **run: Any) -> FairBisimTrainConfig:
    agent = FairBisimConfig(env_name=env)
    return FairBisimTrainConfig(
        env=env,
        agent=agent,
        run=RunConfig(total_steps=total, **run),
    )


METHOD = DerivedMethod(
    name="fairbisim",
    config_type=FairBisimTrainConfig,
    presets={
        # First = default: a few minutes on a laptop CPU.
        "laptop": _preset(
            "lending",
            50_000,
            eval_every=10_240,
            eval_episodes=2,
            log_every=2_048,
            checkpoint_every=10_240,
            torch_threads=1,
        ),
        "lending": _preset(
            "lending", 500_000, eval_every=51_200, eval_episodes=4, log_every=10_240
        ),
        "college": _preset("college", 200_000, eval_every=20_480, eval_episodes=4, log_every=4_096),
    },
    train=train,
    description=(__doc__ or "").split("\n\n")[0],
    derive=_derive,
    fixed={FairBisimConfig: frozenset({"algo", "env_name"})},
    check=_check,
)
