"""Batched goal environments: the paper's Gridworld in torch, and Craftax(-Classic)-Symbolic
through the ``craftax`` JAX package with upstream's one-hot observations and optimistic resets.

Every env here is a :class:`GoalEnv`: N envs stepped as one batch, same-step autoreset, a
:class:`~leo.goals.GoalSet` and an :class:`~leo.goals.ObsLayout` for the networks, and a state
(a dict of tensors) that a checkpoint stores and a resume loads, so a killed run continues
exactly.

Optimistic resets (purejaxgcrl's ``OptimisticResetVecEnvWrapper``): instead of generating a new
world for every env at every step (what a vmapped autoreset does, and what makes Craftax slow on
CPU), each step generates ``N / reset_ratio`` fresh worlds and the envs whose episode ended take
them: the ``k``-th ended env (in env order) takes fresh world ``k mod (N / reset_ratio)``, so two
envs share a start only when more than ``N / reset_ratio`` end at once (upstream draws which
ended envs get a unique world at random; the others share by index).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from leo.goals import (
    CRAFTAX_CLASSIC_LAYOUT,
    CRAFTAX_LAYOUT,
    GoalSet,
    ObsLayout,
    craftax_classic_goals,
    craftax_goals,
    gridworld_goals,
)

__all__ = [
    "CraftaxGoalEnv",
    "EnvStep",
    "GoalEnv",
    "Gridworld",
    "optimistic_slots",
]

CRAFTAX_IDS = {
    "craftax-classic": "Craftax-Classic-Symbolic-v1",
    "craftax": "Craftax-Symbolic-v1",
}


class EnvStep(NamedTuple):
    """One step of N goal envs.

    Attributes:
        next_obs: ``(N, D)`` float32: the observation the step reached (the true last
            observation where the episode ended): goals are judged on it.
        done: ``(N,)`` bool: the episode ended at this step (death or time limit).
        obs: ``(N, D)`` float32: the observation to act on next (a fresh episode's first where
            ``done``).
    """

    next_obs: Tensor
    done: Tensor
    obs: Tensor


class GoalEnv(Protocol):
    """What the goal-conditioned loop needs from a batch of environments."""

    num_envs: int
    num_actions: int
    goals: GoalSet
    layout: ObsLayout
    device: torch.device

    def reset(self, seed: int | None = None) -> Tensor:
        """Start every env afresh (reseeding the env's random stream with ``seed`` if given);
        returns ``(N, D)`` observations."""
        ...

    def step(self, actions: Tensor) -> EnvStep:
        """Step with ``(N,)`` int64 actions; ended envs restart at once (optimistic resets)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (tensors on the CPU)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> Tensor:
        """Restore :meth:`state_dict` output; returns the current observations."""
        ...


def optimistic_slots(done: Tensor, num_resets: int) -> Tensor:
    """``(N,)`` int64: the fresh world each env takes if it ended: the ``k``-th ended env takes
    world ``k mod num_resets`` (values at envs that did not end are meaningless)."""
    rank = torch.cumsum(done.to(torch.int64), dim=0) - 1
    return torch.remainder(rank.clamp(min=0), num_resets)


# (dx, dy) of the Gridworld's actions LEFT, RIGHT, UP, DOWN (upstream's constants.DIRECTIONS).
_MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))


