"""Goal sets: Craftax's observation-mask goals (136 on Craftax-Classic, 512 on Craftax) and the
Gridworld's cells, with upstream's names and order.

A Craftax goal is a mask ``m`` over the (one-hot) symbolic observation and is achieved when
``sum(obs * m) > 0`` (purejaxgcrl, ``envs/craftax/craftax_goals.py``). The families, in upstream's
order:

* ``inventory/<item>_<n>``: the one-hot slot of count ``n`` (1..9) of each item; full Craftax adds
  ranges ``<item>_<n>-<n+4>`` for n = 10, 15, ..., 95 of wood, stone, coal, iron, torches, arrows.
* ``tools/<tool>``: holding the tool (Classic: count >= 1 of the inventory row; Craftax: pickaxe,
  sword, bow and armour levels).
* ``block_map/<BLOCK>_<left|right|up|down>``: that block in the cell next to the player (the map
  centre) in that direction; ``mob_map/<mob>_<dir>`` and (Craftax) ``item_map/<ITEM>_<dir>``
  likewise.
* Craftax only: ``enchant/...``, ``dungeon_level/dlvl_<k>`` (k = 0..8) and
  ``intrinsics/<attribute>_<n>`` (n = 2..5).

Observations are upstream's one-hot dictionary (``wrappers.CraftaxOneHotDictWrapper``) flattened by
:class:`ObsLayout`: the map keys first, concatenated over channels per cell as one
``(H, W, C)`` block (so the conv input is a reshape), then the other keys, each row-major. Keys are
in sorted order. Nothing here imports JAX or Craftax; :mod:`leo.envs` builds the matching
observations, and the tests check the block, mob and item names against Craftax's enums.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Literal

import torch
from rl_buffers.goals import mask_achievements
from torch import Tensor

__all__ = [
    "CRAFTAX_CLASSIC_LAYOUT",
    "CRAFTAX_LAYOUT",
    "GoalSet",
    "ObsLayout",
    "craftax_classic_goals",
    "craftax_goals",
    "gridworld_goals",
]

DIRECTIONS = ("left", "right", "up", "down")
# (row, col) offsets from the map centre, in DIRECTIONS' order (upstream's create_adjacent_goal).
_OFFSETS = ((0, -1), (0, 1), (-1, 0), (1, 0))


@dataclasses.dataclass(frozen=True)
class ObsLayout:
    """Where each one-hot key lives in the flat observation vector.

    Attributes:
        map_hw: ``(H, W)`` of the map keys (None: no map part, e.g. the Gridworld).
        map_keys: ``(key, channels)`` of each map key, in channel order.
        flat_keys: ``(key, shape)`` of each other key, in order after the map block.
    """

    map_hw: tuple[int, int] | None
    map_keys: tuple[tuple[str, int], ...]
    flat_keys: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def map_channels(self) -> int:
        """C: channels of the map block."""
        return sum(c for _, c in self.map_keys)

    @property
    def map_size(self) -> int:
        """H * W * C (0 without a map)."""
        if self.map_hw is None:
            return 0
        return self.map_hw[0] * self.map_hw[1] * self.map_channels

    @property
    def flat_size(self) -> int:
        """Entries after the map block."""
        return sum(_numel(shape) for _, shape in self.flat_keys)

    @property
    def dim(self) -> int:
        """Length of the observation vector."""
        return self.map_size + self.flat_size

    def map_index(self, key: str, row: int, col: int, channel: int) -> int:
        """Index of ``key[row, col, channel]``."""
        if self.map_hw is None:
            raise KeyError(f"{key}: the layout has no map")
        offset = 0
        for name, channels in self.map_keys:
            if name == key:
                if not 0 <= channel < channels:
                    raise IndexError(f"{key}: channel {channel} not in [0, {channels})")
                return (row * self.map_hw[1] + col) * self.map_channels + offset + channel
            offset += channels
        raise KeyError(f"{key} is not a map key")

    def flat_index(self, key: str, *index: int) -> int:
        """Index of ``key[index]`` (row-major)."""
        offset = self.map_size
        for name, shape in self.flat_keys:
            if name == key:
                if len(index) != len(shape) or any(
                    not 0 <= i < n for i, n in zip(index, shape, strict=True)
                ):
                    raise IndexError(f"{key}: index {index} outside shape {shape}")
                flat = 0
                for i, n in zip(index, shape, strict=True):
                    flat = flat * n + i
                return offset + flat
            offset += _numel(shape)
        raise KeyError(f"{key} is not a flat key")

    def flat_slice(self, key: str) -> slice:
        """The entries of flat key ``key``."""
        offset = self.map_size
        for name, shape in self.flat_keys:
            if name == key:
                return slice(offset, offset + _numel(shape))
            offset += _numel(shape)
        raise KeyError(f"{key} is not a flat key")


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


# The one-hot observation of upstream's CraftaxOneHotDictWrapper, keys sorted.
CRAFTAX_CLASSIC_LAYOUT = ObsLayout(
    map_hw=(7, 9),
    map_keys=(("block_map", 17), ("mob_map", 5)),
    flat_keys=(
        ("intrinsics", (4, 10)),
        ("inventory", (12, 10)),
        ("is_player_sleeping", (1, 2)),
        ("light_level", (1, 10)),
        ("player_direction", (1, 4)),
    ),
)
CRAFTAX_LAYOUT = ObsLayout(
    map_hw=(9, 11),
    map_keys=(("block_map", 37), ("item_map", 5), ("light_map", 2), ("mob_map", 40)),
    flat_keys=(
        ("armour", (4, 3)),
        ("armour_enchantments", (4, 3)),
        ("books", (1, 3)),
        ("boss_vulnerable", (1, 2)),
        ("bow", (1, 2)),
        ("bow_enchantment", (1, 3)),
        ("cleared_level", (1, 2)),
        ("dungeon_level", (1, 10)),
        ("intrinsics", (9, 20)),
        ("inventory", (10, 100)),
        ("is_player_resting", (1, 2)),
        ("is_player_sleeping", (1, 2)),
        ("light_level", (1, 10)),
        ("pickaxe", (1, 5)),
        ("player_direction", (1, 4)),
        ("potions", (6, 10)),
        ("spells", (2, 2)),
        ("sword", (1, 5)),
        ("sword_enchantment", (1, 3)),
    ),
)

# Craftax's enums, by value (checked against craftax.*.constants in the tests).
CLASSIC_BLOCKS = ("INVALID", "OUT_OF_BOUNDS", "GRASS", "WATER", "STONE", "TREE", "WOOD", "PATH",
                  "COAL", "IRON", "DIAMOND", "CRAFTING_TABLE", "FURNACE", "SAND", "LAVA", "PLANT",
                  "RIPE_PLANT")  # fmt: skip
CRAFTAX_BLOCKS = (*CLASSIC_BLOCKS, "WALL", "DARKNESS", "WALL_MOSS", "STALAGMITE", "SAPPHIRE",
                  "RUBY", "CHEST", "FOUNTAIN", "FIRE_GRASS", "ICE_GRASS", "GRAVEL", "FIRE_TREE",
                  "ICE_SHRUB", "ENCHANTMENT_TABLE_FIRE", "ENCHANTMENT_TABLE_ICE", "NECROMANCER",
                  "GRAVE", "GRAVE2", "GRAVE3", "NECROMANCER_VULNERABLE")  # fmt: skip
CRAFTAX_ITEMS = ("NONE", "TORCH", "LADDER_DOWN", "LADDER_UP", "LADDER_DOWN_BLOCKED")
# Craftax's 40 mob-map channels: 8 melee, 8 passive, 8 ranged, 8 mob projectiles, 8 player
# projectiles; None where upstream defines no goal.
CRAFTAX_MOBS: tuple[str | None, ...] = (
    "zombie", "gnome_warrior", "orc_soldier", "lizard", "knight", "troll", "pigman", "frost_troll",
    "cow", "bat", "snail", None, None, None, None, None,
    "skeleton", "gnome_archer", "orc_mage", "kobold", "knight_archer", "deep_thing",
    "fire_elemental", "ice_elemental",
    "arrow", "dagger", "fireball", None, "arrow2", "slimeball", "fireball2", "iceball2",
    None, None, "player_fireball", "player_iceball", "player_arrow", None, None, None,
)  # fmt: skip
CLASSIC_MOBS = ("zombie", "cow", "skeleton", "arrow")
CLASSIC_ITEMS = ("wood", "stone", "coal", "iron", "diamond", "sapling")
CLASSIC_TOOLS = ("wood_pickaxe", "stone_pickaxe", "iron_pickaxe", "wood_sword", "stone_sword",
                 "iron_sword")  # fmt: skip
CRAFTAX_ITEMS_INV = ("wood", "stone", "coal", "iron", "diamond", "sapphire", "ruby", "sapling",
                     "torches", "arrows")  # fmt: skip
CRAFTAX_EXTENDED_INV = ("wood", "stone", "coal", "iron", "torches", "arrows")


@dataclasses.dataclass(frozen=True)
class GoalSet:
    """A finite, ordered goal set.

    Attributes:
        names: ``G`` names, ``family/goal`` (upstream's listing order).
        table: ``(G, D_g)`` float32: masks over the observation (``match="mask"``), or the
            goal observations themselves (``match="equal"``: the Gridworld's cells). It is also
            the goal input of the goal-conditioned baselines (upstream feeds the goal mask).
        match: ``"mask"``: achieved when ``sum(obs * table[g]) > 0``; ``"equal"``: when
            ``obs == table[g]``.
    """

    names: tuple[str, ...]
    table: Tensor
    match: Literal["mask", "equal"]

    def __post_init__(self) -> None:
        if self.table.ndim != 2 or self.table.shape[0] != len(self.names):
            raise ValueError(f"table must be ({len(self.names)}, D), got {tuple(self.table.shape)}")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def goal_dim(self) -> int:
        """D_g, the width of a goal input."""
        return int(self.table.shape[1])

    @property
    def families(self) -> tuple[str, ...]:
        """Family names (the part before ``/``), in order of first appearance."""
        return tuple(dict.fromkeys(n.split("/", 1)[0] for n in self.names))

    def family_index(self) -> Tensor:
        """``(G,)`` int64: each goal's index into :attr:`families`."""
        fams = {f: i for i, f in enumerate(self.families)}
        return torch.tensor([fams[n.split("/", 1)[0]] for n in self.names], dtype=torch.int64)

    def to(self, device: torch.device | str) -> GoalSet:
        """The same goals with the table on ``device``."""
        return dataclasses.replace(self, table=self.table.to(device))

    def achieved(self, obs: Tensor) -> Tensor:
        """``(B, G)`` bool: which goals each of the ``(B, D)`` observations achieves."""
        if obs.ndim != 2 or obs.shape[1] != self.goal_dim:
            raise ValueError(f"observations must be (B, {self.goal_dim}), got {tuple(obs.shape)}")
        if self.match == "mask":
            return mask_achievements(obs, self.table)
        # (B, 1, D) == (1, G, D) -> (B, G)
        return (obs[:, None, :] == self.table[None, :, :].to(obs.dtype)).all(dim=-1)

    def achieved_one(self, obs: Tensor, goal: Tensor) -> Tensor:
        """``(B,)`` bool: whether ``obs[b]`` achieves goal ``goal[b]`` (one goal per row)."""
        g = self.table[goal]  # (B, D)
        if self.match == "mask":
            return (obs * g).sum(dim=-1) > 0
        return (obs == g.to(obs.dtype)).all(dim=-1)

    def inputs(self, goal: Tensor) -> Tensor:
        """``(B, D_g)`` float32 goal inputs of the goal indices ``goal`` ``(B,)``."""
        return self.table[goal]

    def listing(self) -> str:
        """``index name`` lines, as upstream's ``goal_listing_*.txt``."""
        return "\n".join(f"{i} {n}" for i, n in enumerate(self.names))


def _mask_goals(layout: ObsLayout, goals: Sequence[tuple[str, Sequence[int]]]) -> GoalSet:
    table = torch.zeros(len(goals), layout.dim)
    for g, (_, idx) in enumerate(goals):
        table[g, list(idx)] = 1.0
    return GoalSet(tuple(n for n, _ in goals), table, "mask")


def _adjacent(layout: ObsLayout, key: str, channels: Sequence[tuple[str, int]], family: str):
    """``<family>/<name>_<dir>`` for each channel, directions inner (upstream's order)."""
    assert layout.map_hw is not None
    h, w = layout.map_hw
    centre = (h // 2, w // 2)
    out: list[tuple[str, list[int]]] = []
    for name, channel in channels:
        for direction, (dr, dc) in zip(DIRECTIONS, _OFFSETS, strict=True):
            index = layout.map_index(key, centre[0] + dr, centre[1] + dc, channel)
            out.append((f"{family}/{name}_{direction}", [index]))
    return out


def craftax_classic_goals() -> GoalSet:
    """The 136 Craftax-Classic goals in upstream's order."""
    lay = CRAFTAX_CLASSIC_LAYOUT
    goals: list[tuple[str, Sequence[int]]] = [
        (f"inventory/{item}_{n}", [lay.flat_index("inventory", i, n)])
        for i, item in enumerate(CLASSIC_ITEMS)
        for n in range(1, 10)
    ]
    for i, tool in enumerate(CLASSIC_TOOLS):
        row = i + len(CLASSIC_ITEMS)  # count >= 1 of the tool's inventory row
        goals.append((f"tools/{tool}", [lay.flat_index("inventory", row, n) for n in range(1, 10)]))
    # Every block but INVALID (0) and WOOD (6, never in the world).
    blocks = [(b, i) for i, b in enumerate(CLASSIC_BLOCKS) if i not in (0, 6)]
    goals += _adjacent(lay, "block_map", blocks, "block_map")
    goals += _adjacent(lay, "mob_map", [(m, i) for i, m in enumerate(CLASSIC_MOBS)], "mob_map")
    return _mask_goals(lay, goals)


def craftax_goals() -> GoalSet:
    """The 512 Craftax goals in upstream's order."""
    lay = CRAFTAX_LAYOUT
    goals: list[tuple[str, Sequence[int]]] = [
        (f"inventory/{item}_{n}", [lay.flat_index("inventory", i, n)])
        for i, item in enumerate(CRAFTAX_ITEMS_INV)
        for n in range(1, 10)
    ]
    for i, item in enumerate(CRAFTAX_ITEMS_INV):
        if item not in CRAFTAX_EXTENDED_INV:
            continue
        for n in range(10, 100, 5):
            index = [lay.flat_index("inventory", i, k) for k in range(n, n + 5)]
            goals.append((f"inventory/{item}_{n}-{n + 4}", index))
    skip = {CRAFTAX_BLOCKS.index(b) for b in ("INVALID", "WOOD", "DARKNESS", "GRAVEL")}
    blocks = [(b, i) for i, b in enumerate(CRAFTAX_BLOCKS) if i not in skip]
    goals += _adjacent(lay, "block_map", blocks, "block_map")
    mobs = [(m, i) for i, m in enumerate(CRAFTAX_MOBS) if m is not None]
    goals += _adjacent(lay, "mob_map", mobs, "mob_map")
    items = [(it, i) for i, it in enumerate(CRAFTAX_ITEMS) if i != 0]
    goals += _adjacent(lay, "item_map", items, "item_map")
    for i, material in enumerate(("wood", "stone", "iron", "diamond")):
        for tool in ("pickaxe", "sword"):
            goals.append((f"tools/{material}_{tool}", [lay.flat_index(tool, 0, i + 1)]))
    goals.append(("tools/bow", [lay.flat_index("bow", 0, 1)]))
    armour = ("helmet", "chestplate", "pants", "boots")
    for i, piece in enumerate(armour):
        for j, material in enumerate(("iron", "diamond")):
            goals.append((f"tools/{material}_{piece}", [lay.flat_index("armour", i, j + 1)]))
    kinds = ("fire", "ice")
    for i, piece in enumerate(armour):
        for j, kind in enumerate(kinds):
            index = [lay.flat_index("armour_enchantments", i, j + 1)]
            goals.append((f"enchant/{piece}_{kind}", index))
    for i, kind in enumerate(kinds):
        for weapon in ("sword", "bow"):
            index = [lay.flat_index(f"{weapon}_enchantment", 0, i + 1)]
            goals.append((f"enchant/{weapon}_{kind}", index))
    for level in range(9):
        goals.append((f"dungeon_level/dlvl_{level}", [lay.flat_index("dungeon_level", 0, level)]))
    # intrinsics rows 6, 7, 8: dexterity, strength, intelligence; listed from the last row up.
    for i, attribute in enumerate(("intelligence", "strength", "dexterity")):
        for n in range(2, 6):
            index = [lay.flat_index("intrinsics", 8 - i, n)]
            goals.append((f"intrinsics/{attribute}_{n}", index))
    return _mask_goals(lay, goals)


def gridworld_goals(walls: Tensor) -> GoalSet:
    """Every free cell of a ``(S, S)`` wall map (1 = wall), row-major: ``position/<x>-<y>``,
    achieved when the observation (the agent's ``(x, y)``) equals the cell."""
    if walls.ndim != 2 or walls.shape[0] != walls.shape[1]:
        raise ValueError(f"walls must be (S, S), got {tuple(walls.shape)}")
    free = torch.nonzero(walls == 0)  # (G, 2), row-major order
    names = tuple(f"position/{int(x)}-{int(y)}" for x, y in free.tolist())
    return GoalSet(names, free.to(torch.float32), "equal")
