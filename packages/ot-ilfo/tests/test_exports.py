"""The package's public names: imported on first use (rl_runtime.lazy), every one still there,
and its config importable without torch or the simulators (a command line's --help needs it)."""

from __future__ import annotations

import subprocess
import sys

import ot_ilfo


def test_every_public_name_resolves() -> None:
    for name in ot_ilfo.__all__:
        assert getattr(ot_ilfo, name) is not None, name
    assert set(ot_ilfo.__all__) <= set(dir(ot_ilfo))


def test_config_imports_without_heavy_dependencies() -> None:
    probe = (
        "import sys, ot_ilfo.config; "
        "print(sorted({m.partition('.')[0] for m in sys.modules} & "
        "{'torch', 'gymnasium', 'mujoco', 'jax', 'ot', 'minari'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip() == "[]"
