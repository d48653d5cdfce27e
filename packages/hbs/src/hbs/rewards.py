"""Reward functions on consecutive NetHack observations, vectorised over N envs.

Each is one small function ``fn(t: Transition) -> (N,) float32``, registered by name with
:func:`reward_function`; the controller's weight vector runs over
``OptionConfig.rewards`` in order. Adding one is writing one function::

    @reward_function("experience")
    def experience(t: Transition) -> Tensor:
        return (t.next.blstats[:, BL_EXP] - t.prev.blstats[:, BL_EXP]).float()

and naming it in ``--agent.options.rewards``. A function that needs memory across steps
(``scout``'s explored counts per level) declares its state's shape; the state lives in
:class:`RewardState`, is zeroed where an episode starts, and travels in checkpoints.

What every function can rely on (:func:`compute_rewards` sees to it): ``t.next`` is the true
next observation, except on the step that ends the game, where NLE returns a blank observation
(all-zero blstats, blank glyphs, empty message): there ``t.next`` is ``t.prev``, so no function
reads the blank as losing every hit point, coin and level; ``t.died`` marks that step.

The functions follow SOL's NetHack rewards (``sf_examples/nethack/utils/task_rewards.py`` in
facebookresearch/sol; read, not copied) where those exist; the README lists the differences.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from hbs.envs import (
    BL_AC,
    BL_DEPTH,
    BL_DLEVEL,
    BL_DNUM,
    BL_GOLD,
    BL_HP,
    BL_HUNGER,
    BL_SCORE,
    NLEObs,
    ObsLayout,
    is_blank,
)

__all__ = [
    "GLYPH_UNEXPLORED",
    "MAX_DLEVEL",
    "MAX_DUNGEONS",
    "REWARDS",
    "RewardError",
    "RewardSpec",
    "RewardState",
    "Transition",
    "check_rewards",
    "compute_rewards",
    "message_contains",
    "message_count",
    "message_lines",
    "reward_function",
]

GLYPH_UNEXPLORED = 2359
"""``nle.nethack.GLYPH_CMAP_OFF`` (S_stone): what an unseen square shows."""
MAX_DUNGEONS = 8
"""NetHack's dungeon branches (DNUM 0..7: Dungeons of Doom, Gehennom, Gnomish Mines, Quest,
Sokoban, Fort Ludios, Vlad's Tower, Elemental Planes)."""
MAX_DLEVEL = 64
"""Levels tracked per branch (DLEVEL is clamped below this)."""


class RewardError(ValueError):
    """A reward name that is not registered, or one whose observation key is not requested."""


class Transition(NamedTuple):
    """What a reward function sees for N envs.

    Attributes:
        prev: The observation acted on.
        next: The observation after the step (``prev`` where the game ended, see the module).
        died: ``(N,)`` bool, the step ended the game (terminated).
        state: ``(N, *shape)`` this function's memory, or None if it declared none; update it
            in place.
        lines: ``next``'s message lines, lower-cased bytes (``b""`` when empty), decoded once
            per step for every function that reads them (:func:`message_count`).
    """

    prev: NLEObs
    next: NLEObs
    died: Tensor
    state: Tensor | None
    lines: tuple[bytes, ...] = ()


@dataclasses.dataclass(frozen=True)
class RewardSpec:
    """A registered reward function."""

    name: str
    fn: Callable[[Transition], Tensor]
    state_shape: tuple[int, ...] | None = None
    """Per-env memory shape (int64, zeroed at episode start), or None."""
    needs: tuple[str, ...] = ("glyphs", "blstats")
    """Observation keys it reads."""


REWARDS: dict[str, RewardSpec] = {}
"""Name -> reward function."""


