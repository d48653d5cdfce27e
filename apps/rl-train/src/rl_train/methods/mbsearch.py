"""MRS.Q (``rl-train mbsearch``): MPPI search on MR.Q with a critic-ensemble minimum.

``--arm`` picks the paper's arm: ``mrsq`` (MRS.Q: MPPI with the minimum of 10 critics at the
horizon and in the TD target, SimNorm latents, no exploration noise, termination weight 1),
``mpc`` (MR.Q + TD-MPC2's MPPI) or ``mrq`` (MR.Q, acting with its policy). The default preset,
``laptop``, uses MR.Q's small widths on InvertedPendulum-v5; ``gym`` is the paper's setting
(``--preset gym --env HalfCheetah-v5``). The paper's ablations are options on top:
``--agent.critics.target-critics 2`` (minimum of 2 random heads), ``--agent.planner.value-
reduction mean`` (no minimum at the planning horizon), ``--agent.latent-simnorm None`` (no
SimNorm), ``--agent.mrq.policy.exploration-noise 0.2`` (exploration noise back). The relative
overestimation ``(Q(s,a) - G) / |G|`` of every finished training episode is logged as
``train/overestimation``.

``rl-train mbsearch-chain`` prints (and with ``--out`` writes) the N-chain table: random
shooting's closed form against simulation, and CEM, MPPI and short-horizon MPC with a perfect
model and exact values.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from mbsearch.config import Arm, MRSQConfig, arm, small_mrq
from mrq_drq import MRQConfig
from mrq_drq import config as mrq_presets
from mrq_drq.config import EnvConfig, ScheduleConfig
from rl_runtime.config import RunConfig, RunOptions

from rl_train.method import UsageError
from rl_train.methods._support import CommandMethod, DerivedMethod, quiet_mujoco

__all__ = ["CHAIN_METHOD", "METHOD", "ChainConfig", "MBSearchTrainConfig", "configure", "train"]

_LOG = logging.getLogger("rlworks")


@dataclasses.dataclass(frozen=True)
class MBSearchTrainConfig:
    """rl-train mbsearch: MR.Q, MR.Q+MPC or MRS.Q (--arm)."""

    env: str = "InvertedPendulum-v5"
    """Gymnasium id (continuous actions for the planning arms)."""
    arm: Arm = "mrsq"
    """mrsq (MRS.Q), mpc (MR.Q + MPPI) or mrq (MR.Q)."""
    agent: MRSQConfig = dataclasses.field(default_factory=MRSQConfig)
    """MR.Q's networks and schedule (agent.mrq.*), the planner, the critic ensemble, SimNorm and
    the diagnostic: the preset's, for --arm on --env; every --agent.* option applies on top."""
    run: RunOptions = dataclasses.field(default_factory=RunConfig)
    """Seed, length, evaluation, logging and checkpoint options."""


def _laptop_mrq(env: str = "InvertedPendulum-v5") -> MRQConfig:
    base = small_mrq(env)  # MR.Q's tiny widths, 65 reward bins
    return dataclasses.replace(
        base,
        schedule=dataclasses.replace(
            base.schedule, total_steps=5_000, eval_interval=1_000, eval_episodes=5
        ),
    )


_BASES = {"laptop": _laptop_mrq, "gym": mrq_presets.gym}
"""Preset name -> the MR.Q config its arms are built on."""


def configure(base_preset: str, *, env: str, arm_name: Arm) -> MRSQConfig:
    """The agent of preset ``base_preset`` for ``arm_name`` on ``env``."""
    return arm(arm_name, _BASES[base_preset](env))


def _check(cfg: MBSearchTrainConfig, defaults: MBSearchTrainConfig | None = None) -> None:
    """The agent config agrees with --env and --arm (a run's config.json on --resume could hold
    another)."""
    del defaults
    if cfg.agent.mrq.env.env_id != cfg.env:
        raise UsageError(
            f"--env {cfg.env} differs from the run's agent config (agent.mrq.env.env_id "
            f"{cfg.agent.mrq.env.env_id}): a run keeps its environment, start a new run for another"
        )
    if cfg.agent.arm != cfg.arm:
        raise UsageError(
            f"--arm {cfg.arm} differs from the run's agent config (agent.arm {cfg.agent.arm}): "
            "a run keeps its arm, start a new run for another"
        )
    if cfg.agent.mrq.env.suite != "gym":
        raise UsageError("rl-train mbsearch runs Gymnasium tasks (agent.mrq.env.suite 'gym')")


