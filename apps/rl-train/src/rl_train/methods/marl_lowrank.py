"""Offline multi-agent RL with low-interaction-rank critics (``rl-train marl-lowrank``), and its
datasets (``rl-train marl-lowrank-data``).

``rl-train marl-lowrank --env game --critic ir2 --algo td3bc`` trains decentralised TD3+BC with
an interaction-rank-2 critic on the paper's N-agent contextual game (N = 50,
``r_i = sum_j a_i a_j / N + U(-sigma, sigma)``), from a dataset of ``--game.behaviour`` (uniform,
biased, noisy-good) of ``--game.dataset-size`` samples, generated in memory from
``--data-seed`` unless ``--dataset FILE`` names one written by ``rl-train marl-lowrank-data``.
Evaluation is exact: ``eval/return`` (mean expected reward, 1 at the coordinated optimum),
``eval/optimum_distance`` and ``eval/nash_gap``. ``--algo drac`` runs DR-AC on the discrete game
(``--preset drac``: two actions) and logs the exact CCE gap of its mixture of iterates
(``eval/cce_gap``). ``--env simple-spread`` trains on mpe2's simple_spread (continuous) from a
scripted / noisy dataset (``--dataset`` a Minari id, or collected in memory) and logs
``eval/return`` over ``--eval-episodes`` episodes.

The critic class is ``--critic`` (ir1, ir2, irk, joint, independent) for either algorithm; the
algorithms' own options are ``--td3bc.*`` and ``--drac.*``, the environments' ``--game.*`` and
``--spread.*``. The module reads the package only inside :func:`train` and :func:`make_data`, so
``--help`` imports no torch.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from marl_lowrank.config import (
    CriticConfig,
    CriticKind,
    DRACConfig,
    GameConfig,
    SpreadConfig,
    TD3BCConfig,
)
from rl_runtime.config import RunConfig, RunOptions

from rl_train.method import UsageError
from rl_train.methods._support import CommandMethod, DerivedMethod

if TYPE_CHECKING:
    from marl_lowrank.data import MultiAgentData
    from rl_runtime.logger import Scalar
    from rl_runtime.run import Run

__all__ = [
    "DATA_METHOD",
    "METHOD",
    "MarlLowRankDataConfig",
    "MarlLowRankTrainConfig",
    "make_data",
    "train",
]

LOG = logging.getLogger("rlworks")

EnvName = Literal["game", "simple-spread"]
Algo = Literal["td3bc", "drac"]


@dataclasses.dataclass(frozen=True)
class MarlLowRankTrainConfig:
    """rl-train marl-lowrank: TD3+BC or DR-AC with an interaction-rank-K critic, offline."""

    env: EnvName = "game"
    """The contextual game of the paper, or mpe2's simple_spread (continuous)."""
    critic: CriticKind = "ir2"
    """Critic class: ir1, ir2, irk (every subset of at most --<algo>.critic.k agents), joint,
    independent."""
    algo: Algo = "td3bc"
    """Decentralised TD3+BC (continuous actions), or DR-AC (the discrete game)."""
    dataset: str = ""
    """Game: a dataset file of rl-train marl-lowrank-data; simple-spread: a local Minari id.
    Empty: generate the dataset in memory from --game.* / --spread.* and --data-seed."""
    data_seed: int = 0
    """Seed of a dataset generated in memory."""
    minari_root: Path | None = None
    """Minari datasets root (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)."""
    game: GameConfig = dataclasses.field(default_factory=GameConfig)
    """The contextual game (and the generated dataset)."""
    spread: SpreadConfig = dataclasses.field(default_factory=SpreadConfig)
    """simple_spread (and the generated dataset)."""
    td3bc: TD3BCConfig = dataclasses.field(default_factory=TD3BCConfig)
    """TD3+BC's options (--algo td3bc)."""
    drac: DRACConfig = dataclasses.field(default_factory=DRACConfig)
    """DR-AC's options (--algo drac)."""
    eval_contexts: int = 1024
    """Game: contexts per evaluation (metrics are exact expectations over them)."""
    run: RunOptions = dataclasses.field(default_factory=RunConfig)
    """Seed, length (gradient steps), evaluation, logging and checkpoint options."""

    def __post_init__(self) -> None:
        if self.eval_contexts < 1:
            raise ValueError(f"--eval-contexts must be >= 1, got {self.eval_contexts}")
        if self.data_seed < 0:
            raise ValueError(f"--data-seed must be >= 0, got {self.data_seed}")


# ----------------------------------------------------------------------------- data


