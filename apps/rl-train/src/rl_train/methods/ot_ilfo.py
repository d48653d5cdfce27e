"""Imitation from observation with optimal-transport rewards (``rl-train ot-ilfo``), and the
demonstrations it learns from (``rl-train ot-ilfo-demos``).

``ot-ilfo`` learns from expert STATE trajectories only (a Minari dataset written by
``ot-ilfo-demos``): at the end of each training episode the episode's rewards are the
optimal-transport rewards against one expert trajectory drawn at random, and the episode enters
the learner's replay buffer with them (``ot_ilfo.learners.RelabelledReplay``). The environment's
reward is never learned from; it is logged as ``train/episode_return`` and ``eval/return`` (the
true return). ``--learner td3`` is the paper's learner (``ot_ilfo.learners.make_td3_learner``:
TD3 with the time-to-horizon input, inputs normalised by the expert's states); ``--learner mrq``
feeds the same rewards to MR.Q (``mrq_drq.learner.MRQLearner``), unchanged, to show that the
reward does not care which off-policy learner maximises it.

``ot-ilfo-demos`` rolls out an expert, either a scripted controller (``--scripted``) or the
newest good checkpoint of one of this project's runs (``--expert RUN_DIR``, an ``mrq-drq`` run
or an ``ot-ilfo --learner td3`` run, read without writing to it, so it may still be training),
and saves its states as a Minari dataset. Both subcommands live in this module: the registry
reads ``METHOD`` for ``ot-ilfo`` and ``DEMOS_METHOD`` for ``ot-ilfo-demos``.

One option per setting: the environment is ``--env`` (MR.Q's ``env`` follows it and is no
option), random actions ``--random-steps`` (not MR.Q's schedule), the run's length the run
options, TD3's horizon the environment's episode length. The options of one learner
(``--td3.*``, ``--batch-size``, ``--buffer-capacity`` for TD3; ``--mrq.*``,
``--mrq-time-input`` for MR.Q) are an error with the other, not ignored.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mrq_drq import MRQConfig
from mrq_drq import config as mrq_presets
from mrq_drq.config import EnvConfig, ScheduleConfig
from ot_ilfo.config import RewardConfig, TD3Config
from ot_ilfo.scripted import SCRIPTED
from rl_runtime.config import RunConfig, RunOptions, from_jsonable

from rl_train.method import UsageError
from rl_train.methods._support import CommandMethod, DerivedMethod, quiet_mujoco

if TYPE_CHECKING:
    import gymnasium as gym
    from mrq_drq.learner import MRQLearner
    from ot_ilfo.learners import TD3Learner
    from ot_ilfo.relabel import EpisodeStats
    from rl_runtime.run import Run
    from torch import Tensor

__all__ = [
    "DEMOS_METHOD",
    "METHOD",
    "OTILfODemosConfig",
    "OTILfOTrainConfig",
    "make_demos",
    "train",
]

LOG = logging.getLogger("rlworks")
Learner = Literal["td3", "mrq"]
Scripted = Literal["pendulum-swingup"]


@dataclasses.dataclass(frozen=True)
class OTILfOTrainConfig:
    """rl-train ot-ilfo: imitation from action-free demonstrations with OT rewards."""

    env: str = "Pendulum-v1"
    """Gymnasium id (flat Box observations, Box actions)."""
    demos: str = "rlworks/pendulum-v1/swingup-v0"
    """Minari dataset id of the expert state trajectories (made by `rl-train ot-ilfo-demos`)."""
    minari_root: Path | None = None
    """Minari datasets root; None: $MINARI_DATASETS_PATH or ~/.minari/datasets."""
    num_demos: int = 1
    """Expert trajectories used (the first N of the dataset); the paper's headline uses 1."""
    learner: Learner = "td3"
    """The paper's TD3, or MR.Q fed the same rewards."""
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)
    """The optimal-transport reward (defaults: the paper's recipe)."""
    td3: TD3Config = dataclasses.field(default_factory=TD3Config)
    """With --learner td3 (its horizon is the environment's episode length)."""
    mrq: MRQConfig = dataclasses.field(default_factory=lambda: mrq_presets.tiny("Pendulum-v1"))
    """With --learner mrq: networks, replay and the training schedule (its environment is
    --env's, random actions are --random-steps)."""
    mrq_time_input: bool = False
    """With --learner mrq: append the time-to-horizon entry (T - t) / T to MR.Q's observation,
    as the paper's TD3 has (off: MR.Q as published)."""
    batch_size: int = 100
    """TD3 batch size (MR.Q uses mrq.replay.batch_size)."""
    buffer_capacity: int = 1_000_000
    """TD3 replay capacity (MR.Q uses mrq.replay.capacity)."""
    random_steps: int = 10_000
    """Uniformly random actions first (the paper: 10k); updates start after them, and never
    before the first episode has been relabelled into the buffer."""
    run: RunOptions = dataclasses.field(default_factory=RunConfig)
    """Seed, length, evaluation, logging and checkpoint options."""

    @property
    def time_input(self) -> bool:
        """The learner's observation ends with the time-to-horizon entry."""
        if self.learner == "td3":
            return self.td3.time_input
        return self.mrq_time_input

    def __post_init__(self) -> None:
        for name in ("num_demos", "batch_size", "buffer_capacity"):
            if getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be >= 1, got {getattr(self, name)}")
        if self.random_steps < 0:
            raise ValueError(f"--random-steps must be >= 0, got {self.random_steps}")