def train(cfg: MBSearchTrainConfig) -> Path:
    """Train the arm ``cfg`` says; returns the run directory."""
    # Imported here, not at the top: the command line (``--help``) needs only the configs.
    import gymnasium as gym
    from mbsearch.agent import MRSQAgent
    from mbsearch.learner import MRSQLearner, make_replay
    from mrq_drq import check_spaces, make_env
    from mrq_drq.learner import loop_config
    from rl_runtime.offpolicy import train_off_policy
    from rl_runtime.run import open_run
    from rl_runtime.seeding import derive_seed

    _check(cfg)
    agent_cfg = cfg.agent
    seed = cfg.run.seed
    quiet_mujoco(_LOG)
    with open_run(METHOD.name, cfg) as run:
        try:
            env = make_env(agent_cfg.mrq.env, seed=derive_seed(seed, "env"))
            eval_env = make_env(
                agent_cfg.mrq.env, seed=derive_seed(seed, "eval_env"), evaluation=True
            )
        except (ValueError, gym.error.Error) as e:
            raise UsageError(f"--env {cfg.env}: {e}") from e
        with env, eval_env:
            try:
                spec = check_spaces(env.observation_space, env.action_space)
                agent = MRSQAgent(
                    agent_cfg, spec, device=run.device, seed=derive_seed(seed, "agent")
                )
            except ValueError as e:  # unsupported spaces, discrete actions for the planner
                raise UsageError(f"--env {cfg.env}: {e}") from e
            on_gpu = run.device.type == "cuda"
            # MR.Q's buffer (and its seeded generator) behind the overestimation tracker, which
            # sees every executed transition and measures each finished episode.
            replay = make_replay(
                agent,
                seed=derive_seed(seed, "replay"),
                device=run.device,
                backend="scan" if on_gpu else "tree",
                sampler_device=run.device if on_gpu else "cpu",
            )
            # MR.Q's training rounds (sync + encoder burst, one value + policy update per env
            # step); actions come from the planner.
            learner = MRSQLearner(agent, replay)
            train_off_policy(
                run,
                env=env,
                eval_env=eval_env,
                agent=learner,
                buffer=replay,
                sample=learner.sample,
                cfg=loop_config(agent_cfg.mrq),
            )
        return run.dir


def _preset(agent: MRSQConfig, **run: Any) -> MBSearchTrainConfig:
    s = agent.mrq.schedule
    return MBSearchTrainConfig(
        env=agent.mrq.env.env_id,
        arm=agent.arm,
        agent=agent,
        run=RunConfig(
            total_steps=s.total_steps,
            eval_every=s.eval_interval,
            eval_episodes=s.eval_episodes,
            **run,
        ),
    )


def _on_choices(
    first: MBSearchTrainConfig, name: str, preset: MBSearchTrainConfig
) -> MBSearchTrainConfig:
    agent = configure(name, env=first.env, arm_name=first.arm)
    return dataclasses.replace(preset, env=first.env, arm=first.arm, agent=agent)


METHOD = DerivedMethod(
    name="mbsearch",
    config_type=MBSearchTrainConfig,
    presets={
        # First = default: MR.Q's small widths on a short CPU run (not the paper's sizes).
        "laptop": _preset(
            configure("laptop", env="InvertedPendulum-v5", arm_name="mrsq"),
            log_every=500,
            checkpoint_every=2_500,
            torch_threads=1,
        ),
        "gym": _preset(configure("gym", env="HalfCheetah-v5", arm_name="mrsq")),
    },
    train=train,
    description=(__doc__ or "").split("\n\n")[0],
    derive=_on_choices,
    # Set by --env and --arm, or the run options' business: not options of their own.
    fixed={
        MRSQConfig: frozenset({"arm"}),
        MRQConfig: frozenset({"algorithm"}),
        EnvConfig: frozenset({"env_id"}),
        ScheduleConfig: frozenset({"total_steps", "eval_interval", "eval_episodes"}),
    },
    check=_check,
)


