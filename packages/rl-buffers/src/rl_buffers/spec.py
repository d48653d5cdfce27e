"""What one transition looks like, and the checks every ``add`` runs against it.

A :class:`TransitionSpec` fixes the observation frame shape and dtype, the action shape, dtype and
kind, and the frame history. :meth:`TransitionSpec.check_steps` validates a block of ``T``
consecutive transitions (one for :meth:`ReplayBuffer.add`) and returns them as host numpy arrays in
the storage dtypes, raising an error that names the field, the expected and the received shape or
dtype, or the first non-finite entry.

Observation layout: with ``history == 1`` an observation has shape ``obs_shape``; with
``history = k > 1`` it is a stack of the last ``k`` frames along a new leading axis,
``(k, *obs_shape)`` (gymnasium's ``FrameStackObservation`` layout), oldest first. MR.Q's
channel-concatenated layout ``(k * C, H, W)`` is ``obs.flatten(1, 2)`` of a sampled batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from rl_buffers._util import is_int

__all__ = ["ActionKind", "ArrayLike", "CheckedSteps", "TransitionSpec", "numpy_dtype"]

ActionKind = Literal["continuous", "discrete"]
"""``"continuous"``: float vectors stored as given. ``"discrete"``: an int64 index per step."""

ArrayLike = npt.NDArray[Any] | Tensor | float | int | bool | np.generic | Sequence[Any]
"""What ``add`` accepts for any field: numpy arrays, tensors (any device), python scalars."""

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_NUMPY_OF_TORCH: dict[torch.dtype, type[np.generic]] = {
    torch.uint8: np.uint8,
    torch.int8: np.int8,
    torch.int16: np.int16,
    torch.int32: np.int32,
    torch.int64: np.int64,
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
}
_DTYPE_BY_NAME: dict[str, torch.dtype] = {str(d).removeprefix("torch."): d for d in _NUMPY_OF_TORCH}


def _as_numpy(value: ArrayLike, field: str) -> npt.NDArray[Any]:
    """Host numpy view of ``value`` (copies a device tensor to the CPU)."""
    if isinstance(value, Tensor):
        t = value.detach()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged sequences, objects numpy cannot hold
        raise TypeError(f"{field}: cannot be read as an array ({e})") from e


def numpy_dtype(dtype: torch.dtype) -> type[np.generic]:
    """The numpy scalar type of a storable torch dtype."""
    return _NUMPY_OF_TORCH[dtype]


def _first_bad_row(bad: npt.NDArray[np.bool_]) -> int:
    """Index of the first row (leading axis) holding a True entry of ``bad``."""
    rows = bad.reshape(bad.shape[0], -1).any(axis=1)
    return int(np.flatnonzero(rows)[0])


@dataclass(frozen=True)
class CheckedSteps:
    """``T`` validated consecutive transitions as host numpy arrays in storage dtypes.

    Attributes:
        obs: ``(T, *stacked_obs_shape)`` in ``spec.obs_dtype``.
        action: ``(T, *action_shape)`` in ``spec.action_dtype``.
        reward: ``(T,)`` float32.
        next_obs: ``(T, *stacked_obs_shape)`` in ``spec.obs_dtype``.
        terminated: ``(T,)`` bool.
        truncated: ``(T,)`` bool; ``False`` wherever ``terminated`` is ``True`` (a step that is
            both is a termination: its next state has no value to bootstrap from).
    """

    obs: npt.NDArray[Any]
    action: npt.NDArray[Any]
    reward: npt.NDArray[np.float32]
    next_obs: npt.NDArray[Any]
    terminated: npt.NDArray[np.bool_]
    truncated: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TransitionSpec:
    """Shapes, dtypes and kinds of one transition; validates everything a buffer stores.

    Attributes:
        obs_shape: Shape of one observation frame, e.g. ``(17,)`` or ``(3, 84, 84)``.
        action_shape: Shape of one action: ``(action_dim,)`` for continuous actions, ``()`` for
            discrete ones.
        obs_dtype: Storage dtype of observations. ``torch.uint8`` for pixels (input must then be
            uint8 too); a floating dtype accepts any floating input and casts it.
        action_dtype: Storage dtype of actions: floating for continuous, ``torch.int64`` for
            discrete.
        action_kind: ``"continuous"`` or ``"discrete"``.
        num_actions: Number of discrete actions (required for, and only for, discrete actions).
        history: Number of stacked frames ``k`` in an observation (1: no stacking).
    """

    obs_shape: tuple[int, ...]
    action_shape: tuple[int, ...] = ()
    obs_dtype: torch.dtype = torch.float32
    action_dtype: torch.dtype = torch.float32
    action_kind: ActionKind = "continuous"
    num_actions: int | None = None
    history: int = 1

    def __post_init__(self) -> None:
        for name, shape in (("obs_shape", self.obs_shape), ("action_shape", self.action_shape)):
            ok = isinstance(shape, tuple) and all(is_int(d) and d >= 1 for d in shape)  # pyright: ignore[reportUnnecessaryIsInstance]
            if not ok:
                raise ValueError(
                    f"TransitionSpec.{name} must be a tuple of ints >= 1, got {shape!r}"
                )
        if self.obs_dtype not in _NUMPY_OF_TORCH:
            raise TypeError(
                f"TransitionSpec.obs_dtype must be one of {sorted(_DTYPE_BY_NAME)}, got {self.obs_dtype}"
            )
        if not is_int(self.history) or self.history < 1:
            raise ValueError(f"TransitionSpec.history must be an int >= 1, got {self.history!r}")
        if self.action_kind == "continuous":
            if self.action_dtype not in _FLOAT_DTYPES or self.action_dtype == torch.bfloat16:
                raise TypeError(
                    "TransitionSpec.action_dtype must be float16/32/64 for continuous actions, "
                    f"got {self.action_dtype}"
                )
            if self.num_actions is not None:
                raise ValueError(
                    "TransitionSpec.num_actions is only for discrete actions, got "
                    f"{self.num_actions!r} with action_kind='continuous'"
                )
        elif self.action_kind == "discrete":
            if self.action_dtype != torch.int64:
                raise TypeError(
                    "TransitionSpec.action_dtype must be torch.int64 for discrete actions, "
                    f"got {self.action_dtype}"
                )
            if self.action_shape != ():
                raise ValueError(
                    "TransitionSpec.action_shape must be () for discrete actions (one index per "
                    f"step), got {self.action_shape}"
                )
            n = self.num_actions
            if n is None or not is_int(n) or n < 1:
                raise ValueError(
                    f"TransitionSpec.num_actions must be an int >= 1 for discrete actions, got {n!r}"
                )
        else:
            raise ValueError(
                f"TransitionSpec.action_kind must be 'continuous' or 'discrete', got {self.action_kind!r}"
            )

    @classmethod
    def continuous(
        cls,
        obs_shape: tuple[int, ...],
        action_dim: int,
        *,
        obs_dtype: torch.dtype = torch.float32,
        history: int = 1,
    ) -> TransitionSpec:
        """Spec for continuous ``(action_dim,)`` float32 actions."""
        return cls(
            obs_shape=obs_shape, action_shape=(action_dim,), obs_dtype=obs_dtype, history=history
        )

    @classmethod
    def discrete(
        cls,
        obs_shape: tuple[int, ...],
        num_actions: int,
        *,
        obs_dtype: torch.dtype = torch.float32,
        history: int = 1,
    ) -> TransitionSpec:
        """Spec for discrete actions stored as int64 indices in ``[0, num_actions)``."""
        return cls(
            obs_shape=obs_shape,
            action_shape=(),
            obs_dtype=obs_dtype,
            action_dtype=torch.int64,
            action_kind="discrete",
            num_actions=num_actions,
            history=history,
        )

    @property
    def stacked_obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation as passed to ``add``: ``obs_shape`` or ``(k, *obs_shape)``."""
        return self.obs_shape if self.history == 1 else (self.history, *self.obs_shape)

    @property
    def pixels(self) -> bool:
        """Whether observations are stored as uint8 images."""
        return self.obs_dtype == torch.uint8

    @property
    def frame_bytes(self) -> int:
        """Bytes of one stored frame."""
        return math.prod(self.obs_shape) * torch.empty((), dtype=self.obs_dtype).element_size()

    def to_dict(self) -> dict[str, Any]:
        """Plain-python description (dtype names as strings) for checkpoints."""
        return {
            "obs_shape": list(self.obs_shape),
            "action_shape": list(self.action_shape),
            "obs_dtype": str(self.obs_dtype).removeprefix("torch."),
            "action_dtype": str(self.action_dtype).removeprefix("torch."),
            "action_kind": self.action_kind,
            "num_actions": self.num_actions,
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TransitionSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            obs_shape=tuple(int(x) for x in d["obs_shape"]),
            action_shape=tuple(int(x) for x in d["action_shape"]),
            obs_dtype=_DTYPE_BY_NAME[d["obs_dtype"]],
            action_dtype=_DTYPE_BY_NAME[d["action_dtype"]],
            action_kind=d["action_kind"],
            num_actions=d["num_actions"],
            history=int(d["history"]),
        )

    # ------------------------------------------------------------------ validation

    def _check_shape(self, x: npt.NDArray[Any], field: str, expected: tuple[int, ...]) -> None:
        if x.shape != expected:
            raise ValueError(f"{field}: expected shape {expected}, got {tuple(x.shape)}")

    def _check_obs(self, value: ArrayLike, field: str, lead: tuple[int, ...]) -> npt.NDArray[Any]:
        x = _as_numpy(value, field)
        self._check_shape(x, field, (*lead, *self.stacked_obs_shape))
        kind = x.dtype.kind
        if self.obs_dtype in _INT_DTYPES:
            # Pixels: a float image in [0, 1] silently truncated to 0/1 is the classic bug.
            if x.dtype != numpy_dtype(self.obs_dtype):
                raise TypeError(
                    f"{field}: expected dtype {str(self.obs_dtype).removeprefix('torch.')}, got {x.dtype}"
                )
            return x
        if kind != "f":
            raise TypeError(
                f"{field}: expected a floating dtype (stored as "
                f"{str(self.obs_dtype).removeprefix('torch.')}), got {x.dtype}"
            )
        bad = ~np.isfinite(x)
        if bad.any():
            where = f" at step {_first_bad_row(bad)}" if lead else ""
            raise ValueError(f"{field}: contains NaN or inf{where}")
        return x.astype(numpy_dtype(self.obs_dtype), copy=False)

    def _check_action(self, value: ArrayLike, lead: tuple[int, ...]) -> npt.NDArray[Any]:
        x = _as_numpy(value, "action")
        self._check_shape(x, "action", (*lead, *self.action_shape))
        if self.action_kind == "discrete":
            if x.dtype.kind not in "iu":
                raise TypeError(
                    f"action: expected an integer dtype (discrete action index), got {x.dtype}"
                )
            n = self.num_actions
            assert n is not None
            out_of_range = (x < 0) | (x >= n)
            if out_of_range.any():
                bad = x[out_of_range].reshape(-1)[0]
                raise ValueError(f"action: discrete index must be in [0, {n}), got {bad}")
            return x.astype(np.int64, copy=False)
        if x.dtype.kind != "f":
            raise TypeError(f"action: expected a floating dtype (continuous action), got {x.dtype}")
        bad = ~np.isfinite(x)
        if bad.any():
            where = f" at step {_first_bad_row(bad)}" if lead and x.ndim > 0 else ""
            raise ValueError(f"action: contains NaN or inf{where}")
        return x.astype(numpy_dtype(self.action_dtype), copy=False)

    @staticmethod
    def _check_reward(value: ArrayLike, lead: tuple[int, ...]) -> npt.NDArray[np.float32]:
        x = _as_numpy(value, "reward")
        if x.shape != lead:
            raise ValueError(
                f"reward: expected shape {lead} (a scalar per step), got {tuple(x.shape)}"
            )
        if x.dtype.kind not in "fiu":
            raise TypeError(f"reward: expected a real number, got dtype {x.dtype}")
        xf = x.astype(np.float64)
        bad = ~np.isfinite(xf)
        if bad.any():
            where = f" at step {int(np.flatnonzero(bad.reshape(-1))[0])}" if lead else ""
            raise ValueError(
                f"reward: is NaN or inf{where} (got {xf.reshape(-1)[bad.reshape(-1)][0]})"
            )
        return xf.astype(np.float32)

    @staticmethod
    def _check_flag(value: ArrayLike, field: str, lead: tuple[int, ...]) -> npt.NDArray[np.bool_]:
        x = _as_numpy(value, field)
        if x.shape != lead:
            raise ValueError(
                f"{field}: expected shape {lead} (a bool per step), got {tuple(x.shape)}"
            )
        if x.dtype != np.bool_:
            raise TypeError(f"{field}: expected a bool, got dtype {x.dtype}")
        return x

    def check_steps(
        self,
        obs: ArrayLike,
        action: ArrayLike,
        reward: ArrayLike,
        next_obs: ArrayLike,
        terminated: ArrayLike,
        truncated: ArrayLike,
        *,
        num_steps: int | None,
    ) -> CheckedSteps:
        """Validate transitions and convert them to host arrays in storage dtypes.

        Args:
            obs: ``stacked_obs_shape``, or ``(T, *stacked_obs_shape)`` when ``num_steps`` is given.
            action: ``action_shape`` (or ``(T, *action_shape)``).
            reward: scalar (or ``(T,)``), finite.
            next_obs: like ``obs``.
            terminated: bool scalar (or ``(T,)``).
            truncated: bool scalar (or ``(T,)``).
            num_steps: ``None`` for a single transition, else ``T`` (fields carry a leading axis).

        Returns:
            The transitions with a leading axis of length ``T`` (1 for a single transition).

        Raises:
            ValueError: wrong shape, NaN/inf, discrete action out of range.
            TypeError: wrong dtype.
        """
        lead: tuple[int, ...] = () if num_steps is None else (num_steps,)
        o = self._check_obs(obs, "obs", lead)
        a = self._check_action(action, lead)
        r = self._check_reward(reward, lead)
        no = self._check_obs(next_obs, "next_obs", lead)
        te = self._check_flag(terminated, "terminated", lead)
        tr = self._check_flag(truncated, "truncated", lead)
        if num_steps is None:
            o, a, r, no, te, tr = o[None], a[None], r[None], no[None], te[None], tr[None]
        return CheckedSteps(
            obs=o,
            action=a,
            reward=r,
            next_obs=no,
            terminated=te.astype(np.bool_),
            truncated=tr.astype(np.bool_) & ~te,
        )
