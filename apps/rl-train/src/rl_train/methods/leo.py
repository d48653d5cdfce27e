"""LEO and its goal-conditioned baselines (``rl-train leo``), and the Craftax goal listings
(``rl-train leo-goals``).

``rl-train leo`` trains one of ``--algo leo|pqn|pqn-her|ppo|dual-leo-ppo|dual-leo-pqn`` on
``--env craftax-classic`` (136 goals), ``craftax`` (512 goals) or ``gridworld`` (every free
cell of a 16x16 map), through the goal-conditioned on-policy loop of the ``leo`` package: acting
goals drawn from the goals seen, every goal's achievement judged on every step, success rates
over all goals and per goal family (``train/success_rate*`` live, ``eval/success_rate*`` by a
greedy test of every goal). ``--algo`` applies upstream's settings of that algorithm
(purejaxgcrl's ``pqn.py`` defaults and PQN+HER sweep, ``ppo.py``...) to the preset; every option
applies on top. The Craftax presets are the paper's (1024 envs, width 1024, 1e9 steps): a GPU run;
``gridworld`` is sized for a CPU.

``rl-train leo-goals --env craftax-classic`` prints the goal set, one ``index name`` a line, as
upstream's ``goal_listing_craftax_classic.txt``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from leo.config import (
    Algo,
    EnvConfig,
    EnvName,
    EvalConfig,
    NetworkConfig,
    PPOConfig,
    QConfig,
)
from rl_runtime.config import RunConfig, RunOptions

from rl_train.method import UsageError
from rl_train.methods._support import CommandMethod, DerivedMethod

__all__ = ["GOALS_METHOD", "METHOD", "LEOGoalsConfig", "LEOTrainConfig", "list_goals", "train"]


@dataclasses.dataclass(frozen=True)
class LEOTrainConfig:
    """rl-train leo: LEO all-goals Q-learning or a goal-conditioned baseline."""

    env: EnvName = "craftax-classic"
    """craftax-classic (136 goals), craftax (512 goals) or gridworld (the free cells)."""
    algo: Algo = "leo"
    """LEO, goal-conditioned PQN, PQN+HER, goal-conditioned PPO, Dual LEO (PPO) or (PQN)."""
    envs: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    """The training envs: count, optimistic resets, acting-goal draws, the Gridworld's map."""
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    """Network widths, conv and norms (every network of the algorithm)."""
    q: QConfig = dataclasses.field(default_factory=QConfig)
    """Q-learning settings (LEO, PQN, PQN+HER, Dual LEO (PQN); Dual LEO (PPO)'s teacher)."""
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    """PPO settings (ppo, dual-leo-ppo)."""
    evals: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    """The goal test (every goal, --eval-every steps; --eval-episodes 0 turns it off)."""
    run: RunOptions = dataclasses.field(default_factory=RunConfig)
    """Seed, length, evaluation, logging and checkpoint options."""


def _craftax(env: EnvName) -> LEOTrainConfig:
    """The paper's settings (upstream defaults): 1024 envs, width 1024, 1e9 steps."""
    return LEOTrainConfig(
        env=env,
        run=RunConfig(
            total_steps=1_000_000_000,
            log_every=1_000_000,
            eval_every=50_000_000,
            eval_episodes=1,
            checkpoint_every=10_000_000,
        ),
    )


GRIDWORLD = LEOTrainConfig(
    env="gridworld",
    # CPU-sized (the paper: 1024 envs, width 1024, gamma 0.99, 1e8 steps): more gradient steps
    # per transition, gamma 0.9 (Q gaps of 10 % per step, not 1 %), faster input statistics; see
    # the package README for what each change buys.
    envs=EnvConfig(num_envs=64),
    network=NetworkConfig(width=256, dense_layers=2, norm_momentum=0.99),
    q=QConfig(num_steps=16, minibatch_size=64, num_epochs=4, lr=1e-3, gamma=0.9),
    ppo=PPOConfig(num_steps=16, minibatch_size=256, num_epochs=4, lr=1e-3, gamma=0.9),
    evals=EvalConfig(max_steps=50),
    run=RunConfig(
        total_steps=300_000,
        log_every=10_240,
        eval_every=51_200,
        eval_episodes=1,
        checkpoint_every=51_200,
        torch_threads=1,
    ),
)


def algo_settings(cfg: LEOTrainConfig, algo: Algo) -> LEOTrainConfig:
    """``cfg`` with upstream's settings of ``algo`` (what ``--algo`` changes in a preset).

    LEO and Dual LEO (PQN) keep the preset (``leo.py``'s defaults); ``pqn`` takes ``pqn.py``'s
    (2 steps, 1 epoch, minibatch 256, gamma 0.995, epsilon decay over half the run, 16 conv
    features); ``pqn-her`` adds the Craftax sweep's mixed relabelling (75 % random, minibatch
    2048, lr 1e-4). On the CPU-sized Gridworld preset the rollout, minibatch, epochs and discount
    stay the preset's, so every algorithm gets the same budget of data and gradient steps."""
    cfg = dataclasses.replace(cfg, algo=algo)
    if algo not in ("pqn", "pqn-her"):
        return cfg
    q = dataclasses.replace(cfg.q, eps_decay=0.5)
    if cfg.env != "gridworld":
        q = dataclasses.replace(q, num_steps=2, minibatch_size=256, gamma=0.995, num_epochs=1)
    network = dataclasses.replace(cfg.network, conv_features=16)
    if algo == "pqn-her":
        q = dataclasses.replace(q, her_mode="mixed", her_random_fraction=0.75)
        if cfg.env != "gridworld":
            q = dataclasses.replace(q, minibatch_size=2048, lr=1e-4)
    return dataclasses.replace(cfg, q=q, network=network)


