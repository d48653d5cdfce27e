"""Exploration metrics per episode, vectorised over N envs: deepest level, levels and branches
visited, unique glyphs seen, turns, score.

Branches are NetHack's dungeon numbers (blstats DNUM): 0 the Dungeons of Doom, 1 Gehennom, 2 the
Gnomish Mines, 3 the Quest, 4 Sokoban, 5 Fort Ludios, 6 Vlad's Tower, 7 the Elemental Planes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from hbs.envs import BL_DEPTH, BL_DLEVEL, BL_DNUM, BL_SCORE, BL_TIME, NLEObs
from hbs.rewards import MAX_DLEVEL, MAX_DUNGEONS

__all__ = ["BRANCHES", "EPISODE_METRICS", "ExplorationTracker"]

_NUM_GLYPHS = 5977  # MAX_GLYPH + NO_GLYPH

BRANCHES = {"mines": 2, "sokoban": 4}
"""Branches reported on their own (visited or not), by DNUM."""

EPISODE_METRICS = (
    "depth",
    "levels",
    "branches",
    "mines",
    "sokoban",
    "glyphs",
    "turns",
    "score",
)
"""Keys of each finished episode's record (see :meth:`ExplorationTracker.observe`)."""


class ExplorationTracker:
    """Running per-env episode records.

    Args:
        num_envs: N.
    """

    def __init__(self, num_envs: int) -> None:
        self.depth = torch.zeros(num_envs, dtype=torch.int64)
        self.levels = torch.zeros(num_envs, MAX_DUNGEONS, MAX_DLEVEL, dtype=torch.bool)
        self.glyphs = torch.zeros(num_envs, _NUM_GLYPHS, dtype=torch.bool)
        self.turns = torch.zeros(num_envs, dtype=torch.int64)
        self.score = torch.zeros(num_envs, dtype=torch.int64)

    def observe(self, obs: NLEObs, rows: Tensor | None = None) -> None:
        """Account observations (not blank ones) of the envs ``rows`` (all if None)."""
        bl, glyphs = obs.blstats.cpu(), obs.glyphs.cpu()
        flat = glyphs.reshape(glyphs.shape[0], -1).long()  # (n, 21 * 79)
        dnum = bl[:, BL_DNUM].long().clamp(0, MAX_DUNGEONS - 1)
        dlevel = bl[:, BL_DLEVEL].long().clamp(0, MAX_DLEVEL - 1)
        if rows is None:  # every env: in place
            torch.maximum(self.depth, bl[:, BL_DEPTH].long(), out=self.depth)
            self.levels[torch.arange(self.depth.shape[0]), dnum, dlevel] = True
            self.glyphs.scatter_(1, flat, True)
            self.turns.copy_(bl[:, BL_TIME])
            self.score.copy_(bl[:, BL_SCORE])
            return
        self.depth[rows] = torch.maximum(self.depth[rows], bl[:, BL_DEPTH].long())
        self.levels[rows, dnum, dlevel] = True
        self.glyphs[rows] = self.glyphs[rows].scatter_(1, flat, True)  # a copy, then back
        self.turns[rows] = bl[:, BL_TIME].long()
        self.score[rows] = bl[:, BL_SCORE].long()

    def finish(self, rows: Tensor) -> list[dict[str, float]]:
        """The records of the episodes of envs ``rows`` that just ended; resets those rows."""
        visited = self.levels[rows]  # (n, B, L)
        branch_seen = visited.any(-1)  # (n, B)
        out = []
        for j in range(rows.shape[0]):
            record = {
                "depth": float(self.depth[rows[j]]),
                "levels": float(visited[j].sum()),
                "branches": float(branch_seen[j].sum()),
                "glyphs": float(self.glyphs[rows[j]].sum()),
                "turns": float(self.turns[rows[j]]),
                "score": float(self.score[rows[j]]),
            }
            for name, dnum in BRANCHES.items():
                record[name] = float(branch_seen[j, dnum])
            out.append(record)
        self.depth[rows] = 0
        self.levels[rows] = False
        self.glyphs[rows] = False
        self.turns[rows] = 0
        self.score[rows] = 0
        return out

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "depth": self.depth.clone(),
            "levels": self.levels.clone(),
            "glyphs": self.glyphs.clone(),
            "turns": self.turns.clone(),
            "score": self.score.clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key in ("depth", "levels", "glyphs", "turns", "score"):
            setattr(self, key, state[key].clone())
