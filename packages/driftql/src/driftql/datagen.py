"""Generate offline datasets locally: OGBench manipulation data with the scripted oracles shipped
in the ``ogbench`` wheel, and Minari datasets of gymnasium MuJoCo tasks from any policy.

**OGBench "play" data** (:func:`generate_ogbench`), collected the way OGBench's
``data_gen_scripts/generate_manipspace.py`` collects it: the environment is built in
``mode="data_collection"`` without goal termination and with a time limit of
``max_episode_steps`` (1001: 1000 transitions per trajectory); a non-Markovian plan oracle
(``CubePlanOracle`` for cube, ``ButtonPlanOracle`` with the gripper always closed for puzzle,
and for scene the plan oracle of whichever object the environment's current target is about:
cube, button, drawer or window) follows a noisy interpolated plan (``noise = 0.1``,
``noise_smoothing = 0.5``) and, each time it finishes, the environment draws a new target
(``set_new_target``, with the script's per-episode cube-stacking probability). Scene episodes
get the script's health check: an episode whose cube leaves the visible table (too far right,
or too far left without being in the drawer) is dropped and collected again. With probability
``p_random_action`` a step's action is a uniformly random one instead (OGBench's knob, used by
DriftQL's robustness study). Each
stored row is ``(observation, action, done, qpos, qvel[, button_states])`` *before* the action,
so the files have exactly OGBench's layout (see :mod:`driftql.data`) and load with
``ogbench.make_env_and_datasets(..., dataset_path=...)``. A validation file ``<name>-val.npz``
with ``val_episodes`` more trajectories is written beside the training file, as OGBench does.
The oracles draw from numpy's global RNG (as in the script); generation seeds it and restores
its previous state afterwards, so a seed gives the same file. Episodes run in rlworks' one
seeded-episode loop (:func:`rl_runtime.evaluation.rollout_episodes`): attempt ``k`` (dropped
scene episodes counted) resets with ``episode_seed(seed, "datagen", k)``.

**Minari data** (:func:`generate_minari`): rollouts of a policy callable (uniformly random, or a
trained agent) in a gymnasium environment, written with Minari's own API through
:func:`rl_buffers.offline.save_minari`, with reference scores for
``minari.get_normalized_score``: ``ref_min_score`` is the mean return of the uniformly random
policy and ``ref_max_score`` the mean return of the expert policy (by default the behaviour
policy itself, run without random actions), each over ``ref_episodes`` seeded episodes, unless
given explicitly. Collection and references run in the same loop, on the ``"datagen"`` and
``"reference"`` seed streams.

Every file is written atomically and an existing dataset is never replaced unless
``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from rl_buffers.io import atomic_write
from rl_buffers.offline import Episode, minari_dataset_dir, save_minari
from rl_runtime.config import check, int_at_least, non_negative, positive_int, probability
from rl_runtime.evaluation import EpisodeRecorder, Step, evaluate, rollout_episodes
from rl_runtime.seeding import derive_seed
from tqdm import tqdm

from driftql.evaluation import quiet_ogbench

__all__ = [
    "GenerationReport",
    "MinariGenConfig",
    "OGBenchGenConfig",
    "Policy",
    "generate_minari",
    "generate_ogbench",
    "mean_return",
    "ogbench_val_path",
    "rollout",
    "scene_episode_is_healthy",
]

Policy = Callable[[npt.NDArray[Any]], npt.NDArray[Any]]
"""Observation (as the environment returns it) -> action (as the environment takes it)."""

# Per-episode probability of stacking the target cube on another one, as OGBench's script
# draws it (uniform in these bounds; single-cube tasks never stack).
_P_STACK: dict[str, tuple[float, float]] = {
    "single": (0.0, 0.0),
    "double": (0.0, 0.25),
    "triple": (0.05, 0.35),
    "quadruple": (0.1, 0.5),
    "octuple": (0.0, 0.35),
}
_PUZZLES = ("3x3", "4x4", "4x5", "4x6")


@dataclasses.dataclass(frozen=True)
class OGBenchGenConfig:
    """OGBench "play" data collection (defaults from OGBench's generation script)."""

    env: str = "cube-single"
    """Environment family: cube-single|double|triple|quadruple|octuple, puzzle-3x3|4x4|4x5|4x6 or
    scene."""
    num_episodes: int = 100
    """Training trajectories (OGBench's published play datasets have 1000)."""
    val_episodes: int = -1
    """Validation trajectories in <name>-val.npz; -1 means num_episodes // 10 (at least 1)."""
    max_episode_steps: int = 1001
    """Rows per trajectory (1001 rows = 1000 transitions, as OGBench)."""
    noise: float = 0.1
    """Plan noise level of the oracle."""
    noise_smoothing: float = 0.5
    """Gaussian smoothing (in steps) of the plan noise."""
    p_random_action: float = 0.0
    """Probability that a step executes a uniformly random action instead of the oracle's."""
    seed: int = 0
    """Seeds the environment, its action space and numpy's global RNG (the oracles')."""

    def __post_init__(self) -> None:
        family, _, variant = self.env.partition("-")
        if not (
            (family == "cube" and variant in _P_STACK)
            or (family == "puzzle" and variant in _PUZZLES)
            or self.env == "scene"
        ):
            raise ValueError(
                f"OGBenchGenConfig.env: {self.env!r} has no scripted play oracle here; choose "
                f"cube-{{{','.join(_P_STACK)}}}, puzzle-{{{','.join(_PUZZLES)}}} or scene"
            )
        positive_int("OGBenchGenConfig.num_episodes", self.num_episodes)
        int_at_least("OGBenchGenConfig.val_episodes", self.val_episodes, -1)
        check(
            self.val_episodes != 0,
            "OGBenchGenConfig.val_episodes must be >= 1 or -1, got 0 "
            "(ogbench.make_env_and_datasets always reads a -val.npz)",
        )
        int_at_least("OGBenchGenConfig.max_episode_steps", self.max_episode_steps, 2)
        probability("OGBenchGenConfig.p_random_action", self.p_random_action)
        non_negative("OGBenchGenConfig.noise", self.noise)
        non_negative("OGBenchGenConfig.noise_smoothing", self.noise_smoothing)
        int_at_least("OGBenchGenConfig.seed", self.seed, 0)

    @property
    def num_val_episodes(self) -> int:
        """Validation trajectories actually written."""
        return max(1, self.num_episodes // 10) if self.val_episodes == -1 else self.val_episodes

    @property
    def env_id(self) -> str:
        """The goal-conditioned OGBench environment id that is collected in."""
        return f"{self.env}-v0"


@dataclasses.dataclass(frozen=True)
class GenerationReport:
    """What a generation wrote and how fast."""

    paths: tuple[Path, ...]
    """Files or dataset directories written."""
    steps: int
    """Environment steps taken for the dataset (rows for OGBench, transitions for Minari)."""
    episodes: int
    """Trajectories written."""
    seconds: float
    """Wall-clock time of the collection (environment construction excluded)."""
    ref_min_score: float | None = None
    """Minari only: stored reference score of a random policy."""
    ref_max_score: float | None = None
    """Minari only: stored reference score of the expert policy."""
    rejected_episodes: int = 0
    """OGBench scene only: episodes that failed the health check and were collected again."""

    @property
    def steps_per_second(self) -> float:
        """Collection throughput."""
        return self.steps / max(self.seconds, 1e-9)


def ogbench_val_path(path: str | os.PathLike[str]) -> Path:
    """``x.npz`` -> ``x-val.npz``, where ``ogbench.make_env_and_datasets`` looks for it."""
    p = Path(path)
    if p.suffix != ".npz":
        raise ValueError(f"OGBench dataset paths end in .npz, got {p}")
    return p.with_name(p.stem + "-val.npz")


@contextlib.contextmanager
def _global_numpy_seed(seed: int) -> Generator[None]:
    """Seed numpy's global RNG for the block (the oracles draw from it), then restore it."""
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _make_oracles(cfg: OGBenchGenConfig, env: gym.Env[Any, Any]) -> dict[str, Any]:
    """Plan oracles by the target task the environment names (``info["privileged/target_task"]``)."""
    from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
    from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle

    noise: dict[str, Any] = {"noise": cfg.noise, "noise_smoothing": cfg.noise_smoothing}
    if cfg.env.startswith("cube"):
        return {"cube": CubePlanOracle(env=env, **noise)}
    if cfg.env.startswith("puzzle"):
        return {"button": ButtonPlanOracle(env=env, gripper_always_closed=True, **noise)}
    from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
    from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

    return {
        "cube": CubePlanOracle(env=env, **noise),
        "button": ButtonPlanOracle(env=env, **noise),
        "drawer": DrawerPlanOracle(env=env, **noise),
        "window": WindowPlanOracle(env=env, **noise),
    }


def scene_episode_is_healthy(qpos: npt.NDArray[Any]) -> bool:
    """OGBench's scene health check on one episode's ``qpos`` rows: the cube (``qpos[:, 14:17]``)
    never goes too far right (y >= 0.29) nor too far left (y <= -0.3) unless it is in the drawer
    (0.06 <= z <= 0.08), so that it stays visible in goal images."""
    cube = np.asarray(qpos)[:, 14:17]
    too_right = cube[:, 1] >= 0.29
    too_left = (cube[:, 1] <= -0.3) & ((cube[:, 2] < 0.06) | (cube[:, 2] > 0.08))
    return not bool((too_right | too_left).any())


class _PlayCollector:
    """OGBench's play collection as a policy and the callbacks of
    :func:`rl_runtime.evaluation.rollout_episodes`: the plan oracle of the current target
    chooses each action (a uniformly random one with probability ``p_random_action``), each
    finished plan is followed by a new target and plan, and each step is recorded as one row."""

    def __init__(self, cfg: OGBenchGenConfig, env: gym.Env[Any, Any]) -> None:
        self.cfg = cfg
        self.env = env
        self.oracles = _make_oracles(cfg, env)
        self.has_buttons = hasattr(env.unwrapped, "_cur_button_states")
        self.keys = ["observations", "actions", "terminals", "qpos", "qvel"]
        self.keys += ["button_states"] if self.has_buttons else []
        self.stack_range = _P_STACK.get(cfg.env.partition("-")[2], (0.5, 0.5))
        # ManipSpace builds a new action space at every access, so seeding env.action_space would
        # not stick: keep one instance and seed it (its samples are uniform in [-1, 1]^5).
        self.random_actions = env.action_space
        self.random_actions.seed(cfg.seed)
        self.episode: dict[str, list[npt.NDArray[Any]]] = {}
        self._oracle: Any = None
        self._info: dict[str, Any] = {}
        self._p_stack = 0.0

    def on_reset(self, episode: int, ob: npt.NDArray[Any], info: dict[str, Any]) -> None:
        """A new episode: draw its stacking probability, start the plan of its first target."""
        del episode
        lo, hi = self.stack_range
        # The script draws the stacking probability only where it is a range.
        self._p_stack = float(np.random.uniform(lo, hi)) if hi > lo else lo  # noqa: NPY002
        self._info = info
        self._oracle = self.oracles[info["privileged/target_task"]]
        self._oracle.reset(ob, info)
        self.episode = {k: [] for k in self.keys}

    def __call__(self, ob: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The step's action, clipped to [-1, 1]."""
        if np.random.rand() < self.cfg.p_random_action:  # noqa: NPY002
            action = np.asarray(self.random_actions.sample())
        else:
            action = np.asarray(self._oracle.select_action(ob, self._info))
        return np.clip(action, -1.0, 1.0)

    def on_step(self, step: Step) -> None:
        """Follow a finished plan with a new target; record the step's row."""
        info = self._info = step.info
        if self._oracle.done:  # the oracle finished its plan: a new target, a new plan
            oracle_ob, oracle_info = self.env.unwrapped.set_new_target(p_stack=self._p_stack)  # pyright: ignore[reportAttributeAccessIssue]
            self._oracle = self.oracles[oracle_info["privileged/target_task"]]
            self._oracle.reset(oracle_ob, oracle_info)
        # The row holds the state *before* the action (info's prev_* entries).
        row = self.episode
        row["observations"].append(step.obs)
        row["actions"].append(step.action)
        row["terminals"].append(np.asarray(step.terminated or step.truncated))
        row["qpos"].append(info["prev_qpos"])
        row["qvel"].append(info["prev_qvel"])
        if self.has_buttons:
            row["button_states"].append(info["prev_button_states"])


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    """FileExistsError naming the first of ``paths`` that exists, unless ``overwrite``."""
    if overwrite:
        return
    for p in paths:
        if p.exists():
            raise FileExistsError(f"{p} already exists; pass overwrite=True to replace it")


def generate_ogbench(
    cfg: OGBenchGenConfig,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> GenerationReport:
    """Collect an OGBench play dataset with the scripted oracle and write it as ``.npz`` files.

    Args:
        cfg: What to collect.
        path: Training file ``<name>.npz``; the validation file is ``<name>-val.npz``.
        overwrite: Replace existing files.
        progress: Show a tqdm bar (steps).

    Returns:
        The report (both paths, rows collected, trajectories, seconds).

    Raises:
        FileExistsError: a file exists and ``overwrite`` is False (checked before collecting).
        ImportError: ogbench is not installed (extra ``driftql[ogbench]``).
    """
    train_path, val_path = Path(path), ogbench_val_path(path)
    _refuse_existing([train_path, val_path], overwrite)
    with quiet_ogbench():
        return _generate_ogbench(cfg, train_path, val_path, overwrite, progress)


def _generate_ogbench(
    cfg: OGBenchGenConfig, train_path: Path, val_path: Path, overwrite: bool, progress: bool
) -> GenerationReport:
    import ogbench  # noqa: F401  (registers the environments)

    env = gym.make(
        cfg.env_id,
        terminate_at_goal=False,
        mode="data_collection",
        max_episode_steps=cfg.max_episode_steps,
    )
    player = _PlayCollector(cfg, env)
    num_train, num_val = cfg.num_episodes, cfg.num_val_episodes
    rows: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in player.keys}
    train_rows = rejected = 0
    t0 = time.perf_counter()
    with (
        _global_numpy_seed(cfg.seed),
        tqdm(
            total=(num_train + num_val) * cfg.max_episode_steps,
            disable=not progress,
            unit="step",
            desc=f"{cfg.env} play",
            dynamic_ncols=True,
        ) as bar,
    ):
        ep = attempt = 0
        while ep < num_train + num_val:
            # One episode per call, so that an unhealthy one can be collected again; attempt k
            # (re-collections counted) resets with episode_seed(cfg.seed, "datagen", k).
            rollout_episodes(
                player,
                env,
                episodes=1,
                seed=cfg.seed,
                stream="datagen",
                first_episode=attempt,
                on_reset=player.on_reset,
                on_step=player.on_step,
            )
            attempt += 1
            episode = player.episode
            bar.update(len(episode["terminals"]))
            if cfg.env == "scene" and not scene_episode_is_healthy(np.asarray(episode["qpos"])):
                rejected += 1  # collected again, as OGBench's script does
                bar.total += len(episode["terminals"])
                continue
            for k in player.keys:
                rows[k] += episode[k]
            if ep == num_train - 1:
                train_rows = len(rows["terminals"])
            ep += 1
    seconds = time.perf_counter() - t0
    env.close()

    dtypes = {"terminals": np.bool_, "button_states": np.int64}
    arrays = {k: np.asarray(v, dtype=dtypes.get(k, np.float32)) for k, v in rows.items()}
    _refuse_existing([train_path, val_path], overwrite)
    for target, part in ((train_path, slice(0, train_rows)), (val_path, slice(train_rows, None))):
        with atomic_write(target, "wb") as f:
            # numpy's stub types **kwds like its keyword parameters; every value is an array.
            np.savez_compressed(f, **{k: v[part] for k, v in arrays.items()})  # pyright: ignore[reportArgumentType]
    total = len(arrays["terminals"])
    return GenerationReport(
        paths=(train_path, val_path),
        steps=total,
        episodes=num_train + num_val,
        seconds=seconds,
        rejected_episodes=rejected,
    )


# ----------------------------------------------------------------------------- Minari


@dataclasses.dataclass(frozen=True)
class MinariGenConfig:
    """Minari dataset collection from a policy in a gymnasium environment."""

    env_id: str = "Hopper-v5"
    """Gymnasium environment id."""
    dataset_id: str = "local/hopper/random-v0"
    """Minari dataset id, (namespace/)name-v<version>."""
    num_steps: int = 100_000
    """Transitions to collect (the last episode is cut, as truncated, when the budget ends)."""
    p_random_action: float = 0.0
    """Probability that a step executes a uniformly random action instead of the policy's."""
    seed: int = 0
    """Seeds resets (episode k gets its own seed), the action space and the random-action draws."""
    ref_episodes: int = 10
    """Episodes used to estimate each reference score."""

    def __post_init__(self) -> None:
        positive_int("MinariGenConfig.num_steps", self.num_steps)
        probability("MinariGenConfig.p_random_action", self.p_random_action)
        positive_int("MinariGenConfig.ref_episodes", self.ref_episodes)
        int_at_least("MinariGenConfig.seed", self.seed, 0)


def rollout(
    env: gym.Env[Any, Any],
    policy: Policy | None,
    *,
    num_steps: int,
    seed: int,
    p_random_action: float = 0.0,
    progress: bool = False,
) -> list[Episode]:
    """Collect ``num_steps`` transitions of ``policy`` (uniformly random when None).

    The episodes are :func:`rl_runtime.evaluation.rollout_episodes`' on the ``"datagen"`` stream
    (episode ``k`` resets with ``episode_seed(seed, "datagen", k)``); random actions come from
    the action space seeded with ``derive_seed(seed, "datagen/action_space")``.

    Args:
        env: The environment (not autoresetting: a plain ``gymnasium.make``).
        policy: Observation -> action; None for uniformly random actions.
        num_steps: Transitions to collect.
        seed: Seed of the collection.
        p_random_action: Probability of executing a uniformly random action instead.
        progress: Show a tqdm bar.

    Returns:
        Validated episodes; the last one is marked truncated if the budget cut it.
    """
    space = env.action_space
    space.seed(derive_seed(seed, "datagen/action_space"))
    coin = np.random.default_rng(derive_seed(seed, "datagen/random_action"))

    def behaviour(ob: npt.NDArray[Any]) -> Any:
        if policy is None or coin.random() < p_random_action:
            return space.sample()
        return policy(ob)

    recorder = EpisodeRecorder(where=f"rollout of {env.spec.id if env.spec else env}")
    with tqdm(total=num_steps, disable=not progress, unit="step", dynamic_ncols=True) as bar:

        def on_step(step: Step) -> None:
            recorder.on_step(step)
            bar.update(1)

        # Every episode takes at least one step, so num_steps episodes outlast the budget.
        rollout_episodes(
            behaviour,
            env,
            episodes=num_steps,
            seed=seed,
            stream="datagen",
            step_budget=num_steps,
            on_reset=recorder.on_reset,
            on_step=on_step,
        )
    return recorder.episodes


def mean_return(
    env: gym.Env[Any, Any], policy: Policy | None, *, episodes: int, seed: int
) -> float:
    """Mean undiscounted return of ``policy`` (uniform random when None) over the seeded
    episodes of the ``"reference"`` stream (:func:`rl_runtime.evaluation.evaluate`)."""
    space = env.action_space
    space.seed(derive_seed(seed, "reference/action_space"))
    act: Policy = policy if policy is not None else lambda _: np.asarray(space.sample())
    return evaluate(act, env, episodes=episodes, seed=seed, stream="reference").mean_return


def generate_minari(
    cfg: MinariGenConfig,
    policy: Policy | None,
    *,
    expert_policy: Policy | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    algorithm_name: str | None = None,
    description: str | None = None,
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> GenerationReport:
    """Roll out ``policy`` and write a Minari dataset with reference scores.

    Args:
        cfg: What to collect.
        policy: The behaviour policy; None for uniformly random actions.
        expert_policy: Policy whose mean return is ``ref_max_score``; default ``policy`` (when
            it is not None).
        ref_min_score: Stored as is when given; else the random policy's mean return over
            ``cfg.ref_episodes`` episodes.
        ref_max_score: Stored as is when given; else the expert's mean return.
        algorithm_name: Stored in the dataset metadata.
        description: Stored in the dataset metadata.
        root: Minari datasets root.
        overwrite: Replace an existing dataset with this id.
        progress: Show a tqdm bar.

    Returns:
        The report, with the stored reference scores.

    Raises:
        FileExistsError: the dataset exists and ``overwrite`` is False (checked first).
        ValueError: no way to get ``ref_max_score`` (random behaviour, no expert, none given),
            or the reference scores are equal (normalised scores would divide by zero).
    """
    target = minari_dataset_dir(cfg.dataset_id, root)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"Minari dataset {cfg.dataset_id!r} already exists at {target}; pass "
            "overwrite=True to replace it"
        )
    expert = expert_policy if expert_policy is not None else policy
    if ref_max_score is None and expert is None:
        raise ValueError(
            "ref_max_score: a random-policy dataset needs an expert policy or an explicit "
            "ref_max_score (minari.get_normalized_score needs both reference scores)"
        )
    with gym.make(cfg.env_id) as env:
        t0 = time.perf_counter()
        episodes = rollout(
            env,
            policy,
            num_steps=cfg.num_steps,
            seed=cfg.seed,
            p_random_action=cfg.p_random_action,
            progress=progress,
        )
        seconds = time.perf_counter() - t0
        # Both references on the same seeded starts (the "reference" stream, not the data's).
        if ref_min_score is None:
            ref_min_score = mean_return(env, None, episodes=cfg.ref_episodes, seed=cfg.seed)
        if ref_max_score is None:
            ref_max_score = mean_return(env, expert, episodes=cfg.ref_episodes, seed=cfg.seed)
        if ref_max_score == ref_min_score:
            raise ValueError(
                f"ref_min_score == ref_max_score == {ref_min_score}: normalised scores would "
                "divide by zero"
            )
        path = save_minari(
            episodes,
            cfg.dataset_id,
            observation_space=env.observation_space,
            action_space=env.action_space,
            env=env.spec,
            algorithm_name=algorithm_name or ("uniform-random" if policy is None else "policy"),
            author="rlworks driftql",
            description=description
            or (
                f"{cfg.num_steps} steps of {'a uniformly random policy' if policy is None else 'a policy'} "
                f"on {cfg.env_id}, p_random_action={cfg.p_random_action}, seed {cfg.seed}; "
                f"ref_min_score: random policy's mean return, ref_max_score: expert's mean "
                f"return, over {cfg.ref_episodes} episodes each"
            ),
            ref_min_score=ref_min_score,
            ref_max_score=ref_max_score,
            root=root,
            overwrite=overwrite,
        )
    return GenerationReport(
        paths=(path,),
        steps=sum(ep.num_steps for ep in episodes),
        episodes=len(episodes),
        seconds=seconds,
        ref_min_score=ref_min_score,
        ref_max_score=ref_max_score,
    )
