"""Exploration records per episode on hand-built observations."""

from __future__ import annotations

import torch
from hbs.envs import BL_DEPTH, BL_DLEVEL, BL_DNUM, BL_SCORE, BL_TIME
from hbs.metrics import ExplorationTracker
from hbs_testkit import LAYOUT, batch, make_obs


def test_records_depth_levels_branches_glyphs_turns_score() -> None:
    tracker = ExplorationTracker(2)
    start = batch(make_obs(seen=4), make_obs(seen=4))
    tracker.observe(LAYOUT.split(start))
    mines = make_obs(seen=10, blstats={BL_DEPTH: 3, BL_DNUM: 2, BL_DLEVEL: 1, BL_TIME: 40,
                                       BL_SCORE: 120})  # fmt: skip
    doom2 = make_obs(seen=6, blstats={BL_DEPTH: 2, BL_DLEVEL: 2, BL_TIME: 30, BL_SCORE: 55})
    tracker.observe(LAYOUT.split(batch(doom2, make_obs(seen=5))))
    tracker.observe(LAYOUT.split(batch(mines, make_obs(seen=5))))
    # env 1 only: a subset of rows
    tracker.observe(LAYOUT.split(batch(make_obs(seen=5, blstats={BL_TIME: 9}))), torch.tensor([1]))
    env0, env1 = tracker.finish(torch.tensor([0, 1]))
    # env 0: Dungeons of Doom 1 and 2, Gnomish Mines 1; glyphs: unexplored stone and floor
    assert env0 == {"depth": 3.0, "levels": 3.0, "branches": 2.0, "glyphs": 2.0, "turns": 40.0,
                    "score": 120.0, "mines": 1.0, "sokoban": 0.0}  # fmt: skip
    assert env1["depth"] == 1.0
    assert env1["levels"] == 1.0
    assert env1["turns"] == 9.0
    assert env1["mines"] == 0.0
    # finished rows start over
    assert tracker.finish(torch.tensor([0]))[0]["glyphs"] == 0.0