# --------------------------------------------------------------------------------------------
# rl-train mbsearch-chain


@dataclasses.dataclass(frozen=True)
class ChainConfig:
    """rl-train mbsearch-chain: the absorbing N-chain study."""

    actions: tuple[int, ...] = (2, 5, 10)
    """Action counts A."""
    lengths: tuple[int, ...] = (1, 2, 3, 5, 10)
    """Chain lengths n (the planning horizon of full-horizon search)."""
    budgets: tuple[int, ...] = (10, 100, 1_000, 10_000)
    """Sequences m each planner may evaluate."""
    trials: int = 2_000
    """Simulated trials of random shooting per (A, n, m)."""
    planner_trials: int = 300
    """Simulated trials of CEM, MPPI and short-horizon MPC per (A, n, m)."""
    mpc_horizon: int = 1
    """Horizon of the MPC column (exact value V* at its end)."""
    planners: bool = True
    """Also simulate CEM, MPPI and short-horizon MPC (random shooting only otherwise)."""
    seed: int = 0
    """Row (A, n, m) draws from numpy's default_rng([seed, A, n, m])."""
    out: Path | None = None
    """Also write the table as JSON here (an existing file is kept unless --overwrite)."""
    overwrite: bool = False
    """Replace an existing --out file."""

    def __post_init__(self) -> None:
        for name, values, low in (
            ("--actions", self.actions, 2),
            ("--lengths", self.lengths, 1),
            ("--budgets", self.budgets, 1),
        ):
            if not values or any(v < low for v in values):
                raise ValueError(f"{name} needs one or more integers >= {low}, got {values}")
        for name, value in (
            ("--trials", self.trials),
            ("--planner-trials", self.planner_trials),
            ("--mpc-horizon", self.mpc_horizon),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


def _format(value: float) -> str:
    return f"{value:.3g}" if value >= 1e-3 or value == 0 else f"{value:.2e}"


def run_chain(cfg: ChainConfig) -> Path:
    """Compute, print and (``--out``) write the N-chain table; returns the output path (or
    ``.`` when only printed)."""
    import json

    from mbsearch.chain import chain_table
    from rl_buffers.io import atomic_write

    if cfg.out is not None and cfg.out.exists() and not cfg.overwrite:
        raise UsageError(f"--out {cfg.out} exists: give --overwrite to replace it")
    rows = chain_table(
        cfg.actions,
        cfg.lengths,
        cfg.budgets,
        trials=cfg.trials,
        planner_trials=cfg.planner_trials,
        horizon=cfg.mpc_horizon,
        seed=cfg.seed,
        planners=cfg.planners,
    )
    columns = ["closed_form", "random_shooting"]
    if cfg.planners:
        columns += ["cem", "mppi", f"mpc_h{cfg.mpc_horizon}"]
    print("| A | n | m | " + " | ".join(columns) + " |")
    print("|---" * (3 + len(columns)) + "|")
    for row in rows:
        cells = [str(row["actions"]), str(row["length"]), str(row["budget"])]
        cells += [_format(float(row[c])) for c in columns]
        print("| " + " | ".join(cells) + " |")
    if cfg.out is None:
        return Path(".")
    with atomic_write(cfg.out, "w") as f:
        json.dump({"config": dataclasses.asdict(cfg) | {"out": str(cfg.out)}, "rows": rows}, f)
    print(f"wrote {len(rows)} rows to {cfg.out}")
    return cfg.out


CHAIN_METHOD = CommandMethod(
    name="mbsearch-chain",
    config_type=ChainConfig,
    presets={"default": ChainConfig()},
    train=run_chain,
    description="The N-chain study: random shooting's closed form 1-(1-A^-n)^m against "
    "simulation, and CEM, MPPI and short-horizon MPC with a perfect model and exact values.",
)
