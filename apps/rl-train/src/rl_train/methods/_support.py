"""What the method modules share about the command line and the terminal (not a method).

* :class:`DerivedMethod`: a training subcommand whose config holds settings that follow from
  other options (the agent's environment id follows ``--env``, its settings follow ``--algo``)
  and nested fields that are no option at all (the run length lives in ``--total-steps``, not
  in the agent's schedule). The command line is read twice: first for the options the settings
  follow from, then with the preset changed accordingly as the defaults, so that every option
  given applies on top; fields listed as fixed are not offered by the command line.
* :class:`CommandMethod`: a subcommand that is not a training run (no run directory, no resume,
  no presets): its config is the command's options and nothing else.
* :func:`quiet_mujoco` and :func:`progress_wanted`: a run's terminal shows what matters, once.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import tyro
from rl_runtime.config import MethodConfig
from tyro.constructors import ConstructorRegistry, StructConstructorSpec, StructTypeInfo

from rl_train.method import Method, UsageError

__all__ = ["CommandMethod", "DerivedMethod", "fixed_fields", "progress_wanted", "quiet_mujoco"]

C = TypeVar("C", bound=MethodConfig)

Fixed = Mapping[type[Any], frozenset[str]]
"""Dataclass type -> names of its fields that the command line does not offer."""

_BUILDING = threading.local()


@contextmanager
def fixed_fields(fixed: Fixed) -> Iterator[None]:
    """While active, tyro leaves the ``fixed`` fields of those dataclasses off the command line
    (and ``--help``): they keep the value of the default config, wherever the type is nested.

    Everything else about the dataclass (other fields, help from the docstrings, defaults) is
    tyro's own handling; this only marks the fixed fields ``tyro.conf.Suppress``.
    """
    registry = ConstructorRegistry()

    @registry.struct_rule
    def _suppress(info: StructTypeInfo) -> StructConstructorSpec | None:
        names = fixed.get(info.type)
        if not names or getattr(_BUILDING, "active", False):
            return None
        _BUILDING.active = True  # ask tyro's own rules for the spec, not this one again
        try:
            spec = ConstructorRegistry.get_struct_spec(info)
        finally:
            _BUILDING.active = False
        if not isinstance(spec, StructConstructorSpec):
            return None
        fields = tuple(
            dataclasses.replace(f, type=Annotated[f.type, tyro.conf.Suppress])
            if f.name in names
            else f
            for f in spec.fields
        )
        return StructConstructorSpec(instantiate=spec.instantiate, fields=fields)

    with registry:
        yield


def _strip_help(argv: Sequence[str]) -> list[str]:
    return [arg for arg in argv if arg not in ("-h", "--help")]


def _preset_name(argv: Sequence[str]) -> str | None:
    """The value of the last ``--preset NAME`` / ``--preset=NAME``, if any."""
    name: str | None = None
    for i, arg in enumerate(argv):
        if arg == "--preset" and i + 1 < len(argv):
            name = argv[i + 1]
        elif arg.startswith("--preset="):
            name = arg.removeprefix("--preset=")
    return name


@dataclasses.dataclass(frozen=True)
class DerivedMethod(Method[C]):
    """A training subcommand with derived settings and fixed fields (see the module doc).

    ``parse`` reads the command line once with the preset as it is, calls ``derive`` with that
    first reading to change the chosen preset (``--env`` sets the agent's environment id,
    ``--algo`` applies the algorithm's settings...), and reads the command line again with the
    changed preset as the defaults. ``--resume DIR`` without ``--preset`` reads it once, on the
    run's own config.json. ``check`` then sees the final config beside the defaults it was read
    on.
    """

    derive: Callable[[C, str, C], C] | None = None
    """``(first reading, preset name, preset) -> the preset the options apply to``."""
    fixed: Fixed = dataclasses.field(default_factory=dict[type[Any], frozenset[str]])
    """Nested fields that are no option (their values come from ``derive`` or the preset)."""
    check: Callable[[C, C | None], None] | None = None
    """``(config, its defaults or None on resume)``: raises :class:`UsageError` for options
    that contradict each other or would be ignored."""

    def parse(self, argv: Sequence[str]) -> C:
        """Build the config from ``[--preset NAME] [overrides...]`` (see the class doc).

        Raises:
            UsageError: as :meth:`Method.parse`, a config that does not validate, or ``check``.
            SystemExit: from tyro, for ``--help`` or a malformed option.
        """
        argv = list(argv)
        preset = _preset_name(argv)
        with fixed_fields(self.fixed):
            try:
                first = super().parse(_strip_help(argv))
            except ValueError as e:  # a config.json that does not fit (--resume of an older run)
                if isinstance(e, UsageError):
                    raise
                raise UsageError(str(e)) from e
            defaults: C | None = None
            if first.run.resume is not None and preset is None:
                cfg = super().parse(argv)  # the run's config.json gives every default
            else:
                # Only the preset read is derived (a derivation may look things up: ot-ilfo's
                # --env horizon reads gymnasium's registry); the others keep their values.
                name = preset or self.default_preset
                defaults = self.presets[name]
                if self.derive is not None:
                    defaults = self.derive(first, name, defaults)
                presets = {**self.presets, name: defaults}
                plain = Method(self.name, self.config_type, presets, self.train, self.description)
                cfg = plain.parse(argv)
        if self.check is not None:
            self.check(cfg, defaults)
        return cfg


@dataclasses.dataclass(frozen=True)
class CommandMethod(Method[Any]):
    """A subcommand that is not a training run: no run directory, no resume; its config is the
    command's options, with the first preset's values as the defaults."""

    fixed: Fixed = dataclasses.field(default_factory=dict[type[Any], frozenset[str]])
    """Nested fields that are no option."""

    def parse(self, argv: Sequence[str]) -> Any:
        """Build the config from the command line (tyro; ``--help`` lists every option).

        Raises:
            UsageError: a config that does not validate (a one-line message, not tyro's box).
            SystemExit: from tyro, for ``--help`` or a malformed option.
        """
        with fixed_fields(self.fixed):
            return tyro.cli(
                self.config_type,
                default=self.presets[self.default_preset],
                args=list(argv),
                prog=f"rl-train {self.name}",
                description=self.description,
            )


def progress_wanted(quiet: bool) -> bool:
    """Draw a progress bar: not asked to be quiet and stderr is a terminal (a bar written to a
    log file is a line of carriage returns, not progress)."""
    return not quiet and sys.stderr.isatty()


def quiet_mujoco(log: logging.Logger) -> None:
    """Route MuJoCo's warnings to ``log``, each distinct message once.

    MuJoCo's own handler prints every warning and appends it to ``MUJOCO_LOG.TXT`` in the
    working directory (gymnasium's HalfCheetah model alone warns about ``settotalmass`` at every
    build). Deprecation notices about the bundled models go to the debug level; anything else
    (an unstable simulation) is a warning. The handler is MuJoCo's, for the whole process, so a
    command calls this once, before it builds environments. Without MuJoCo it does nothing.
    """
    try:
        import mujoco
    except ImportError:
        return
    seen: set[str] = set()

    def warn(message: str) -> None:
        text = message.strip()
        if text in seen:
            return
        seen.add(text)
        level = logging.DEBUG if "deprecated" in text else logging.WARNING
        log.log(level, "MuJoCo: %s", text)

    mujoco.set_mju_user_warning(warn)  # pyright: ignore[reportAttributeAccessIssue]  (no stub)