def _derive(first: LEOTrainConfig, name: str, preset: LEOTrainConfig) -> LEOTrainConfig:
    del name
    return algo_settings(preset, first.algo)


def _make_envs(cfg: LEOTrainConfig, seed: int, device: object):
    """The training envs and the goal-test envs (one per goal x repeats)."""
    import torch
    from leo.envs import CraftaxGoalEnv, Gridworld
    from rl_runtime.seeding import derive_seed

    e = cfg.envs
    if cfg.env == "gridworld":
        dev = torch.device(str(device))

        def grid(n: int, ratio: int, stream: str) -> Gridworld:
            return Gridworld(n, size=e.grid_size, wall_threshold=e.grid_wall_threshold,
                             map_seed=e.grid_map_seed, max_steps=e.grid_max_steps,
                             reset_ratio=ratio, seed=derive_seed(seed, stream), device=dev)  # fmt: skip

        env = grid(e.num_envs, e.reset_ratio, "env")
        g = len(env.goals)
        return env, grid(g * cfg.evals.repeats, g * cfg.evals.repeats, "eval")
    env = CraftaxGoalEnv(cfg.env, e.num_envs, reset_ratio=e.reset_ratio,
                         seed=derive_seed(seed, "env"))  # fmt: skip
    n_eval = len(env.goals) * cfg.evals.repeats
    test = None
    if cfg.run.eval_episodes > 0:
        test = CraftaxGoalEnv(cfg.env, n_eval, reset_ratio=n_eval, seed=derive_seed(seed, "eval"))
    return env, test


def train(cfg: LEOTrainConfig) -> Path:
    """Train as ``cfg`` says; returns the run directory."""
    # Imported here, not at the top: the command line (``--help``) needs only the configs.
    from leo.agent import make_agent
    from leo.loop import train_goals
    from rl_runtime.run import open_run
    from rl_runtime.seeding import derive_seed

    with open_run(METHOD.name, cfg) as run:
        env, eval_env = _make_envs(cfg, cfg.run.seed, run.device)
        goals = env.goals
        run.log.info(
            "%s: %d goals (%s), %d actions, observation %d, %d envs",
            cfg.env,
            len(goals),
            ", ".join(goals.families),
            env.num_actions,
            env.layout.dim,
            env.num_envs,
        )
        agent = make_agent(
            cfg.algo,
            layout=env.layout,
            goals=goals.to(run.device),
            num_actions=env.num_actions,
            num_envs=env.num_envs,
            total_steps=cfg.run.total_steps,
            network=cfg.network,
            q=cfg.q,
            ppo=cfg.ppo,
            only_seen=cfg.envs.only_seen_goals,
            seed=derive_seed(cfg.run.seed, "agent"),
            device=run.device,
        )
        train_goals(
            run,
            env=env,
            agent=agent,
            eval_env=eval_env,
            evals=cfg.evals,
            only_seen=cfg.envs.only_seen_goals,
            device=run.device,
        )
        return run.dir


def _check(cfg: LEOTrainConfig, defaults: LEOTrainConfig | None) -> None:
    """Every field's value (one line naming the flag)."""
    del defaults
    try:
        for part in (cfg.envs, cfg.network, cfg.q, cfg.ppo, cfg.evals):
            part.validate()
    except ValueError as e:
        raise UsageError(str(e)) from e


METHOD = DerivedMethod(
    name="leo",
    config_type=LEOTrainConfig,
    presets={
        "craftax-classic": _craftax("craftax-classic"),
        "craftax": _craftax("craftax"),
        "gridworld": GRIDWORLD,
    },
    train=train,
    description=(__doc__ or "").split("\n\n")[0],
    derive=_derive,
    check=_check,
)


@dataclasses.dataclass(frozen=True)
class LEOGoalsConfig:
    """rl-train leo-goals: print a Craftax goal set, one `index name` a line."""

    env: Literal["craftax-classic", "craftax"] = "craftax-classic"
    """craftax-classic (136 goals) or craftax (512 goals)."""


def list_goals(cfg: LEOGoalsConfig) -> Path:
    """Print the listing of ``cfg.env``'s goals; returns the current directory (nothing is
    written)."""
    from leo.goals import craftax_classic_goals, craftax_goals

    goals = craftax_classic_goals() if cfg.env == "craftax-classic" else craftax_goals()
    print(goals.listing())
    return Path.cwd()


GOALS_METHOD = CommandMethod(
    name="leo-goals",
    config_type=LEOGoalsConfig,
    presets={"default": LEOGoalsConfig()},
    train=list_goals,
    description="Print a Craftax goal set (index name, one a line), as upstream's listings.",
)
