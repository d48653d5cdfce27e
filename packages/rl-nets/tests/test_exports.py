"""The package's public names: imported on first use, every one still there, and the
activation names (which configs use) importable without torch."""

from __future__ import annotations

import subprocess
import sys

import rl_nets


def test_every_public_name_resolves() -> None:
    for name in rl_nets.__all__:
        assert getattr(rl_nets, name) is not None, name
    assert set(rl_nets.__all__) <= set(dir(rl_nets))


def test_activation_names_import_without_torch() -> None:
    probe = "import sys; from rl_nets import ActivationName; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip() == "False"
