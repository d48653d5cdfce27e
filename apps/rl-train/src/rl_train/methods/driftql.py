"""DriftQL, FQL and BC offline (``rl-train driftql``) on OGBench ``.npz`` or Minari datasets.

``rl-train driftql --task cube-single --dataset data/cube-single-play-v0.npz --algo fql`` trains
FQL with its published cube-single settings (``driftql.task_preset``) on that file, with rewards
relabelled for OGBench's task ``--task-id`` and evaluated on OGBench's own single-task
environment (``eval/success``). A dataset that is not a ``.npz`` path is a local Minari id;
evaluation then runs the environment the dataset records (built only if gymnasium has it
registered under the same id and entry point, see ``rl_buffers.offline.make_minari_env``; else
``--eval-env ID``) and logs ``eval/normalized_score`` from its reference scores. The dataset is
checked against the evaluation environment before training (observation and action sizes,
action box), and its actions are mapped from their box into the agents' ``[-1, 1]`` and back at
the environment (``driftql.data.fit_to_env``, ``driftql.evaluation.unit_action_env``).
``--degrade-p 0.3`` trains on a degraded copy (a fraction of the actions replaced, see
``driftql.data.degrade``).

The agent's options are ``driftql.AgentConfig``'s own fields (``--agent.actor.alpha``,
``--agent.drift.temperature``, ``--agent.critic.hidden-sizes``, ``--agent.optim.batch-size``,
...), whose defaults are the task's published settings: ``rl-train driftql --task hopper --help``
shows them. The algorithm is ``--algo`` (the agent's own ``algo`` field is not an option).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from driftql.config import AgentConfig, Algo, DegradeMode, resolve_task, task_preset
from rl_runtime.config import RunConfig, RunOptions, config_changes, to_jsonable

from rl_train.method import UsageError
from rl_train.methods._support import DerivedMethod, quiet_mujoco

if TYPE_CHECKING:
    import gymnasium as gym
    from rl_buffers.offline import Episode
    from rl_runtime.evaluation import Policy
    from rl_runtime.logger import Scalar
    from rl_runtime.run import Run

__all__ = ["METHOD", "DriftQLTrainConfig", "train"]

LOG = logging.getLogger("rlworks")


@dataclasses.dataclass(frozen=True)
class DriftQLTrainConfig:
    """rl-train driftql: DriftQL, or the FQL / BC baselines with --algo."""

    task: str = ""
    """Task whose published hyperparameters are used (driftql.TASK_PRESETS: cube-single,
    puzzle-3x3, scene, hopper, ...); for OGBench data also the environment family evaluated.
    Empty: read from the dataset's name (cube-single-play-v0.npz -> cube-single,
    mujoco/hopper/medium-v0 -> hopper-medium); a dataset with no published entry gets the
    method's defaults."""
    dataset: str = ""
    """An OGBench .npz file (OGBench's layout, e.g. from `rl-train driftql-data`) or a local
    Minari dataset id."""
    algo: Algo = "driftql"
    """DriftQL, FQL (flow BC + one-step policy) or plain BC."""
    task_id: int = 0
    """OGBench data: single-task id 1..5 for rewards and evaluation; 0 is the environment's
    default task (OGBench's singletask-v0: task 2 for cube and scene)."""
    eval_env: str = ""
    """Minari data: the Gymnasium id to evaluate on. Empty: the environment the dataset
    records, built only if gymnasium has it registered under the same id and entry point."""
    agent: AgentConfig = dataclasses.field(default_factory=AgentConfig)
    """The agent's hyperparameters (driftql.AgentConfig). On the command line their defaults are
    the task's published settings, driftql.task_preset(task_name, algo), with the preset's
    changes on top (laptop: 256 256 networks); --agent.* options change them."""
    degrade_p: float = 0.0
    """Fraction of dataset actions replaced before training (0: the clean data)."""
    degrade_mode: DegradeMode = "uniform"
    """How a replaced action is drawn: uniform in [-1, 1], or the data action plus Gaussian noise."""
    degrade_noise_std: float = 0.3
    """Noise standard deviation for --degrade-mode gaussian."""
    minari_root: Path | None = None
    """Minari datasets root (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)."""
    run: RunOptions = dataclasses.field(default_factory=RunConfig)
    """Seed, length (gradient steps), evaluation, logging and checkpoint options."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.degrade_p <= 1.0:
            raise ValueError(f"--degrade-p must be in [0, 1], got {self.degrade_p}")
        if not 0 <= self.task_id <= 5:
            raise ValueError(f"--task-id must be 0..5, got {self.task_id}")

    @property
    def env(self) -> str:
        """The dataset's name (run directories are <root>/driftql/<dataset>/<seed>-<name>)."""
        if self.is_ogbench:
            return Path(self.dataset).stem
        return self.dataset or "no-dataset"

    @property
    def is_ogbench(self) -> bool:
        """The dataset is an OGBench .npz file."""
        return self.dataset.endswith(".npz")

    @property
    def task_name(self) -> str:
        """--task, else the dataset's task (:func:`driftql.config.resolve_task`), else the
        dataset's own name (no published entry: the method's defaults; for OGBench the
        environment family is then read from the file name)."""
        if self.task:
            return self.task
        name = Path(self.dataset).stem if self.is_ogbench else self.dataset
        return resolve_task(name) or name


