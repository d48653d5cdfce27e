"""Offline datasets: OGBench ``.npz`` files and Minari datasets in, an offline replay buffer out.

Everything returns :class:`rl_buffers.offline.Episode` lists, validated, so that the trainer
sees one format whatever the source, and bad data raises
:class:`rl_buffers.offline.DatasetError` naming the file, the key and the problem.

**OGBench layout** (what ``ogbench.load_dataset`` reads, and what :mod:`driftql.datagen` and
OGBench's own generation script write): a ``.npz`` with ``N`` rows per key, trajectories stored
one after the other::

    observations (N, O)   s0 s1 s2 s3 | s0 s1 s2 ...
    actions      (N, A)   a0 a1 a2 a3 | a0 a1 a2 ...   (the action of a trajectory's last row is unused)
    terminals    (N,)      0  0  0  1 |  0  0  0 ...   (1 on the last row of each trajectory)
    qpos (N, nq), qvel (N, nv), button_states (N, nb): simulator state of each row (optional)

A trajectory of ``L`` rows gives ``L - 1`` transitions; ``terminals`` marks trajectory ends (time
limits of the collection), never task success. The optional ``next_observations`` key of some
files is ignored, as OGBench ignores it (next states are the following rows). A ``rewards`` key
(one per row) is read and checked like the others (a NaN in it is an error) but not used:
rewards come from the task's relabelling below, and the trainer says so in its log.

**Single-task rewards.** For OGBench's single-task variants (``<env>-singletask-task<k>-v0``),
rewards and masks are relabelled per task id by OGBench's own function
(``ogbench.relabel_utils.relabel_dataset``) from ``qpos``/``button_states``: for transition
``(s_t, a_t, s_t+1)``, ``reward = (#subtasks solved in s_t) - #subtasks`` and ``mask = 0`` when
every subtask is solved in ``s_t`` (OGBench's "pre" success timing). A zero mask is a terminal
transition (no bootstrap); since :class:`~rl_buffers.offline.Episode` ends at its first
termination, a trajectory is cut into several episodes after each such transition (its
``episode_id`` is the trajectory's index), which keeps every transition exactly as OGBench's
``(observations, actions, rewards, next_observations, masks)`` has it. Without a task, rewards
are 0 and nothing terminates (a goal-conditioned dataset).

**The evaluation environment.** :func:`fit_to_env` checks a dataset against the environment
it will be evaluated in (observation and action sizes, the action box) before any training, and
gives the :class:`rl_buffers.offline.ActionScale` that maps its actions into the agents'
``[-1, 1]``: the dataset's recorded action space (Minari records one), else the environment's.

**Degraded data.** :func:`degrade` replaces a fraction of the stored actions by random or noised
ones (label corruption of an existing dataset). Generating with ``p_random_action > 0``
(:mod:`driftql.datagen`) is the other kind, OGBench's: there the random actions were executed,
so the states that follow are consistent with them.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from rl_buffers import ReplayBuffer, TransitionSpec, UniformSampler
from rl_buffers.offline import (
    ActionScale,
    DatasetError,
    Episode,
    fill_buffer,
    load_minari,
    validate_episode,
)

from driftql.config import DegradeMode
from driftql.evaluation import quiet_ogbench

__all__ = [
    "OGBENCH_REQUIRED_KEYS",
    "DatasetError",
    "DegradeMode",
    "dataset_fingerprint",
    "degrade",
    "fit_to_env",
    "is_singletask_env",
    "load_dataset",
    "load_minari_episodes",
    "load_ogbench",
    "make_offline_buffer",
    "ogbench_episodes",
    "ogbench_relabel",
    "read_ogbench_npz",
]

OGBENCH_REQUIRED_KEYS = ("observations", "actions", "terminals")
"""Keys every OGBench ``.npz`` has."""
_INFO_KEYS = ("qpos", "qvel", "button_states")
_CHECKED_KEYS = ("rewards",)  # read and checked, not used (rewards come from the task)


# ----------------------------------------------------------------------------- OGBench


def read_ogbench_npz(path: str | os.PathLike[str]) -> dict[str, npt.NDArray[Any]]:
    """Read and validate an OGBench ``.npz`` file (the layout in the module doc).

    Args:
        path: The ``.npz`` file.

    Returns:
        ``observations`` (N, O) float32, ``actions`` (N, A) float32, ``terminals`` (N,) bool,
        and whichever of ``qpos`` (N, nq), ``qvel`` (N, nv), ``button_states`` (N, nb) the file
        has (float32 / float32 / int64), and ``rewards`` (N,) float32 if the file has it
        (checked, not used by the loaders: see the module doc).

    Raises:
        FileNotFoundError: no such file.
        DatasetError: the file is truncated or not an ``.npz``; a key is missing; a shape,
            dtype or length is wrong; a value is NaN/inf; ``terminals`` is not 0/1; the last
            row does not end a trajectory; a trajectory has a single row.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"OGBench dataset {p} does not exist")
    where = f"OGBench dataset {p}"
    raw: dict[str, npt.NDArray[Any]] = {}
    try:
        with np.load(p, allow_pickle=False) as f:
            present = set(f.files)
            missing = [k for k in OGBENCH_REQUIRED_KEYS if k not in present]
            if missing:
                raise DatasetError(
                    f"{where}: missing key(s) {missing} (present: {sorted(present)}); an OGBench "
                    f"file needs {list(OGBENCH_REQUIRED_KEYS)}"
                )
            for key in (*OGBENCH_REQUIRED_KEYS, *_INFO_KEYS, *_CHECKED_KEYS):
                if key in present:
                    raw[key] = np.asarray(f[key])
    except DatasetError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as e:
        raise DatasetError(f"{where}: cannot read (truncated or corrupt .npz?): {e}") from e

    obs, actions, terminals = raw["observations"], raw["actions"], raw["terminals"]
    dims = [("observations", 2), ("actions", 2), ("terminals", 1)]
    dims += [(key, 1) for key in _CHECKED_KEYS if key in raw]
    for key, ndim in dims:
        arr = raw[key]
        if arr.ndim != ndim:
            raise DatasetError(
                f"{where}: key {key!r} has shape {arr.shape}, expected {ndim} dimension(s) "
                f"({'(N, dim)' if ndim == 2 else '(N,)'})"
            )
        if arr.dtype.kind not in "biuf":
            raise DatasetError(f"{where}: key {key!r} has non-numeric dtype {arr.dtype}")
    n = obs.shape[0]
    for key, arr in raw.items():
        if arr.shape[0] != n:
            raise DatasetError(
                f"{where}: key {key!r} has {arr.shape[0]} rows, 'observations' has {n}"
            )
    if n < 2:
        raise DatasetError(f"{where}: {n} row(s); a trajectory needs at least two")
    for key, arr in raw.items():
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
            raise DatasetError(f"{where}: key {key!r} has NaN or inf (first at index {bad})")
    if not np.isin(terminals, (0, 1)).all():
        raise DatasetError(f"{where}: key 'terminals' must be 0/1, got other values")
    term = terminals.astype(np.bool_)
    if not term[-1]:
        raise DatasetError(
            f"{where}: key 'terminals' is 0 on the last row: the file ends inside a trajectory "
            "(truncated?); OGBench files end every trajectory with terminals = 1"
        )
    ends = np.flatnonzero(term)
    lengths = np.diff(np.concatenate([[-1], ends]))
    if (lengths < 2).any():
        t = int(np.argmax(lengths < 2))
        raise DatasetError(
            f"{where}: trajectory {t} (ending at row {int(ends[t])}) has a single row, so no "
            "transition; key 'terminals' has two consecutive 1s"
        )
    out: dict[str, npt.NDArray[Any]] = {
        "observations": obs.astype(np.float32, copy=False),
        "actions": actions.astype(np.float32, copy=False),
        "terminals": term,
    }
    for key in ("qpos", "qvel"):
        if key in raw:
            out[key] = raw[key].astype(np.float32, copy=False)
    if "button_states" in raw:
        out["button_states"] = raw["button_states"].astype(np.int64, copy=False)
    if "rewards" in raw:
        out["rewards"] = raw["rewards"].astype(np.float32, copy=False)
    return out


