"""Generate offline datasets for ``rl-train driftql`` (``rl-train driftql-data``).

OGBench play data with the scripted oracles of the ``ogbench`` wheel::

    rl-train driftql-data --kind ogbench --env cube-single --episodes 100 \\
        --out data/cube-single-play-v0.npz [--p-random-action 0.3]

Minari datasets of a gymnasium MuJoCo task, from a uniformly random policy or from the MR.Q
agent of an ``rl-train mrq-drq`` run (``mrq_drq.learner.load_run_agent``: its newest good
checkpoint, read without writing to the run, which may still be training)::

    rl-train driftql-data --kind minari --env Hopper-v5 --dataset-id local/hopper/medium-v0 \\
        --policy runs/mrq-drq/Hopper-v5/0-main --steps 100000

Reference scores are stored for normalised scores: ``ref_min_score`` is the random policy's
mean return, ``ref_max_score`` the expert's (``--expert RUN_DIR``, by default the behaviour
policy) unless given with ``--ref-min-score`` / ``--ref-max-score``. Files are written
atomically; an existing dataset is kept unless ``--overwrite``. The options marked OGBench or
Minari belong to that ``--kind``; given for the other kind they are an error, not ignored.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rl_train.method import UsageError
from rl_train.methods._support import CommandMethod, progress_wanted, quiet_mujoco

if TYPE_CHECKING:
    import gymnasium as gym
    import torch
    from driftql.datagen import GenerationReport, Policy

__all__ = ["METHOD", "DataConfig", "generate"]

LOG = logging.getLogger("rlworks")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """rl-train driftql-data: generate an OGBench or Minari dataset."""

    kind: Literal["ogbench", "minari"] = "ogbench"
    """OGBench play data (.npz) or a Minari dataset."""
    env: str = "cube-single"
    """OGBench: cube-single|double|..., puzzle-3x3|... or scene; Minari: a gymnasium id (Hopper-v5)."""
    out: Path | None = None
    """OGBench: the training .npz (the validation file <name>-val.npz goes beside it)."""
    episodes: int = 100
    """OGBench: training trajectories of max_episode_steps rows (OGBench publishes 1000)."""
    val_episodes: int = -1
    """OGBench: validation trajectories; -1 means episodes // 10 (at least 1)."""
    max_episode_steps: int = 1001
    """OGBench: rows per trajectory."""
    noise: float = 0.1
    """OGBench: plan noise of the oracle."""
    noise_smoothing: float = 0.5
    """OGBench: smoothing of the plan noise."""
    dataset_id: str = ""
    """Minari: the dataset id to write, e.g. local/hopper/medium-v0."""
    steps: int = 100_000
    """Minari: transitions to collect."""
    policy: str = "random"
    """Minari: behaviour policy, 'random' or an rl-train mrq-drq run directory."""
    expert: str = ""
    """Minari: run directory of the policy whose mean return is ref_max_score (default: --policy)."""
    ref_min_score: float | None = None
    """Minari: stored as is (default: the random policy's mean return)."""
    ref_max_score: float | None = None
    """Minari: stored as is (default: the expert's mean return)."""
    ref_episodes: int = 10
    """Minari: episodes per reference score."""
    minari_root: Path | None = None
    """Minari: datasets root (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)."""
    device: str = "cpu"
    """Minari: torch device of a restored agent."""
    p_random_action: float = 0.0
    """Probability that a step executes a uniformly random action (OGBench's degradation knob)."""
    seed: int = 0
    """Seed of the collection."""
    overwrite: bool = False
    """Replace an existing dataset."""
    quiet: bool = False
    """No progress bar (there is none either when stderr is not a terminal)."""


_OGBENCH_ONLY = ("out", "episodes", "val_episodes", "max_episode_steps", "noise", "noise_smoothing")
_MINARI_ONLY = (
    "dataset_id",
    "steps",
    "policy",
    "expert",
    "ref_min_score",
    "ref_max_score",
    "ref_episodes",
    "minari_root",
    "device",
)
# Fields of the generation configs that have another name here.
_FLAG_OF = {"num_episodes": "episodes", "num_steps": "steps", "env_id": "env"}