class _Data(NamedTuple):
    """A dataset and where it is evaluated."""

    episodes: list[Episode]
    """The dataset, in its own action units."""
    env: gym.Env[Any, Any]
    """The evaluation environment, in its own action units."""
    env_id: str
    """The evaluation environment's id."""
    action_space: Any
    """The action space the dataset records (None: it records none)."""
    evaluate: Callable[[Policy, gym.Env[Any, Any]], dict[str, Scalar]]
    """``(policy, env) -> eval/ metrics``."""


def _ogbench_data(cfg: DriftQLTrainConfig, run: Run) -> _Data:
    """Relabelled episodes, and a success-rate evaluator on OGBench's own environment."""
    import gymnasium as gym
    import numpy as np
    from driftql.data import ogbench_episodes, ogbench_relabel, read_ogbench_npz
    from driftql.evaluation import make_ogbench_env, ogbench_env_id, ogbench_success

    env_id = ogbench_env_id(cfg.task_name, cfg.task_id)
    raw = read_ogbench_npz(cfg.dataset)  # a bad file fails before the slow environment build
    if "rewards" in raw:
        run.log.info(
            "OGBench %s: its 'rewards' key is not used; rewards come from the task (%s)",
            cfg.dataset,
            env_id,
        )
    try:
        env = make_ogbench_env(cfg.task_name, cfg.task_id)
    except gym.error.Error as e:
        raise UsageError(
            f"--task {cfg.task_name}: OGBench has no environment {env_id} ({e}); name the "
            "environment family with --task (cube-single, puzzle-3x3, scene, ...)"
        ) from e
    rewards, masks = ogbench_relabel(raw, env, env_id)
    episodes = ogbench_episodes(raw, rewards=rewards, masks=masks, where=f"OGBench {cfg.dataset}")
    run.log.info("OGBench %s: rewards relabelled for %s", cfg.dataset, env_id)
    rc = run.run_cfg

    def evaluate_success(policy: Policy, env: gym.Env[Any, Any]) -> dict[str, Scalar]:
        # Episode i starts from episode_seed(seed, "eval", i), as every evaluation.
        successes, returns, lengths = ogbench_success(
            policy, env, episodes=rc.eval_episodes, seed=rc.seed
        )
        return {
            "eval/success": float(np.mean(successes)),
            "eval/return": float(np.mean(returns)),
            "eval/length": float(np.mean(lengths)),
        }

    return _Data(episodes, env, env_id, None, evaluate_success)


def _minari_data(cfg: DriftQLTrainConfig, run: Run) -> _Data:
    """Minari episodes, and a return / normalised-score evaluator on the dataset's environment
    (or ``--eval-env``)."""
    from driftql.data import load_minari_episodes
    from driftql.evaluation import minari_reference_scores, normalized_score
    from rl_buffers.offline import DatasetError, make_minari_env, minari_spaces
    from rl_runtime.evaluation import evaluate
    from rl_runtime.run import make_env_checked

    episodes = load_minari_episodes(cfg.dataset, root=cfg.minari_root)
    _, action_space = minari_spaces(cfg.dataset, root=cfg.minari_root)
    if cfg.eval_env:
        env = make_env_checked(cfg.eval_env, flag="--eval-env")
    else:  # the dataset's metadata is data: nothing it names is imported or called
        env = make_minari_env(cfg.dataset, root=cfg.minari_root, flag="--eval-env ID")
    env_id = env.spec.id if env.spec is not None else cfg.eval_env
    try:
        ref: tuple[float, float] | None = minari_reference_scores(cfg.dataset, root=cfg.minari_root)
    except DatasetError as e:
        run.log.warning("%s; logging eval/return only", e)
        ref = None
    rc = run.run_cfg

    def evaluate_score(policy: Policy, env: gym.Env[Any, Any]) -> dict[str, Scalar]:
        result = evaluate(policy, env, episodes=rc.eval_episodes, seed=rc.seed)
        metrics: dict[str, Scalar] = dict(result.metrics())
        if ref is not None:
            metrics["eval/normalized_score"] = float(normalized_score(result.mean_return, *ref))
        return metrics

    return _Data(episodes, env, env_id, action_space, evaluate_score)