def is_singletask_env(env_id: str) -> bool:
    """Whether ``env_id`` is an OGBench single-task environment (``...-singletask[-taskK]-v0``)."""
    return "singletask" in env_id.split("-")


def ogbench_relabel(
    raw: dict[str, npt.NDArray[Any]], env: Any, env_id: str
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Single-task rewards and masks of every transition, computed by OGBench's relabelling.

    Args:
        raw: From :func:`read_ogbench_npz`; needs ``qpos`` (and ``button_states`` for puzzle
            and scene).
        env: The single-task OGBench environment of ``env_id`` (its task sets the targets).
        env_id: E.g. ``"cube-single-singletask-task2-v0"``.

    Returns:
        ``rewards`` (M,) and ``masks`` (M,) float32 for the ``M = N - #trajectories``
        transitions, in file order.

    Raises:
        DatasetError: a key the relabelling needs is missing.
        ValueError: ``env_id`` is not a single-task id.
    """
    from ogbench.relabel_utils import relabel_dataset  # optional extra "ogbench"

    if not is_singletask_env(env_id):
        raise ValueError(f"{env_id!r} is not an OGBench single-task environment id")
    need = ["qpos"] + (["button_states"] if ("puzzle" in env_id or "scene" in env_id) else [])
    missing = [k for k in need if k not in raw]
    if missing:
        raise DatasetError(
            f"OGBench dataset: key(s) {missing} missing, needed to relabel rewards for {env_id}"
        )
    keep = ~raw["terminals"]  # rows that have a next state: the transitions' first states
    dataset = {k: raw[k][keep] for k in need}
    with quiet_ogbench():
        relabel_dataset(env_id, env, dataset)
    return (
        np.asarray(dataset["rewards"], dtype=np.float32),
        np.asarray(dataset["masks"], dtype=np.float32),
    )


def ogbench_episodes(
    raw: dict[str, npt.NDArray[Any]],
    *,
    rewards: npt.NDArray[Any] | None = None,
    masks: npt.NDArray[Any] | None = None,
    where: str = "OGBench dataset",
) -> list[Episode]:
    """Cut OGBench rows into episodes (trajectories, split after each zero-mask transition).

    Args:
        raw: From :func:`read_ogbench_npz`.
        rewards: ``(M,)`` per-transition rewards (file order); None gives zeros.
        masks: ``(M,)`` per-transition masks, 0 = terminal; None means no termination.
        where: Prefix of error messages.

    Returns:
        Episodes in file order; the ``truncations`` flag is set on each trajectory's last
        transition (the collection's time limit) unless it terminated there.
    """
    obs, actions, term = raw["observations"], raw["actions"], raw["terminals"]
    num_transitions = int(obs.shape[0] - term.sum())
    rew = np.zeros(num_transitions, np.float32) if rewards is None else np.asarray(rewards)
    done = np.zeros(num_transitions, np.bool_) if masks is None else np.asarray(masks) == 0
    for key, arr in (("rewards", rew), ("masks", done)):
        if arr.shape != (num_transitions,):
            raise DatasetError(
                f"{where}: {key} has shape {arr.shape}, expected ({num_transitions},) "
                "(one per transition)"
            )
    episodes: list[Episode] = []
    ends = np.flatnonzero(term)
    start, first = 0, 0  # first row / first transition index of the trajectory
    for traj, end in enumerate(ends.tolist()):
        length = end - start  # transitions in this trajectory
        t_done = done[first : first + length]
        # Cut after each terminal transition: segment [a, b) of the trajectory's transitions.
        cuts = [0, *(np.flatnonzero(t_done) + 1).tolist()]
        if cuts[-1] != length:
            cuts.append(length)
        for a, b in itertools.pairwise(cuts):
            seg_term = t_done[a:b].copy()
            seg_trunc = np.zeros(b - a, np.bool_)
            if b == length and not seg_term[-1]:
                seg_trunc[-1] = True  # the collection's time limit
            episodes.append(
                validate_episode(
                    obs[start + a : start + b + 1],  # (T + 1, O)
                    actions[start + a : start + b],  # (T, A)
                    rew[first + a : first + b],
                    seg_term,
                    seg_trunc,
                    where=f"{where}, trajectory {traj}",
                    episode_id=traj,
                )
            )
        start, first = end + 1, first + length
    return episodes


def load_ogbench(
    path: str | os.PathLike[str], *, env_id: str | None = None, env: Any = None
) -> list[Episode]:
    """Load an OGBench ``.npz`` as episodes, with single-task rewards when ``env_id`` asks.

    Args:
        path: The ``.npz`` file (a real OGBench file or one written by :mod:`driftql.datagen`).
        env_id: An OGBench single-task id such as ``"cube-single-singletask-task2-v0"``:
            rewards and masks are relabelled for that task as OGBench does; None leaves
            rewards at 0 and nothing terminal.
        env: An already built environment of ``env_id`` (built with ``gymnasium.make`` when
            None and a task is asked for).

    Returns:
        Validated episodes (see the module doc for how trajectories are cut).

    Raises:
        DatasetError: bad file (see :func:`read_ogbench_npz`) or missing relabelling keys.
    """
    raw = read_ogbench_npz(path)
    where = f"OGBench dataset {Path(path)}"
    if env_id is None:
        return ogbench_episodes(raw, where=where)
    if env is None:
        import gymnasium as gym
        import ogbench  # noqa: F401  (registers the environments)

        with gym.make(env_id) as made:
            rewards, masks = ogbench_relabel(raw, made, env_id)
    else:
        rewards, masks = ogbench_relabel(raw, env, env_id)
    return ogbench_episodes(raw, rewards=rewards, masks=masks, where=where)


# ----------------------------------------------------------------------------- Minari


def load_minari_episodes(
    dataset_id: str, *, root: str | os.PathLike[str] | None = None
) -> list[Episode]:
    """Load a local Minari dataset (never downloads) through :func:`rl_buffers.offline.load_minari`.

    Args:
        dataset_id: Minari id, e.g. ``"local/hopper/medium-v0"``.
        root: Datasets root (``None``: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``).

    Returns:
        Validated episodes with flat float observations.
    """
    return load_minari(dataset_id, root=root)


def load_dataset(
    dataset: str,
    *,
    env_id: str | None = None,
    env: Any = None,
    minari_root: str | os.PathLike[str] | None = None,
) -> list[Episode]:
    """An OGBench ``.npz`` (a path ending in ``.npz``) or else a local Minari dataset id.

    Args:
        dataset: Path to a ``.npz`` file, or a Minari id.
        env_id: OGBench single-task id for reward relabelling (``.npz`` only).
        env: Built environment of ``env_id`` (``.npz`` only).
        minari_root: Minari datasets root.
    """
    if dataset.endswith(".npz"):
        return load_ogbench(dataset, env_id=env_id, env=env)
    return load_minari_episodes(dataset, root=minari_root)


# ----------------------------------------------------------------------------- environment


def _shape(space: Any) -> tuple[int, ...] | None:
    shape = getattr(space, "shape", None)
    return None if shape is None else tuple(int(n) for n in shape)


def _bounded(space: Any, where: str) -> ActionScale | None:
    """The space's :class:`ActionScale`, or None when it has no finite bounds."""
    try:
        return ActionScale.from_space(space, where=where)
    except DatasetError:
        low, high = getattr(space, "low", None), getattr(space, "high", None)
        if (
            low is not None
            and high is not None
            and not (np.isfinite(low).all() and np.isfinite(high).all())
        ):
            return None
        raise


def fit_to_env(
    episodes: Sequence[Episode],
    *,
    observation_space: Any,
    action_space: Any,
    dataset_action_space: Any = None,
    dataset: str,
    env_id: str,
) -> ActionScale:
    """Check a dataset against its evaluation environment and map its actions to ``[-1, 1]``.

    Every episode's per-step observation and action shapes must be the environment's, and the
    action box the dataset records (``dataset_action_space``) must be the environment's (the
    data's actions are the environment's actions). The box whose map is returned is the
    dataset's if it is bounded, else the environment's; if neither is, the identity (the data
    must then already be in ``[-1, 1]``, which :func:`make_offline_buffer` checks).

    Args:
        episodes: The dataset's episodes.
        observation_space: The evaluation environment's observation space.
        action_space: Its action space (a Box).
        dataset_action_space: The action space the dataset records (Minari); None when it
            records none (OGBench ``.npz``).
        dataset: Names the dataset in errors.
        env_id: Names the environment in errors.

    Returns:
        The map of the dataset's actions onto ``[-1, 1]`` (and of the agent's back).

    Raises:
        DatasetError: no episodes, or sizes or boxes that differ, naming both sides.
    """
    if not episodes:
        raise DatasetError(f"{dataset}: the dataset has no episodes")
    env_obs, env_act = _shape(observation_space), _shape(action_space)
    if env_act is None or getattr(action_space, "n", None) is not None:
        raise DatasetError(
            f"the evaluation environment {env_id} has {action_space} actions, not a Box"
        )
    for i, ep in enumerate(episodes):
        data_obs, data_act = tuple(ep.observations.shape[1:]), tuple(ep.actions.shape[1:])
        episode = f"episode {ep.episode_id if ep.episode_id >= 0 else i}"
        if data_obs != env_obs:
            raise DatasetError(
                f"{dataset} ({episode}) has observations of shape {data_obs}, the evaluation "
                f"environment {env_id} observes {env_obs}"
            )
        if data_act != env_act:
            raise DatasetError(
                f"{dataset} ({episode}) has actions of shape {data_act}, the evaluation "
                f"environment {env_id} takes {env_act}"
            )
    env_box = _bounded(action_space, f"the evaluation environment {env_id}'s action space")
    data_box = None
    if dataset_action_space is not None:
        if _shape(dataset_action_space) != env_act:
            raise DatasetError(
                f"{dataset} records the action space {dataset_action_space}, the evaluation "
                f"environment {env_id} takes {action_space}"
            )
        data_box = _bounded(dataset_action_space, f"{dataset}'s action space")
    if data_box is not None and env_box is not None and not data_box.same_box(env_box):
        raise DatasetError(
            f"{dataset} records actions in {data_box.describe()}, the evaluation environment "
            f"{env_id} takes {env_box.describe()}"
        )
    scale = data_box or env_box
    if scale is None:
        return ActionScale(-np.ones(env_act), np.ones(env_act))
    return scale


# ----------------------------------------------------------------------------- degradation


def degrade(
    episodes: Sequence[Episode],
    p: float,
    mode: DegradeMode,
    generator: torch.Generator,
    *,
    noise_std: float = 0.3,
    low: float = -1.0,
    high: float = 1.0,
) -> list[Episode]:
    """A copy of ``episodes`` where each action is, with probability ``p``, replaced.

    Each action is replaced independently (a Bernoulli(p) draw per step, as OGBench's
    ``p_random_action``): ``"uniform"`` draws it uniformly in ``[low, high]^A``; ``"gaussian"``
    adds ``N(0, noise_std^2)`` noise to every coordinate and clips to ``[low, high]``.
    Observations, rewards and flags are unchanged (this corrupts the action labels of existing
    data; see the module doc for the generation-time kind). The input is never modified.

    Args:
        episodes: Episodes with float actions ``(T, A)``.
        p: Fraction in ``[0, 1]``.
        mode: ``"uniform"`` or ``"gaussian"``.
        generator: CPU ``torch.Generator`` (all draws come from it, episode by episode).
        noise_std: Standard deviation of the Gaussian noise (``mode="gaussian"``).
        low: Lower action bound.
        high: Upper action bound.

    Returns:
        New episodes (actions copied, float32 kept as the input dtype).

    Raises:
        ValueError: ``p`` outside ``[0, 1]``, unknown mode, ``noise_std <= 0``, ``low >= high``,
            a non-float action array.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"degrade: p must be in [0, 1], got {p}")
    if mode not in ("uniform", "gaussian"):
        raise ValueError(f"degrade: mode must be 'uniform' or 'gaussian', got {mode!r}")
    if noise_std <= 0:
        raise ValueError(f"degrade: noise_std must be > 0, got {noise_std}")
    if low >= high:
        raise ValueError(f"degrade: low ({low}) must be below high ({high})")
    if generator.device.type != "cpu":
        raise ValueError(f"degrade: generator must be on the CPU, got {generator.device}")
    out: list[Episode] = []
    for i, ep in enumerate(episodes):
        actions = np.asarray(ep.actions)
        if actions.dtype.kind != "f":
            raise ValueError(
                f"degrade: episode {i} key 'actions' is {actions.dtype}, expected floating actions"
            )
        a = torch.from_numpy(np.ascontiguousarray(actions)).to(torch.float64)  # (T, A)
        flat = a.reshape(a.shape[0], -1)  # (T, prod(action_shape))
        replace = torch.rand(flat.shape[0], generator=generator, dtype=torch.float64) < p  # (T,)
        if mode == "uniform":
            u = torch.rand(flat.shape, generator=generator, dtype=torch.float64)
            new = low + (high - low) * u
        else:
            noise = torch.randn(flat.shape, generator=generator, dtype=torch.float64)
            new = (flat + noise_std * noise).clamp(low, high)
        mixed = torch.where(replace[:, None], new, flat).reshape(a.shape)
        out.append(ep._replace(actions=mixed.numpy().astype(actions.dtype)))
    return out


# ----------------------------------------------------------------------------- buffer


def make_offline_buffer(
    episodes: Sequence[Episode],
    *,
    device: torch.device | str,
    action_bound: float = 1.0,
) -> ReplayBuffer:
    """A :class:`rl_buffers.ReplayBuffer` holding every transition of ``episodes`` once.

    The sampler is uniform over all transitions; ``buffer.sample(B, generator)`` gives a
    :class:`rl_buffers.TransitionBatch` (obs ``(B, O)`` float32, action ``(B, A)`` float32,
    reward ``(B,)``, next_obs ``(B, O)``, not_done ``(B,)``: 0 after a terminal transition).

    Args:
        episodes: Validated episodes with flat observations ``(T + 1, O)`` and actions
            ``(T, A)``, all of the same sizes.
        device: Where transitions are stored and batches returned.
        action_bound: Actions must lie in ``[-action_bound, action_bound]`` (the agents act in
            ``[-1, 1]``).

    Raises:
        DatasetError: no episodes, non-flat or differing shapes, non-float actions, actions
            outside the bound.
    """
    if not episodes:
        raise DatasetError("make_offline_buffer: the dataset has no episodes")
    obs_dim = action_dim = -1
    for i, ep in enumerate(episodes):
        where = f"make_offline_buffer: episode {i}"
        if ep.observations.ndim != 2:
            raise DatasetError(
                f"{where}: key 'observations' has shape {ep.observations.shape}, expected "
                "(T + 1, O) flat vectors"
            )
        if ep.actions.ndim != 2 or ep.actions.dtype.kind != "f":
            raise DatasetError(
                f"{where}: key 'actions' has shape {ep.actions.shape} and dtype "
                f"{ep.actions.dtype}, expected (T, A) floats"
            )
        if i == 0:
            obs_dim, action_dim = ep.observations.shape[1], ep.actions.shape[1]
        elif (ep.observations.shape[1], ep.actions.shape[1]) != (obs_dim, action_dim):
            raise DatasetError(
                f"{where}: (obs, action) sizes ({ep.observations.shape[1]}, "
                f"{ep.actions.shape[1]}) differ from episode 0's ({obs_dim}, {action_dim})"
            )
        peak = float(np.abs(ep.actions).max())
        if peak > action_bound + 1e-6:
            raise DatasetError(
                f"{where}: key 'actions' reaches |a| = {peak:.4g} > {action_bound}; the agents "
                "act in [-1, 1]: rescale the dataset's actions to that box"
            )
    total = sum(ep.num_steps for ep in episodes)
    spec = TransitionSpec.continuous((obs_dim,), action_dim)
    buffer = ReplayBuffer(spec=spec, capacity=total, device=device, sampler=UniformSampler(total))
    fill_buffer(buffer, episodes)
    return buffer


def dataset_fingerprint(episodes: Sequence[Episode]) -> str:
    """SHA-256 (hex) of every array of every episode, in order: identifies a dataset's content.

    A resumed run checks it, so that it cannot silently continue on other data.
    """
    h = hashlib.sha256()
    for ep in episodes:
        for arr in (ep.observations, ep.actions, ep.rewards, ep.terminations, ep.truncations):
            a = np.ascontiguousarray(arr)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()
