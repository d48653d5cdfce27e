"""Evaluation as the benchmarks define it: OGBench success rates and Minari normalised scores.

**OGBench** (single-task offline RL, as FQL and DriftQL evaluate): the environment is OGBench's
own ``<env>-singletask-task<k>-v0`` (built with ``gymnasium.make`` after importing ``ogbench``),
whose task ``k`` fixes the goal at every reset; an episode runs until the goal is reached
(``terminate_at_goal``) or the time limit, and counts as a success when the last step's
``info["success"]`` is true. The success rate is the mean over episodes; over several task ids
(OGBench's evaluation tasks 1..5) it is the mean of the per-task rates.

**Minari**: ``100 * (return - ref_min_score) / (ref_max_score - ref_min_score)``, the formula of
``minari.get_normalized_score`` (times 100, as D4RL-style tables report it), with the reference
scores stored in the dataset's metadata.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from rl_buffers.offline import ActionScale, DatasetError, DatasetNotFoundError, minari_dataset_dir
from rl_runtime.evaluation import Step, rollout_episodes

__all__ = [
    "OGBENCH_EVAL_TASK_IDS",
    "OGBenchEvalResult",
    "evaluate_ogbench",
    "make_ogbench_env",
    "minari_reference_scores",
    "normalized_score",
    "ogbench_env_id",
    "ogbench_success",
    "quiet_ogbench",
    "unit_action_env",
]

OGBENCH_EVAL_TASK_IDS = (1, 2, 3, 4, 5)
"""OGBench's evaluation task ids (every manipulation environment has five)."""

Policy = Callable[[npt.NDArray[Any]], npt.NDArray[Any]]


def ogbench_env_id(env: str, task_id: int) -> str:
    """``("cube-single", 2)`` -> ``"cube-single-singletask-task2-v0"``.

    Args:
        env: OGBench environment family (``cube-single``, ``puzzle-3x3``, ``scene``...), or a
            dataset name such as ``cube-single-play-v0`` (the dataset type is dropped).
        task_id: Evaluation task, 1..5, or 0 for the environment's default task
            (``"cube-single-singletask-v0"``; OGBench's default is task 2 for cube and scene).
    """
    if not 0 <= task_id <= 5:
        raise ValueError(f"OGBench task ids are 1..5 (0: the default task), got {task_id}")
    name = env.removesuffix(".npz").removesuffix("-v0")
    parts = name.split("-")
    if parts[-1] in ("play", "noisy", "stitch", "navigate", "explore"):
        parts = parts[:-1]
    suffix = f"-task{task_id}" if task_id else ""
    return f"{'-'.join(parts)}-singletask{suffix}-v0"


@contextlib.contextmanager
def quiet_ogbench() -> Iterator[None]:
    """Build and run OGBench environments without their noise (see the module doc): GLFW's
    missing-display warning and gymnasium's float32-precision warnings are not shown, and a
    handler that dm_control's logging gives the root logger is removed again on the way out."""
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r".*DISPLAY environment variable is missing")
            warnings.filterwarnings("ignore", r".*precision lowered by casting to float32")
            yield
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)


class _FixedSpaces(gym.Wrapper[Any, Any, Any, Any]):
    """OGBench builds its action space anew, with float64 bounds, at every access (and gymnasium
    warns each time): this wrapper keeps the spaces built once, quietly, at construction."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        with quiet_ogbench():
            self.observation_space = env.observation_space
            self.action_space = env.action_space


def make_ogbench_env(env: str, task_id: int, **kwargs: Any) -> gym.Env[Any, Any]:
    """OGBench's single-task environment of ``env`` for task ``task_id`` (needs ``ogbench``),
    built under :func:`quiet_ogbench`, with its spaces built once."""
    with quiet_ogbench():
        import ogbench  # noqa: F401  (registers the environments)

        return _FixedSpaces(gym.make(ogbench_env_id(env, task_id), **kwargs))


def unit_action_env(env: gym.Env[Any, Any], scale: ActionScale) -> gym.Env[Any, Any]:
    """``env`` acting in ``[-1, 1]``: each action goes through ``scale.to_box`` (clipped to the
    box) before ``env.step``. For the unit box itself ``env`` is returned unchanged.

    Args:
        env: A Box-action environment.
        scale: The map between ``env``'s actions (the dataset's) and ``[-1, 1]``.

    Raises:
        ValueError: the shapes of ``scale`` and ``env``'s action space differ.
    """
    space = env.action_space
    if not isinstance(space, gym.spaces.Box) or tuple(space.shape) != scale.shape:
        raise ValueError(f"unit_action_env: {space} does not match {scale!r}")
    if scale.is_identity:
        return env
    dtype = space.dtype

    def to_env(action: Any) -> npt.NDArray[Any]:
        return scale.to_box(action).astype(dtype)

    unit = gym.spaces.Box(-1.0, 1.0, scale.shape, np.float32)
    return gym.wrappers.TransformAction(env, to_env, unit)


@dataclasses.dataclass(frozen=True)
class OGBenchEvalResult:
    """Outcome of evaluation episodes on one or more OGBench tasks."""

    successes: dict[int, tuple[bool, ...]]
    """Task id -> success of each episode."""
    returns: dict[int, tuple[float, ...]]
    """Task id -> undiscounted return of each episode."""
    lengths: dict[int, tuple[int, ...]]
    """Task id -> length of each episode."""

    @property
    def success_rate(self) -> float:
        """Mean over tasks of each task's success rate, in [0, 1]."""
        return float(np.mean([np.mean(s) for s in self.successes.values()]))

    def metrics(self) -> dict[str, float]:
        """``eval/success`` (in [0, 1]), ``eval/return``, ``eval/length``, and per task
        ``eval/success_task<k>`` when several tasks were evaluated."""
        out = {
            "eval/success": self.success_rate,
            "eval/return": float(np.mean([np.mean(r) for r in self.returns.values()])),
            "eval/length": float(np.mean([np.mean(n) for n in self.lengths.values()])),
        }
        if len(self.successes) > 1:
            for k, s in self.successes.items():
                out[f"eval/success_task{k}"] = float(np.mean(s))
        return out