def _env_horizon(env: gym.Env[Any, Any]) -> int:
    horizon = env.spec.max_episode_steps if env.spec is not None else None
    if horizon is None:
        raise ValueError(f"{env}: no max_episode_steps; the OT reward needs episodes that end")
    return int(horizon)


def _make_envs(cfg: OTILfOTrainConfig, seed: int) -> tuple[gym.Env[Any, Any], gym.Env[Any, Any]]:
    """MR.Q's Gym preprocessing (float32, actions in [-1, 1]), then the time entry if the
    learner takes it (TD3 by default)."""
    from mrq_drq import make_env
    from ot_ilfo.envs import TimeToHorizon
    from rl_runtime.seeding import derive_seed

    env_cfg = EnvConfig(suite="gym", env_id=cfg.env)
    envs = []
    for stream in ("env", "eval_env"):
        env = make_env(env_cfg, seed=derive_seed(seed, stream))
        if cfg.time_input:
            env = TimeToHorizon(env, _env_horizon(env))
        envs.append(env)
    return envs[0], envs[1]


class _EpisodeLog:
    """``on_episode`` of the relabelled replay: each episode's OT statistics as metrics, and a
    count of the solves that warned (the first warning itself is shown once, by the store)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.episodes = 0
        self.warned = 0

    def __call__(self, step: int, stats: EpisodeStats) -> None:
        self.episodes += 1
        self.warned += bool(stats.warnings)
        self.run.logger.log(
            step,
            {
                "train/ot_return": stats.ot_return,
                "train/ot_transport_cost": stats.transport_cost,
                "train/ot_converged": float(stats.converged),
                "train/ot_expert_index": float(stats.expert_index),
                "time/ot_solve_seconds": stats.solve_seconds,
            },
        )


def _load_experts(cfg: OTILfOTrainConfig, state_dim: int) -> list[Any]:
    """The expert state trajectories; a missing or unusable dataset names --demos."""
    from ot_ilfo.demos import load_expert_states
    from rl_buffers.offline import DatasetError, DatasetNotFoundError

    try:
        return load_expert_states(
            cfg.demos, root=cfg.minari_root, state_dim=state_dim, num_trajectories=cfg.num_demos
        )
    except DatasetNotFoundError as e:
        raise UsageError(
            f"--demos {cfg.demos}: {e}; make it with rl-train ot-ilfo-demos --dataset-id "
            f"{cfg.demos} (or pass --minari-root)"
        ) from e
    except DatasetError as e:
        raise UsageError(f"--demos {cfg.demos}: {e}") from e
    except ValueError as e:  # more trajectories asked for than the dataset holds
        raise UsageError(f"--num-demos {cfg.num_demos}: {e}") from e


def train(cfg: OTILfOTrainConfig) -> Path:
    """Train as ``cfg`` says; returns the run directory."""
    # Imported here, not at the top: the command line (``--help``) needs only the configs.
    import torch
    from mrq_drq import MRQAgent, check_spaces, make_buffer
    from mrq_drq.learner import MRQLearner
    from ot_ilfo.learners import RelabelledReplay, make_td3_learner
    from ot_ilfo.rewards import OTRewarder
    from rl_runtime.offpolicy import OffPolicyConfig, train_off_policy
    from rl_runtime.run import open_run
    from rl_runtime.seeding import derive_seed

    seed = cfg.run.seed
    quiet_mujoco(LOG)
    with open_run(METHOD.name, cfg) as run:
        env, eval_env = _make_envs(cfg, seed)
        with env, eval_env:
            horizon = _env_horizon(env)
            obs_space = env.observation_space
            spec = check_spaces(obs_space, env.action_space)
            state_dim = spec.obs_shape[0] - int(cfg.time_input)
            experts = _load_experts(cfg, state_dim)
            rewarder = OTRewarder(experts, cfg.reward)
            run.log.info(
                "%d expert trajectories of %s (lengths %s), atoms %s, solver %s",
                rewarder.num_experts,
                cfg.demos,
                [len(s) - 1 for s in experts],
                cfg.reward.atoms,
                cfg.reward.solver,
            )
            learner: TD3Learner | MRQLearner
            if cfg.learner == "td3":
                # The paper's TD3: time-to-horizon input over the env's episode length, inputs
                # normalised with the expert's state statistics, a uniform replay buffer.
                learner = make_td3_learner(
                    dataclasses.replace(cfg.td3, horizon=horizon),
                    spec.obs_shape[0],
                    spec.action_dim,
                    normalizer=rewarder.state_normalizer,
                    batch_size=cfg.batch_size,
                    capacity=cfg.buffer_capacity,
                    device=run.device,
                    seed=derive_seed(seed, "agent"),
                    replay_seed=derive_seed(seed, "replay"),
                )
                batch_size, capacity = cfg.batch_size, cfg.buffer_capacity
            else:
                # MR.Q unchanged (its own schedule per step), fed the same rewards.
                mrq_cfg = dataclasses.replace(cfg.mrq, env=EnvConfig(suite="gym", env_id=cfg.env))
                mrq = MRQAgent(mrq_cfg, spec, device=run.device, seed=derive_seed(seed, "agent"))
                buffer = make_buffer(mrq_cfg, spec, device=run.device)
                gen = torch.Generator(buffer.sampler.device)
                learner = MRQLearner(mrq, buffer, gen.manual_seed(derive_seed(seed, "replay")))
                batch_size, capacity = mrq_cfg.replay.batch_size, mrq_cfg.replay.capacity
            # Episodes enter the learner's buffer when they end, with OT rewards.
            episode_log = _EpisodeLog(run)
            replay = RelabelledReplay(
                learner,
                rewarder,
                seed=derive_seed(seed, "expert_draw"),
                state_dims=state_dim,
                on_episode=episode_log,
            )
            train_off_policy(
                run,
                env=env,
                eval_env=eval_env,
                agent=learner,
                buffer=replay,
                sample=learner.sample,
                cfg=OffPolicyConfig(
                    batch_size=batch_size,
                    buffer_capacity=capacity,
                    random_steps=cfg.random_steps,
                    # Rewards exist only for finished episodes: never sample before the first.
                    learning_starts=max(cfg.random_steps, horizon),
                ),
            )
            if episode_log.warned:
                run.log.warning(
                    "the OT solve warned on %d of the %d episodes relabelled in this process "
                    "(the first warning was shown; train/ot_converged has every episode)",
                    episode_log.warned,
                    episode_log.episodes,
                )
        return run.dir


def _registered_horizon(env_id: str) -> int | None:
    """The registered ``max_episode_steps`` of ``env_id``, looked up without importing the
    environment's module (None for an id gymnasium does not hold yet)."""
    import gymnasium as gym

    spec = gym.registry.get(env_id)
    return None if spec is None else spec.max_episode_steps