def _flag(field: str) -> str:
    return "--" + _FLAG_OF.get(field, field).replace("_", "-")


def _in_flags(message: str) -> str:
    """``OGBenchGenConfig.num_episodes must be ...`` -> ``--episodes must be ...``."""
    return re.sub(r"\b(?:OGBench|Minari)GenConfig\.(\w+)", lambda m: _flag(m[1]), message)


def _check_kind(cfg: DataConfig) -> None:
    """An option of the other --kind is an error, not an option that does nothing."""
    default = DataConfig()
    other = _MINARI_ONLY if cfg.kind == "ogbench" else _OGBENCH_ONLY
    given = [_flag(name) for name in other if getattr(cfg, name) != getattr(default, name)]
    if given:
        kind = "minari" if cfg.kind == "ogbench" else "ogbench"
        raise UsageError(
            f"{', '.join(given)}: option(s) of --kind {kind}, not of --kind {cfg.kind}"
        )


def _mrq_policy(run_dir: Path, *, device: torch.device, flag: str) -> tuple[Policy, str]:
    """The deterministic policy of an ``rl-train mrq-drq`` run (``mrq_drq.learner``), from its
    newest good checkpoint; the run's directory is only read (it may still be training).

    The agent acts in ``[-1, 1]`` (MR.Q's Gym preprocessing rescales the environment's box);
    the policy maps its actions onto the plain environment's box, which the data is collected
    in.

    Returns:
        ``(policy, env_id)``: observation -> action (in the environment's bounds), and the
        gymnasium id the agent was trained on.

    Raises:
        UsageError: the mrq-drq package is missing, not an mrq-drq run, not a Gym-suite
            environment, or no readable checkpoint.
    """
    import gymnasium as gym
    from rl_runtime.checkpoint import NoGoodCheckpointError

    try:
        from mrq_drq.learner import load_run_agent
    except ImportError as e:
        raise UsageError(f'{flag} RUN needs MR.Q ({e}): pip install "rl-train[driftql]"') from e
    try:
        agent = load_run_agent(run_dir, device=device, log=LOG).agent
    except (FileNotFoundError, ValueError, NoGoodCheckpointError) as e:
        raise UsageError(f"{flag} {run_dir}: {e}") from e
    if agent.cfg.env.suite != "gym":
        raise UsageError(
            f"{flag} {run_dir}: a {agent.cfg.env.suite!r} agent; Minari data needs 'gym'"
        )

    env_id = agent.cfg.env.env_id
    with gym.make(env_id) as env:
        space = env.action_space
    return env_policy(lambda obs: agent.act(obs, explore=False), space), env_id


def env_policy(act: Callable[[Any], torch.Tensor], space: gym.Space[Any]) -> Policy:
    """An actor as a policy of an environment whose action space is ``space``: float32
    observations in; a Box action in ``[-1, 1]`` is mapped onto ``space``'s box, a discrete one
    passes as an index."""
    import gymnasium as gym
    import numpy as np
    import torch
    from rl_buffers.offline import ActionScale
    from rl_runtime.evaluation import to_env_action

    scale = (
        ActionScale.from_space(space, where=f"action space {space}")
        if isinstance(space, gym.spaces.Box)
        else None
    )

    def policy(obs: Any) -> Any:
        with torch.no_grad():
            action = act(np.asarray(obs, dtype=np.float32))
        if scale is None:
            return to_env_action(action, space)
        return scale.to_box(action.cpu().numpy()).astype(space.dtype)

    return policy


