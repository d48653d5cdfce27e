"""Shared settings of the marl-lowrank tests."""

from __future__ import annotations

import torch
from rl_nets import set_gemm_path

torch.set_num_threads(1)
set_gemm_path("default")  # bitwise-reproducible products (the auto path times itself)