def _on_env(first: OTILfOTrainConfig, name: str, preset: OTILfOTrainConfig) -> OTILfOTrainConfig:
    """The preset on the first reading's --env: MR.Q's environment and TD3's horizon follow.

    A preset already holds its own environment's horizon, so gymnasium's registry (and with it
    gymnasium) is consulted only for another --env: ``rl-train ot-ilfo --help`` stays fast."""
    del name
    mrq = dataclasses.replace(preset.mrq, env=EnvConfig(suite="gym", env_id=first.env))
    horizon = None if first.env == preset.env else _registered_horizon(first.env)
    td3 = preset.td3 if horizon is None else dataclasses.replace(preset.td3, horizon=horizon)
    return dataclasses.replace(preset, env=first.env, mrq=mrq, td3=td3)


_TD3_OPTIONS = ("td3", "batch_size", "buffer_capacity")
_MRQ_OPTIONS = ("mrq", "mrq_time_input")


def _check(cfg: OTILfOTrainConfig, defaults: OTILfOTrainConfig | None) -> None:
    """The options of the learner not chosen keep their defaults (they would be ignored)."""
    if defaults is None:  # --resume: the run's own config
        return
    other = _MRQ_OPTIONS if cfg.learner == "td3" else _TD3_OPTIONS
    changed = [name for name in other if getattr(cfg, name) != getattr(defaults, name)]
    if changed:
        flags = ", ".join(f"--{name.replace('_', '-')}{'.*' if name in ('td3', 'mrq') else ''}"
                          for name in changed)  # fmt: skip
        learner = "mrq" if cfg.learner == "td3" else "td3"
        raise UsageError(
            f"{flags}: option(s) of --learner {learner}, not of --learner {cfg.learner}"
        )