def generate(cfg: DataConfig) -> GenerationReport:
    """Generate the dataset ``cfg`` describes and report what was written.

    Raises:
        UsageError: missing or contradictory options, an option of the other ``--kind``, a
            value out of range (named by its flag), or an existing dataset without
            ``--overwrite``.
    """
    # Imported here, not at the top: the command line (``--help``) needs only the config.
    from driftql.datagen import (
        MinariGenConfig,
        OGBenchGenConfig,
        generate_minari,
        generate_ogbench,
    )
    from rl_runtime.run import resolve_device

    _check_kind(cfg)
    progress = progress_wanted(cfg.quiet)
    try:
        if cfg.kind == "ogbench":
            if cfg.out is None:
                raise UsageError("--out is required for OGBench data (a path ending in .npz)")
            if cfg.out.suffix != ".npz":
                raise UsageError(f"--out must end in .npz, got {cfg.out}")
            gen = OGBenchGenConfig(
                env=cfg.env,
                num_episodes=cfg.episodes,
                val_episodes=cfg.val_episodes,
                max_episode_steps=cfg.max_episode_steps,
                noise=cfg.noise,
                noise_smoothing=cfg.noise_smoothing,
                p_random_action=cfg.p_random_action,
                seed=cfg.seed,
            )
            return generate_ogbench(gen, cfg.out, overwrite=cfg.overwrite, progress=progress)
        if not cfg.dataset_id:
            raise UsageError("--dataset-id is required for Minari data")
        if cfg.policy == "random" and not cfg.expert and cfg.ref_max_score is None:
            raise UsageError(
                "--policy random: the dataset's ref_max_score needs an expert policy; give "
                "--expert RUN (an rl-train mrq-drq run) or --ref-max-score"
            )
        device = resolve_device(cfg.device)
        policy: Policy | None = None
        algorithm = "uniform-random"
        if cfg.policy != "random":
            policy, env_id = _mrq_policy(Path(cfg.policy), device=device, flag="--policy")
            if env_id != cfg.env:
                raise UsageError(f"--policy {cfg.policy} was trained on {env_id}, not {cfg.env}")
            algorithm = f"MR.Q ({cfg.policy})"
        expert: Policy | None = None
        if cfg.expert:
            expert, env_id = _mrq_policy(Path(cfg.expert), device=device, flag="--expert")
            if env_id != cfg.env:
                raise UsageError(f"--expert {cfg.expert} was trained on {env_id}, not {cfg.env}")
        gen_m = MinariGenConfig(
            env_id=cfg.env,
            dataset_id=cfg.dataset_id,
            num_steps=cfg.steps,
            p_random_action=cfg.p_random_action,
            seed=cfg.seed,
            ref_episodes=cfg.ref_episodes,
        )
        return generate_minari(
            gen_m,
            policy,
            expert_policy=expert,
            ref_min_score=cfg.ref_min_score,
            ref_max_score=cfg.ref_max_score,
            algorithm_name=algorithm,
            root=cfg.minari_root,
            overwrite=cfg.overwrite,
            progress=progress,
        )
    except FileExistsError as e:
        raise UsageError(f"{_existing(cfg)} already exists; pass --overwrite to replace it") from e
    except ValueError as e:
        if isinstance(e, UsageError):
            raise
        raise UsageError(_in_flags(str(e))) from e


def _existing(cfg: DataConfig) -> str:
    """``--out X: PATH`` / ``--dataset-id X: DIR``, naming what exists."""
    from driftql.datagen import ogbench_val_path
    from rl_buffers.offline import minari_dataset_dir

    if cfg.kind == "ogbench" and cfg.out is not None:
        paths = [cfg.out, ogbench_val_path(cfg.out)]
        return f"--out {cfg.out}: {next((p for p in paths if p.exists()), cfg.out)}"
    return f"--dataset-id {cfg.dataset_id}: {minari_dataset_dir(cfg.dataset_id, cfg.minari_root)}"


def _run(cfg: DataConfig) -> Path:
    from rl_runtime.run import console_logging

    with console_logging(quiet=cfg.quiet):
        quiet_mujoco(LOG)
        report = generate(cfg)
        LOG.info(
            "wrote %s: %d steps in %d episodes, %.1f s (%.0f steps/s)%s%s",
            ", ".join(str(p) for p in report.paths),
            report.steps,
            report.episodes,
            report.seconds,
            report.steps_per_second,
            ""
            if report.ref_min_score is None
            else f"; ref scores {report.ref_min_score:.4g} / {report.ref_max_score:.4g}",
            ""
            if not report.rejected_episodes
            else f"; {report.rejected_episodes} unhealthy episode(s) collected again",
        )
    return report.paths[0]


METHOD = CommandMethod(
    name="driftql-data",
    config_type=DataConfig,
    presets={"default": DataConfig()},
    train=_run,
    description=(__doc__ or "").split("\n\n")[0],
)
