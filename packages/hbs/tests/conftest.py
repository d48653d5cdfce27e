"""Test settings: one torch thread; the shared helpers module importable under importlib mode."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

# --import-mode=importlib does not put test directories on sys.path; the helpers live beside the
# tests under a name no other member uses.
sys.path.insert(0, str(Path(__file__).parent))
