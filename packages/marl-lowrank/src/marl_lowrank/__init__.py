"""Offline multi-agent RL with low-interaction-rank critics (Zhan, Fujimoto, Zhu, Lee, Jiang,
Efroni, ICLR 2025, arXiv 2410.01101).

* :mod:`marl_lowrank.networks`: critic classes IR-1, IR-2, general K, joint and independent,
  vectorised over agents, pairs and subsets; the shared actor.
* :mod:`marl_lowrank.agent`: decentralised TD3+BC with parameter sharing and an agent id.
* :mod:`marl_lowrank.drac`: DR-AC for discrete actions and exact CCE gaps.
* :mod:`marl_lowrank.game`: the N-agent contextual game and its datasets.
* :mod:`marl_lowrank.spread`: mpe2's simple_spread and its scripted / noisy datasets.
* :mod:`marl_lowrank.data`: the dataset container, game files, multi-agent Minari datasets and
  seeded batches.

Names are imported from their module on first use (``rl_runtime.lazy``), so
``marl_lowrank.config`` imports without torch or the simulators (``rl-train marl-lowrank
--help``).
"""

from typing import TYPE_CHECKING

from rl_runtime.lazy import lazy_exports

if TYPE_CHECKING:
    from marl_lowrank.agent import TD3BCAgent
    from marl_lowrank.config import (
        CriticConfig,
        DRACConfig,
        GameConfig,
        SpreadConfig,
        TD3BCConfig,
    )
    from marl_lowrank.data import (
        MultiAgentBatches,
        MultiAgentData,
        load_game_dataset,
        load_minari_multiagent,
        save_game_dataset,
        save_minari_multiagent,
    )
    from marl_lowrank.drac import DRACAgent, tabular_cce_gap
    from marl_lowrank.game import make_game_dataset, mixture_cce_gap
    from marl_lowrank.networks import (
        Actor,
        Critic,
        IndependentCritic,
        IR1Critic,
        IR2Critic,
        IRKCritic,
        JointCritic,
        make_critic,
    )

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "Critic",
    "CriticConfig",
    "DRACAgent",
    "DRACConfig",
    "GameConfig",
    "IR1Critic",
    "IR2Critic",
    "IRKCritic",
    "IndependentCritic",
    "JointCritic",
    "MultiAgentBatches",
    "MultiAgentData",
    "SpreadConfig",
    "TD3BCAgent",
    "TD3BCConfig",
    "load_game_dataset",
    "load_minari_multiagent",
    "make_critic",
    "make_game_dataset",
    "mixture_cce_gap",
    "save_game_dataset",
    "save_minari_multiagent",
    "tabular_cce_gap",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "marl_lowrank.agent": ("TD3BCAgent",),
        "marl_lowrank.config": (
            "CriticConfig",
            "DRACConfig",
            "GameConfig",
            "SpreadConfig",
            "TD3BCConfig",
        ),
        "marl_lowrank.data": (
            "MultiAgentBatches",
            "MultiAgentData",
            "load_game_dataset",
            "load_minari_multiagent",
            "save_game_dataset",
            "save_minari_multiagent",
        ),
        "marl_lowrank.drac": ("DRACAgent", "tabular_cce_gap"),
        "marl_lowrank.game": ("make_game_dataset", "mixture_cce_gap"),
        "marl_lowrank.networks": (
            "Actor",
            "Critic",
            "IR1Critic",
            "IR2Critic",
            "IRKCritic",
            "IndependentCritic",
            "JointCritic",
            "make_critic",
        ),
    },
)