def _load(cfg: DriftQLTrainConfig, run: Run) -> _Data:
    """The dataset and its evaluation; a dataset that cannot be used is a UsageError naming
    --dataset (and the other flag that would fix it)."""
    from rl_buffers.offline import DatasetError, DatasetNotFoundError

    try:
        return _ogbench_data(cfg, run) if cfg.is_ogbench else _minari_data(cfg, run)
    except DatasetNotFoundError as e:
        raise UsageError(f"--dataset {cfg.dataset}: {e} (or pass --minari-root)") from e
    except DatasetError as e:
        raise UsageError(f"--dataset {cfg.dataset}: {e}") from e


def train(cfg: DriftQLTrainConfig) -> Path:
    """Train DriftQL / FQL / BC as ``cfg`` says; returns the run directory."""
    # Imported here, not at the top: the command line (``--help``) needs only the configs.
    import torch
    from driftql.agent import make_agent
    from driftql.data import dataset_fingerprint, degrade, fit_to_env, make_offline_buffer
    from driftql.evaluation import unit_action_env
    from rl_buffers import io
    from rl_buffers.offline import DatasetError
    from rl_runtime.evaluation import agent_policy
    from rl_runtime.offline import SeededBatches, train_offline
    from rl_runtime.run import open_run
    from rl_runtime.seeding import derive_seed

    if not cfg.dataset:
        raise UsageError("--dataset is required: an OGBench .npz path or a local Minari id")
    if cfg.is_ogbench and not Path(cfg.dataset).is_file():
        raise UsageError(f"--dataset {cfg.dataset}: no such file")
    _check(cfg, None)
    quiet_mujoco(LOG)
    agent_cfg = cfg.agent
    seed = cfg.run.seed
    with open_run(METHOD.name, cfg) as run:
        data = _load(cfg, run)
        try:
            # The dataset against its evaluation environment, before any training: sizes and
            # action box; the agents act in [-1, 1], the data and the env in the env's box.
            try:
                scale = fit_to_env(
                    data.episodes,
                    observation_space=data.env.observation_space,
                    action_space=data.env.action_space,
                    dataset_action_space=data.action_space,
                    dataset=cfg.dataset,
                    env_id=data.env_id,
                )
                episodes = scale.episodes_to_unit(data.episodes, where=cfg.dataset)
            except DatasetError as e:
                flag = "--task" if cfg.is_ogbench else "--eval-env"
                raise UsageError(f"--dataset: {e}; pass the dataset's environment ({flag})") from e
            eval_env = unit_action_env(data.env, scale)
            if not scale.is_identity:
                run.log.info(
                    "actions mapped from %s's box %s into [-1, 1], and back at %s",
                    cfg.dataset,
                    scale.describe(),
                    data.env_id,
                )
            if cfg.degrade_p > 0:
                gen = torch.Generator().manual_seed(derive_seed(seed, "degrade"))
                episodes = degrade(
                    episodes,
                    cfg.degrade_p,
                    cfg.degrade_mode,
                    gen,
                    noise_std=cfg.degrade_noise_std,
                )
                run.log.info(
                    "degraded %.0f%% of the actions (%s)", 100 * cfg.degrade_p, cfg.degrade_mode
                )
            buffer = make_offline_buffer(episodes, device=run.device)
            obs_dim = buffer.spec.obs_shape[0]
            action_dim = buffer.spec.action_shape[0]
            key = resolve_task(cfg.task_name)
            published = to_jsonable(task_preset(cfg.task_name, cfg.algo))
            changed = config_changes(published, to_jsonable(agent_cfg))
            run.log.info(
                "%d transitions in %d episodes (obs %d, action %d); %s with %s%s",
                len(buffer),
                len(episodes),
                obs_dim,
                action_dim,
                agent_cfg.algo,
                f"the published {key} settings" if key else "the method's default settings",
                "".join(f"; {c.key} {c.new!r} (not {c.old!r})" for c in changed),
            )

            # Agent, batches, and the record of the resolved hyperparameters.
            agent = make_agent(
                agent_cfg, obs_dim, action_dim, device=run.device, seed=derive_seed(seed, "agent")
            )
            source = SeededBatches(
                buffer, batch_size=agent_cfg.optim.batch_size, seed=derive_seed(seed, "batches")
            )
            with io.atomic_write(run.dir / "agent_config.json", "w") as f:
                json.dump(agent_cfg.to_dict(), f, indent=2)

            def evaluator() -> Mapping[str, Scalar]:
                policy = agent_policy(agent, eval_env.action_space, run.device)
                return data.evaluate(policy, eval_env)

            train_offline(
                run,
                agent=agent,
                source=source,
                evaluate=evaluator,
                data_fingerprint=dataset_fingerprint(episodes),
            )
        finally:
            data.env.close()
        return run.dir


