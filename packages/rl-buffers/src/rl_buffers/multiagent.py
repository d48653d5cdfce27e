"""Multi-agent batches and replay for offline MARL with the PettingZoo parallel API.

A PettingZoo parallel env steps with ``{agent: action}`` and returns ``{agent: value}`` dicts for
observations, rewards, terminations and truncations. Here those dicts become tensors with an
agent axis ``N`` in a fixed order: the env's ``possible_agents`` order, given once to the buffer.
Agents must share observation and action shapes (pad heterogeneous ones before adding).

Stacking is strict: a dict that lacks an agent or has one the order does not know raises an
error naming it. Envs that drop agents from their dicts when they die must be padded by the
caller (e.g. repeat the last observation with ``terminated=True``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from rl_buffers.samplers import Sampler, UniformSampler

__all__ = [
    "MultiAgentBatch",
    "MultiAgentReplayBuffer",
    "stack_agents",
    "unstack_agents",
]

AgentValues = Mapping[str, Any] | npt.NDArray[Any] | Tensor
"""A PettingZoo dict ``{agent: value}`` or an already stacked ``(N, ...)`` array."""


class MultiAgentBatch(NamedTuple):
    """``B`` joint transitions of ``N`` agents, agent axis in ``possible_agents`` order.

    Attributes:
        obs: ``(B, N, *obs_shape)`` storage dtype.
        action: ``(B, N, *action_shape)``: float for continuous actions, int64 ``(B, N)`` for
            discrete ones.
        reward: ``(B, N)`` float32.
        next_obs: ``(B, N, *obs_shape)``; for a truncated step the real last observation.
        not_done: ``(B, N)`` float32: 0 where the agent terminated at this step, else 1.
        state: ``(B, *state_shape)`` global state (``env.state()``), or ``None`` when the buffer
            stores none.
        next_state: ``(B, *state_shape)`` or ``None``.
        indices: ``(B,)`` int64 buffer slots, for ``update_priority``.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    not_done: Tensor
    state: Tensor | None
    next_state: Tensor | None
    indices: Tensor

    def team_not_done(self) -> Tensor:
        """``(B,)`` float32: 1 only if no agent terminated (a shared, team-level flag)."""
        return self.not_done.amin(dim=1)


def _to_numpy(value: object, field: str) -> npt.NDArray[Any]:
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{field}: cannot be read as an array ({e})") from e


def stack_agents(values: AgentValues, agents: Sequence[str], *, field: str = "values") -> Tensor:
    """Stack a PettingZoo ``{agent: value}`` dict into a CPU tensor in ``agents`` order.

    Args:
        values: ``{agent: array-like}`` (every agent of ``agents`` exactly once), or an array
            that is already stacked, ``(N, ...)``.
        agents: Agent order, usually ``env.possible_agents``.
        field: Name used in error messages (``"obs"``, ``"reward"``...).

    Returns:
        ``(N, *value_shape)`` tensor (numpy dtypes kept; python floats become float64).

    Raises:
        KeyError: an agent is missing from ``values``, or ``values`` has an unknown agent.
        ValueError: agents' values have different shapes, or a stacked array has the wrong
            number of agents.
    """
    order = list(agents)
    if isinstance(values, Mapping):
        mapping: Mapping[str, Any] = values
        missing = [a for a in order if a not in mapping]
        extra = [a for a in mapping if a not in order]
        if missing:
            raise KeyError(f"{field}: missing agent(s) {missing}; expected exactly {order}")
        if extra:
            raise KeyError(f"{field}: unknown agent(s) {extra}; expected exactly {order}")
        arrays = [_to_numpy(mapping[a], f"{field}[{a!r}]") for a in order]
        first = arrays[0].shape
        for agent, arr in zip(order, arrays, strict=True):
            if arr.shape != first:
                raise ValueError(
                    f"{field}: agent {agent!r} has shape {arr.shape}, agent {order[0]!r} has "
                    f"{first}; agents must share shapes (pad heterogeneous ones)"
                )
        stacked = np.stack(arrays)
    else:
        stacked = _to_numpy(values, field)
        if stacked.ndim == 0 or stacked.shape[0] != len(order):
            raise ValueError(
                f"{field}: stacked array has shape {stacked.shape}, expected ({len(order)}, ...) "
                f"for agents {order}"
            )
    return torch.as_tensor(stacked)


