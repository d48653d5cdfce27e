"""The run options every trainer shares, frozen configs to and from JSON, and field validators.

A method's config is a frozen dataclass with (at least) an ``env: str`` field and a
``run: RunOptions`` field; :class:`RunOptions` is :class:`RunConfig` with its flags unprefixed
on the command line (``--seed 3``, ``--resume DIR``, ``--wandb``, ``--quiet``).

Every config dataclass of every method checks its fields in ``__post_init__`` with the
validators here (:func:`check`, :func:`positive`, :func:`positive_int`, :func:`in_range`, ...),
so "a number" means the same everywhere: a finite real number, never a bool; "an int" is a real
``int``, never a bool. Each raises ``ValueError`` naming the field. Configs go to and from JSON
with :func:`dataclass_to_dict` / :func:`dataclass_from_dict` (nested dataclasses, tuples,
literals and unions included; unknown keys are an error); a config that inherits
:class:`DictCodec` has them as ``to_dict`` / ``from_dict``.

This module imports neither torch nor gymnasium, so the command line starts fast.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import numbers
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, TypeVar, Union, get_args, get_origin

import tyro

__all__ = [
    "ConfigChange",
    "DictCodec",
    "MethodConfig",
    "RunConfig",
    "RunOptions",
    "check",
    "config_changes",
    "dataclass_from_dict",
    "dataclass_to_dict",
    "flag",
    "from_jsonable",
    "in_range",
    "int_at_least",
    "is_number",
    "layer_sizes",
    "non_negative",
    "one_of",
    "positive",
    "positive_int",
    "probability",
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
    restart: bool = False
    """Start the run in an existing directory over from step 0; its earlier metrics, checkpoints
    and TensorBoard events are moved to <run>/previous-<time>/, never deleted."""
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
            "restart",
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
        # Messages name the command-line flag (RunOptions is unprefixed).
        int_at_least("--seed", self.seed, 0)
        for name in ("total_steps", "eval_every", "log_every", "checkpoint_every"):
            positive_int(flag(name), getattr(self, name))
        int_at_least("--eval-episodes", self.eval_episodes, 0)
        non_negative("--checkpoint-minutes", self.checkpoint_minutes)
        positive_int("--keep-checkpoints", self.keep_checkpoints)
        int_at_least("--torch-threads", self.torch_threads, 0)
        check(
            "/" not in self.name and self.name not in (".", ".."),
            f"--name must be a single path component, got {self.name!r}",
        )


def flag(field: str, prefix: str = "") -> str:
    """The command-line flag of a config field: ``--loop.batch-size`` for (``batch_size``,
    ``"loop."``)."""
    return f"--{prefix}{field.replace('_', '-')}"


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
# Field validators (for the ``__post_init__`` of config dataclasses)


def check(cond: bool, msg: str) -> None:
    """Raise ``ValueError(msg)`` unless ``cond``: for a rule no other validator states."""
    if not cond:
        raise ValueError(msg)


def is_number(value: object) -> bool:
    """Whether ``value`` is a finite real number (an int or a float, numpy's included), not a bool.

    Example:
        >>> [is_number(v) for v in (1, 0.5, True, float("nan"), "1")]
        [True, True, False, False, False]
    """
    return (
        isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)  # pyright: ignore[reportArgumentType]
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive(name: str, value: float) -> None:
    """``value`` is a finite number > 0.

    Raises:
        ValueError: ``"{name} must be a finite number > 0, got {value!r}"``.
    """
    check(is_number(value) and value > 0, f"{name} must be a finite number > 0, got {value!r}")


def non_negative(name: str, value: float) -> None:
    """``value`` is a finite number >= 0.

    Raises:
        ValueError: ``"{name} must be a finite number >= 0, got {value!r}"``.
    """
    check(is_number(value) and value >= 0, f"{name} must be a finite number >= 0, got {value!r}")


def int_at_least(name: str, value: int, low: int) -> None:
    """``value`` is an int (not a bool) >= ``low``.

    Raises:
        ValueError: ``"{name} must be an int >= {low}, got {value!r}"``.
    """
    check(_is_int(value) and value >= low, f"{name} must be an int >= {low}, got {value!r}")


def positive_int(name: str, value: int) -> None:
    """``value`` is an int (not a bool) >= 1."""
    int_at_least(name, value, 1)


def in_range(
    name: str,
    value: float,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """``value`` is a finite number in ``[low, high]``, either end open when asked.

    Raises:
        ValueError: ``"{name} must be a finite number in [low, high), got {value!r}"`` (the
            brackets say which ends are open).
    """
    ok = is_number(value) and (
        (low < value if low_open else low <= value)
        and (value < high if high_open else value <= high)
    )
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    check(ok, f"{name} must be a finite number in {interval}, got {value!r}")


def probability(name: str, value: float) -> None:
    """``value`` is a finite number in ``[0, 1]``."""
    in_range(name, value, 0.0, 1.0)


def one_of(name: str, value: object, choices: Collection[object]) -> None:
    """``value`` is one of ``choices`` (a ``Literal`` field's values).

    Raises:
        ValueError: ``"{name} must be one of [...], got {value!r}"``.
    """
    check(value in choices, f"{name} must be one of {list(choices)}, got {value!r}")


def layer_sizes(name: str, sizes: tuple[int, ...]) -> None:
    """``sizes`` is a non-empty tuple of ints >= 1 (hidden layer widths).

    Raises:
        ValueError: naming ``name`` (or ``name[i]`` for the offending entry).
    """
    check(
        isinstance(sizes, tuple) and len(sizes) > 0,
        f"{name} must be a non-empty tuple of ints, got {sizes!r}",
    )
    for i, size in enumerate(sizes):
        int_at_least(f"{name}[{i}]", size, 1)


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


def dataclass_to_dict(obj: Any) -> dict[str, Any]:
    """A config dataclass instance as a JSON-compatible nested dict (tuples become lists).

    The ``to_dict`` of every method config. Inverse: :func:`dataclass_from_dict`.

    Raises:
        TypeError: ``obj`` is not a dataclass instance, or holds a value JSON cannot store.
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"expected a dataclass instance, got {type(obj).__name__}")
    return typing.cast(dict[str, Any], to_jsonable(obj, where=type(obj).__name__))


def dataclass_from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild a config dataclass from :func:`dataclass_to_dict` output (or a JSON load of it).

    The ``from_dict`` of every method config: nested dataclasses, tuples (from lists),
    literals and optional fields are rebuilt and type-checked, missing keys take their defaults,
    and the dataclasses' own ``__post_init__`` checks run.

    Raises:
        ValueError: an unknown key, or a value that does not fit its field; the message names
            the dotted field path (``MRQConfig.encoder: unknown field(s) ['zs_size'] ...``).
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"expected a dataclass type, got {cls!r}")
    return from_jsonable(cls, data, where=cls.__name__)


class DictCodec:
    """Mixin giving a config dataclass ``to_dict`` / ``from_dict`` (the shared codec above).

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class Cfg(DictCodec):
        ...     sizes: tuple[int, ...] = (2, 2)
        >>> Cfg().to_dict()
        {'sizes': [2, 2]}
        >>> Cfg.from_dict({"sizes": [3]})
        Cfg(sizes=(3,))
    """

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-serialisable) for ``config.json`` and checkpoints."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict` (lists become tuples); unknown keys raise, naming them."""
        return dataclass_from_dict(cls, data)


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
