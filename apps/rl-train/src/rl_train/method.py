"""A method subcommand: a frozen config type, named presets, and a train function."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import tyro
from rl_runtime.config import MethodConfig, from_jsonable
from rl_runtime.errors import UsageError

__all__ = ["Method", "UsageError"]

C = TypeVar("C", bound=MethodConfig)


@dataclasses.dataclass(frozen=True)
class Method(Generic[C]):
    """One ``rl-train <name>`` subcommand.

    A method module defines ``METHOD = Method(...)`` and is listed in
    :data:`rl_train.methods.METHODS`.

    Attributes:
        name: The subcommand.
        config_type: A frozen dataclass with ``env: str`` and ``run: RunOptions`` fields.
        presets: Named configs (per benchmark); the first one is the default.
        train: The entry point: ``train(cfg) -> run directory``, reading top to bottom.
        description: Shown at the top of ``rl-train <name> --help``.
    """

    name: str
    config_type: type[C]
    presets: Mapping[str, C]
    train: Callable[[C], Path]
    description: str = ""

    def __post_init__(self) -> None:
        if not self.presets:
            raise ValueError(f"method {self.name!r}: needs at least one preset")
        for key, preset in self.presets.items():
            if not isinstance(preset, self.config_type):
                raise TypeError(
                    f"method {self.name!r}: preset {key!r} is a {type(preset).__name__}, "
                    f"not a {self.config_type.__name__}"
                )

    @property
    def default_preset(self) -> str:
        """Name of the first preset."""
        return next(iter(self.presets))

    def parse(self, argv: Sequence[str]) -> C:
        """Build the config from ``[--preset NAME] [overrides...]``.

        The preset (default: the first) gives the defaults and tyro applies the overrides,
        building a new frozen config. With ``--resume DIR`` and no ``--preset``, the defaults are
        the run's config.json instead, so ``--resume DIR`` alone continues the run as it was and
        any other option is a change that :func:`rl_runtime.run.open_run` checks.

        Raises:
            UsageError: unknown preset or ``--preset`` without a value.
            SystemExit: from tyro, for ``--help`` or a malformed option.
        """
        preset, rest = _pop_preset(argv)
        if preset is not None and preset not in self.presets:
            raise UsageError(
                f"unknown preset {preset!r} for {self.name}; presets: {', '.join(self.presets)}"
            )
        name = self.default_preset if preset is None else preset
        description = (
            f"{self.description}\n\nPresets (--preset NAME): {', '.join(self.presets)} "
            f"(default {self.default_preset}); this help shows the defaults of {name}."
        )
        cfg = self._cli(self.presets[name], rest, description)
        if cfg.run.resume is not None and preset is None:
            from rl_runtime.run import read_run_info  # imports torch

            try:
                info = read_run_info(cfg.run.resume)
            except (FileNotFoundError, ValueError) as e:
                raise UsageError(f"--resume: {e}") from e
            if info["method"] != self.name:
                raise UsageError(
                    f"{cfg.run.resume} holds a {info['method']!r} run, not {self.name!r}"
                )
            saved = from_jsonable(self.config_type, info["config"], where="config.json")
            cfg = self._cli(saved, rest, description)
        return cfg

    def _cli(self, default: C, args: Sequence[str], description: str) -> C:
        return tyro.cli(
            self.config_type,
            default=default,
            args=list(args),
            prog=f"rl-train {self.name}",
            description=description,
        )


def _pop_preset(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    preset: str | None = None
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--preset":
            value = next(args, None)
            if value is None or value.startswith("--"):
                raise UsageError("--preset needs a name")
            preset = value
        elif arg.startswith("--preset="):
            preset = arg.removeprefix("--preset=")
        else:
            rest.append(arg)
    return preset, rest
