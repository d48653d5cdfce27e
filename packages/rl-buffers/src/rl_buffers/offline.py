"""Minari datasets: load them from local storage, validate them, fill buffers, write them.

Minari (``pip install "rl-buffers[minari]"``) is optional: it is imported lazily, inside the
functions of this module, and importing :mod:`rl_buffers` never imports minari or h5py.

Nothing is ever downloaded. Datasets are looked up where Minari keeps them: under ``root`` when
given, else under ``$MINARI_DATASETS_PATH``, else ``~/.minari/datasets`` (Minari's own rule), at
``<root>/<dataset_id>/data``.

Any dataset in Minari's format loads, whoever wrote it (:func:`save_minari`, ``minari.DataCollector``,
``minari.create_dataset_from_buffers``, or another tool writing the same HDF5 layout). Each
episode is validated and a malformed one raises :class:`DatasetError` naming the dataset, the
episode and the key.

Dict observations (for example ``{"observation", "achieved_goal", "desired_goal"}``) are
flattened: each leaf is reshaped to ``(T + 1, -1)`` and the leaves are concatenated along the last
axis, in the order of ``obs_keys`` when given, else in the dataset's observation-space order
(the order ``gymnasium.spaces.flatten`` uses). Values are concatenated as they are (a discrete
leaf stays one integer column, it is not one-hot encoded). :func:`load_minari_goal_episodes`
keeps the goal keys apart for hindsight relabelling instead.

**Actions.** A dataset's actions are in its action space's units (``[-3, 3]`` for
InvertedPendulum-v5); agents that act in ``[-1, 1]`` use :class:`ActionScale`: its
:meth:`~ActionScale.episodes_to_unit` maps the stored actions into ``[-1, 1]`` and its
:meth:`~ActionScale.to_box` maps an agent's action back for the environment.

**Environments.** A dataset records the environment it came from (``env_spec``) and the one to
evaluate on (``eval_env_spec``) as data. Minari's ``recover_environment`` builds them by
importing and calling the ``entry_point`` the metadata names, so a crafted ``metadata.json`` runs
any function; :func:`make_minari_env` reads the spec as data and builds only an environment that
is registered with gymnasium under the same id and entry point, with no extra wrappers.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Generator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch

from rl_buffers.goals import GoalEpisode
from rl_buffers.io import atomic_write
from rl_buffers.spec import TransitionSpec

__all__ = [
    "ActionScale",
    "DatasetError",
    "DatasetNotFoundError",
    "Episode",
    "SupportsAdd",
    "SupportsExtend",
    "check_episode_against_spec",
    "fill_buffer",
    "load_minari",
    "load_minari_goal_episodes",
    "make_minari_env",
    "minari_dataset_dir",
    "minari_env_spec",
    "minari_spaces",
    "save_minari",
    "validate_episode",
]

_KEYS = ("observations", "actions", "rewards", "terminations", "truncations")
# Minari reads MINARI_DATASETS_PATH from the environment; save_minari points it at a temporary
# directory while Minari writes, so concurrent saves in one process must take turns.
_ENV_LOCK = threading.Lock()


class DatasetError(ValueError):
    """A dataset is malformed: missing key, wrong shape, NaN/inf, corrupt file, wrong space.

    The message names the dataset, the episode (when there is one) and the key.
    """


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not in local storage (and downloads are disabled)."""


class Episode(NamedTuple):
    """One episode of ``T >= 1`` transitions, as numpy arrays on the host.

    Attributes:
        observations: ``(T + 1, *obs_shape)``, the dataset's dtype (float32 for MuJoCo, uint8
            for images): states ``0..T``; Dict observations are flattened (see the module doc).
        actions: ``(T, *action_shape)``, the dataset's dtype (int64 for Discrete).
        rewards: ``(T,)`` float32 (``(T, N)`` for a multi-agent dataset read with
            ``reward_shape=(N,)``: one reward per agent).
        terminations: ``(T,)`` bool: the episode ended in a terminal state at step ``t``.
        truncations: ``(T,)`` bool: the episode was cut at step ``t`` (time limit).
        episode_id: Index of the episode in its dataset (``-1`` when it has none).
    """

    observations: npt.NDArray[Any]
    actions: npt.NDArray[Any]
    rewards: npt.NDArray[np.float32]
    terminations: npt.NDArray[np.bool_]
    truncations: npt.NDArray[np.bool_]
    episode_id: int = -1

    @property
    def num_steps(self) -> int:
        """Number of transitions ``T``."""
        return int(self.actions.shape[0])


@runtime_checkable
class SupportsExtend(Protocol):
    """A buffer that also takes ``T`` consecutive transitions at once (leading ``T`` axis)."""

    def extend(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
    ) -> Any:
        """Store ``T`` consecutive transitions."""
        ...


class SupportsAdd(Protocol):
    """Anything with ``add(obs, action, reward, next_obs, terminated, truncated)`` for one step."""

    def add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
    ) -> Any:
        """Store one transition."""
        ...


def _import(name: str, extra: str = "minari") -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            f"{name} is needed for Minari datasets: install it with "
            f'`pip install "rl-buffers[{extra}]"` ({e})'
        ) from e