def unstack_agents(stacked: Tensor, agents: Sequence[str]) -> dict[str, Tensor]:
    """Inverse of :func:`stack_agents`: ``(N, ...)`` (or ``(B, N, ...)``) to ``{agent: value}``.

    Args:
        stacked: ``(N, ...)``, agent axis first (for a batch ``(B, N, ...)`` pass
            ``batch.action.transpose(0, 1)``).
        agents: Agent order.

    Returns:
        ``{agent: stacked[i]}`` in order, ready for ``parallel_env.step``.
    """
    if stacked.ndim == 0 or stacked.shape[0] != len(agents):
        raise ValueError(
            f"unstack_agents: expected leading axis of {len(agents)} agents, got shape "
            f"{tuple(stacked.shape)}"
        )
    return {a: stacked[i] for i, a in enumerate(agents)}


class MultiAgentReplayBuffer:
    """Ring replay of joint multi-agent transitions with pluggable samplers.

    Slots are written in a ring of ``capacity``; sampling is delegated to a
    :class:`~rl_buffers.samplers.Sampler` over slots (uniform by default; a LAP sampler gives
    prioritised replay with :meth:`update_priority`). Tensors live on ``device``.

    Args:
        agents: Agent order, ``env.possible_agents``.
        capacity: Number of joint transitions kept.
        obs_shape: Shape of one agent's observation.
        action_shape: Shape of one agent's action: ``()`` for a discrete index.
        obs_dtype: Storage dtype of observations: floating (float input), uint8 (uint8 input,
            pixels) or int64 (any integer input: discrete observations of tabular games).
        action_dtype: Storage dtype of actions: floating for continuous, int64 for discrete.
        num_actions: Number of discrete actions per agent (checks indices); discrete only.
        state_shape: Shape of the global state (``env.state()``), or ``None`` to store none.
        device: Where the tensors live.
        sampler: Sampler over ``capacity`` slots (default: a new ``UniformSampler``).
    """

    def __init__(
        self,
        agents: Sequence[str],
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...] = (),
        *,
        obs_dtype: torch.dtype = torch.float32,
        action_dtype: torch.dtype = torch.float32,
        num_actions: int | None = None,
        state_shape: tuple[int, ...] | None = None,
        device: torch.device | str = "cpu",
        sampler: Sampler | None = None,
    ) -> None:
        self.agents: tuple[str, ...] = tuple(agents)
        if len(self.agents) == 0 or len(set(self.agents)) != len(self.agents):
            raise ValueError(f"agents must be non-empty and distinct, got {list(self.agents)}")
        if isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        discrete = not action_dtype.is_floating_point
        if discrete and (action_dtype != torch.int64 or action_shape != ()):
            raise ValueError(
                "discrete actions must be int64 with action_shape=(), got "
                f"{action_dtype} with {action_shape}"
            )
        if num_actions is not None and not discrete:
            raise ValueError("num_actions is only for discrete (int64) actions")
        if not (obs_dtype.is_floating_point or obs_dtype in (torch.uint8, torch.int64)):
            raise ValueError(f"obs_dtype must be floating, uint8 or int64, got {obs_dtype}")
        self.capacity = capacity
        self.obs_shape = tuple(obs_shape)
        self.action_shape = tuple(action_shape)
        self.num_actions = num_actions
        self.state_shape = None if state_shape is None else tuple(state_shape)
        self.device = torch.device(device)
        self.sampler: Sampler = UniformSampler(capacity) if sampler is None else sampler
        if self.sampler.capacity != capacity:
            raise ValueError(
                f"sampler capacity {self.sampler.capacity} != buffer capacity {capacity}"
            )
        if self.sampler.num_active:
            raise ValueError("sampler is already in use by another buffer (it has active items)")
        n, c, dev = len(self.agents), capacity, self.device
        self._fields: dict[str, Tensor] = {
            "obs": torch.zeros((c, n, *self.obs_shape), dtype=obs_dtype, device=dev),
            "action": torch.zeros((c, n, *self.action_shape), dtype=action_dtype, device=dev),
            "reward": torch.zeros((c, n), dtype=torch.float32, device=dev),
            "next_obs": torch.zeros((c, n, *self.obs_shape), dtype=obs_dtype, device=dev),
            "terminated": torch.zeros((c, n), dtype=torch.bool, device=dev),
        }
        if self.state_shape is not None:
            for name in ("state", "next_state"):
                self._fields[name] = torch.zeros(
                    (c, *self.state_shape), dtype=torch.float32, device=dev
                )
        self._pos = 0
        self._size = 0

    @property
    def num_agents(self) -> int:
        """``N``."""
        return len(self.agents)

    def __len__(self) -> int:
        return self._size

    def _check(self, value: AgentValues, field: str, shape: tuple[int, ...], kind: str) -> Tensor:
        t = stack_agents(value, self.agents, field=field)
        expected = (self.num_agents, *shape)
        if tuple(t.shape) != expected:
            raise ValueError(
                f"{field}: expected shape {expected} (agents first), got {tuple(t.shape)}"
            )
        if kind == "float":
            if t.dtype == torch.bool or t.is_complex():
                raise TypeError(f"{field}: expected real numbers, got {t.dtype}")
            if field == "reward" and not t.is_floating_point():
                t = t.to(torch.float64)  # integer rewards are fine
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                rows = t.reshape(self.num_agents, -1)
                bad = [
                    a
                    for a, row in zip(self.agents, rows, strict=True)
                    if not bool(torch.isfinite(row).all())
                ]
                raise ValueError(f"{field}: NaN or inf for agent(s) {bad}")
        elif kind == "bool" and t.dtype != torch.bool:
            raise TypeError(f"{field}: expected bools, got {t.dtype}")
        return t

    def add(
        self,
        obs: AgentValues,
        action: AgentValues,
        reward: AgentValues,
        next_obs: AgentValues,
        terminated: AgentValues,
        truncated: AgentValues,
        *,
        state: Any = None,
        next_state: Any = None,
    ) -> int:
        """Store one joint step, straight from ``parallel_env.step`` dicts.

        Args:
            obs: ``{agent: (*obs_shape)}`` (or stacked ``(N, *obs_shape)``) before the step.
            action: ``{agent: (*action_shape)}``: the joint action taken.
            reward: ``{agent: float}``.
            next_obs: ``{agent: (*obs_shape)}`` after the step.
            terminated: ``{agent: bool}``.
            truncated: ``{agent: bool}``: validated only; a truncated step bootstraps from its
                ``next_obs`` like any non-terminal step.
            state: ``env.state()`` before the step, when the buffer has a ``state_shape``.
            next_state: ``env.state()`` after the step.

        Returns:
            The slot written.
        """
        o = self._check(obs, "obs", self.obs_shape, "float")
        no = self._check(next_obs, "next_obs", self.obs_shape, "float")
        obs_dtype = self._fields["obs"].dtype
        for name, t in (("obs", o), ("next_obs", no)):
            if obs_dtype == torch.uint8 and t.dtype != torch.uint8:
                raise TypeError(f"{name}: buffer stores uint8 observations, got {t.dtype}")
            if obs_dtype == torch.int64 and (t.is_floating_point() or t.dtype == torch.bool):
                raise TypeError(f"{name}: buffer stores integer observations, got {t.dtype}")
            if obs_dtype.is_floating_point and not t.is_floating_point():
                raise TypeError(f"{name}: expected floating observations, got {t.dtype}")
        a = stack_agents(action, self.agents, field="action")
        if tuple(a.shape) != (self.num_agents, *self.action_shape):
            raise ValueError(
                f"action: expected shape {(self.num_agents, *self.action_shape)} (agents first), "
                f"got {tuple(a.shape)}"
            )
        if self._fields["action"].dtype == torch.int64:
            if a.is_floating_point() or a.dtype == torch.bool:
                raise TypeError(f"action: expected integer (discrete) actions, got {a.dtype}")
            n_act = self.num_actions
            if n_act is not None and bool(((a < 0) | (a >= n_act)).any()):
                out = ((a < 0) | (a >= n_act)).nonzero().flatten()
                bad = [self.agents[int(i)] for i in out]
                raise ValueError(f"action: index outside [0, {n_act}) for agent(s) {bad}")
        else:
            if not a.is_floating_point():
                raise TypeError(f"action: expected floating (continuous) actions, got {a.dtype}")
            if not bool(torch.isfinite(a).all()):
                raise ValueError("action: contains NaN or inf")
        r = self._check(reward, "reward", (), "float")
        te = self._check(terminated, "terminated", (), "bool")
        self._check(truncated, "truncated", (), "bool")
        values: dict[str, Tensor] = {
            "obs": o,
            "action": a,
            "reward": r,
            "next_obs": no,
            "terminated": te,
        }
        if self.state_shape is not None:
            if state is None or next_state is None:
                raise ValueError("this buffer stores the global state: pass state= and next_state=")
            for name, s in (("state", state), ("next_state", next_state)):
                st = torch.as_tensor(_to_numpy(s, name))
                if tuple(st.shape) != self.state_shape:
                    raise ValueError(
                        f"{name}: expected shape {self.state_shape}, got {tuple(st.shape)}"
                    )
                if not st.is_floating_point() or not bool(torch.isfinite(st).all()):
                    raise ValueError(f"{name}: expected finite floats, got {st.dtype}")
                values[name] = st
        elif state is not None or next_state is not None:
            raise ValueError("this buffer was built without state_shape; it cannot store a state")
        slot = self._pos
        for name, t in values.items():
            dest = self._fields[name]
            dest[slot] = t.to(device=self.device, dtype=dest.dtype)
        self.sampler.insert([slot])
        self.sampler.set_active([slot], True)
        self._pos = (slot + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        return slot

    def sample(self, batch_size: int, generator: torch.Generator) -> MultiAgentBatch:
        """Draw ``batch_size`` joint transitions with the buffer's sampler.

        Args:
            batch_size: ``B``.
            generator: Random source on the sampler's device (the CPU for the default one).

        Returns:
            A :class:`MultiAgentBatch` on ``device``.
        """
        idx = self.sampler.sample(batch_size, generator).to(self.device)
        return self.gather(idx)

    def gather(self, indices: Tensor) -> MultiAgentBatch:
        """The batch at given slots (``(B,)`` int64), e.g. to iterate over the whole buffer."""
        if indices.ndim != 1 or indices.dtype != torch.int64:
            raise ValueError(
                f"indices must be (B,) int64, got {tuple(indices.shape)} {indices.dtype}"
            )
        if indices.numel() and bool(((indices < 0) | (indices >= self._size)).any()):
            raise ValueError(f"indices must lie in [0, {self._size}) (filled slots)")
        idx = indices.to(self.device)
        f = self._fields
        has_state = self.state_shape is not None
        return MultiAgentBatch(
            obs=f["obs"][idx],
            action=f["action"][idx],
            reward=f["reward"][idx],
            next_obs=f["next_obs"][idx],
            not_done=(~f["terminated"][idx]).to(torch.float32),
            state=f["state"][idx] if has_state else None,
            next_state=f["next_state"][idx] if has_state else None,
            indices=idx,
        )

    def update_priority(self, indices: Tensor, td_error: Tensor) -> None:
        """Pass TD errors to the sampler (no-op for uniform sampling).

        Args:
            indices: ``(B,)`` slots from :meth:`sample`.
            td_error: ``(B,)`` (or ``(B, N)``: the max over agents is used).
        """
        if td_error.ndim == 2:
            td_error = td_error.abs().amax(dim=1)  # one priority per joint transition
        self.sampler.update_priority(indices, td_error)

    def state_dict(self) -> dict[str, Any]:
        """CPU copies of the tensors, ring position, size, agent order and the sampler's state."""
        return {
            "agents": list(self.agents),
            "fields": {name: t.cpu().clone() for name, t in self._fields.items()},
            "pos": self._pos,
            "size": self._size,
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` of a buffer with the same agents, shapes and capacity."""
        if list(state["agents"]) != list(self.agents):
            raise ValueError(
                f"agent order differs: state has {list(state['agents'])}, buffer has {list(self.agents)}"
            )
        fields: dict[str, Tensor] = state["fields"]
        if set(fields) != set(self._fields):
            raise ValueError(
                f"state fields {sorted(fields)} != buffer fields {sorted(self._fields)}"
            )
        for name, mine in self._fields.items():
            theirs = fields[name]
            if theirs.shape != mine.shape or theirs.dtype != mine.dtype:
                raise ValueError(
                    f"field {name!r}: state has {tuple(theirs.shape)} {theirs.dtype}, buffer has "
                    f"{tuple(mine.shape)} {mine.dtype}"
                )
        for name, mine in self._fields.items():
            mine.copy_(fields[name])
        self._pos = int(state["pos"])
        self._size = int(state["size"])
        self.sampler.load_state_dict(state["sampler"])