# ----------------------------------------------------------------------------- demonstrations


@dataclasses.dataclass(frozen=True)
class OTILfODemosConfig:
    """rl-train ot-ilfo-demos: save an expert's state trajectories as a Minari dataset."""

    env: str = "Pendulum-v1"
    """Gymnasium id (must match the expert's)."""
    expert: Path | None = None
    """An rl-train run directory (mrq-drq, or ot-ilfo with --learner td3): its newest good
    checkpoint acts greedily. The run is only read; it may still be training."""
    scripted: Scripted | None = None
    """A scripted controller instead of --expert. With neither, the scripted controller of --env
    (pendulum-swingup for Pendulum-v1) if there is one."""
    episodes: int = 1
    """Episodes to record."""
    dataset_id: str = "rlworks/pendulum-v1/swingup-v0"
    """Minari id to write."""
    minari_root: Path | None = None
    """Minari datasets root; None: $MINARI_DATASETS_PATH or ~/.minari/datasets."""
    overwrite: bool = False
    """Replace an existing dataset with this id."""
    seed: int = 0
    """Episode i starts from reset(seed=episode_seed(seed, "demos", i))."""

    @property
    def controller(self) -> str | None:
        """The scripted controller that acts: --scripted, else --env's own (None with --expert)."""
        if self.expert is not None:
            return None
        if self.scripted is not None:
            return self.scripted
        return next((name for name, (env, _) in SCRIPTED.items() if env == self.env), None)

    def __post_init__(self) -> None:
        if self.expert is not None and self.scripted is not None:
            raise ValueError("give at most one of --expert RUN_DIR and --scripted NAME")
        if self.expert is None and self.controller is None:
            raise ValueError(f"--env {self.env} has no scripted expert: give --expert RUN_DIR")
        if self.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {self.episodes}")


def _greedy(act: Callable[[Tensor], Tensor], space: gym.Space[Any]) -> Callable[[Any], Any]:
    """A CPU agent's ``act`` as a policy on the environment's observations and actions."""
    import torch
    from rl_runtime.evaluation import obs_to_tensor, to_env_action

    cpu = torch.device("cpu")

    def policy(obs: Any) -> Any:
        with torch.no_grad():
            return to_env_action(act(obs_to_tensor(obs, cpu)), space)

    return policy


