"""Lazy package exports: ``from package import Name`` imports only the submodule defining it.

A method package re-exports names from its submodules (``from mrq_drq import MRQAgent``), but
importing them all in its ``__init__`` would make ``import mrq_drq.config`` (a few frozen
dataclasses) pay for torch and the simulators, and with it ``rl-train METHOD --help``.
:func:`lazy_exports` builds the package's module ``__getattr__`` and ``__dir__`` (PEP 562)
from a table of submodule -> names; the package keeps its literal ``__all__``, and imports the
same names under ``if TYPE_CHECKING:`` so that type checkers and editors see them::

    from typing import TYPE_CHECKING

    from rl_runtime.lazy import lazy_exports

    if TYPE_CHECKING:
        from mrq_drq.agent import MRQAgent

    __all__ = ["MRQAgent"]
    __getattr__, __dir__ = lazy_exports(__name__, {"mrq_drq.agent": ("MRQAgent",)})

This module imports nothing beyond the standard library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``(__getattr__, __dir__)`` pair of a package whose public names live in submodules.

    Args:
        package: The package's ``__name__``.
        exports: Submodule (full dotted name) -> the names it provides to the package.

    Returns:
        ``__getattr__(name)``, which imports the submodule of ``name`` on first use and returns
        its attribute (later uses find the submodule in ``sys.modules``), and ``__dir__()``,
        which lists the exported names beside the package's own.

    Raises:
        ValueError: a name is listed under two submodules.
    """
    home: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in home:
                raise ValueError(f"{package}: {name!r} is exported by {home[name]} and {module}")
            home[name] = module

    def module_getattr(name: str) -> Any:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def module_dir() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *home})

    return module_getattr, module_dir