def _load_data(cfg: MarlLowRankTrainConfig, run: Run) -> tuple[MultiAgentData, object]:
    """The dataset (validated against the environment's options) and, for simple_spread, its
    action scale; a dataset that does not fit is a UsageError naming the flag."""
    from marl_lowrank.data import (
        agent_names,
        episodes_to_data,
        load_game_dataset,
        load_minari_multiagent,
        validate,
    )
    from marl_lowrank.game import make_game_dataset, obs_dim
    from marl_lowrank.spread import ACTION_DIM, collect_episodes
    from rl_buffers.offline import ActionScale, DatasetError, DatasetNotFoundError

    try:
        if cfg.env == "game":
            g = cfg.game
            if not cfg.dataset:
                data = make_game_dataset(g, cfg.data_seed)
            else:
                data = load_game_dataset(cfg.dataset)
                for key in ("num_agents", "num_actions", "num_contexts", "context_dim", "sigma"):
                    if data.meta.get(key) != getattr(g, key):
                        raise UsageError(
                            f"--dataset {cfg.dataset}: made with {key} {data.meta.get(key)!r}; "
                            f"pass --game.{key.replace('_', '-')} {data.meta.get(key)!r}"
                        )
            validate(
                data,
                where=f"dataset {cfg.dataset or 'generated'}",
                num_agents=g.num_agents,
                obs_dim=obs_dim(g),
                num_actions=g.num_actions or None,
                action_dim=None if g.num_actions else 1,
            )
            run.log.info(
                "game: %d samples of %d agents from %s behaviour (%s)",
                data.num_samples,
                data.num_agents,
                data.meta.get("behaviour"),
                cfg.dataset or f"generated, seed {cfg.data_seed}",
            )
            return data, None
        s = cfg.spread
        agents = agent_names(s.num_agents)
        if cfg.dataset:
            episodes, scale = load_minari_multiagent(
                cfg.dataset, agents=agents, root=cfg.minari_root
            )
        else:
            episodes = collect_episodes(s, cfg.data_seed)
            scale = ActionScale(
                [[0.0] * ACTION_DIM] * s.num_agents, [[1.0] * ACTION_DIM] * s.num_agents
            )
        data = episodes_to_data(
            episodes,
            agents=agents,
            scale=scale,
            meta={"env": "simple-spread", "behaviour": s.behaviour},
            where=f"dataset {cfg.dataset or 'collected'}",
        )
        run.log.info(
            "simple_spread: %d transitions in %d episodes (%s)",
            data.num_samples,
            len(episodes),
            cfg.dataset or f"collected, {s.behaviour}, seed {cfg.data_seed}",
        )
        return data, scale
    except DatasetNotFoundError as e:
        raise UsageError(f"--dataset {cfg.dataset}: {e} (or pass --minari-root)") from e
    except DatasetError as e:
        raise UsageError(f"--dataset {cfg.dataset or '(generated)'}: {e}") from e


# ----------------------------------------------------------------------------- training


def train(cfg: MarlLowRankTrainConfig) -> Path:
    """Train as ``cfg`` says; returns the run directory."""
    # Imported here, not at the top: the command line (``--help``) needs only the configs.
    import numpy as np
    import torch
    from marl_lowrank.agent import TD3BCAgent
    from marl_lowrank.data import MultiAgentBatches, data_fingerprint
    from marl_lowrank.drac import DRACAgent, behaviour_estimate
    from marl_lowrank.game import action_values, evaluate_actions, mixture_cce_gap, mixture_return
    from marl_lowrank.game import obs_dim as game_obs_dim
    from marl_lowrank.spread import evaluate_policy
    from rl_runtime.offline import train_offline
    from rl_runtime.run import open_run
    from rl_runtime.seeding import derive_seed

    _check(cfg, None)
    seed = cfg.run.seed
    with open_run(METHOD.name, cfg) as run:
        data, scale = _load_data(cfg, run)
        n = data.num_agents
        eval_seed = derive_seed(seed, "eval")
        if cfg.algo == "drac":
            g = cfg.game
            mu = behaviour_estimate(
                data, g.num_contexts, g.num_actions, cfg.drac.behaviour_smoothing
            )
            drac = DRACAgent(
                cfg.drac,
                n,
                g.num_contexts,
                g.num_actions,
                mu,
                device=run.device,
                seed=derive_seed(seed, "agent"),
            )
            values = action_values(g.num_actions)
            batch_size = cfg.drac.batch_size

            def evaluate_drac() -> Mapping[str, Scalar]:
                iterates = drac.iterates()
                return {
                    "return": mixture_return(iterates, values),
                    "cce_gap": mixture_cce_gap(iterates, values),
                    "last_iterate_cce_gap": mixture_cce_gap(iterates[-1:], values),
                    "iterations": iterates.shape[0] if drac.iteration else 0,
                }

            agent, evaluate = drac, evaluate_drac
        else:
            dim = game_obs_dim(cfg.game) if cfg.env == "game" else int(data.obs.shape[-1])
            flat = data.obs.reshape(-1, data.obs.shape[-1])
            td3 = TD3BCAgent(
                cfg.td3bc,
                n,
                dim,
                int(data.action.shape[-1]),
                obs_mean=flat.mean(dim=0),
                obs_std=flat.std(dim=0),
                device=run.device,
                seed=derive_seed(seed, "agent"),
            )
            batch_size = cfg.td3bc.batch_size
            if cfg.env == "game":

                def evaluate_game() -> Mapping[str, Scalar]:
                    return evaluate_actions(
                        cfg.game, td3.act, contexts=cfg.eval_contexts, seed=eval_seed
                    )

                evaluate = evaluate_game
            else:
                from rl_buffers.offline import ActionScale

                assert isinstance(scale, ActionScale)

                def joint_policy(obs: np.ndarray) -> np.ndarray:
                    unit = td3.act(torch.as_tensor(obs, dtype=torch.float32)).cpu().numpy()
                    return scale.to_box(unit)

                def evaluate_spread() -> Mapping[str, Scalar]:
                    return evaluate_policy(
                        cfg.spread, joint_policy, episodes=cfg.run.eval_episodes, seed=eval_seed
                    )

                evaluate = evaluate_spread
            agent = td3
        source = MultiAgentBatches(
            data, batch_size=batch_size, seed=derive_seed(seed, "batches"), device=run.device
        )
        run.log.info("%s with the %s critic on %s (%d agents)", cfg.algo, cfg.critic, cfg.env, n)
        train_offline(
            run,
            agent=agent,
            source=source,
            evaluate=evaluate,
            data_fingerprint=data_fingerprint(data),
        )
        return run.dir