def _expert_policy(
    cfg: OTILfODemosConfig,
) -> tuple[gym.Env[Any, Any], Callable[[Any], Any], str, bool]:
    """``(env, policy, name, strip_time)``: the env the expert acts in and its greedy policy."""
    import gymnasium as gym
    from mrq_drq.learner import RUN_METHOD as MRQ_RUN_METHOD
    from rl_runtime.run import read_run_info

    if cfg.controller is not None:
        env_id, policy = SCRIPTED[cfg.controller]
        if env_id != cfg.env:
            raise UsageError(f"--scripted {cfg.controller} controls {env_id}, not {cfg.env}")
        return gym.make(env_id), policy, f"scripted:{cfg.controller}", False
    assert cfg.expert is not None
    try:
        info = read_run_info(cfg.expert)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(f"--expert: {e}") from e
    if info["env"] != cfg.env:
        raise UsageError(f"--expert {cfg.expert} was trained on {info['env']}, not {cfg.env}")
    if info["method"] == MRQ_RUN_METHOD:
        return _mrq_expert(cfg.expert, cfg.seed)
    if info["method"] == METHOD.name:
        try:
            train_cfg = from_jsonable(OTILfOTrainConfig, info["config"], where="config.json")
        except ValueError as e:  # a run of an older version (other fields)
            raise UsageError(f"--expert {cfg.expert}: {e}") from e
        return _td3_expert(cfg.expert, train_cfg, cfg.seed)
    raise UsageError(f"--expert {cfg.expert}: a {info['method']!r} run cannot be an expert here")


def _mrq_expert(
    run_dir: Path, seed: int
) -> tuple[gym.Env[Any, Any], Callable[[Any], Any], str, bool]:
    from mrq_drq import make_env
    from mrq_drq.learner import load_run_agent
    from rl_runtime.checkpoint import NoGoodCheckpointError

    # The expert's run is only read, never locked or written to: it may still be training.
    try:
        mrq = load_run_agent(run_dir, log=LOG).agent
    except (FileNotFoundError, ValueError, NoGoodCheckpointError) as e:
        raise UsageError(f"--expert {run_dir}: {e}") from e
    env = make_env(mrq.cfg.env, seed=seed, evaluation=True)
    act = lambda obs: mrq.act(obs, explore=False)  # noqa: E731
    return env, _greedy(act, env.action_space), f"mrq-drq:{run_dir}", False


def _td3_expert(
    run_dir: Path, train_cfg: OTILfOTrainConfig, seed: int
) -> tuple[gym.Env[Any, Any], Callable[[Any], Any], str, bool]:
    from mrq_drq import check_spaces
    from ot_ilfo.agent import TD3Agent
    from rl_runtime.checkpoint import NoGoodCheckpointError, read_latest_checkpoint

    if train_cfg.learner != "td3":
        raise UsageError(f"--expert {run_dir}: an ot-ilfo run with --learner td3 is needed")
    try:  # read only, as above
        state = read_latest_checkpoint(run_dir, log=LOG).state["agent"]
    except (FileNotFoundError, ValueError, NoGoodCheckpointError) as e:
        raise UsageError(f"--expert {run_dir}: {e}") from e
    env, eval_env = _make_envs(train_cfg, seed)
    eval_env.close()
    spec = check_spaces(env.observation_space, env.action_space)
    td3_cfg = dataclasses.replace(train_cfg.td3, horizon=_env_horizon(env))
    td3 = TD3Agent(td3_cfg, spec.obs_shape[0], spec.action_dim)
    td3.load_state_dict(state)
    act = lambda obs: td3.act(obs, explore=False)  # noqa: E731
    return env, _greedy(act, env.action_space), f"ot-ilfo:{run_dir}", td3_cfg.time_input