def ogbench_success(
    policy: Policy,
    env: gym.Env[Any, Any],
    *,
    episodes: int,
    seed: int,
) -> tuple[tuple[bool, ...], tuple[float, ...], tuple[int, ...]]:
    """Run ``episodes`` episodes of ``policy`` on a single-task OGBench ``env``.

    The episodes are :func:`rl_runtime.evaluation.rollout_episodes`' on the ``"eval"`` stream:
    episode ``i`` starts from ``env.reset(seed=episode_seed(seed, "eval", i))``, as every
    evaluation in rlworks.

    Args:
        policy: Observation -> action in ``[-1, 1]`` (clipped here, as FQL's evaluation does).
        env: From :func:`make_ogbench_env`.
        episodes: Number of episodes.
        seed: Evaluation seed (the run's seed).

    Returns:
        ``(successes, returns, lengths)``, one entry per episode; success is the last step's
        ``info["success"]``.
    """
    successes: list[bool] = []

    def clipped(ob: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        return np.clip(np.asarray(policy(ob), dtype=np.float32), -1.0, 1.0)

    def record_success(step: Step) -> None:
        if step.terminated or step.truncated:
            successes.append(bool(step.info.get("success", False)))

    with quiet_ogbench():
        result = rollout_episodes(
            clipped, env, episodes=episodes, seed=seed, stream="eval", on_step=record_success
        )
    return tuple(successes), result.returns, result.lengths


def evaluate_ogbench(
    policy: Policy,
    env: str,
    *,
    task_ids: Sequence[int] = OGBENCH_EVAL_TASK_IDS,
    episodes: int = 50,
    seed: int = 0,
) -> OGBenchEvalResult:
    """Success rate of ``policy`` on OGBench's evaluation tasks of ``env``.

    Builds one single-task environment per task id (a few seconds each); every task runs the
    same seeded episodes (:func:`ogbench_success`), so evaluations are reproducible.

    Args:
        policy: Observation -> action.
        env: OGBench environment family, e.g. ``"cube-single"``.
        task_ids: Tasks to evaluate (default all five).
        episodes: Episodes per task.
        seed: Evaluation seed.
    """
    successes: dict[int, tuple[bool, ...]] = {}
    returns: dict[int, tuple[float, ...]] = {}
    lengths: dict[int, tuple[int, ...]] = {}
    for k in task_ids:
        with make_ogbench_env(env, k) as e:
            successes[k], returns[k], lengths[k] = ogbench_success(
                policy, e, episodes=episodes, seed=seed
            )
    return OGBenchEvalResult(successes, returns, lengths)


def minari_reference_scores(
    dataset_id: str, *, root: str | os.PathLike[str] | None = None
) -> tuple[float, float]:
    """The ``(ref_min_score, ref_max_score)`` stored in a local Minari dataset.

    Raises:
        DatasetNotFoundError: the dataset is not under the root.
        DatasetError: the dataset has no reference scores (Minari stores them only when both
            were given at creation, or an expert policy was).
    """
    import minari

    data_path = minari_dataset_dir(dataset_id, root) / "data"
    if not data_path.is_dir():
        raise DatasetNotFoundError(f"Minari dataset {dataset_id!r} not found at {data_path}")
    metadata = minari.MinariDataset(data_path).storage.metadata
    lo, hi = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    if lo is None or hi is None:
        raise DatasetError(
            f"dataset {dataset_id!r}: no reference scores (keys 'ref_min_score'/'ref_max_score' "
            "missing from its metadata), so no normalised score; regenerate it with both"
        )
    return float(lo), float(hi)


def normalized_score(returns: float | npt.ArrayLike, ref_min: float, ref_max: float) -> Any:
    """``100 * (returns - ref_min) / (ref_max - ref_min)`` (minari.get_normalized_score x 100).

    Raises:
        ValueError: ``ref_max == ref_min``.
    """
    if ref_max == ref_min:
        raise ValueError(f"ref_max_score == ref_min_score == {ref_min}: cannot normalise")
    return 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)