def _check(cfg: DriftQLTrainConfig, defaults: DriftQLTrainConfig | None = None) -> None:
    """Options that contradict each other, or that this dataset would ignore."""
    del defaults
    if cfg.agent.algo != cfg.algo:  # only a resumed run's config.json can hold another
        raise UsageError(
            f"--algo {cfg.algo} differs from the run's algorithm {cfg.agent.algo}: a run keeps "
            "its algorithm (start a new run for another one)"
        )
    if cfg.is_ogbench and cfg.eval_env:
        raise UsageError(
            f"--eval-env is for Minari data; OGBench data is evaluated on OGBench's task "
            f"environment (--task, --task-id), not {cfg.eval_env}"
        )
    if cfg.dataset and not cfg.is_ogbench and cfg.task_id != 0:
        raise UsageError(
            f"--task-id {cfg.task_id} is for OGBench data (an .npz --dataset); a Minari dataset "
            "has no task ids"
        )


def _small_networks(agent: AgentConfig) -> AgentConfig:
    """256 256 actor and critic networks instead of the paper's 512 x 4."""
    return dataclasses.replace(
        agent,
        actor=dataclasses.replace(agent.actor, hidden_sizes=(256, 256)),
        critic=dataclasses.replace(agent.critic, hidden_sizes=(256, 256)),
    )


def _same(agent: AgentConfig) -> AgentConfig:
    return agent


def _preset(total: int, eval_every: int, episodes: int) -> DriftQLTrainConfig:
    """A schedule; the task's settings come from --task or the dataset's name."""
    return DriftQLTrainConfig(
        run=RunConfig(
            total_steps=total,
            eval_every=eval_every,
            eval_episodes=episodes,
            log_every=min(5_000, eval_every),
            checkpoint_every=eval_every,
        ),
    )


_LAPTOP = _preset(20_000, 5_000, 10)
_AGENT_CHANGES: Mapping[str, Callable[[AgentConfig], AgentConfig]] = {"laptop": _small_networks}
"""Preset name -> its change to the task's published agent (a preset not listed keeps it)."""


def _published(
    first: DriftQLTrainConfig, name: str, preset: DriftQLTrainConfig
) -> DriftQLTrainConfig:
    """The preset with the task's published agent: the command line is read once for the task
    and the algorithm (``--task``, ``--dataset``, ``--algo``), then again with
    ``driftql.task_preset(task_name, algo)``, changed by the preset (laptop: 256 256 networks),
    as the defaults of ``--agent.*``; so every ``--agent.*`` option applies on top of the
    published settings, and ``--help`` shows them. ``--resume DIR`` alone keeps the run's
    recorded agent."""
    agent = _AGENT_CHANGES.get(name, _same)(task_preset(first.task_name, first.algo))
    return dataclasses.replace(preset, agent=agent)


METHOD = DerivedMethod(
    name="driftql",
    config_type=DriftQLTrainConfig,
    presets={
        # The paper's OGBench schedule: 1M gradient steps, 50 evaluation episodes every 100K.
        "ogbench": _preset(1_000_000, 100_000, 50),
        # The paper's D4RL schedule (500K steps, evaluated every 100K), here on Minari data.
        "minari": _preset(500_000, 100_000, 10),
        # Small networks and a short run: learns something on a CPU in minutes.
        "laptop": dataclasses.replace(_LAPTOP, agent=_small_networks(_LAPTOP.agent)),
    },
    train=train,
    description=(__doc__ or "").split("\n\n")[0],
    derive=_published,
    fixed={AgentConfig: frozenset({"algo"})},
    check=_check,
)