def make_demos(cfg: OTILfODemosConfig) -> Path:
    """Roll out the expert and save its states; returns the dataset directory.

    Raises:
        UsageError: the dataset exists and ``--overwrite`` is not given (checked first), or
            the expert cannot act here (see :func:`_expert_policy`).
    """
    import gymnasium as gym
    import numpy as np
    from ot_ilfo.demos import episode_return, rollout_states, save_demos
    from rl_buffers.offline import minari_dataset_dir

    target = minari_dataset_dir(cfg.dataset_id, cfg.minari_root)
    exists = UsageError(
        f"--dataset-id {cfg.dataset_id}: {target} already exists; pass --overwrite to replace it"
    )
    if target.exists() and not cfg.overwrite:
        raise exists
    quiet_mujoco(LOG)
    env, policy, name, strip_time = _expert_policy(cfg)
    with env:
        episodes = rollout_states(env, policy, episodes=cfg.episodes, seed=cfg.seed)
    if strip_time:  # the expert saw a time-to-horizon entry; the dataset keeps the state only
        episodes = [ep._replace(observations=ep.observations[:, :-1]) for ep in episodes]
    with gym.make(cfg.env) as raw:
        space = raw.observation_space
    assert isinstance(space, gym.spaces.Box)
    returns = [episode_return(ep) for ep in episodes]
    try:
        path = save_demos(
            episodes,
            cfg.dataset_id,
            env_id=cfg.env,
            observation_space=gym.spaces.Box(
                space.low.astype(np.float32), space.high.astype(np.float32), space.shape, np.float32
            ),
            root=cfg.minari_root,
            overwrite=cfg.overwrite,
            algorithm_name=name,
        )
    except FileExistsError as e:  # written meanwhile by someone else
        raise exists from e
    print(
        f"saved {len(episodes)} state-only episodes of {name} on {cfg.env} to {path}: "
        f"return {np.mean(returns):.2f} ± {np.std(returns):.2f}"
    )
    return path


_PENDULUM_RUN = RunConfig(
    total_steps=20_000, eval_every=2_000, eval_episodes=5, log_every=1_000, checkpoint_every=5_000
)
_PENDULUM_TD3 = TD3Config(horizon=200)
"""The paper's TD3 on Pendulum-v1, whose episodes are 200 steps long (its max_episode_steps)."""

METHOD = DerivedMethod(
    name="ot-ilfo",
    config_type=OTILfOTrainConfig,
    presets={
        # First = default: one scripted swing-up demonstration, learns within CPU minutes.
        "pendulum": OTILfOTrainConfig(td3=_PENDULUM_TD3, random_steps=1_000, run=_PENDULUM_RUN),
        "pendulum-mrq": OTILfOTrainConfig(
            learner="mrq", td3=_PENDULUM_TD3, random_steps=1_000, run=_PENDULUM_RUN
        ),
        # The paper's setting on a MuJoCo task (1M steps, 10k random, T = 1000).
        "gym": OTILfOTrainConfig(
            env="HalfCheetah-v5",
            demos="rlworks/halfcheetah-v5/expert-v0",
            mrq=mrq_presets.gym(),
            run=RunConfig(total_steps=1_000_000, eval_every=5_000, eval_episodes=10),
        ),
    },
    train=train,
    description=(__doc__ or "").split("\n\n")[0],
    derive=_on_env,
    # Set by --env (MR.Q's environment, TD3's horizon), --random-steps and the run options.
    fixed={
        MRQConfig: frozenset({"env", "algorithm"}),
        ScheduleConfig: frozenset(
            {"total_steps", "eval_interval", "eval_episodes", "random_steps"}
        ),
        TD3Config: frozenset({"horizon"}),
    },
    check=_check,
)

DEMOS_METHOD = CommandMethod(
    name="ot-ilfo-demos",
    config_type=OTILfODemosConfig,
    # --env's scripted controller (Pendulum-v1's swing-up) unless --expert or --scripted.
    presets={"default": OTILfODemosConfig()},
    train=make_demos,
    description="Save an expert's STATE trajectories (no actions) as a Minari dataset.",
)