def _check(cfg: MarlLowRankTrainConfig, defaults: MarlLowRankTrainConfig | None = None) -> None:
    """Options that contradict each other."""
    del defaults
    if cfg.td3bc.critic.kind != cfg.critic or cfg.drac.critic.kind != cfg.critic:
        raise UsageError(  # only a resumed run's config.json can hold another
            f"--critic {cfg.critic} differs from the run's critic: a run keeps its critic (start a "
            "new run for another one)"
        )
    if cfg.algo == "drac":
        if cfg.env != "game" or cfg.game.num_actions < 2:
            raise UsageError(
                "--algo drac is for the discrete game: pass --env game --game.num-actions 2 (or "
                "--preset drac)"
            )
        needed = cfg.drac.critic_steps + cfg.drac.iterations
        if cfg.run.total_steps < needed:
            raise UsageError(
                f"--total-steps {cfg.run.total_steps} is shorter than DR-AC's --drac.critic-steps "
                f"+ --drac.iterations = {needed}; pass --total-steps {needed}"
            )
    elif cfg.env == "game" and cfg.game.num_actions:
        raise UsageError(
            f"--algo td3bc needs continuous actions: --game.num-actions 0 (not "
            f"{cfg.game.num_actions}), or --algo drac for the discrete game"
        )
    if cfg.env == "simple-spread" and cfg.algo != "td3bc":
        raise UsageError("--env simple-spread has continuous actions: use --algo td3bc")


def _with_critic(
    first: MarlLowRankTrainConfig, name: str, preset: MarlLowRankTrainConfig
) -> MarlLowRankTrainConfig:
    """The preset with ``--critic`` as both algorithms' critic class."""
    del name
    return dataclasses.replace(
        preset,
        td3bc=dataclasses.replace(
            preset.td3bc, critic=dataclasses.replace(preset.td3bc.critic, kind=first.critic)
        ),
        drac=dataclasses.replace(
            preset.drac, critic=dataclasses.replace(preset.drac.critic, kind=first.critic)
        ),
    )


# The game is one step (discount 0: no bootstrap, so one critic, no clipped double-Q target);
# small term networks and batches keep the N = 50 pair tensor (B x 2,500 x H) cheap on a CPU.
_GAME_CRITIC = CriticConfig(hidden_sizes=(32,), num_critics=1)
_GAME_TD3BC = TD3BCConfig(
    critic=_GAME_CRITIC, discount=0.0, batch_size=64, actor_lr=1e-3, critic_lr=1e-3
)
_GAME_RUN = RunConfig(
    total_steps=1_000,
    eval_every=250,
    eval_episodes=1,
    log_every=50,
    checkpoint_every=250,
)
_DRAC = DRACConfig(critic=CriticConfig(hidden_sizes=(32,), num_critics=1), critic_steps=1_000)
_SPREAD_RUN = RunConfig(
    total_steps=20_000, eval_every=2_000, eval_episodes=10, log_every=500, checkpoint_every=5_000
)

