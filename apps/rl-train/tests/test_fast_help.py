"""``rl-train METHOD --help`` imports only what it shows: configs, never torch or a simulator.

Each command runs in a fresh interpreter with ``-X importtime``, which lists every module the
process imported; none of the heavy dependencies may be among them. (How fast that makes the
command is measured, not tested: tests never assert wall-clock times.)
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from rl_train.methods import METHODS

HEAVY = frozenset(
    {
        "torch",
        "gymnasium",
        "mujoco",
        "jax",
        "ot",
        "minari",
        "nle",
        "craftax",
        "transformers",
        "trl",
        "mpe2",
        "pettingzoo",
    }
)
"""Top-level modules whose import takes seconds (or that a method's extra may not have)."""


def _imported(importtime: str) -> set[str]:
    """The top-level modules named by ``-X importtime`` output
    (``import time: self | cumulative | <indent>package.module``)."""
    return {
        line.rpartition("|")[2].strip().partition(".")[0]
        for line in importtime.splitlines()
        if line.startswith("import time:")
    }


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_help_imports_no_heavy_dependency(name: str) -> None:
    missing = [m for m in METHODS[name].needs if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the {METHODS[name].extra!r} extra is not installed ({', '.join(missing)})")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rl_train", name, "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"usage: rl-train {name} ")
    loaded = _imported(done.stderr) & HEAVY
    assert not loaded, f"rl-train {name} --help imported {sorted(loaded)}"


def test_the_probe_sees_heavy_imports() -> None:
    """The check above would notice: the same probe on a command that imports gymnasium."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import gymnasium"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "gymnasium" in _imported(done.stderr)


def test_ot_ilfo_presets_hold_their_environments_horizon() -> None:
    """``--help`` of a preset on its own environment skips gymnasium's registry because each
    preset already holds that environment's episode length as TD3's horizon."""
    pytest.importorskip("ot_ilfo")
    gym = pytest.importorskip("gymnasium")
    from rl_train.methods.ot_ilfo import METHOD

    for name, preset in METHOD.presets.items():
        assert preset.td3.horizon == gym.registry[preset.env].max_episode_steps, name