def minari_dataset_dir(dataset_id: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Directory of a dataset in local storage (it may not exist).

    Args:
        dataset_id: Minari id, ``(namespace/)name-v<version>``.
        root: Datasets root; ``None`` uses Minari's rule (``$MINARI_DATASETS_PATH``, else
            ``~/.minari/datasets``).

    Returns:
        ``<root>/<dataset_id>``; the data lives in its ``data`` subdirectory.
    """
    _check_dataset_id(dataset_id)
    return _datasets_root(root) / dataset_id


def _datasets_root(root: str | os.PathLike[str] | None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env is not None else Path.home() / ".minari" / "datasets"


def _check_dataset_id(dataset_id: str) -> None:
    minari_dataset: Any = _import("minari.dataset.minari_dataset")
    try:
        minari_dataset.parse_dataset_id(dataset_id)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"malformed dataset id {dataset_id!r}: expected (namespace/)name-v<version>, "
            "e.g. 'mujoco/hopper/expert-v0'"
        ) from e


# ----------------------------------------------------------------------------- validation


def _as_array(value: object, where: str, key: str) -> npt.NDArray[Any]:
    kind = type(value).__name__
    if isinstance(value, Mapping | tuple | list):
        raise DatasetError(f"{where}: key {key!r} is a {kind}, expected an array")
    return np.asarray(value)


def validate_episode(
    observations: npt.NDArray[Any],
    actions: npt.NDArray[Any],
    rewards: npt.NDArray[Any],
    terminations: npt.NDArray[Any],
    truncations: npt.NDArray[Any],
    *,
    where: str,
    obs_shape: tuple[int, ...] | None = None,
    action_shape: tuple[int, ...] | None = None,
    episode_id: int = -1,
    reward_shape: tuple[int, ...] = (),
) -> Episode:
    """Check one episode and return it with canonical dtypes.

    Checks: ``T >= 1``; ``observations`` has ``T + 1`` rows and the other arrays ``T``; rewards,
    terminations and truncations are 1-D; nothing is NaN/inf (floating observations, actions,
    rewards); the episode does not go on after a termination or truncation; the per-step shapes
    match ``obs_shape`` / ``action_shape`` when given.

    Args:
        observations: ``(T + 1, *obs_shape)``.
        actions: ``(T, *action_shape)``.
        rewards: ``(T,)``, numeric.
        terminations: ``(T,)``, bool or 0/1.
        truncations: ``(T,)``, bool or 0/1.
        where: Prefix for error messages, e.g. ``"dataset 'x-v0', episode 3"``.
        obs_shape: Expected per-step observation shape.
        action_shape: Expected per-step action shape.
        episode_id: Stored in the returned episode.
        reward_shape: Per-step reward shape: ``()`` (one reward), ``(N,)`` for one reward per
            agent of a multi-agent dataset (rewards are then ``(T, N)``).

    Returns:
        An :class:`Episode` (rewards float32, flags bool).

    Raises:
        DatasetError: naming ``where`` and the offending key.
    """
    arrays = {
        "observations": observations,
        "actions": actions,
        "rewards": rewards,
        "terminations": terminations,
        "truncations": truncations,
    }
    for key, arr in arrays.items():
        if arr.ndim == 0:
            raise DatasetError(f"{where}: key {key!r} is a scalar, expected one row per step")
        if arr.dtype.kind not in "biuf":
            raise DatasetError(f"{where}: key {key!r} has non-numeric dtype {arr.dtype}")
    n = actions.shape[0]
    if n < 1:
        raise DatasetError(f"{where}: episode has no transitions (key 'actions' is empty)")
    if observations.shape[0] != n + 1:
        raise DatasetError(
            f"{where}: key 'observations' has {observations.shape[0]} rows, expected "
            f"len(actions) + 1 = {n + 1}"
        )
    for key in ("rewards", "terminations", "truncations"):
        expected = (n, *reward_shape) if key == "rewards" else (n,)
        if arrays[key].shape != expected:
            raise DatasetError(
                f"{where}: key {key!r} has shape {arrays[key].shape}, expected {expected}"
            )
    for key in ("terminations", "truncations"):
        arr = arrays[key]
        if arr.dtype != np.bool_ and not np.isin(arr, (0, 1)).all():
            raise DatasetError(f"{where}: key {key!r} must be boolean (0/1), got other values")
    for key in ("observations", "actions", "rewards"):
        arr = arrays[key]
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise DatasetError(f"{where}: key {key!r} has NaN or inf (first at index {tuple(bad)})")
    term = terminations.astype(np.bool_)
    trunc = truncations.astype(np.bool_)
    ended = term[:-1] | trunc[:-1]
    if ended.any():
        t = int(np.argmax(ended))
        raise DatasetError(
            f"{where}: episode ends at step {t} (key 'terminations'/'truncations') but has "
            f"{n} steps; an episode must stop at its first termination or truncation"
        )
    if obs_shape is not None and tuple(observations.shape[1:]) != tuple(obs_shape):
        raise DatasetError(
            f"{where}: key 'observations' has per-step shape {tuple(observations.shape[1:])}, "
            f"expected {tuple(obs_shape)}"
        )
    if action_shape is not None and tuple(actions.shape[1:]) != tuple(action_shape):
        raise DatasetError(
            f"{where}: key 'actions' has per-step shape {tuple(actions.shape[1:])}, "
            f"expected {tuple(action_shape)}"
        )
    return Episode(
        observations=observations,
        actions=actions,
        rewards=rewards.astype(np.float32),
        terminations=term,
        truncations=trunc,
        episode_id=episode_id,
    )


def _flatten_obs(
    obs: Any, space: Any, obs_keys: Sequence[str] | None, where: str
) -> npt.NDArray[Any]:
    """Flatten a (possibly nested) dict observation to ``(T + 1, D)``; arrays pass through."""
    if not isinstance(obs, Mapping):
        if obs_keys is not None:
            raise DatasetError(
                f"{where}: obs_keys={list(obs_keys)} given but observations are not a dict"
            )
        return _as_array(obs, where, "observations")
    obs_map: Mapping[str, Any] = obs  # pyright: ignore[reportUnknownVariableType]
    if obs_keys is not None:
        keys = list(obs_keys)
    else:
        space_keys: list[str] = list(getattr(space, "spaces", {}).keys())
        keys = space_keys if set(space_keys) == set(obs_map.keys()) else sorted(obs_map)
    leaves: list[npt.NDArray[Any]] = []
    for key in keys:
        if key not in obs_map:
            raise DatasetError(
                f"{where}: key 'observations/{key}' is missing (present: {sorted(obs_map)})"
            )
        value = obs_map[key]
        sub_space = getattr(space, "spaces", {}).get(key)
        if isinstance(value, Mapping):
            leaf = _flatten_obs(value, sub_space, None, f"{where} (observations/{key})")
        else:
            leaf = _as_array(value, where, f"observations/{key}")
        if leaf.ndim == 0:
            raise DatasetError(f"{where}: key 'observations/{key}' is a scalar")
        leaves.append(leaf.reshape(leaf.shape[0], -1))
    lengths = {leaf.shape[0] for leaf in leaves}
    if len(lengths) > 1:
        sizes = {k: leaf.shape[0] for k, leaf in zip(keys, leaves, strict=True)}
        raise DatasetError(f"{where}: dict observation leaves have different lengths {sizes}")
    dtype = np.result_type(*leaves)
    return np.concatenate([leaf.astype(dtype, copy=False) for leaf in leaves], axis=1)


# ----------------------------------------------------------------------------- actions


def _box_text(low: npt.NDArray[np.float64], high: npt.NDArray[np.float64]) -> str:
    """``[-3, 3]`` for a box with the same bounds in every dimension, else both bound lists."""
    if low.size and (low == low.flat[0]).all() and (high == high.flat[0]).all():
        return f"[{low.flat[0]:g}, {high.flat[0]:g}]"
    return f"[{low.tolist()}, {high.tolist()}]"


class ActionScale:
    """The affine map between a Box action space ``[low, high]`` and the agents' ``[-1, 1]``.

    ``to_unit(a) = 2 (a - low) / (high - low) - 1`` takes a dataset's (an environment's) actions
    into the agents' box; ``to_box(u) = low + (u + 1) (high - low) / 2`` takes an agent's action
    back to the environment. Both compute in float64. For ``[-1, 1]`` itself the map is the
    identity and :meth:`episodes_to_unit` returns the episodes untouched (same bits).

    Args:
        low: ``action_shape`` lower bounds, finite.
        high: ``action_shape`` upper bounds, finite and above ``low`` everywhere.
        where: Names the space in error messages (``"dataset 'x-v0': action space"``).

    Raises:
        DatasetError: the bounds differ in shape, are not finite, or ``high <= low`` somewhere.
    """

    __slots__ = ("high", "low")

    low: npt.NDArray[np.float64]
    """``action_shape`` lower bounds (float64)."""
    high: npt.NDArray[np.float64]
    """``action_shape`` upper bounds (float64)."""

    def __init__(
        self, low: npt.ArrayLike, high: npt.ArrayLike, *, where: str = "action space"
    ) -> None:
        lo = np.asarray(low, dtype=np.float64)
        hi = np.asarray(high, dtype=np.float64)
        if lo.shape != hi.shape:
            raise DatasetError(f"{where}: bounds of shapes {lo.shape} and {hi.shape} differ")
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise DatasetError(
                f"{where}: Box {_box_text(lo, hi)} is unbounded, so there is no map onto the "
                "agents' [-1, 1]"
            )
        if not (hi > lo).all():
            raise DatasetError(f"{where}: Box {_box_text(lo, hi)} has high <= low")
        self.low = lo
        self.high = hi

    @classmethod
    def from_space(cls, space: Any, *, where: str = "action space") -> ActionScale:
        """The map of a ``gymnasium.spaces.Box`` (anything with ``low``, ``high``, ``shape``).

        Raises:
            DatasetError: not a Box (a Discrete space has ``n``), or bounds as in the class doc.
        """
        if getattr(space, "n", None) is not None or not hasattr(space, "low"):
            raise DatasetError(f"{where}: {space} is not a Box; only Box actions are rescaled")
        return cls(space.low, space.high, where=where)

    def __repr__(self) -> str:
        return f"ActionScale({_box_text(self.low, self.high)})"

    @property
    def shape(self) -> tuple[int, ...]:
        """``action_shape``."""
        return tuple(int(n) for n in self.low.shape)

    @property
    def is_identity(self) -> bool:
        """The box is ``[-1, 1]`` in every dimension."""
        return bool((self.low == -1.0).all() and (self.high == 1.0).all())

    def same_box(self, other: ActionScale, *, atol: float = 1e-6) -> bool:
        """Whether ``other`` has the same shape and bounds (within ``atol``)."""
        return (
            self.shape == other.shape
            and bool(np.allclose(self.low, other.low, rtol=0.0, atol=atol))
            and bool(np.allclose(self.high, other.high, rtol=0.0, atol=atol))
        )

    def describe(self) -> str:
        """``"[-3, 3]"``, or both bound lists when they differ across dimensions."""
        return _box_text(self.low, self.high)

    def to_unit(self, actions: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(..., *action_shape)`` actions in ``[low, high]`` -> ``[-1, 1]`` (not clipped)."""
        a = np.asarray(actions, dtype=np.float64)
        return 2.0 * (a - self.low) / (self.high - self.low) - 1.0

    def to_box(self, actions: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(..., *action_shape)`` actions in ``[-1, 1]`` -> ``[low, high]``, clipped to the box."""
        u = np.asarray(actions, dtype=np.float64)
        return np.clip(self.low + (u + 1.0) * 0.5 * (self.high - self.low), self.low, self.high)

    def episodes_to_unit(
        self, episodes: Sequence[Episode], *, where: str, tolerance: float = 1e-3
    ) -> list[Episode]:
        """The episodes with their actions mapped into ``[-1, 1]`` (same dtype as stored).

        Actions that the map sends at most ``tolerance`` beyond ``[-1, 1]`` (float rounding of
        actions stored at the box's edge) are clipped onto it; further out is an error.

        Args:
            episodes: Episodes with float actions ``(T, *action_shape)``.
            where: Names the dataset in error messages.
            tolerance: Allowed excursion beyond ``[-1, 1]`` after the map.

        Raises:
            DatasetError: an episode's actions are not floats of ``action_shape``, or lie
                outside the box by more than ``tolerance`` (naming the episode and the value).
        """
        if self.is_identity:
            return list(episodes)
        out: list[Episode] = []
        for i, ep in enumerate(episodes):
            actions = np.asarray(ep.actions)
            here = f"{where}, episode {ep.episode_id if ep.episode_id >= 0 else i}"
            if actions.dtype.kind != "f" or tuple(actions.shape[1:]) != self.shape:
                raise DatasetError(
                    f"{here}: key 'actions' has per-step shape {tuple(actions.shape[1:])} and "
                    f"dtype {actions.dtype}; the action space is a float Box of shape {self.shape}"
                )
            unit = self.to_unit(actions)
            worst = float(np.abs(unit).max()) if unit.size else 0.0
            if worst > 1.0 + tolerance:
                t = np.unravel_index(int(np.argmax(np.abs(unit))), unit.shape)
                raise DatasetError(
                    f"{here}: key 'actions' holds {float(actions[t]):.4g} at index "
                    f"{tuple(int(k) for k in t)}, outside the action space {self.describe()}"
                )
            unit = np.clip(unit, -1.0, 1.0)
            out.append(ep._replace(actions=unit.astype(actions.dtype)))
        return out


# ----------------------------------------------------------------------------- loading


def _open_dataset(dataset_id: str, root: str | os.PathLike[str] | None) -> tuple[Any, Path]:
    minari: Any = _import("minari")
    ds_dir = minari_dataset_dir(dataset_id, root)
    data_path = ds_dir / "data"
    if not data_path.is_dir():
        raise DatasetNotFoundError(
            f"Minari dataset {dataset_id!r} not found under {_datasets_root(root)} "
            f"(looked for {data_path}); downloads are disabled: create it locally or copy it there"
        )
    try:
        dataset = minari.MinariDataset(data_path)
    except (ValueError, KeyError, OSError, TypeError, AssertionError) as e:
        raise DatasetError(f"dataset {dataset_id!r} at {data_path}: cannot open: {e}") from e
    return dataset, data_path


def _check_hdf5_layout(dataset_id: str, data_path: Path, indices: Sequence[int]) -> None:
    """Check that the HDF5 file opens and every episode group has the five keys."""
    h5py: Any = _import("h5py")
    file_path = data_path / "main_data.hdf5"
    try:
        f = h5py.File(file_path, "r")
    except OSError as e:
        raise DatasetError(
            f"dataset {dataset_id!r}: {file_path} is not a readable HDF5 file "
            f"(truncated or corrupt): {e}"
        ) from e
    with f:
        for i in indices:
            where = f"dataset {dataset_id!r}, episode {i}"
            name = f"episode_{i}"
            try:
                present = name in f
                group = f[name] if present else None
                keys = set(group.keys()) if group is not None else set[str]()
            except (OSError, RuntimeError, KeyError) as e:
                raise DatasetError(f"{where}: corrupt HDF5 group {name!r}: {e}") from e
            if group is None:
                raise DatasetError(f"{where}: group {name!r} is missing from {file_path}")
            for key in _KEYS:
                if key not in keys:
                    raise DatasetError(f"{where}: missing key {key!r} (present: {sorted(keys)})")


def _space_shape(space: Any) -> tuple[int, ...] | None:
    shape = getattr(space, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else None


def load_minari(
    dataset_id: str,
    *,
    root: str | os.PathLike[str] | None = None,
    obs_keys: Sequence[str] | None = None,
    episode_indices: Sequence[int] | None = None,
    obs_shape: tuple[int, ...] | None = None,
    action_shape: tuple[int, ...] | None = None,
    spec: TransitionSpec | None = None,
    reward_shape: tuple[int, ...] = (),
) -> list[Episode]:
    """Load a Minari dataset from local storage into validated episodes (never downloads).

    Args:
        dataset_id: Minari id, ``(namespace/)name-v<version>``.
        root: Datasets root (``None``: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``).
        obs_keys: For Dict observations, the keys to keep and their order (see the module doc).
        episode_indices: Episodes to load (default: all, in order).
        obs_shape: Expected per-step observation shape after flattening (e.g. a buffer's);
            checked for every episode.
        action_shape: Expected per-step action shape.
        spec: The :class:`~rl_buffers.spec.TransitionSpec` of the buffer the data is meant for:
            the dataset's action space (Discrete ``n`` / Box shape) and every episode's shapes
            and dtypes must fit it (see :func:`check_episode_against_spec`).
        reward_shape: Per-step reward shape; ``(N,)`` reads a multi-agent dataset whose
            rewards are ``(T, N)`` (see :func:`validate_episode`).

    Returns:
        One :class:`Episode` per episode.

    Raises:
        DatasetNotFoundError: the dataset is not under the root.
        DatasetError: the dataset or an episode is malformed (message names dataset, episode, key).
        ImportError: minari is not installed.
    """
    dataset, data_path = _open_dataset(dataset_id, root)
    indices = (
        [int(i) for i in dataset.episode_indices]
        if episode_indices is None
        else [int(i) for i in episode_indices]
    )
    fmt = str(dataset.storage.metadata.get("data_format", "hdf5"))
    if fmt == "hdf5":
        _check_hdf5_layout(dataset_id, data_path, indices)
    obs_space = dataset.observation_space
    act_space = dataset.action_space
    if isinstance(getattr(act_space, "spaces", None), Mapping | tuple):
        raise DatasetError(
            f"dataset {dataset_id!r}: composite action space {act_space} is not supported"
        )
    if spec is not None:
        _check_action_space_against_spec(dataset_id, act_space, spec)
    episodes: list[Episode] = []
    stream = iter(dataset.iterate_episodes(indices))
    for i in indices:
        where = f"dataset {dataset_id!r}, episode {i}"
        try:
            raw = next(stream)
        except StopIteration:
            raise DatasetError(f"{where}: missing (the dataset ended early)") from None
        except KeyError as e:
            raise DatasetError(f"{where}: missing key {e}") from e
        except (OSError, ValueError, RuntimeError, TypeError, AssertionError) as e:
            raise DatasetError(f"{where}: cannot read (truncated or corrupt data?): {e}") from e
        observations = _flatten_obs(raw.observations, obs_space, obs_keys, where)
        episode = validate_episode(
            observations,
            _as_array(raw.actions, where, "actions"),
            _as_array(raw.rewards, where, "rewards"),
            _as_array(raw.terminations, where, "terminations"),
            _as_array(raw.truncations, where, "truncations"),
            where=where,
            obs_shape=obs_shape,
            action_shape=action_shape,
            episode_id=i,
            reward_shape=reward_shape,
        )
        if spec is not None:
            check_episode_against_spec(episode, spec, where=where)
        episodes.append(episode)
    return episodes


def minari_spaces(
    dataset_id: str, *, root: str | os.PathLike[str] | None = None
) -> tuple[Any, Any]:
    """``(observation_space, action_space)`` a local Minari dataset records (gymnasium spaces).

    Raises:
        DatasetNotFoundError: the dataset is not under the root.
        DatasetError: the dataset cannot be opened.
    """
    dataset, _ = _open_dataset(dataset_id, root)
    return dataset.observation_space, dataset.action_space


def _check_action_space_against_spec(
    dataset_id: str, action_space: Any, spec: TransitionSpec
) -> None:
    n = getattr(action_space, "n", None)
    shape = _space_shape(action_space)
    where = f"dataset {dataset_id!r}"
    if spec.action_kind == "discrete":
        if n is None:
            raise DatasetError(
                f"{where}: action space {action_space} is not Discrete, but the spec has "
                f"discrete actions (num_actions={spec.num_actions})"
            )
        if int(n) != spec.num_actions:
            raise DatasetError(
                f"{where}: action space has {int(n)} discrete actions, the spec has "
                f"num_actions={spec.num_actions}"
            )
    elif n is not None or shape != spec.action_shape:
        raise DatasetError(
            f"{where}: action space {action_space} does not match the spec's continuous actions "
            f"of shape {spec.action_shape}"
        )


def check_episode_against_spec(episode: Episode, spec: TransitionSpec, *, where: str) -> None:
    """Check that an episode's shapes, dtypes and action values fit a :class:`TransitionSpec`.

    Observations must have per-step shape ``spec.stacked_obs_shape`` and be uint8 for a uint8
    spec (pixels) or floating for a floating spec; actions must have shape ``spec.action_shape``
    and be floating (continuous) or integer indices in ``[0, num_actions)`` (discrete).

    Args:
        episode: A validated episode.
        spec: The buffer's spec.
        where: Prefix for error messages (dataset and episode).

    Raises:
        DatasetError: naming ``where``, the key, and the expected vs found shape/dtype.
    """
    obs, act = episode.observations, episode.actions
    if tuple(obs.shape[1:]) != spec.stacked_obs_shape:
        raise DatasetError(
            f"{where}: key 'observations' has per-step shape {tuple(obs.shape[1:])}, the spec "
            f"expects {spec.stacked_obs_shape}"
        )
    if spec.obs_dtype == torch.uint8 and obs.dtype != np.uint8:
        raise DatasetError(
            f"{where}: key 'observations' is {obs.dtype}, the spec stores uint8 pixels"
        )
    if spec.obs_dtype.is_floating_point and obs.dtype.kind != "f":
        raise DatasetError(
            f"{where}: key 'observations' is {obs.dtype}, the spec expects floating observations"
        )
    if tuple(act.shape[1:]) != spec.action_shape:
        raise DatasetError(
            f"{where}: key 'actions' has per-step shape {tuple(act.shape[1:])}, the spec "
            f"expects {spec.action_shape}"
        )
    if spec.action_kind == "discrete":
        if act.dtype.kind not in "iu":
            raise DatasetError(
                f"{where}: key 'actions' is {act.dtype}, the spec expects integer indices"
            )
        n = spec.num_actions
        assert n is not None
        bad = (act < 0) | (act >= n)
        if bad.any():
            raise DatasetError(
                f"{where}: key 'actions' has index {int(act[bad][0])} outside [0, {n})"
            )
    elif act.dtype.kind != "f":
        raise DatasetError(
            f"{where}: key 'actions' is {act.dtype}, the spec expects floating actions"
        )


def load_minari_goal_episodes(
    dataset_id: str,
    *,
    root: str | os.PathLike[str] | None = None,
    observation_key: str = "observation",
    achieved_goal_key: str = "achieved_goal",
    desired_goal_key: str = "desired_goal",
    terminations: Literal["drop", "keep"] = "drop",
    episode_indices: Sequence[int] | None = None,
) -> list[GoalEpisode]:
    """Load a goal-conditioned Minari dataset (Dict observations) as :class:`GoalEpisode` s.

    For hindsight relabelling with :class:`rl_buffers.goals.GoalEpisodeStorage`.

    Args:
        dataset_id: Minari id.
        root: Datasets root.
        observation_key: Dict key of the state part.
        achieved_goal_key: Dict key of the achieved goal.
        desired_goal_key: Dict key of the desired goal.
        terminations: ``"drop"`` (default): in goal datasets terminations mean "reached the
            desired goal", which relabelling recomputes, so they are not kept; ``"keep"``: the
            dataset's terminations are goal-independent (falling, dying) and are kept.
        episode_indices: Episodes to load (default: all).

    Returns:
        Goal episodes with float32 goals; observations ``(T + 1, *obs_shape)``.
    """
    keys = [observation_key, achieved_goal_key, desired_goal_key]
    episodes = load_minari(dataset_id, root=root, obs_keys=keys, episode_indices=episode_indices)
    dataset, _ = _open_dataset(dataset_id, root)
    space = dataset.observation_space
    shapes: list[tuple[int, ...]] = []
    for key in keys:
        shape = _space_shape(getattr(space, "spaces", {}).get(key))
        if shape is None:
            raise DatasetError(f"dataset {dataset_id!r}: observation space has no key {key!r}")
        shapes.append(shape)
    sizes = [math.prod(shape) for shape in shapes]
    obs_size, goal_size, desired_size = sizes
    if goal_size != desired_size:
        raise DatasetError(
            f"dataset {dataset_id!r}: {achieved_goal_key!r} has {goal_size} values but "
            f"{desired_goal_key!r} has {desired_size}"
        )
    out: list[GoalEpisode] = []
    for ep in episodes:
        flat = torch.as_tensor(np.ascontiguousarray(ep.observations))
        obs, achieved, desired = torch.split(flat, [obs_size, goal_size, desired_size], dim=1)
        term = torch.as_tensor(ep.terminations)
        out.append(
            GoalEpisode(
                observations=obs.reshape(-1, *shapes[0]).clone(),  # (T+1, *obs_shape)
                achieved_goals=achieved.to(torch.float32),
                desired_goals=desired[:-1].to(torch.float32),  # goal pursued at steps 0..T-1
                actions=torch.as_tensor(np.ascontiguousarray(ep.actions)),
                terminations=term if terminations == "keep" else torch.zeros_like(term),
            )
        )
    return out


# ----------------------------------------------------------------------------- environments

# Make arguments that change how an environment is shown, not what it is.
_DISPLAY_KWARGS = frozenset({"render_mode"})


def _wrapper_name(wrapper: object) -> str:
    """A recorded wrapper spec's ``name`` (gymnasium's ``WrapperSpec`` as JSON), else its text."""
    if isinstance(wrapper, dict):
        fields: dict[str, Any] = wrapper  # pyright: ignore[reportUnknownVariableType]
        return str(fields.get("name", fields))
    return str(wrapper)


def minari_env_spec(
    dataset_id: str, *, root: str | os.PathLike[str] | None = None, eval_env: bool = True
) -> dict[str, Any] | None:
    """The environment spec a local Minari dataset records, as JSON data (nothing is imported).

    Args:
        dataset_id: Minari id.
        root: Datasets root (``None``: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``).
        eval_env: Prefer ``eval_env_spec`` (the evaluation environment) over ``env_spec``.

    Returns:
        The spec's fields (``id``, ``entry_point``, ``kwargs``, ``max_episode_steps``,
        ``additional_wrappers``, ...), or None when the dataset records none.

    Raises:
        DatasetNotFoundError: the dataset is not under the root.
        DatasetError: ``metadata.json`` or the spec in it is not valid JSON.
    """
    import json

    path = minari_dataset_dir(dataset_id, root) / "data" / "metadata.json"
    if not path.is_file():
        raise DatasetNotFoundError(
            f"Minari dataset {dataset_id!r} not found under {_datasets_root(root)} "
            f"(looked for {path})"
        )
    try:
        metadata: object = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"dataset {dataset_id!r}: {path} is not valid JSON: {e}") from e
    if not isinstance(metadata, dict):
        raise DatasetError(f"dataset {dataset_id!r}: {path} is not a JSON object")
    fields: dict[str, Any] = metadata  # pyright: ignore[reportUnknownVariableType]
    keys = ("eval_env_spec", "env_spec") if eval_env else ("env_spec",)
    for key in keys:
        raw = fields.get(key)
        if raw is None:
            continue
        try:
            spec: object = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as e:
            raise DatasetError(f"dataset {dataset_id!r}: key {key!r} is not valid JSON: {e}") from e
        if not isinstance(spec, dict):
            raise DatasetError(f"dataset {dataset_id!r}: key {key!r} is not a JSON object")
        out: dict[str, Any] = dict(spec)  # pyright: ignore[reportUnknownArgumentType]
        out["_key"] = key
        return out
    return None


def make_minari_env(
    dataset_id: str,
    *,
    root: str | os.PathLike[str] | None = None,
    eval_env: bool = True,
    flag: str = "an environment id",
) -> Any:
    """Build the environment a local Minari dataset records, without running its metadata.

    The dataset's ``eval_env_spec`` (else ``env_spec``) is read as data
    (:func:`minari_env_spec`). The environment is built with ``gymnasium.make(id)`` only if
    ``id`` is registered with gymnasium, the registered entry point is the one the dataset
    names, the dataset adds no wrappers and passes no make arguments other than the
    registered ones (``render_mode`` aside); ``max_episode_steps`` is taken from the dataset.
    Nothing the metadata names is imported or called (Minari's ``recover_environment`` would
    import and call its ``entry_point``).

    Args:
        dataset_id: Minari id.
        root: Datasets root.
        eval_env: Prefer the evaluation environment's spec.
        flag: How the caller passes an environment explicitly, named in the errors
            (``"--eval-env ID"``).

    Returns:
        The environment (a ``gymnasium.Env``).

    Raises:
        DatasetNotFoundError: the dataset is not under the root.
        DatasetError: the dataset records no environment, or one this function refuses to
            build (each message names the dataset, the spec's key, the reason and ``flag``).
    """
    gym: Any = _import("gymnasium")
    spec = minari_env_spec(dataset_id, root=root, eval_env=eval_env)
    if spec is None:
        raise DatasetError(
            f"dataset {dataset_id!r} records no environment (no eval_env_spec or env_spec in its "
            f"metadata); pass {flag}"
        )
    where = f"dataset {dataset_id!r}: its {spec.pop('_key')}"
    env_id = spec.get("id")
    if not isinstance(env_id, str) or not env_id:
        raise DatasetError(f"{where} has no environment id; pass {flag}")
    registered = gym.registry.get(env_id)
    if registered is None:
        raise DatasetError(
            f"{where} names {env_id!r}, which is not registered with gymnasium (an unregistered "
            f"spec would have to import and call its entry point {spec.get('entry_point')!r}); "
            f"pass {flag}"
        )
    if not isinstance(registered.entry_point, str) or registered.entry_point != spec.get(
        "entry_point"
    ):
        raise DatasetError(
            f"{where} gives {env_id!r} the entry point {spec.get('entry_point')!r}, but the "
            f"registered one is {registered.entry_point!r}; refusing to build it: pass {flag}"
        )
    wrappers: list[Any] = list(spec.get("additional_wrappers") or [])
    if wrappers:
        names = [_wrapper_name(w) for w in wrappers]
        raise DatasetError(
            f"{where} adds wrappers {names} to {env_id!r}, which are not rebuilt from a "
            f"dataset; pass {flag}"
        )
    kwargs: object = spec.get("kwargs") or {}
    registered_kwargs: dict[str, Any] = dict(registered.kwargs or {})
    if not isinstance(kwargs, dict):
        raise DatasetError(f"{where}: 'kwargs' is not a JSON object; pass {flag}")
    given: dict[str, Any] = dict(kwargs)  # pyright: ignore[reportUnknownArgumentType]
    differ = sorted(
        k
        for k in set(given) | set(registered_kwargs)
        if k not in _DISPLAY_KWARGS and given.get(k) != registered_kwargs.get(k)
    )
    if differ:
        raise DatasetError(
            f"{where} makes {env_id!r} with arguments {differ} other than the registered ones; "
            f"they are not passed on from a dataset: pass {flag}"
        )
    steps = spec.get("max_episode_steps")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise DatasetError(f"{where}: 'max_episode_steps' is {steps!r}, not a positive integer")
    return gym.make(env_id, max_episode_steps=steps)


def fill_buffer(buffer: SupportsAdd, episodes: Iterable[Episode], *, per_step: bool = False) -> int:
    """Add every transition of ``episodes`` to ``buffer``, in order.

    Each episode goes in with one ``buffer.extend`` call (``T`` transitions at once) when the
    buffer has ``extend`` (:class:`rl_buffers.ReplayBuffer` does; it stores exactly what ``T``
    ``add`` calls store), else, or with ``per_step=True``, with one ``buffer.add`` per transition.

    The last transition of an episode that the dataset marks neither terminated nor truncated
    (collection stopped mid-episode) is added as truncated, so that the buffer never joins it to
    the next episode.

    Args:
        buffer: Anything with ``add(obs, action, reward, next_obs, terminated, truncated)``.
            Values are CPU tensors: obs/actions in the dataset's dtype, reward float32, flags
            bool (scalars for ``add``, ``(T, ...)`` for ``extend``).
        episodes: From :func:`load_minari` (or built by hand and checked with
            :func:`validate_episode`).
        per_step: Always use ``add``.

    Returns:
        Number of transitions added.
    """
    extender: SupportsExtend | None = (
        buffer if not per_step and isinstance(buffer, SupportsExtend) else None
    )
    added = 0
    for ep in episodes:
        obs = torch.as_tensor(np.ascontiguousarray(ep.observations))  # (T+1, *obs_shape)
        actions = torch.as_tensor(np.ascontiguousarray(ep.actions))
        rewards = torch.as_tensor(np.ascontiguousarray(ep.rewards, dtype=np.float32))
        term = torch.as_tensor(np.ascontiguousarray(ep.terminations, dtype=np.bool_))
        trunc = torch.as_tensor(np.ascontiguousarray(ep.truncations, dtype=np.bool_)).clone()
        n = ep.num_steps
        if not (bool(term[-1]) or bool(trunc[-1])):
            trunc[-1] = True  # the data stops here: close the episode
        if extender is not None:
            extender.extend(obs[:-1], actions, rewards, obs[1:], term, trunc)
        else:
            for t in range(n):
                buffer.add(obs[t], actions[t], rewards[t], obs[t + 1], term[t], trunc[t])
        added += n
    return added


# ----------------------------------------------------------------------------- writing


@contextlib.contextmanager
def _minari_root(path: Path) -> Generator[None]:
    """Point Minari at ``path`` (it reads MINARI_DATASETS_PATH at each call), then restore."""
    with _ENV_LOCK:
        old = os.environ.get("MINARI_DATASETS_PATH")
        os.environ["MINARI_DATASETS_PATH"] = str(path)
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = old


def _fsync_tree(top: Path) -> None:
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            fd = os.open(Path(dirpath) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_minari(
    episodes: Sequence[Episode],
    dataset_id: str,
    *,
    observation_space: Any,
    action_space: Any,
    env: Any = None,
    eval_env: Any = None,
    algorithm_name: str | None = None,
    author: str | None = None,
    author_email: str | None = None,
    code_permalink: str | None = None,
    description: str | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    num_episodes_average_score: int = 100,
    requirements: Sequence[str] | None = None,
    data_format: Literal["hdf5", "arrow"] = "hdf5",
    jpeg_encoding: bool = False,
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    reward_shape: tuple[int, ...] = (),
) -> Path:
    """Write episodes as a Minari dataset, atomically, with ``minari.create_dataset_from_buffers``.

    Minari writes into a hidden temporary directory under the root (invisible to
    ``minari.list_local_datasets``); the files are fsynced and the dataset directory is then
    renamed into place, so a crash leaves either no dataset or a whole one. With
    ``overwrite=True`` an existing dataset is first moved aside and removed after the rename
    (between the two renames the id briefly does not exist).

    Args:
        episodes: Validated episodes; observations must be flat arrays matching
            ``observation_space``.
        dataset_id: Minari id, ``(namespace/)name-v<version>``.
        observation_space: ``gymnasium.spaces.Space`` of one observation.
        action_space: ``gymnasium.spaces.Space`` of one action.
        env: Env id, ``EnvSpec`` or env the data came from (stored as ``env_spec``); optional.
        eval_env: Env id, ``EnvSpec`` or env for evaluation (stored as ``eval_env_spec``).
        algorithm_name: Name of the behaviour policy's algorithm.
        author: Author name.
        author_email: Author contact.
        code_permalink: Link to the code that generated the data.
        description: Free text.
        ref_min_score: Return of a random policy (for ``minari.get_normalized_score``). Minari
            stores it only together with ``ref_max_score``.
        ref_max_score: Return of an expert policy. If given without ``ref_min_score``, Minari
            estimates the latter by running ``num_episodes_average_score`` random episodes of
            ``eval_env`` (or ``env``).
        num_episodes_average_score: See ``ref_max_score``.
        requirements: pip requirement strings needed to recreate the env.
        data_format: ``"hdf5"`` or ``"arrow"``.
        jpeg_encoding: Minari's lossy JPEG storage of image observations; off by default so
            that the data round-trips exactly.
        root: Datasets root (``None``: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``).
        overwrite: Replace an existing dataset with this id.
        reward_shape: Per-step reward shape; ``(N,)`` writes one reward per agent (rewards
            ``(T, N)``: a multi-agent dataset, read back with ``load_minari(...,
            reward_shape=(N,))``).

    Returns:
        The dataset directory ``<root>/<dataset_id>``.

    Raises:
        FileExistsError: the dataset exists and ``overwrite`` is False.
        DatasetError: an episode does not match the spaces or is malformed.
        ValueError: ``ref_min_score`` without ``ref_max_score``.
    """
    minari: Any = _import("minari")
    episode_buffer: Any = _import("minari.data_collector.episode_buffer")
    final = minari_dataset_dir(dataset_id, root)
    if final.exists() and not overwrite:
        raise FileExistsError(
            f"Minari dataset {dataset_id!r} already exists at {final}; pass overwrite=True to replace it"
        )
    if ref_min_score is not None and ref_max_score is None:
        raise ValueError(
            "ref_min_score was given without ref_max_score; Minari stores reference scores only "
            "as a pair (it would drop ref_min_score silently)"
        )
    if len(episodes) == 0:
        raise ValueError("save_minari needs at least one episode")
    obs_shape = _space_shape(observation_space)
    action_shape = _space_shape(action_space)
    buffers: list[Any] = []
    for i, ep in enumerate(episodes):
        checked = validate_episode(
            np.asarray(ep.observations),
            np.asarray(ep.actions),
            np.asarray(ep.rewards),
            np.asarray(ep.terminations),
            np.asarray(ep.truncations),
            where=f"dataset {dataset_id!r} (writing), episode {i}",
            obs_shape=obs_shape,
            action_shape=action_shape,
            reward_shape=reward_shape,
        )
        buffers.append(
            episode_buffer.EpisodeBuffer(
                id=i,
                observations=checked.observations,
                actions=checked.actions,
                rewards=checked.rewards,
                terminations=checked.terminations,
                truncations=checked.truncations,
            )
        )
    root_dir = _datasets_root(root)
    root_dir.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=".rlbuffers-tmp-", dir=root_dir))
    try:
        with _minari_root(tmp_root), warnings.catch_warnings():
            # Minari advises on metadata for publishing (author, code_permalink, eval_env...):
            # what the caller left out is the caller's choice, not news on every write.
            warnings.filterwarnings("ignore", r"`\w+` is set to None", UserWarning)
            warnings.filterwarnings("ignore", r"env_spec is None", UserWarning)
            minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=buffers,
                env=env,
                eval_env=eval_env,
                algorithm_name=algorithm_name,
                author=author,
                author_email=author_email,
                code_permalink=code_permalink,
                action_space=action_space,
                observation_space=observation_space,
                ref_min_score=ref_min_score,
                ref_max_score=ref_max_score,
                num_episodes_average_score=num_episodes_average_score,
                description=description,
                data_format=data_format,
                requirements=None if requirements is None else list(requirements),
                jpeg_encoding=jpeg_encoding,
            )
        staged = tmp_root / dataset_id
        _fsync_tree(staged)
        _copy_namespace_metadata(tmp_root, root_dir, dataset_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            os.rename(final, tmp_root / ".replaced")
        os.rename(staged, final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return final


def _copy_namespace_metadata(tmp_root: Path, root_dir: Path, dataset_id: str) -> None:
    """Give each namespace level of ``dataset_id`` Minari's metadata file if it lacks one."""
    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        rel = Path(*parts[:depth]) / "namespace_metadata.json"
        src, dst = tmp_root / rel, root_dir / rel
        if src.is_file() and not dst.exists():
            with atomic_write(dst, "wb") as f:
                f.write(src.read_bytes())