def reward_function(
    name: str, *, state_shape: tuple[int, ...] | None = None, needs: Sequence[str] = ()
) -> Callable[[Callable[[Transition], Tensor]], Callable[[Transition], Tensor]]:
    """Register ``fn`` under ``name`` (a decorator). ``needs``: observation keys beyond glyphs
    and blstats (``message``)."""

    def register(fn: Callable[[Transition], Tensor]) -> Callable[[Transition], Tensor]:
        if name in REWARDS:
            raise ValueError(f"reward function {name!r} is already registered")
        REWARDS[name] = RewardSpec(name, fn, state_shape, ("glyphs", "blstats", *needs))
        return fn

    return register


def check_rewards(names: Sequence[str], keys: Sequence[str]) -> list[RewardSpec]:
    """The specs of ``names``; raises :class:`RewardError` naming an unknown reward or a missing
    observation key."""
    specs = []
    for name in names:
        spec = REWARDS.get(name)
        if spec is None:
            raise RewardError(
                f"--agent.options.rewards: unknown reward function {name!r}; registered: "
                f"{', '.join(REWARDS)}"
            )
        missing = [k for k in spec.needs if k not in keys]
        if missing:
            raise RewardError(
                f"--agent.options.rewards: {name!r} reads the {missing[0]!r} observation; add it "
                "to --agent.env.observation-keys"
            )
        specs.append(spec)
    return specs


def _delta(t: Transition, index: int) -> Tensor:
    return (t.next.blstats[:, index] - t.prev.blstats[:, index]).float()


def message_lines(message: Tensor | None) -> tuple[bytes, ...]:
    """Each env's message line as lower-cased bytes (``b""`` for an empty one; ``()`` without
    the message key). Only non-empty lines are decoded: most steps have no message."""
    if message is None:
        return ()
    lines = [b""] * message.shape[0]
    rows = torch.nonzero(message[:, 0] != 0).flatten().tolist()
    if rows:
        for i, row in zip(rows, message[rows].to(torch.uint8).numpy(), strict=True):
            lines[i] = row.tobytes().rstrip(b"\0").lower()
    return tuple(lines)


def message_count(t: Transition, *phrases: str) -> Tensor:
    """``(N,)`` float32: occurrences of any of ``phrases`` in each env's message line, ignoring
    ASCII case."""
    needles = [p.lower().encode() for p in phrases]
    return torch.tensor(
        [sum(line.count(n) for n in needles) if line else 0 for line in t.lines],
        dtype=torch.float32,
    )


def message_contains(message: Tensor, phrase: str) -> Tensor:
    """``(N,)`` int64: how many times ``phrase`` occurs in each message line (``(N, 256)`` bytes
    as integers), ignoring ASCII case."""
    needle = phrase.lower().encode()
    return torch.tensor([line.count(needle) for line in message_lines(message)])


@reward_function("score")
def score(t: Transition) -> Tensor:
    """In-game score change (blstats SCORE)."""
    return _delta(t, BL_SCORE)


@reward_function("health")
def health(t: Transition) -> Tensor:
    """Hit-point change; 0 on the step that ends the game."""
    return torch.where(t.died, 0.0, _delta(t, BL_HP))


@reward_function("gold")
def gold(t: Transition) -> Tensor:
    """Gold change (signed: spending is negative; SOL pays the absolute change)."""
    return _delta(t, BL_GOLD)


@reward_function("eating", needs=("message",))
def eating(t: Transition) -> Tensor:
    """1 when a meal ends ("You finish eating") or the hunger status improves (blstats HUNGER
    falls: Hungry -> Not Hungry, ...). SOL reads NLE's internal eating counter instead, which
    needs the ``internal`` key."""
    finished = message_count(t, "you finish eating") > 0
    fed = t.next.blstats[:, BL_HUNGER] < t.prev.blstats[:, BL_HUNGER]
    return (finished | fed).float()


