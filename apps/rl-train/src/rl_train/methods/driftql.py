"""DriftQL, FQL and BC offline (``rl-train driftql``) on OGBench ``.npz`` or Minari datasets.

``rl-train driftql --task cube-single --dataset data/cube-single-play-v0.npz --algo fql`` trains
FQL with its published cube-single settings (``driftql.task_preset``) on that file, with rewards
relabelled for OGBench's task ``--task-id`` and evaluated on OGBench's own single-task
environment (``eval/success``). A dataset that is not a ``.npz`` path is a local Minari id;
evaluation then runs the dataset's environment and logs ``eval/normalized_score`` from its
reference scores. ``--degrade-p 0.3`` trains on a degraded copy (a fraction of the actions
replaced, see ``driftql.data.degrade``).

The agent's options are ``driftql.AgentConfig``'s own fields (``--agent.actor.alpha``,
``--agent.drift.temperature``, ``--agent.critic.hidden-sizes``, ``--agent.optim.batch-size``,
...), whose defaults are the task's published settings: ``rl-train driftql --task hopper --help``
shows them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from driftql.agent import make_agent
from driftql.config import AgentConfig, Algo, resolve_task, task_preset
from driftql.data import (
    DegradeMode,
    dataset_fingerprint,
    degrade,
    load_minari_episodes,
    make_offline_buffer,
    ogbench_episodes,
    ogbench_relabel,
    read_ogbench_npz,
)
from driftql.evaluation import (
    make_ogbench_env,
    minari_reference_scores,
    normalized_score,
    ogbench_env_id,
    ogbench_success,
)
from rl_buffers import io
from rl_buffers.offline import DatasetError, Episode, minari_dataset_dir
from rl_runtime.config import RunConfig, RunOptions, config_changes, to_jsonable
from rl_runtime.evaluation import agent_policy, evaluate
from rl_runtime.logger import Scalar
from rl_runtime.offline import SeededBatches, train_offline
from rl_runtime.run import Run, open_run
from rl_runtime.seeding import derive_seed

from rl_train.method import Method, UsageError

__all__ = ["METHOD", "DriftQLTrainConfig", "TaskMethod", "train"]


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
    """OGBench single-task id 1..5 for rewards and evaluation; 0 is the environment's default
    task (OGBench's singletask-v0: task 2 for cube and scene)."""
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


Evaluator = Callable[[], Mapping[str, Scalar]]


def _ogbench_data(
    cfg: DriftQLTrainConfig, run: Run, agent_box: list[Any]
) -> tuple[list[Episode], Evaluator, Any]:
    """Relabelled episodes, and a success-rate evaluator on OGBench's own environment."""
    env_id = ogbench_env_id(cfg.task_name, cfg.task_id)
    raw = read_ogbench_npz(cfg.dataset)  # a bad file fails before the slow environment build
    env = make_ogbench_env(cfg.task_name, cfg.task_id)
    rewards, masks = ogbench_relabel(raw, env, env_id)
    episodes = ogbench_episodes(raw, rewards=rewards, masks=masks, where=f"OGBench {cfg.dataset}")
    run.log.info("OGBench %s: rewards relabelled for %s", cfg.dataset, env_id)
    rc = run.run_cfg

    def evaluate_success() -> dict[str, Scalar]:
        policy = agent_policy(agent_box[0], env.action_space, run.device)
        # Episode i starts from episode_seed(seed, "eval", i), as every evaluation.
        successes, returns, lengths = ogbench_success(
            policy, env, episodes=rc.eval_episodes, seed=rc.seed
        )
        return {
            "eval/success": float(np.mean(successes)),
            "eval/return": float(np.mean(returns)),
            "eval/length": float(np.mean(lengths)),
        }

    return episodes, evaluate_success, env


def _minari_data(
    cfg: DriftQLTrainConfig, run: Run, agent_box: list[Any]
) -> tuple[list[Episode], Evaluator, Any]:
    """Minari episodes, and a return / normalised-score evaluator on the dataset's environment."""
    import minari

    episodes = load_minari_episodes(cfg.dataset, root=cfg.minari_root)
    data_path = minari_dataset_dir(cfg.dataset, cfg.minari_root) / "data"
    env = minari.MinariDataset(data_path).recover_environment(eval_env=True)
    try:
        ref: tuple[float, float] | None = minari_reference_scores(cfg.dataset, root=cfg.minari_root)
    except DatasetError as e:
        run.log.warning("%s; logging eval/return only", e)
        ref = None
    rc = run.run_cfg

    def evaluate_score() -> dict[str, Scalar]:
        policy = agent_policy(agent_box[0], env.action_space, run.device)
        result = evaluate(policy, env, episodes=rc.eval_episodes, seed=rc.seed)
        metrics: dict[str, Scalar] = dict(result.metrics())
        if ref is not None:
            metrics["eval/normalized_score"] = float(normalized_score(result.mean_return, *ref))
        return metrics

    return episodes, evaluate_score, env


def train(cfg: DriftQLTrainConfig) -> Path:
    """Train DriftQL / FQL / BC as ``cfg`` says; returns the run directory."""
    if not cfg.dataset:
        raise UsageError("--dataset is required: an OGBench .npz path or a local Minari id")
    if cfg.is_ogbench and not Path(cfg.dataset).is_file():
        raise UsageError(f"--dataset {cfg.dataset}: no such file")
    _check_algo(cfg)
    agent_cfg = cfg.agent
    seed = cfg.run.seed
    with open_run(METHOD.name, cfg) as run:
        # Data and evaluation. The evaluator reads the agent through a box filled below.
        agent_box: list[Any] = []
        load = _ogbench_data if cfg.is_ogbench else _minari_data
        episodes, evaluator, eval_env = load(cfg, run, agent_box)
        try:
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
            agent_box.append(agent)
            source = SeededBatches(
                buffer, batch_size=agent_cfg.optim.batch_size, seed=derive_seed(seed, "batches")
            )
            with io.atomic_write(run.dir / "agent_config.json", "w") as f:
                json.dump(agent_cfg.to_dict(), f, indent=2)

            train_offline(
                run,
                agent=agent,
                source=source,
                evaluate=evaluator,
                data_fingerprint=dataset_fingerprint(episodes),
            )
        finally:
            eval_env.close()
        return run.dir


def _check_algo(cfg: DriftQLTrainConfig) -> None:
    if cfg.agent.algo != cfg.algo:
        raise UsageError(
            f"--agent.algo {cfg.agent.algo} differs from --algo {cfg.algo}: choose the algorithm "
            "with --algo (it also picks the task's published settings)"
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


@dataclasses.dataclass(frozen=True)
class TaskMethod(Method[DriftQLTrainConfig]):
    """``rl-train driftql``: the agent's defaults are the task's published settings.

    The command line is read twice: first for the task and the algorithm (``--task``,
    ``--dataset``, ``--algo``), then again with ``driftql.task_preset(task_name, algo)``, changed
    by the preset's :attr:`agent_changes`, as the defaults of ``--agent.*``; so every
    ``--agent.*`` option applies on top of the published settings, and ``--help`` shows them.
    ``--resume DIR`` alone keeps the run's recorded agent.
    """

    agent_changes: Mapping[str, Callable[[AgentConfig], AgentConfig]] = dataclasses.field(
        default_factory=dict[str, Callable[[AgentConfig], AgentConfig]]
    )
    """Preset name -> its change to the task's settings (a preset not listed keeps them)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = set(self.agent_changes) - set(self.presets)
        if unknown:
            raise ValueError(f"method {self.name!r}: agent_changes for unknown presets {unknown}")

    def parse(self, argv: Sequence[str]) -> DriftQLTrainConfig:
        """Build the config from ``[--preset NAME] [overrides...]`` (see the class doc).

        Raises:
            UsageError: as :meth:`Method.parse`, or ``--agent.algo`` differs from ``--algo``.
            SystemExit: from tyro, for ``--help`` or a malformed option.
        """
        argv = list(argv)
        try:
            first = super().parse([arg for arg in argv if arg not in ("-h", "--help")])
        except ValueError as e:  # a config.json that does not fit (--resume of an older run)
            if isinstance(e, UsageError):
                raise
            raise UsageError(str(e)) from e
        with_preset = any(arg == "--preset" or arg.startswith("--preset=") for arg in argv)
        if first.run.resume is not None and not with_preset:
            cfg = super().parse(argv)  # the run's config.json gives every default
        else:
            published = task_preset(first.task_name, first.algo)
            presets = {
                name: dataclasses.replace(
                    preset, agent=self.agent_changes.get(name, _same)(published)
                )
                for name, preset in self.presets.items()
            }
            plain = Method(self.name, self.config_type, presets, self.train, self.description)
            cfg = plain.parse(argv)
        _check_algo(cfg)
        return cfg


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

METHOD = TaskMethod(
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
    agent_changes={"laptop": _small_networks},
)