METHOD = DerivedMethod(
    name="marl-lowrank",
    config_type=MarlLowRankTrainConfig,
    presets={
        # First = default: the paper's 50-agent game, TD3+BC, 10k uniform samples.
        "game": MarlLowRankTrainConfig(td3bc=_GAME_TD3BC, run=_GAME_RUN),
        # DR-AC on the discrete game (two actions, -1 and +1), exact CCE gap.
        "drac": MarlLowRankTrainConfig(
            algo="drac",
            game=GameConfig(num_actions=2, behaviour="biased"),
            drac=_DRAC,
            run=dataclasses.replace(
                _GAME_RUN,
                total_steps=_DRAC.critic_steps + _DRAC.iterations,
                eval_every=_DRAC.iterations // 2,
                checkpoint_every=_DRAC.iterations // 2,
            ),
        ),
        # simple_spread from 200 noisy scripted episodes, TD3+BC's own defaults.
        "spread": MarlLowRankTrainConfig(env="simple-spread", run=_SPREAD_RUN),
    },
    train=train,
    description=(__doc__ or "").split("\n\n")[0],
    derive=_with_critic,
    fixed={CriticConfig: frozenset({"kind"})},
    check=_check,
)


# ----------------------------------------------------------------------------- datasets


@dataclasses.dataclass(frozen=True)
class MarlLowRankDataConfig:
    """rl-train marl-lowrank-data: write an offline dataset for rl-train marl-lowrank."""

    env: EnvName = "game"
    """game: a dataset file (--output); simple-spread: a Minari dataset (--dataset-id)."""
    output: Path = Path("data/marl-lowrank-game.pt")
    """Game: the file to write (atomically)."""
    dataset_id: str = "rlworks/simple-spread/noisy-v0"
    """simple-spread: the Minari id to write."""
    minari_root: Path | None = None
    """Minari datasets root (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)."""
    game: GameConfig = dataclasses.field(default_factory=GameConfig)
    """The game and its behaviour policy and size."""
    spread: SpreadConfig = dataclasses.field(default_factory=SpreadConfig)
    """simple_spread and its behaviour policy and number of episodes."""
    seed: int = 0
    """Seed of the data."""
    overwrite: bool = False
    """Replace an existing file or dataset."""


def make_data(cfg: MarlLowRankDataConfig) -> Path:
    """Write the dataset; returns its path.

    Raises:
        UsageError: the target exists and --overwrite is not given.
    """
    from marl_lowrank.data import save_game_dataset, save_minari_multiagent

    if cfg.env == "game":
        from marl_lowrank.game import make_game_dataset

        if cfg.output.exists() and not cfg.overwrite:
            raise UsageError(
                f"--output {cfg.output} already exists; pass --overwrite to replace it"
            )
        data = make_game_dataset(cfg.game, cfg.seed)
        save_game_dataset(data, cfg.output, overwrite=cfg.overwrite)
        print(
            f"saved {data.num_samples} samples of the {data.num_agents}-agent game "
            f"({cfg.game.behaviour} behaviour) to {cfg.output}"
        )
        return cfg.output
    import gymnasium as gym
    import numpy as np
    from marl_lowrank.data import agent_names
    from marl_lowrank.spread import ACTION_DIM, collect_episodes, obs_dim
    from rl_buffers.offline import minari_dataset_dir

    target = minari_dataset_dir(cfg.dataset_id, cfg.minari_root)
    exists = UsageError(
        f"--dataset-id {cfg.dataset_id}: {target} already exists; pass --overwrite to replace it"
    )
    if target.exists() and not cfg.overwrite:
        raise exists
    s = cfg.spread
    n = s.num_agents
    episodes = collect_episodes(s, cfg.seed)
    try:
        path = save_minari_multiagent(
            episodes,
            cfg.dataset_id,
            agents=agent_names(n),
            observation_space=gym.spaces.Box(-np.inf, np.inf, (n, obs_dim(n)), np.float32),
            action_space=gym.spaces.Box(0.0, 1.0, (n, ACTION_DIM), np.float32),
            description=f"mpe2 simple_spread_v3, N={n}, max_cycles={s.max_cycles}, "
            f"local_ratio={s.local_ratio}, continuous actions; behaviour {s.behaviour}",
            algorithm_name=f"scripted-{s.behaviour}",
            root=cfg.minari_root,
            overwrite=cfg.overwrite,
        )
    except FileExistsError as e:
        raise exists from e
    returns = [float(ep.rewards.mean(axis=1).sum()) for ep in episodes]
    print(
        f"saved {len(episodes)} simple_spread episodes ({s.behaviour}) to {path}: return "
        f"{np.mean(returns):.2f} ± {np.std(returns):.2f}"
    )
    return path


DATA_METHOD = CommandMethod(
    name="marl-lowrank-data",
    config_type=MarlLowRankDataConfig,
    presets={"default": MarlLowRankDataConfig()},
    train=make_data,
    description="Write an offline dataset (the game's, or simple_spread's as Minari) for "
    "rl-train marl-lowrank.",
)