@reward_function("scout", state_shape=(MAX_DUNGEONS, MAX_DLEVEL))
def scout(t: Transition) -> Tensor:
    """Squares newly seen on the current level: the explored count (glyphs that are not
    unexplored stone) above the most this level has shown in the episode. SOL pays the change
    of the count since the level's last visit, which goes negative when squares are forgotten."""
    assert t.state is not None
    n = t.next.blstats.shape[0]
    rows = torch.arange(n)
    dnum = t.next.blstats[:, BL_DNUM].clamp(0, MAX_DUNGEONS - 1).long()
    dlevel = t.next.blstats[:, BL_DLEVEL].clamp(0, MAX_DLEVEL - 1).long()
    seen = (t.next.glyphs != GLYPH_UNEXPLORED).sum((1, 2))  # (N,)
    best = t.state[rows, dnum, dlevel]  # (N,) the level's best count this episode
    # A level no step has counted yet whose previous observation was on it: the episode's first
    # step, whose reset observation no step paid for. Its squares are not new.
    first = (
        (best == 0)
        & (t.prev.blstats[:, BL_DNUM] == t.next.blstats[:, BL_DNUM])
        & (t.prev.blstats[:, BL_DLEVEL] == t.next.blstats[:, BL_DLEVEL])
    )
    if bool(first.any()):
        best = best.clone()
        best[first] = (t.prev.glyphs[first] != GLYPH_UNEXPLORED).sum((1, 2))
    t.state[rows, dnum, dlevel] = torch.maximum(best, seen)
    return (seen - best).clamp_min(0).float()


@reward_function("descend")
def descend(t: Transition) -> Tensor:
    """Levels gone down (blstats DEPTH; a trapdoor can give 2). DLEVEL counts within a branch
    and falls when entering the Gnomish Mines, so it is not used."""
    return _delta(t, BL_DEPTH).clamp_min(0.0)


@reward_function("kills", needs=("message",))
def kills(t: Transition) -> Tensor:
    """Kills announced on the message line: "You kill ..." and "You destroy ..." (SOL's
    phrases). NLE dismisses --More-- itself, so a kill whose message was not the turn's last
    is missed."""
    return message_count(t, "you kill", "you destroy")


@reward_function("armor")
def armor(t: Transition) -> Tensor:
    """Armour-class improvement (lower AC is better): ``-(AC' - AC)``."""
    return -_delta(t, BL_AC)


class RewardState:
    """The per-env memory of the stateful reward functions of one run.

    Args:
        specs: The reward functions, in weight-vector order.
        num_envs: N.
    """

    def __init__(self, specs: Sequence[RewardSpec], num_envs: int) -> None:
        self.specs = list(specs)
        self.tensors: dict[str, Tensor] = {
            s.name: torch.zeros(num_envs, *s.state_shape, dtype=torch.int64)
            for s in self.specs
            if s.state_shape is not None
        }

    def reset(self, mask: Tensor) -> None:
        """Zero the memory of the envs where ``mask`` ``(N,)`` holds (their episode starts)."""
        for t in self.tensors.values():
            t[mask] = 0

    def state_dict(self) -> dict[str, Tensor]:
        return {k: v.clone() for k, v in self.tensors.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k in self.tensors:
            self.tensors[k] = state[k].clone()


def compute_rewards(
    layout: ObsLayout,
    prev: Tensor,
    next_obs: Tensor,
    died: Tensor,
    state: RewardState,
) -> Tensor:
    """``(N, K)`` float32 rewards of one vector step, one column per reward function.

    Args:
        layout: How observations are packed.
        prev: ``(N, D)`` the observations acted on.
        next_obs: ``(N, D)`` the true next observations (the step's ``final_obs``).
        died: ``(N,)`` bool, the step terminated the episode.
        state: The memory of the stateful functions (updated in place).
    """
    blank = is_blank(layout.split(next_obs).blstats)
    if bool(blank.any()):  # NLE's blank end-of-game observation: read the one before it
        next_obs = torch.where(blank[:, None], prev, next_obs)
    t_prev, t_next = layout.split(prev), layout.split(next_obs)
    lines = message_lines(t_next.message)
    columns = [
        spec.fn(Transition(t_prev, t_next, died, state.tensors.get(spec.name), lines)).float()
        for spec in state.specs
    ]
    return torch.stack(columns, dim=1)
