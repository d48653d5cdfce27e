"""Counter-based random numbers for batched envs: one independent stream per env, held as two
int64 tensors (key, counter) so an env's whole state checkpoints as tensors.

Each draw hashes ``key`` and ``counter + j`` with SplitMix64's finaliser (Steele, Lea and Flood
2014); the counter then advances. Bitwise the same on any device, and independent of the batch
size (env ``i`` sees the same numbers whether it runs alone or among N).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["StreamState", "normal", "uniform"]


def _signed(x: int) -> int:
    """A 64-bit unsigned constant as the int64 with the same bits."""
    return x - (1 << 64) if x >= (1 << 63) else x


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _shr(x: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 bit patterns (torch's >> is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _mix(z: Tensor) -> Tensor:
    # int64 products wrap modulo 2**64, as the unsigned original does.
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    return z ^ _shr(z, 31)


class StreamState:
    """Per-env stream positions: ``key`` and ``counter``, both ``(N,)`` int64."""

    def __init__(self, num_envs: int, device: torch.device) -> None:
        self.key = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self.counter = torch.zeros(num_envs, dtype=torch.int64, device=device)

    def reseed(self, seeds: Tensor, mask: Tensor) -> None:
        """Restart the streams of the envs in ``mask`` (``(N,)`` bool) from ``seeds`` (``(N,)``)."""
        seeds = seeds.to(self.key.device, torch.int64)
        self.key = torch.where(mask, _mix(seeds * _GOLDEN + 1), self.key)
        self.counter = torch.where(mask, torch.zeros_like(self.counter), self.counter)

    def bits(self, m: int) -> Tensor:
        """``(N, m)`` int64 hashes; advances every counter by ``m``."""
        j = torch.arange(m, dtype=torch.int64, device=self.key.device)
        z = _mix(self.key[:, None] ^ _mix((self.counter[:, None] + j) * _GOLDEN))
        self.counter = self.counter + m
        return z


def uniform(stream: StreamState, m: int) -> Tensor:
    """``(N, m)`` float64 uniforms in [0, 1) (53 random bits each)."""
    return _shr(stream.bits(m), 11).double() / float(1 << 53)


def normal(stream: StreamState, m: int) -> Tensor:
    """``(N, m)`` float64 standard normals (Box-Muller on 2m uniforms)."""
    u = uniform(stream, 2 * m)
    u1, u2 = u[:, :m], u[:, m:]
    radius = torch.sqrt(-2.0 * torch.log1p(-u1))  # 1 - u1 in (0, 1]: log is finite
    return radius * torch.cos(2.0 * math.pi * u2)
