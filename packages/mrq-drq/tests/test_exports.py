"""The package's public names: imported on first use (rl_runtime.lazy), every one still there,
and its config importable without torch or the simulators (a command line's --help needs it)."""

from __future__ import annotations

import subprocess
import sys

import mrq_drq


def test_every_public_name_resolves() -> None:
    for name in mrq_drq.__all__:
        assert getattr(mrq_drq, name) is not None, name
    assert set(mrq_drq.__all__) <= set(dir(mrq_drq))


def test_config_imports_without_heavy_dependencies() -> None:
    probe = (
        "import sys, mrq_drq.config; "
        "print(sorted({m.partition('.')[0] for m in sys.modules} & "
        "{'torch', 'gymnasium', 'mujoco', 'jax', 'ot', 'minari'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip() == "[]"
