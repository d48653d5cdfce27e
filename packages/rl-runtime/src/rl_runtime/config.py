"""The run options every trainer shares, and frozen configs to and from JSON.

A method's config is a frozen dataclass with (at least) an ``env: str`` field and a
``run: RunOptions`` field; :class:`RunOptions` is :class:`RunConfig` with its flags unprefixed
on the command line (``--seed 3``, ``--resume DIR``, ``--wandb``, ``--quiet``).

This module imports neither torch nor gymnasium, so the command line starts fast.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, Union, get_args, get_origin

import tyro

__all__ = [
    "ConfigChange",
    "MethodConfig",
    "RunConfig",
    "RunOptions",
    "config_changes",
    "from_jsonable",
    "to_jsonable",
]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Options of the runtime (seeding, schedule, run directory, logging) shared by every method."""

    seed: int = 0
    """Seed for random, numpy, torch, the action space and every episode reset."""
    total_steps: int = 1_000_000
    """Length of the run, in the method's steps (environment steps for online methods)."""
    eval_every: int = 5_000
    """Steps between evaluations (also at step 0 and at the last step)."""
    eval_episodes: int = 10
    """Episodes per evaluation, on a separate environment with fixed per-episode seeds."""
    log_every: int = 1_000
    """Steps between train/, buffer/ and time/ entries in metrics.jsonl (means over the interval)."""
    checkpoint_every: int = 50_000
    """Steps between checkpoints (also at the last step)."""
    checkpoint_minutes: float = 30.0
    """Also checkpoint once this many minutes of wall time have passed since the last checkpoint
    (slow CPU runs then never lose more than this); 0 checkpoints by steps only."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk; older ones are deleted (2 or more leaves a fallback)."""
    root: Path = Path("runs")
    """Directory under which runs are created as <root>/<method>/<env>/<seed>-<name>."""
    name: str = ""
    """Run name; empty means the start time. A named run whose directory exists is resumed."""
    resume: Path | None = None
    """Resume the run in this directory from its latest good checkpoint; its config.json wins."""
    allow_config_change: bool = False
    """On resume, accept options that differ from the run's config.json (and record them)."""
    device: str = "auto"
    """Torch device for networks and buffers: auto (cuda if available), cpu, cuda, cuda:1, ..."""
    torch_threads: int = 0
    """torch.set_num_threads for this run; 0 keeps torch's default."""
    deterministic: bool = False
    """torch.use_deterministic_algorithms(True) (slower on GPU; CPU runs are deterministic anyway)."""
    tensorboard: bool = True
    """Write TensorBoard event files under <run>/tb."""
    wandb: bool = False
    """Also log to Weights & Biases (needs the `wandb` extra)."""
    wandb_project: str = "rlworks"
    """W&B project."""
    wandb_entity: str | None = None
    """W&B entity (user or team); None means your default."""
    quiet: bool = False
    """No progress bar and only warnings on the terminal (run.log still gets everything)."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset(
        {
            "resume",
            "allow_config_change",
            "device",
            "torch_threads",
            "tensorboard",
            "wandb",
            "wandb_project",
            "wandb_entity",
            "quiet",
            "checkpoint_minutes",
        }
    )
    """Fields that may differ between a run's config.json and the command that resumes it."""

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"RunConfig.seed must be >= 0, got {self.seed}")
        for name in ("total_steps", "eval_every", "log_every", "checkpoint_every"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"RunConfig.{name} must be >= 1, got {value}")
        if self.eval_episodes < 0:
            raise ValueError(f"RunConfig.eval_episodes must be >= 0, got {self.eval_episodes}")
        if not self.checkpoint_minutes >= 0:
            raise ValueError(
                f"RunConfig.checkpoint_minutes must be >= 0, got {self.checkpoint_minutes}"
            )
        if self.keep_checkpoints < 1:
            raise ValueError(
                f"RunConfig.keep_checkpoints must be >= 1, got {self.keep_checkpoints}"
            )
        if self.torch_threads < 0:
            raise ValueError(f"RunConfig.torch_threads must be >= 0, got {self.torch_threads}")
        if "/" in self.name or self.name in (".", ".."):
            raise ValueError(f"RunConfig.name must be a single path component, got {self.name!r}")


RunOptions = tyro.conf.OmitArgPrefixes[RunConfig]
"""Annotation for a method config's ``run`` field: its flags appear as ``--seed``, ``--resume``..."""


class MethodConfig(Protocol):
    """What the runtime reads from a method's (frozen dataclass) config."""

    @property
    def env(self) -> str:
        """Gymnasium environment id."""
        ...

    @property
    def run(self) -> RunConfig:
        """Runtime options."""
        ...


# ---------------------------------------------------------------------------------------------
# JSON round trip


