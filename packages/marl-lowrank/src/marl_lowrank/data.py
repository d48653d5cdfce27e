"""Offline multi-agent datasets: one validated container, two file formats, one batch source.

* :class:`MultiAgentData`: ``M`` joint transitions of ``N`` agents as tensors, agent axis in the
  order of ``agents``; :func:`validate` checks every shape, dtype and value and raises
  :class:`rl_buffers.offline.DatasetError` naming the dataset and the key.
* Game datasets (one-step episodes, up to 10^5 samples of 50 agents) are one checksummed file
  written atomically by :func:`save_game_dataset` (``rl_buffers.io.save``) and read back, data
  only, by :func:`load_game_dataset`.
* PettingZoo datasets are Minari datasets (:func:`save_minari_multiagent`,
  :func:`load_minari_multiagent`) written atomically by ``rl_buffers.offline.save_minari``: the
  joint observation is a ``Box(N, obs_dim)``, the joint action a ``Box(N, action_dim)``, the
  rewards ``(T, N)`` (one per agent), terminations and truncations shared by the team; the agent
  order is recorded in the description (``agents=agent_0,agent_1,...``) and checked on load.
* :class:`MultiAgentBatches`: seeded uniform batches as ``rl_buffers.MultiAgentBatch`` for
  ``rl_runtime.offline.train_offline``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from rl_buffers import MultiAgentBatch, io
from rl_buffers.offline import ActionScale, DatasetError, Episode, load_minari, save_minari
from torch import Tensor

__all__ = [
    "FORMAT",
    "MultiAgentBatches",
    "MultiAgentData",
    "agent_names",
    "data_fingerprint",
    "episodes_to_data",
    "load_game_dataset",
    "load_minari_multiagent",
    "save_game_dataset",
    "save_minari_multiagent",
    "validate",
]

FORMAT = "marl-lowrank/game-dataset-v1"
"""The ``format`` entry of a game dataset file."""


def agent_names(n: int) -> tuple[str, ...]:
    """PettingZoo's names for ``n`` agents: ``agent_0 .. agent_{n-1}``."""
    return tuple(f"agent_{i}" for i in range(n))


