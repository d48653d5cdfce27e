"""The package's public names resolve, and its config imports without torch or simulators."""

from __future__ import annotations

import subprocess
import sys

import marl_lowrank


def test_every_public_name_resolves() -> None:
    for name in marl_lowrank.__all__:
        assert getattr(marl_lowrank, name) is not None, name


def test_config_imports_without_heavy_dependencies() -> None:
    probe = (
        "import sys, marl_lowrank.config; "
        "print(sorted({m.partition('.')[0] for m in sys.modules} & "
        "{'torch', 'gymnasium', 'mpe2', 'pettingzoo', 'jax', 'minari'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip() == "[]"
