"""The package's public names: imported on first use (rl_runtime.lazy), every one still there,
and its config importable without torch or the simulators (a command line's --help needs it)."""

from __future__ import annotations

import subprocess
import sys

import driftql


def test_every_public_name_resolves() -> None:
    for name in driftql.__all__:
        assert getattr(driftql, name) is not None, name
    assert set(driftql.__all__) <= set(dir(driftql))


def test_config_imports_without_heavy_dependencies() -> None:
    probe = (
        "import sys, driftql.config; "
        "print(sorted({m.partition('.')[0] for m in sys.modules} & "
        "{'torch', 'gymnasium', 'mujoco', 'jax', 'ot', 'minari'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip() == "[]"
