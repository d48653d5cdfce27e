"""Configuration for DriftQL and its baselines (FQL, BC): frozen dataclasses and per-task presets.

Defaults are the official DriftQL code's ``get_config`` (``agents/driftql.py``; the paper's
Table 5). :func:`default_config` gives each algorithm its own official defaults (FQL's critic
target averages the two heads, DriftQL's takes their minimum); :func:`task_preset` applies the
per-task settings of the DriftQL README / YAML configs and of FQL's README (table in
:data:`TASK_PRESETS`, sources on each entry).

Loss scale: the drift loss is a per-element mean over ``(B, N, A)`` as in the official code, not
the paper's squared L2 norm (Eq. 11), because the published ``alpha`` values were tuned for the
code's scale (they would otherwise act ``A`` times stronger).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

from rl_runtime.config import (
    DictCodec,
    in_range,
    int_at_least,
    layer_sizes,
    non_negative,
    one_of,
    positive,
)

__all__ = [
    "TASK_PRESETS",
    "ActorConfig",
    "AgentConfig",
    "Algo",
    "CriticConfig",
    "DegradeMode",
    "DriftConfig",
    "FlowConfig",
    "Kernel",
    "OptimConfig",
    "QAgg",
    "TaskPreset",
    "default_config",
    "resolve_task",
    "task_preset",
]

Algo = Literal["driftql", "fql", "bc"]
"""Which agent: DriftQL, Flow Q-Learning, or plain behaviour cloning."""

Kernel = Literal["laplace", "gaussian"]
"""Repulsion kernel: ``exp(-d / tau)`` or ``exp(-d^2 / (2 tau^2))`` on ``d = ||x - y|| / sqrt(A)``."""

QAgg = Literal["min", "mean"]
"""How the two critic heads are combined: clipped double-Q (``min``) or their average."""

DegradeMode = Literal["uniform", "gaussian"]
"""How :func:`driftql.data.degrade` replaces an action: ``"uniform"`` draws it uniformly in
``[-1, 1]^A`` (OGBench's ``p_random_action``); ``"gaussian"`` adds Gaussian noise and clips."""

ALGOS: tuple[Algo, ...] = get_args(Algo)
KERNELS: tuple[Kernel, ...] = get_args(Kernel)
Q_AGGS: tuple[QAgg, ...] = get_args(QAgg)


@dataclass(frozen=True)
class CriticConfig:
    """Two-member Q ensemble shared by DriftQL and FQL (FQL's ``Value`` network and TD loss)."""

    hidden_sizes: tuple[int, ...] = (512, 512, 512, 512)
    """Hidden widths of each Q network (paper: 4 x 512)."""
    layer_norm: bool = True
    """LayerNorm (learnable scale/shift) after every hidden GELU, as the official code."""
    num_members: int = 2
    """Ensemble size (official: 2)."""
    discount: float = 0.99
    """Per-step discount gamma."""
    tau: float = 0.005
    """Polyak rate of the target critic."""
    q_agg: QAgg = "min"
    """How the target heads are combined in the TD target (DriftQL: min; FQL: mean)."""

    def __post_init__(self) -> None:
        layer_sizes("critic.hidden_sizes", self.hidden_sizes)
        int_at_least("critic.num_members", self.num_members, 1)
        in_range("critic.discount", self.discount, 0.0, 1.0, high_open=True)
        in_range("critic.tau", self.tau, 0.0, 1.0, low_open=True)
        one_of("critic.q_agg", self.q_agg, Q_AGGS)


@dataclass(frozen=True)
class ActorConfig:
    """The one-step actor ``f(s, noise)`` (BC: ``f(s)``) and the Q term of its loss."""

    hidden_sizes: tuple[int, ...] = (512, 512, 512, 512)
    """Hidden widths (paper: 4 x 512; FQL's flow velocity field uses the same)."""
    layer_norm: bool = False
    """LayerNorm in the actor (official: off)."""
    noise_dim: int | None = None
    """DriftQL's noise width; ``None`` means the action dimension (official default). FQL's noise
    is always action-sized (it is the flow's starting point); BC has none."""
    alpha: float = 10.0
    """Weight of the behaviour term: the drift loss (DriftQL) or the distillation loss (FQL)."""
    q_agg: QAgg = "mean"
    """How the heads are combined in the actor's Q term (official ``q_agg_actor``: mean)."""
    normalize_q_loss: bool = False
    """Divide the Q term by ``mean |Q|`` (no gradient through the scale; TD3+BC's lambda)."""

    def __post_init__(self) -> None:
        layer_sizes("actor.hidden_sizes", self.hidden_sizes)
        if self.noise_dim is not None:
            int_at_least("actor.noise_dim", self.noise_dim, 1)
        non_negative("actor.alpha", self.alpha)
        one_of("actor.q_agg", self.q_agg, Q_AGGS)


@dataclass(frozen=True)
class DriftConfig:
    """DriftQL's drift regulariser (one positive per state: the dataset action)."""

    kernel: Kernel = "laplace"
    """Repulsion kernel (code default Laplace; the paper's text says Gaussian; tasks mix both)."""
    temperature: float = 0.2
    """Kernel temperature tau (``drift_temp``)."""
    num_samples: int = 32
    """Candidates N drawn per state (``drift_ngen``); >= 2 so each has another to repel."""
    eta: float = 1.0
    """Step size of the drift target ``clip(a + eta * V)``."""
    dim_scale: bool = True
    """Divide distances by ``sqrt(A)`` before the kernel, so tau transfers across action sizes."""
    normalize: bool = False
    """Divide each state's field by its RMS per action dimension (official: off)."""
    eps: float = 1e-12
    """Added under the square root of every distance and norm."""

    def __post_init__(self) -> None:
        one_of("drift.kernel", self.kernel, KERNELS)
        positive("drift.temperature", self.temperature)
        int_at_least("drift.num_samples", self.num_samples, 2)
        positive("drift.eta", self.eta)
        positive("drift.eps", self.eps)


@dataclass(frozen=True)
class FlowConfig:
    """FQL's flow-matching behaviour policy."""

    steps: int = 10
    """Euler steps from noise to action (``flow_steps``)."""

    def __post_init__(self) -> None:
        int_at_least("flow.steps", self.steps, 1)


@dataclass(frozen=True)
class OptimConfig:
    """Adam for the actor(s) and for the critic (the official code's one Adam over both is the
    same thing: Adam is per-parameter and the two losses touch disjoint parameters)."""

    actor_lr: float = 3e-4
    """Adam learning rate of the actor networks."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic."""
    batch_size: int = 256
    """Transitions per update (read by the trainer when it samples; the agent takes any B)."""

    def __post_init__(self) -> None:
        positive("optim.actor_lr", self.actor_lr)
        positive("optim.critic_lr", self.critic_lr)
        int_at_least("optim.batch_size", self.batch_size, 1)


@dataclass(frozen=True)
class AgentConfig(DictCodec):
    """Everything that defines a DriftQL, FQL or BC agent."""

    algo: Algo = "driftql"
    """Which agent :func:`driftql.make_agent` builds."""
    critic: CriticConfig = field(default_factory=CriticConfig)
    """Q ensemble and TD target (unused by BC)."""
    actor: ActorConfig = field(default_factory=ActorConfig)
    """Actor network and its Q term."""
    drift: DriftConfig = field(default_factory=DriftConfig)
    """Drift regulariser (DriftQL only)."""
    flow: FlowConfig = field(default_factory=FlowConfig)
    """Flow behaviour policy (FQL only)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimisers and batch size."""
    action_clip: float = 1.0 - 1e-5
    """Dataset actions are clipped to ``[-action_clip, action_clip]`` inside ``update`` (FQL)."""
    action_tolerance: float = 1e-3
    """``update`` rejects dataset actions further than this outside ``[-1, 1]``."""
    check_values: bool = True
    """``update`` checks the batch for NaN/inf and out-of-range actions (one device sync)."""

    def __post_init__(self) -> None:
        one_of("algo", self.algo, ALGOS)
        in_range("action_clip", self.action_clip, 0.0, 1.0, low_open=True)
        non_negative("action_tolerance", self.action_tolerance)

    def noise_dim(self, action_dim: int) -> int:
        """The actor's noise width for actions of size ``action_dim`` (0 for deterministic BC)."""
        if self.algo == "bc":
            return 0
        if self.algo == "fql":
            # FQL's flow starts from an action-sized Gaussian; its one-step policy reads the same.
            return action_dim
        return self.actor.noise_dim if self.actor.noise_dim is not None else action_dim


def default_config(algo: Algo = "driftql") -> AgentConfig:
    """The official code's defaults for ``algo``.

    * ``driftql``: DriftQL's ``get_config`` (q_agg min, alpha 10, Laplace, tau 0.2, N 32).
    * ``fql``: FQL's ``get_config`` (q_agg **mean**, alpha 10, 10 flow steps).
    * ``bc``: the same actor network without noise input; critic settings unused.
    """
    one_of("algo", algo, ALGOS)
    if algo == "fql":
        return AgentConfig(algo="fql", critic=CriticConfig(q_agg="mean"))
    return AgentConfig(algo=algo)


# --------------------------------------------------------------------------------------------------
# Per-task presets
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskPreset:
    """The published per-task settings of DriftQL and FQL for one task family.

    Fields left at ``None`` keep the algorithm's default (:func:`default_config`).
    """

    driftql_temperature: float
    """DriftQL ``drift_temp``."""
    driftql_alpha: float
    """DriftQL drift weight."""
    driftql_kernel: Kernel = "laplace"
    """DriftQL kernel."""
    driftql_discount: float = 0.99
    """DriftQL discount."""
    driftql_q_agg: QAgg = "min"
    """DriftQL critic-target aggregation."""
    driftql_num_samples: int = 32
    """DriftQL candidates per state."""
    driftql_noise_dim: int | None = None
    """DriftQL noise width (None: the action dimension)."""
    fql_alpha: float = 10.0
    """FQL distillation weight."""
    fql_discount: float = 0.99
    """FQL discount."""
    fql_q_agg: QAgg = "mean"
    """FQL critic-target aggregation."""
    source: str = ""
    """Where the numbers come from."""


_DQ_OGB = "DriftQL configs/ogbench/<task>-task1..5.yaml (identical over tasks 1-5)"
_DQ_D4RL = "DriftQL README commands (D4RL locomotion)"
_DQ_ANT = "DriftQL configs/d4rl_antmaze/<task>-v2.yaml"
_FQL_OGB = "FQL README (OGBench singletask commands)"
_FQL_D4RL = "FQL README (D4RL antmaze commands)"
_FQL_NONE = "FQL: no published setting (FQL has no locomotion runs); FQL get_config defaults"

TASK_PRESETS: Mapping[str, TaskPreset] = MappingProxyType(
    {
        # OGBench (dataset families; every singletask variant shares the setting).
        "antmaze-large": TaskPreset(0.5, 10.0, driftql_q_agg="mean", fql_alpha=10.0,
                                    fql_q_agg="min", source=f"{_DQ_OGB}; {_FQL_OGB}"),
        "antmaze-giant": TaskPreset(0.2, 10.0, driftql_discount=0.995, fql_alpha=10.0,
                                    fql_discount=0.995, fql_q_agg="min",
                                    source=f"{_DQ_OGB}; {_FQL_OGB}"),
        "humanoidmaze-medium": TaskPreset(0.5, 65.0, driftql_discount=0.998,
                                          driftql_q_agg="mean", fql_alpha=30.0,
                                          fql_discount=0.995, source=f"{_DQ_OGB}; {_FQL_OGB}"),
        "humanoidmaze-large": TaskPreset(0.2, 32.0, driftql_discount=0.995,
                                         driftql_q_agg="mean", fql_alpha=30.0,
                                         fql_discount=0.995, source=f"{_DQ_OGB}; {_FQL_OGB}"),
        "antsoccer-arena": TaskPreset(0.5, 10.0, driftql_discount=0.995, driftql_q_agg="mean",
                                      fql_alpha=10.0, fql_discount=0.995,
                                      source=f"{_DQ_OGB}; {_FQL_OGB}"),
        "cube-single": TaskPreset(0.02, 60.0, driftql_kernel="gaussian", driftql_discount=0.995,
                                  driftql_q_agg="mean", fql_alpha=300.0,
                                  source=f"{_DQ_OGB}; {_FQL_OGB}"),
        "cube-double": TaskPreset(0.2, 100.0, driftql_kernel="gaussian", driftql_q_agg="mean",
                                  driftql_num_samples=4, driftql_noise_dim=8, fql_alpha=300.0,
                                  source=f"{_DQ_OGB}; {_FQL_OGB}"),
        "scene": TaskPreset(0.2, 250.0, driftql_kernel="gaussian", driftql_discount=0.995,
                            fql_alpha=300.0, source=f"{_DQ_OGB}; {_FQL_OGB}"),
        "puzzle-3x3": TaskPreset(0.5, 50.0, driftql_kernel="gaussian", fql_alpha=1000.0,
                                 source=f"{_DQ_OGB}; {_FQL_OGB}"),
        "puzzle-4x4": TaskPreset(0.8, 300.0, driftql_kernel="gaussian", driftql_q_agg="mean",
                                 fql_alpha=1000.0, source=f"{_DQ_OGB}; {_FQL_OGB}"),
        # D4RL antmaze (the v2 datasets).
        "antmaze-umaze": TaskPreset(0.5, 15.0, fql_alpha=10.0,
                                    source=f"{_DQ_ANT}; {_FQL_D4RL}"),
        "antmaze-umaze-diverse": TaskPreset(0.5, 12.0, driftql_q_agg="mean", fql_alpha=10.0,
                                            source=f"{_DQ_ANT}; {_FQL_D4RL}"),
        "antmaze-medium-play": TaskPreset(0.5, 5.0, driftql_kernel="gaussian", fql_alpha=10.0,
                                          source=f"{_DQ_ANT}; {_FQL_D4RL}"),
        "antmaze-medium-diverse": TaskPreset(0.5, 8.0, driftql_kernel="gaussian",
                                             driftql_discount=0.995, fql_alpha=10.0,
                                             source=f"{_DQ_ANT}; {_FQL_D4RL}"),
        "antmaze-large-play": TaskPreset(0.5, 3.0, driftql_kernel="gaussian",
                                         driftql_discount=0.995, fql_alpha=3.0,
                                         source=f"{_DQ_ANT}; {_FQL_D4RL}"),
        "antmaze-large-diverse": TaskPreset(0.5, 5.0, driftql_kernel="gaussian",
                                            driftql_discount=0.995, fql_alpha=3.0,
                                            source=f"{_DQ_ANT}; {_FQL_D4RL}"),
        # D4RL / gymnasium MuJoCo locomotion. The bare name takes the "medium" setting.
        "halfcheetah": TaskPreset(0.5, 3.0, driftql_q_agg="mean",
                                  source=f"{_DQ_D4RL} (medium); {_FQL_NONE}"),
        "halfcheetah-medium": TaskPreset(0.5, 3.0, driftql_q_agg="mean",
                                         source=f"{_DQ_D4RL}; {_FQL_NONE}"),
        "halfcheetah-medium-replay": TaskPreset(0.5, 10.0, driftql_discount=0.995,
                                                source=f"{_DQ_D4RL}; {_FQL_NONE}"),
        "halfcheetah-medium-expert": TaskPreset(0.5, 300.0, driftql_q_agg="mean",
                                                source=f"{_DQ_D4RL}; {_FQL_NONE}"),
        "hopper": TaskPreset(0.1, 100.0, driftql_kernel="gaussian", driftql_discount=0.995,
                             source=f"{_DQ_D4RL} (medium); {_FQL_NONE}"),
        "hopper-medium": TaskPreset(0.1, 100.0, driftql_kernel="gaussian",
                                    driftql_discount=0.995, source=f"{_DQ_D4RL}; {_FQL_NONE}"),
        "hopper-medium-replay": TaskPreset(0.1, 100.0, driftql_kernel="gaussian",
                                           driftql_discount=0.995,
                                           source=f"{_DQ_D4RL}; {_FQL_NONE}"),
        "hopper-medium-expert": TaskPreset(0.1, 600.0, driftql_kernel="gaussian",
                                           driftql_discount=0.995,
                                           source=f"{_DQ_D4RL}; {_FQL_NONE}"),
        "walker2d": TaskPreset(0.1, 1000.0, driftql_discount=0.995,
                               source=f"{_DQ_D4RL} (medium); {_FQL_NONE}"),
        "walker2d-medium": TaskPreset(0.1, 1000.0, driftql_discount=0.995,
                                      source=f"{_DQ_D4RL}; {_FQL_NONE}"),
        "walker2d-medium-replay": TaskPreset(0.1, 300.0, driftql_discount=0.995,
                                             source=f"{_DQ_D4RL}; {_FQL_NONE}"),
        "walker2d-medium-expert": TaskPreset(0.1, 1000.0, driftql_q_agg="mean",
                                             source=f"{_DQ_D4RL}; {_FQL_NONE}"),
    }
)  # fmt: skip
"""Task family -> published settings. Names are OGBench dataset families (``cube-single`` covers
``cube-single-play-singletask-task1-v0`` ...), D4RL antmaze datasets and MuJoCo locomotion."""


def resolve_task(task: str) -> str | None:
    """The :data:`TASK_PRESETS` key that ``task`` names, or ``None``.

    Matching is case-insensitive on the longest key that equals the name or prefixes it at a
    ``-`` boundary, after mapping ``_`` to ``-``, dropping a ``visual-`` prefix and a ``-vN``
    version suffix, and reading a ``/``-separated dataset id (Minari's ``namespace/env/dataset``)
    with its path parts joined by ``-``, leading parts dropped as needed. So
    ``"cube-single-play-singletask-task2-v0"`` -> ``"cube-single"``, ``"hopper-medium-expert-v2"``
    -> ``"hopper-medium-expert"``, ``"Hopper-v5"`` -> ``"hopper"``,
    ``"mujoco/halfcheetah/medium-v0"`` -> ``"halfcheetah-medium"``, ``"antmaze-large-play-v2"``
    -> ``"antmaze-large-play"``. A locomotion dataset with no exact entry (``-random``,
    ``-expert``) takes its environment's entry (the D4RL "medium" setting).
    """
    name = task.strip().lower().replace("_", "-")
    name = re.sub(r"-v\d+$", "", name)
    parts = [p.removeprefix("visual-") for p in name.split("/") if p]
    candidates = ["-".join(parts[i:]) for i in range(len(parts))]
    best: str | None = None
    for candidate in candidates:
        for key in TASK_PRESETS:
            matches = candidate == key or candidate.startswith(key + "-")
            if matches and (best is None or len(key) > len(best)):
                best = key
    return best


def task_preset(task: str, algo: Algo = "driftql") -> AgentConfig:
    """The published hyperparameters of ``algo`` on ``task``.

    Args:
        task: A task or dataset name (see :func:`resolve_task` for the accepted spellings).
        algo: ``"driftql"``, ``"fql"`` or ``"bc"``.

    Returns:
        The algorithm's :func:`default_config` with the task's settings applied. A task with no
        entry in :data:`TASK_PRESETS` gets the unchanged defaults (so a new task runs with the
        official defaults: DriftQL alpha 10, tau 0.2, Laplace; FQL alpha 10). BC has no
        per-task settings.
    """
    base = default_config(algo)
    key = resolve_task(task)
    if key is None or algo == "bc":
        return base
    p = TASK_PRESETS[key]
    if algo == "fql":
        return dataclasses.replace(
            base,
            critic=dataclasses.replace(base.critic, discount=p.fql_discount, q_agg=p.fql_q_agg),
            actor=dataclasses.replace(base.actor, alpha=p.fql_alpha),
        )
    return dataclasses.replace(
        base,
        critic=dataclasses.replace(base.critic, discount=p.driftql_discount, q_agg=p.driftql_q_agg),
        actor=dataclasses.replace(base.actor, alpha=p.driftql_alpha, noise_dim=p.driftql_noise_dim),
        drift=dataclasses.replace(
            base.drift,
            kernel=p.driftql_kernel,
            temperature=p.driftql_temperature,
            num_samples=p.driftql_num_samples,
        ),
    )
