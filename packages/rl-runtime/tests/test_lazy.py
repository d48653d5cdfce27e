"""rl_runtime.lazy: a package's names imported from their submodule on first use."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from rl_runtime.lazy import lazy_exports

_INIT = """
from rl_runtime.lazy import lazy_exports

__all__ = ["ANSWER", "ask"]
__getattr__, __dir__ = lazy_exports(__name__, {"lazypkg.heavy": ("ANSWER", "ask")})
"""
_HEAVY = """
ANSWER = 42


def ask() -> int:
    return ANSWER
"""


def test_names_come_from_their_submodule_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lazypkg").mkdir()
    (tmp_path / "lazypkg" / "__init__.py").write_text(_INIT)
    (tmp_path / "lazypkg" / "heavy.py").write_text(_HEAVY)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("lazypkg", "lazypkg.heavy"):
        monkeypatch.delitem(sys.modules, name, raising=False)

    package = importlib.import_module("lazypkg")
    assert "lazypkg.heavy" not in sys.modules  # importing the package imports no submodule
    assert {"ANSWER", "ask", "__all__"} <= set(dir(package))
    assert "lazypkg.heavy" not in sys.modules  # nor does listing its names
    from lazypkg import ask  # pyright: ignore[reportMissingImports]

    assert ask() == 42
    assert "lazypkg.heavy" in sys.modules
    assert package.ANSWER == 42
    with pytest.raises(AttributeError, match="module 'lazypkg' has no attribute 'nope'"):
        _ = package.nope
    with pytest.raises(ImportError, match="cannot import name 'nope' from 'lazypkg'"):
        from lazypkg import nope  # noqa: F401  # pyright: ignore[reportMissingImports]


def test_a_name_exported_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'x' is exported by pkg\.a and pkg\.b"):
        lazy_exports("pkg", {"pkg.a": ("x",), "pkg.b": ("y", "x")})
