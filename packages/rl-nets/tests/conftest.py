"""Shared test settings: one torch thread, hypothesis without deadlines (tests never time things)."""

from __future__ import annotations

import torch
from hypothesis import settings

torch.set_num_threads(1)

settings.register_profile("rl-nets", deadline=None, max_examples=60)
settings.load_profile("rl-nets")