class MultiAgentData(NamedTuple):
    """``M`` joint transitions of ``N`` agents (a whole offline dataset, on the CPU).

    Attributes:
        obs: ``(M, N, obs_dim)`` float32.
        action: ``(M, N, action_dim)`` float32 in [-1, 1] (continuous), or ``(M, N)`` int64
            indices in ``[0, num_actions)`` (discrete).
        reward: ``(M, N)`` float32, one reward per agent.
        next_obs: ``(M, N, obs_dim)`` float32.
        terminated: ``(M,)`` bool, shared by the team (a game's one-step episodes all end).
        agents: The agent order, ``N`` distinct names.
        meta: What made the data (environment, behaviour policy, seed...), plain values.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    terminated: Tensor
    agents: tuple[str, ...]
    meta: Mapping[str, Any]

    @property
    def num_agents(self) -> int:
        """``N``."""
        return len(self.agents)

    @property
    def discrete(self) -> bool:
        """Actions are indices."""
        return not self.action.is_floating_point()

    @property
    def num_samples(self) -> int:
        """``M`` (a NamedTuple's ``len`` is its number of fields, so this is not ``len``)."""
        return int(self.obs.shape[0])


def validate(
    data: MultiAgentData,
    *,
    where: str,
    num_agents: int | None = None,
    obs_dim: int | None = None,
    action_dim: int | None = None,
    num_actions: int | None = None,
) -> MultiAgentData:
    """Check shapes, dtypes, agents and values; return the data unchanged.

    Args:
        data: The dataset.
        where: Names the dataset in messages.
        num_agents: Expected ``N``.
        obs_dim: Expected observation size.
        action_dim: Expected action size (continuous data).
        num_actions: Expected number of discrete actions (discrete data).

    Raises:
        DatasetError: naming ``where`` and the key.
    """
    agents = tuple(data.agents)
    if len(agents) == 0 or len(set(agents)) != len(agents):
        raise DatasetError(f"{where}: key 'agents' must be distinct names, got {list(agents)}")
    n = len(agents)
    if num_agents is not None and n != num_agents:
        raise DatasetError(
            f"{where}: key 'agents' lists {n} agents, the environment has {num_agents}"
        )
    m = data.obs.shape[0] if data.obs.ndim else 0
    if m < 1:
        raise DatasetError(f"{where}: key 'obs' is empty (no transitions)")
    for key in ("obs", "next_obs"):
        t: Tensor = getattr(data, key)
        if t.ndim != 3 or t.shape[:2] != (m, n):
            raise DatasetError(
                f"{where}: key {key!r} has shape {tuple(t.shape)}, expected ({m}, {n}, obs_dim)"
            )
        if t.dtype != torch.float32:
            raise DatasetError(f"{where}: key {key!r} has dtype {t.dtype}, expected float32")
        if obs_dim is not None and t.shape[2] != obs_dim:
            raise DatasetError(
                f"{where}: key {key!r} has {t.shape[2]} features per agent, expected {obs_dim}"
            )
    if data.obs.shape != data.next_obs.shape:
        raise DatasetError(f"{where}: keys 'obs' and 'next_obs' differ in shape")
    a = data.action
    if a.is_floating_point():
        if a.dtype != torch.float32 or a.ndim != 3 or a.shape[:2] != (m, n):
            raise DatasetError(
                f"{where}: key 'action' has shape {tuple(a.shape)} {a.dtype}, expected "
                f"({m}, {n}, action_dim) float32"
            )
        if action_dim is not None and a.shape[2] != action_dim:
            raise DatasetError(
                f"{where}: key 'action' has {a.shape[2]} dimensions per agent, expected {action_dim}"
            )
        if not bool(torch.isfinite(a).all()) or bool((a.abs() > 1.0).any()):
            raise DatasetError(f"{where}: key 'action' has values outside [-1, 1] (or NaN)")
    else:
        if a.dtype != torch.int64 or a.shape != (m, n):
            raise DatasetError(
                f"{where}: key 'action' has shape {tuple(a.shape)} {a.dtype}, expected ({m}, {n}) "
                "int64 indices"
            )
        if num_actions is not None and bool(((a < 0) | (a >= num_actions)).any()):
            raise DatasetError(f"{where}: key 'action' has indices outside [0, {num_actions})")
    if data.reward.shape != (m, n) or data.reward.dtype != torch.float32:
        raise DatasetError(
            f"{where}: key 'reward' has shape {tuple(data.reward.shape)} {data.reward.dtype}, "
            f"expected ({m}, {n}) float32 (one reward per agent)"
        )
    if data.terminated.shape != (m,) or data.terminated.dtype != torch.bool:
        raise DatasetError(
            f"{where}: key 'terminated' has shape {tuple(data.terminated.shape)} "
            f"{data.terminated.dtype}, expected ({m},) bool"
        )
    for key in ("obs", "next_obs", "reward"):
        if not bool(torch.isfinite(getattr(data, key)).all()):
            raise DatasetError(f"{where}: key {key!r} has NaN or inf")
    return data


# ------------------------------------------------------------------------------ game files


def save_game_dataset(
    data: MultiAgentData, path: str | os.PathLike[str], *, overwrite: bool
) -> None:
    """Write a dataset to one checksummed file, atomically (validated first).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        DatasetError: the data is malformed.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} already exists")
    validate(data, where=f"dataset {p} (writing)")
    payload = {
        "format": FORMAT,
        "agents": list(data.agents),
        "meta": dict(data.meta),
        "obs": data.obs,
        "action": data.action,
        "reward": data.reward,
        "next_obs": data.next_obs,
        "terminated": data.terminated,
    }
    p.parent.mkdir(parents=True, exist_ok=True)
    io.save(payload, p)


def load_game_dataset(path: str | os.PathLike[str], **expect: int | None) -> MultiAgentData:
    """Read a file of :func:`save_game_dataset` (data only: ``rl_buffers.io.load``) and validate
    it (``expect``: :func:`validate`'s keyword checks).

    Raises:
        DatasetError: missing, corrupt, not a game dataset, or malformed (naming the key).
    """
    p = Path(path)
    where = f"dataset {p}"
    if not p.is_file():
        raise DatasetError(f"{where}: no such file")
    try:
        raw = io.load(p)
    except (io.CorruptFileError, io.UnsafeFileError) as e:
        raise DatasetError(f"{where}: {e}") from e
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:  # pyright: ignore[reportUnknownMemberType]
        raise DatasetError(f"{where}: not a marl-lowrank game dataset (format is not {FORMAT})")
    payload: dict[str, Any] = raw  # pyright: ignore[reportUnknownVariableType]
    for key in ("agents", "meta", "obs", "action", "reward", "next_obs", "terminated"):
        if key not in payload:
            raise DatasetError(f"{where}: missing key {key!r}")
    tensors = {}
    for key in ("obs", "action", "reward", "next_obs", "terminated"):
        if not isinstance(payload[key], Tensor):
            raise DatasetError(f"{where}: key {key!r} is not a tensor")
        tensors[key] = payload[key]
    data = MultiAgentData(
        agents=tuple(str(a) for a in payload["agents"]), meta=dict(payload["meta"]), **tensors
    )
    return validate(data, where=where, **expect)


def data_fingerprint(data: MultiAgentData) -> str:
    """SHA-256 over the tensors and agent names (checked when a run resumes)."""
    h = hashlib.sha256()
    h.update(",".join(data.agents).encode())
    for t in (data.obs, data.action, data.reward, data.next_obs, data.terminated):
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------ Minari


_AGENTS_PREFIX = "agents="


def save_minari_multiagent(
    episodes: Sequence[Episode],
    dataset_id: str,
    *,
    agents: Sequence[str],
    observation_space: Any,
    action_space: Any,
    description: str,
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    algorithm_name: str | None = None,
) -> Path:
    """Write PettingZoo episodes as a multi-agent Minari dataset (atomic, see the module doc).

    Args:
        episodes: ``observations (T+1, N, obs_dim)``, ``actions (T, N, action_dim)`` in the
            environment's units, ``rewards (T, N)``, team ``terminations``/``truncations (T,)``.
        dataset_id: Minari id.
        agents: The agent order of the agent axis.
        observation_space: ``Box(N, obs_dim)``, the joint observation.
        action_space: ``Box(N, action_dim)``, the joint action.
        description: Free text (the agent list is prepended).
        root: Datasets root.
        overwrite: Replace an existing dataset.
        algorithm_name: The behaviour policy.

    Raises:
        FileExistsError: the dataset exists and ``overwrite`` is False.
        DatasetError: an episode does not fit the spaces or the agents.
    """
    names = list(agents)
    if any("," in a or not a for a in names):
        raise DatasetError(f"dataset {dataset_id!r}: agent names must be non-empty, without ','")
    return save_minari(
        episodes,
        dataset_id,
        observation_space=observation_space,
        action_space=action_space,
        description=f"{_AGENTS_PREFIX}{','.join(names)}\n{description}",
        algorithm_name=algorithm_name,
        root=root,
        overwrite=overwrite,
        reward_shape=(len(names),),
    )


def load_minari_multiagent(
    dataset_id: str,
    *,
    agents: Sequence[str],
    root: str | os.PathLike[str] | None = None,
) -> tuple[list[Episode], ActionScale]:
    """Read a dataset of :func:`save_minari_multiagent` for an environment with ``agents``.

    Returns:
        The validated episodes (actions in the environment's units) and the per-agent action
        box of the joint action space (``Box(N, action_dim)``).

    Raises:
        DatasetNotFoundError: not under the root.
        DatasetError: another agent list or count, spaces that are not ``Box(N, ...)``, or a
            malformed episode (naming the key).
    """
    import minari
    from rl_buffers.offline import minari_dataset_dir, minari_spaces

    where = f"dataset {dataset_id!r}"
    names = tuple(agents)
    obs_space, act_space = minari_spaces(dataset_id, root=root)
    data_path = minari_dataset_dir(dataset_id, root) / "data"
    desc = str(minari.MinariDataset(data_path).storage.metadata.get("description") or "")
    first = desc.splitlines()[0] if desc else ""
    if not first.startswith(_AGENTS_PREFIX):
        raise DatasetError(
            f"{where}: not a multi-agent dataset (its description has no '{_AGENTS_PREFIX}' line)"
        )
    recorded = tuple(first.removeprefix(_AGENTS_PREFIX).split(","))
    if recorded != names:
        raise DatasetError(
            f"{where}: key 'agents' is {list(recorded)}, the environment has {list(names)}"
        )
    n = len(names)
    for label, space in (("observation", obs_space), ("action", act_space)):
        shape = getattr(space, "shape", None)
        if shape is None or len(shape) != 2 or shape[0] != n:
            raise DatasetError(
                f"{where}: the {label} space {space} is not a Box(N={n}, dim) joint space"
            )
    episodes = load_minari(dataset_id, root=root, reward_shape=(n,))
    scale = ActionScale.from_space(act_space, where=f"{where}: action space")
    return episodes, scale


def episodes_to_data(
    episodes: Sequence[Episode],
    *,
    agents: Sequence[str],
    scale: ActionScale,
    meta: Mapping[str, Any],
    where: str,
) -> MultiAgentData:
    """Flatten episodes into transitions, actions mapped into [-1, 1] by ``scale``.

    A step that is truncated bootstraps from its next observation like any non-terminal step.
    """
    unit = scale.episodes_to_unit(episodes, where=where)
    obs = np.concatenate([np.asarray(ep.observations[:-1]) for ep in unit])
    next_obs = np.concatenate([np.asarray(ep.observations[1:]) for ep in unit])
    data = MultiAgentData(
        obs=torch.as_tensor(obs, dtype=torch.float32),
        action=torch.as_tensor(np.concatenate([ep.actions for ep in unit]), dtype=torch.float32),
        reward=torch.as_tensor(np.concatenate([ep.rewards for ep in unit]), dtype=torch.float32),
        next_obs=torch.as_tensor(next_obs, dtype=torch.float32),
        terminated=torch.as_tensor(np.concatenate([ep.terminations for ep in unit])),
        agents=tuple(agents),
        meta=dict(meta),
    )
    return validate(data, where=where)


# ------------------------------------------------------------------------------ batches


class MultiAgentBatches:
    """Seeded uniform batches of a :class:`MultiAgentData` (the ``BatchSource`` of
    ``rl_runtime.offline.train_offline``); the generator is the only state.

    Args:
        data: The dataset (validated).
        batch_size: ``B``.
        seed: Seed of the sampling generator.
        device: Where batches are put.
    """

    def __init__(
        self, data: MultiAgentData, *, batch_size: int, seed: int, device: torch.device | str
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.size = data.num_samples
        self._fields = {
            "obs": data.obs.to(self.device),
            "action": data.action.to(self.device),
            "reward": data.reward.to(self.device),
            "next_obs": data.next_obs.to(self.device),
            # Per agent, as MultiAgentBatch has it; the team's flag is every agent's.
            "not_done": (~data.terminated)
            .float()[:, None]
            .expand(-1, data.num_agents)
            .to(self.device),
        }
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self) -> MultiAgentBatch:
        """``B`` joint transitions drawn uniformly with replacement."""
        idx = torch.randint(self.size, (self.batch_size,), generator=self.generator)
        i = idx.to(self.device)
        f = self._fields
        return MultiAgentBatch(
            obs=f["obs"][i],
            action=f["action"][i],
            reward=f["reward"][i],
            next_obs=f["next_obs"][i],
            not_done=f["not_done"][i],
            state=None,
            next_state=None,
            indices=i,
        )

    def __len__(self) -> int:
        return self.size

    def state_dict(self) -> dict[str, Any]:
        """The generator state and the dataset size (checked on load)."""
        return {"generator": self.generator.get_state(), "size": self.size}

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output.

        Raises:
            ValueError: the dataset has another size.
        """
        if int(state["size"]) != self.size:
            raise ValueError(
                f"the checkpoint sampled from {int(state['size'])} transitions, this dataset "
                f"has {self.size}"
            )
        self.generator.set_state(state["generator"])