def to_jsonable(obj: Any, *, where: str = "config") -> Any:
    """Convert a (nested) config dataclass to JSON-compatible values.

    Dataclasses become dicts of their fields, paths strings, tuples lists, enums their values.

    Raises:
        TypeError: a value of another type, naming its dotted field path.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_jsonable(getattr(obj, f.name), where=f"{where}.{f.name}")
            for f in dataclasses.fields(obj)
        }
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value, where=where)
    if isinstance(obj, tuple | list):
        return [to_jsonable(v, where=f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: mapping keys must be str for JSON, got {k!r}")
            out[k] = to_jsonable(v, where=f"{where}.{k}")
        return out
    raise TypeError(f"{where}: cannot store a {type(obj).__name__} in config.json")


def from_jsonable(tp: type[T], data: Any, *, where: str = "config") -> T:
    """Rebuild a value of type ``tp`` (typically a config dataclass) from :func:`to_jsonable` output.

    Keys missing from ``data`` take the field's default, so a config.json written before a field
    was added still loads; unknown keys are an error.

    Raises:
        ValueError: ``data`` does not fit ``tp``; the message names the dotted field path.
    """
    return typing.cast(T, _decode(tp, data, where))


def _decode(tp: Any, data: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _decode(get_args(tp)[0], data, where)
    if tp is Any:
        return data
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected an object for {tp.__name__}, got {data!r}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown} for {tp.__name__}")
        kwargs = {
            name: _decode(hints[name], data[name], f"{where}.{name}")
            for name in fields
            if name in data
        }
        return tp(**kwargs)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if data is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _decode(arg, data, where)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(f"{where}: {data!r} fits none of {tp} ({'; '.join(errors)})")
    if origin is typing.Literal:
        if data not in get_args(tp):
            raise ValueError(f"{where}: expected one of {list(get_args(tp))}, got {data!r}")
        return data
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(data, list | tuple):
            raise ValueError(f"{where}: expected a list, got {data!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(data))
        if len(args) != len(data):
            raise ValueError(f"{where}: expected {len(args)} items, got {len(data)}")
        return tuple(
            _decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, data, strict=True))
        )
    if origin is list:
        if not isinstance(data, list):
            raise ValueError(f"{where}: expected a list, got {data!r}")
        (arg,) = get_args(tp)
        return [_decode(arg, v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin is dict:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected an object, got {data!r}")
        _, value_type = get_args(tp)
        return {k: _decode(value_type, v, f"{where}.{k}") for k, v in data.items()}
    if tp is bool:
        if not isinstance(data, bool):
            raise ValueError(f"{where}: expected a bool, got {data!r}")
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ValueError(f"{where}: expected an int, got {data!r}")
        return data
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise ValueError(f"{where}: expected a number, got {data!r}")
        return float(data)
    if tp is str:
        if not isinstance(data, str):
            raise ValueError(f"{where}: expected a string, got {data!r}")
        return data
    if tp is Path:
        if not isinstance(data, str):
            raise ValueError(f"{where}: expected a path string, got {data!r}")
        return Path(data)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(data)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from e
    raise ValueError(f"{where}: cannot rebuild a value of type {tp!r} from JSON")


@dataclasses.dataclass(frozen=True)
class ConfigChange:
    """One field whose value differs between two configs."""

    key: str
    """Dotted field path, e.g. ``agent.lr`` or ``run.total_steps``."""
    old: Any
    """Value in the run's config.json (``<missing>`` if absent)."""
    new: Any
    """Value asked for now (``<missing>`` if absent)."""

    def __str__(self) -> str:
        return f"{self.key}: run has {self.old!r}, command asks for {self.new!r}"


def _flatten(data: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, Mapping) and data:
        for k, v in data.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = data
    return out


def config_changes(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
) -> list[ConfigChange]:
    """Fields that differ between two :func:`to_jsonable` dicts, by dotted key, sorted.

    Args:
        old: The run's recorded config.
        new: The config asked for now.
        defaults: The config type's defaults (``to_jsonable(type(cfg)())``). A field that
            ``old`` lacks (added to the code after the run started) and that ``new`` sets to
            its default is not a change: the run behaved as the default does.

    Example:
        >>> config_changes({"a": {"b": 1}, "c": 2}, {"a": {"b": 3}, "c": 2})
        [ConfigChange(key='a.b', old=1, new=3)]
        >>> config_changes({"c": 2}, {"c": 2, "d": False}, defaults={"c": 0, "d": False})
        []
    """
    flat_old, flat_new = _flatten(old, "", {}), _flatten(new, "", {})
    flat_default = _flatten(defaults, "", {}) if defaults is not None else {}
    missing = "<missing>"
    return [
        ConfigChange(key, flat_old.get(key, missing), flat_new.get(key, missing))
        for key in sorted(set(flat_old) | set(flat_new))
        if flat_old.get(key, missing) != flat_new.get(key, missing)
        and not (
            key not in flat_old
            and key in flat_default
            and flat_new.get(key, missing) == flat_default[key]
        )
    ]
