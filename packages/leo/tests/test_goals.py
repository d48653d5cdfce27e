"""Goal sets: upstream's listings, and each family's `achieved` on hand-built observations."""

from __future__ import annotations

import hashlib

import pytest
import torch
from leo.goals import (
    CRAFTAX_CLASSIC_LAYOUT,
    CRAFTAX_LAYOUT,
    GoalSet,
    craftax_classic_goals,
    craftax_goals,
    gridworld_goals,
)

# sha256 of upstream's goal_listing_craftax_classic.txt / goal_listing_craftax.txt (purejaxgcrl
# ee6b6bc, stripped), so the listings compare one to one without holding their text here.
CLASSIC_SHA = "e602517ad412f36ecc0aca0d44b9a4a82280a141dec05b06f47a7f2ba9762cb5"
CRAFTAX_SHA = "b46155aaae3f397228c8067486e428f510ffa2190e83cb34fdbcf006dac0bf8f"


def _sha(goals: GoalSet) -> str:
    return hashlib.sha256(goals.listing().encode()).hexdigest()


def test_listings_are_upstreams_names_and_order() -> None:
    classic, full = craftax_classic_goals(), craftax_goals()
    assert (len(classic), len(full)) == (136, 512)
    assert _sha(classic) == CLASSIC_SHA
    assert _sha(full) == CRAFTAX_SHA
    assert classic.listing().splitlines()[:2] == ["0 inventory/wood_1", "1 inventory/wood_2"]
    assert classic.names[54] == "tools/wood_pickaxe"
    assert classic.names[60] == "block_map/OUT_OF_BOUNDS_left"
    assert classic.names[135] == "mob_map/arrow_down"
    assert classic.families == ("inventory", "tools", "block_map", "mob_map")
    counts = {f: sum(n.startswith(f + "/") for n in full.names) for f in full.families}
    assert counts == {"inventory": 198, "block_map": 132, "mob_map": 116, "item_map": 16,
                      "tools": 17, "enchant": 12, "dungeon_level": 9, "intrinsics": 12}  # fmt: skip


def test_enum_names_match_craftax() -> None:
    from craftax.craftax.constants import BlockType, ItemType
    from craftax.craftax_classic.constants import BlockType as ClassicBlock
    from leo.goals import CLASSIC_BLOCKS, CRAFTAX_BLOCKS, CRAFTAX_ITEMS

    assert tuple(b.name for b in ClassicBlock) == CLASSIC_BLOCKS
    assert tuple(b.name for b in BlockType) == CRAFTAX_BLOCKS
    assert tuple(i.name for i in ItemType) == CRAFTAX_ITEMS


def _one(goals: GoalSet, obs: torch.Tensor) -> list[str]:
    return [goals.names[i] for i in torch.nonzero(goals.achieved(obs[None])[0]).flatten().tolist()]


def test_classic_families_on_hand_built_observations() -> None:
    lay, goals = CRAFTAX_CLASSIC_LAYOUT, craftax_classic_goals()
    obs = torch.zeros(lay.dim)
    assert _one(goals, obs) == []
    obs[lay.flat_index("inventory", 0, 3)] = 1.0  # 3 wood
    obs[lay.flat_index("inventory", 7, 2)] = 1.0  # 2 stone pickaxes: the tool is held
    obs[lay.flat_index("inventory", 9, 0)] = 1.0  # 0 wood swords: not held
    obs[lay.map_index("block_map", 3, 3, 5)] = 1.0  # TREE left of the centre (3, 4)
    obs[lay.map_index("block_map", 4, 4, 3)] = 1.0  # WATER below
    obs[lay.map_index("block_map", 0, 0, 11)] = 1.0  # a crafting table, not adjacent
    obs[lay.map_index("mob_map", 3, 5, 1)] = 1.0  # a cow to the right
    obs[lay.map_index("mob_map", 2, 4, 0)] = 1.0  # a zombie above
    assert sorted(_one(goals, obs)) == sorted([
        "inventory/wood_3", "tools/stone_pickaxe", "block_map/TREE_left",
        "block_map/WATER_down", "mob_map/cow_right", "mob_map/zombie_up",
    ])  # fmt: skip


def test_craftax_families_on_hand_built_observations() -> None:
    lay, goals = CRAFTAX_LAYOUT, craftax_goals()
    obs = torch.zeros(lay.dim)
    obs[lay.flat_index("inventory", 1, 42)] = 1.0  # 42 stone: the 40-44 range, no 1..9 slot
    obs[lay.flat_index("dungeon_level", 0, 2)] = 1.0
    obs[lay.flat_index("sword", 0, 3)] = 1.0  # iron sword
    obs[lay.flat_index("armour", 3, 2)] = 1.0  # diamond boots
    obs[lay.flat_index("armour_enchantments", 0, 1)] = 1.0  # fire helmet
    obs[lay.flat_index("bow_enchantment", 0, 2)] = 1.0  # ice bow
    obs[lay.flat_index("intrinsics", 7, 4)] = 1.0  # strength 4
    obs[lay.map_index("item_map", 4, 6, 2)] = 1.0  # LADDER_DOWN right of the centre (4, 5)
    obs[lay.map_index("mob_map", 5, 5, 9)] = 1.0  # a bat below
    obs[lay.map_index("block_map", 3, 5, 21)] = 1.0  # SAPPHIRE above
    assert sorted(_one(goals, obs)) == sorted([
        "inventory/stone_40-44", "dungeon_level/dlvl_2", "tools/iron_sword",
        "tools/diamond_boots", "enchant/helmet_fire", "enchant/bow_ice",
        "intrinsics/strength_4", "item_map/LADDER_DOWN_right", "mob_map/bat_down",
        "block_map/SAPPHIRE_up",
    ])  # fmt: skip


def test_gridworld_goals_are_the_free_cells() -> None:
    walls = torch.tensor([[0, 1], [0, 0]])
    goals = gridworld_goals(walls)
    assert goals.names == ("position/0-0", "position/1-0", "position/1-1")
    obs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # a free cell, a wall cell
    assert goals.achieved(obs).tolist() == [[False, True, False], [False, False, False]]
    assert goals.achieved_one(obs, torch.tensor([1, 1])).tolist() == [True, False]


def test_bad_observations_are_refused() -> None:
    with pytest.raises(ValueError, match=r"observations must be \(B, 1562\)"):
        craftax_classic_goals().achieved(torch.zeros(2, 1345))
