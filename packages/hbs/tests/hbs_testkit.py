"""Hand-built NetHack observations for the hbs tests (no NLE needed)."""

from __future__ import annotations

import numpy as np
import torch
from hbs.envs import BL_DEPTH, BL_DLEVEL, BL_DNUM, BL_HP, BL_HPMAX, BL_X, BL_Y, ObsLayout
from hbs.rewards import GLYPH_UNEXPLORED
from torch import Tensor

LAYOUT = ObsLayout(("glyphs", "blstats", "message"))


def make_obs(
    *,
    blstats: dict[int, int] | None = None,
    message: str = "",
    seen: int = 0,
    blank: bool = False,
) -> Tensor:
    """One packed observation ``(D,)``: a level whose first ``seen`` squares (row-major) are
    explored floor, blstats at plausible values (HP 10/10, depth 1, Dungeons of Doom level 1) with
    ``blstats`` overriding, and ``message`` on the message line. ``blank``: NLE's end-of-game
    observation (all zero)."""
    out = np.zeros(LAYOUT.size, np.int32)
    if blank:
        return torch.from_numpy(out)
    glyphs = np.full((21, 79), GLYPH_UNEXPLORED, np.int32)
    glyphs.reshape(-1)[:seen] = GLYPH_UNEXPLORED + 19  # S_room (floor)
    bl = np.zeros(27, np.int64)
    bl[[BL_X, BL_Y, BL_HP, BL_HPMAX, BL_DEPTH, BL_DNUM, BL_DLEVEL]] = [10, 5, 10, 10, 1, 0, 1]
    for index, value in (blstats or {}).items():
        bl[index] = value
    msg = np.zeros(256, np.uint8)
    raw = message.encode()
    msg[: len(raw)] = np.frombuffer(raw, np.uint8)
    LAYOUT.pack_into(out, {"glyphs": glyphs, "blstats": bl, "message": msg})
    return torch.from_numpy(out)


def batch(*rows: Tensor) -> Tensor:
    """``(N, D)`` from packed rows."""
    return torch.stack(rows)