class Gridworld:
    """The paper's Gridworld (upstream ``envs/gridworld``) as torch tensors.

    A fixed ``S x S`` map whose cells are walls where a uniform draw (torch, ``map_seed``) is
    below ``wall_threshold``, the centre kept free. The agent starts at the centre; its
    observation is its ``(x, y)`` cell as floats; actions LEFT, RIGHT, UP, DOWN move one cell
    (clipped at the border, blocked by walls). An episode ends when its clock reaches
    ``max_steps``; clocks start at a random time in ``[0, 50)`` so that envs desynchronise, as
    upstream. Every free cell is a goal (:func:`leo.goals.gridworld_goals`).

    Args:
        num_envs: N.
        size, wall_threshold, map_seed, max_steps: The map and episode length.
        reset_ratio: Optimistic resets: N / reset_ratio fresh start times per step.
        seed: Seed of the start-time draws.
        device: Where the state and observations live.
    """

    num_actions = 4

    def __init__(
        self,
        num_envs: int,
        *,
        size: int = 16,
        wall_threshold: float = 0.3,
        map_seed: int = 0,
        max_steps: int = 200,
        reset_ratio: int = 16,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if num_envs % reset_ratio:
            raise ValueError(f"reset_ratio {reset_ratio} must divide num_envs {num_envs}")
        self.num_envs = num_envs
        self.size = size
        self.max_steps = max_steps
        self.num_resets = num_envs // reset_ratio
        self.device = torch.device(device)
        gen = torch.Generator().manual_seed(map_seed)
        walls = (torch.rand(size, size, generator=gen) < wall_threshold).to(torch.int64)
        walls[size // 2, size // 2] = 0
        self.walls = walls.to(self.device)
        self.goals = gridworld_goals(walls).to(self.device)
        self.layout = ObsLayout(None, (), (("position", (2,)),))
        self._moves = torch.tensor(_MOVES, dtype=torch.int64, device=self.device)
        self._gen = torch.Generator(self.device).manual_seed(seed)
        self._centre = torch.full((2,), size // 2, dtype=torch.int64, device=self.device)
        self.pos = self._centre.repeat(num_envs, 1)  # (N, 2)
        self.clock = torch.zeros(num_envs, dtype=torch.int64, device=self.device)

    def _start_times(self, n: int) -> Tensor:
        return torch.randint(0, 50, (n,), generator=self._gen, device=self.device)

    def reset(self, seed: int | None = None) -> Tensor:
        if seed is not None:
            self._gen.manual_seed(seed)
        self.pos = self._centre.repeat(self.num_envs, 1)
        self.clock = self._start_times(self.num_envs)
        return self.pos.float()

    def step(self, actions: Tensor) -> EnvStep:
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must be ({self.num_envs},), got {tuple(actions.shape)}")
        moved = (self.pos + self._moves[actions.to(self.device)]).clamp(0, self.size - 1)
        blocked = self.walls[moved[:, 0], moved[:, 1]] == 1
        self.pos = torch.where(blocked[:, None], self.pos, moved)
        self.clock = self.clock + 1
        done = self.clock >= self.max_steps
        next_obs = self.pos.float()
        fresh = self._start_times(self.num_resets)  # drawn every step, as upstream
        slot = optimistic_slots(done, self.num_resets)
        self.pos = torch.where(done[:, None], self._centre, self.pos)
        self.clock = torch.where(done, fresh[slot], self.clock)
        return EnvStep(next_obs, done, self.pos.float())

    def state_dict(self) -> dict[str, Any]:
        return {
            "pos": self.pos.cpu().clone(),
            "clock": self.clock.cpu().clone(),
            "generator": self._gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> Tensor:
        self.pos = state["pos"].to(self.device)
        self.clock = state["clock"].to(self.device)
        self._gen.set_state(state["generator"])
        return self.pos.float()


class CraftaxGoalEnv:
    """Craftax-Classic-Symbolic or Craftax-Symbolic (the ``craftax`` package, JAX) with
    upstream's one-hot observations, optimistic resets inside one jitted step, and observations
    handed to torch through DLPack (no host copy).

    The observation is upstream's ``CraftaxOneHotDictWrapper`` dictionary flattened by
    :data:`~leo.goals.CRAFTAX_CLASSIC_LAYOUT` / :data:`~leo.goals.CRAFTAX_LAYOUT`: the block,
    item, light and mob maps as they are (mobs plus a "no mob" channel on Classic), counts and
    levels as one-hot slots (Classic rounds Craftax's ``count / 10`` floats, as upstream does).

    Args:
        name: ``"craftax-classic"`` or ``"craftax"``.
        num_envs: N.
        reset_ratio: Optimistic resets: N / reset_ratio fresh worlds per step.
        seed: Seed of the JAX key stream (worlds and the env's own randomness).
    """

    def __init__(self, name: str, num_envs: int, *, reset_ratio: int = 16, seed: int = 0) -> None:
        if name not in CRAFTAX_IDS:
            raise ValueError(f"unknown Craftax env {name!r}; one of {sorted(CRAFTAX_IDS)}")
        if num_envs % reset_ratio:
            raise ValueError(f"reset_ratio {reset_ratio} must divide num_envs {num_envs}")
        import jax
        import jax.numpy as jnp
        from craftax.craftax_env import make_craftax_env_from_name

        self._jax = jax
        self.name = name
        self.num_envs = num_envs
        self.num_resets = num_envs // reset_ratio
        self.device = torch.device("cpu")
        classic = name == "craftax-classic"
        self.layout = CRAFTAX_CLASSIC_LAYOUT if classic else CRAFTAX_LAYOUT
        self.goals = craftax_classic_goals() if classic else craftax_goals()
        env: Any = make_craftax_env_from_name(CRAFTAX_IDS[name], auto_reset=False)
        params: Any = env.default_params
        self.num_actions = int(env.action_space(params).n)
        onehot = _classic_onehot if classic else _craftax_onehot
        n, k = num_envs, self.num_resets

        def strong(x: Any) -> Any:  # one signature for reset and stepped states (no retrace)
            x = x if hasattr(x, "dtype") else jnp.asarray(x)
            if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
                return x
            return jnp.asarray(x, dtype=x.dtype)

        def reset_one(key: Any) -> Any:
            native, state = env.reset_env(key, params)
            return onehot(state, native), jax.tree_util.tree_map(strong, state)

        def reset_all(key: Any) -> Any:
            key, sub = jax.random.split(key)
            obs, states = jax.vmap(reset_one)(jax.random.split(sub, n))
            return key, obs, states

        def step_all(key: Any, states: Any, actions: Any) -> Any:
            key, k_step, k_reset = jax.random.split(key, 3)
            stepped: Any = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
                jax.random.split(k_step, n), states, actions, params
            )
            native, states, _, done, _ = stepped
            next_obs = jax.vmap(onehot)(states, native)
            fresh_obs, fresh_states = jax.vmap(reset_one)(jax.random.split(k_reset, k))
            rank = jnp.cumsum(done.astype(jnp.int32)) - 1
            slot = jnp.remainder(jnp.maximum(rank, 0), k)

            def pick(fresh: Any, cur: Any) -> Any:
                d = done.reshape(done.shape + (1,) * (cur.ndim - 1))
                return jnp.where(d, fresh[slot], cur)

            obs = pick(fresh_obs, next_obs)
            states = jax.tree_util.tree_map(lambda f, c: strong(pick(f, c)), fresh_states, states)
            return key, states, next_obs, obs, done

        self._reset = jax.jit(reset_all)
        self._step = jax.jit(step_all)
        # Every array the jitted functions see is committed to the CPU device: JAX compiles
        # again for an uncommitted input (a fresh key, a loaded checkpoint) after a committed one.
        self._cpu = jax.devices("cpu")[0]
        self._key = jax.device_put(jax.random.key(seed), self._cpu)
        self._states: Any = None
        self._obs: Any = None

    def reset(self, seed: int | None = None) -> Tensor:
        if seed is not None:
            self._key = self._jax.device_put(self._jax.random.key(seed), self._cpu)
        self._key, self._obs, self._states = self._reset(self._key)
        return torch.from_dlpack(self._obs)

    def step(self, actions: Tensor) -> EnvStep:
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must be ({self.num_envs},), got {tuple(actions.shape)}")
        a = self._jax.dlpack.from_dlpack(actions.to("cpu", torch.int32).contiguous())
        self._key, self._states, next_obs, self._obs, done = self._step(self._key, self._states, a)
        return EnvStep(
            torch.from_dlpack(next_obs), torch.from_dlpack(done), torch.from_dlpack(self._obs)
        )

    def state_dict(self) -> dict[str, Any]:
        import numpy as np

        jax = self._jax
        leaves = [
            jax.random.key_data(leaf) if jax.numpy.issubdtype(leaf.dtype, jax.dtypes.prng_key)
            else leaf
            for leaf in jax.tree_util.tree_leaves(self._states)
        ]  # fmt: skip
        return {
            "states": [torch.from_numpy(np.array(leaf)) for leaf in leaves],
            "obs": torch.from_numpy(np.array(self._obs)),
            "key": torch.from_numpy(np.array(jax.random.key_data(self._key))),
        }

    def load_state_dict(self, state: dict[str, Any]) -> Tensor:
        jax = self._jax
        jnp = jax.numpy
        if self._states is None:  # the tree structure comes from a reset
            self.reset()
        treedef = jax.tree_util.tree_structure(self._states)
        template = jax.tree_util.tree_leaves(self._states)
        leaves = [
            jax.device_put(
                jax.random.wrap_key_data(jnp.asarray(t.numpy()))
                if jnp.issubdtype(old.dtype, jax.dtypes.prng_key)
                else jnp.asarray(t.numpy()),
                self._cpu,
            )
            for t, old in zip(state["states"], template, strict=True)
        ]
        self._states = jax.tree_util.tree_unflatten(treedef, leaves)
        self._obs = jax.device_put(jnp.asarray(state["obs"].numpy()), self._cpu)
        key = jax.random.wrap_key_data(jnp.asarray(state["key"].numpy()))
        self._key = jax.device_put(key, self._cpu)
        return torch.from_dlpack(self._obs)


def _classic_onehot(state: Any, native: Any) -> Any:
    """Craftax-Classic's 1345-float symbolic observation as the one-hot layout (1562 floats).

    Native layout: a (7, 9, 21) map (17 block one-hots, 4 mob flags), then inventory (12),
    intrinsics (4), direction (4), light level (1), sleeping (1); counts are ``count / 10``.
    """
    import jax
    import jax.numpy as jnp

    del state
    grid = native[:1323].reshape(7, 9, 21)
    mobs = grid[:, :, 17:]
    no_mob = 1.0 - mobs.any(axis=-1, keepdims=True).astype(native.dtype)
    map_part = jnp.concatenate([grid[:, :, :17], mobs, no_mob], axis=-1)  # (7, 9, 22)

    def counts(x: Any) -> Any:  # round: count / 10 is stored in float16 (4 -> 0.3999)
        return jax.nn.one_hot(jnp.round(x * 10).astype(jnp.int32), 10)

    parts = {
        "intrinsics": counts(native[1335:1339]),
        "inventory": counts(native[1323:1335]),
        "is_player_sleeping": jax.nn.one_hot((native[1344:1345] > 0.5).astype(jnp.int32), 2),
        "light_level": jax.nn.one_hot((native[1343:1344] * 9.9).astype(jnp.int32), 10),
        "player_direction": native[1339:1343][None],
    }
    flat = [parts[key].reshape(-1) for key, _ in CRAFTAX_CLASSIC_LAYOUT.flat_keys]
    return jnp.concatenate([map_part.reshape(-1), *flat]).astype(jnp.float32)


def _craftax_onehot(state: Any, native: Any) -> Any:
    """Craftax's symbolic observation and state as the one-hot layout (9637 floats): the maps
    from the native observation's (9, 11, 83) block, the rest one-hot from the state."""
    import jax
    import jax.numpy as jnp
    from craftax.craftax.constants import MONSTERS_KILLED_TO_CLEAR_LEVEL
    from craftax.craftax.util.game_logic_utils import is_boss_vulnerable

    grid = native[:8217].reshape(9, 11, 83)
    light = jax.nn.one_hot(grid[:, :, 82].astype(jnp.int32), 2)
    map_part = jnp.concatenate([grid[:, :, :37], grid[:, :, 37:42], light, grid[:, :, 42:82]], -1)
    inv = state.inventory

    def oh(x: Any, n: int) -> Any:
        # equality with 0..n-1, as jax.nn.one_hot (floats such as health 8.5 give no slot)
        return (jnp.asarray(x)[..., None] == jnp.arange(n)).astype(jnp.float32)

    def flag(x: Any) -> Any:
        return oh(jnp.asarray(x > 0.5).astype(jnp.int32), 2)[None]

    items = ("wood", "stone", "coal", "iron", "diamond", "sapphire", "ruby", "sapling", "torches",
             "arrows")  # fmt: skip
    intrinsics = ("player_health", "player_food", "player_drink", "player_energy", "player_mana",
                  "player_xp", "player_dexterity", "player_strength", "player_intelligence")  # fmt: skip
    cleared = state.monsters_killed[state.player_level] >= MONSTERS_KILLED_TO_CLEAR_LEVEL
    parts = {
        "armour": oh(inv.armour, 3),
        "armour_enchantments": oh(state.armour_enchantments, 3),
        "books": oh(inv.books, 3)[None],
        "boss_vulnerable": flag(is_boss_vulnerable(state)),
        "bow": oh(inv.bow, 2)[None],
        "bow_enchantment": oh(state.bow_enchantment, 3)[None],
        "cleared_level": oh(cleared.astype(jnp.int32), 2)[None],
        "dungeon_level": oh(state.player_level, 10)[None],
        "intrinsics": jnp.stack([oh(getattr(state, k), 20) for k in intrinsics]),
        "inventory": jnp.stack([oh(getattr(inv, k), 100) for k in items]),
        "is_player_resting": flag(state.is_resting),
        "is_player_sleeping": flag(state.is_sleeping),
        "light_level": oh((state.light_level * 9.9).astype(jnp.int32), 10)[None],
        "pickaxe": oh(inv.pickaxe, 5)[None],
        "player_direction": oh(state.player_direction - 1, 4)[None],
        "potions": oh(inv.potions, 10),
        "spells": oh((state.learned_spells > 0.5).astype(jnp.int32), 2),
        "sword": oh(inv.sword, 5)[None],
        "sword_enchantment": oh(state.sword_enchantment, 3)[None],
    }
    flat = [parts[key].reshape(-1) for key, _ in CRAFTAX_LAYOUT.flat_keys]
    return jnp.concatenate([map_part.reshape(-1), *flat]).astype(jnp.float32)
