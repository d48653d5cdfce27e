"""Replay storage and samplers for RL.

Core (this package's ``ReplayBuffer`` and friends):

* :class:`TransitionSpec`: shapes/dtypes of a transition, validating every ``add``.
* :class:`ReplayBuffer`: ring storage of one env's stream on a chosen device, frames stored once,
  sampled as transitions, n-step windows or sub-trajectories that respect episode boundaries.
* Samplers, separate from storage: :class:`UniformSampler`, :class:`LAPSampler` (MR.Q) and
  :class:`FadedLAPSampler` (DR.Q), on a CPU sum tree or a device cumsum/searchsorted backend.
* :func:`n_step_returns`, :func:`one_hot` and the typed batches.

On-policy rollouts (:mod:`rl_buffers.rollout`): :func:`gae`, :func:`lambda_returns` (PQN's
Q(lambda) and TD(lambda) targets) and :class:`RolloutStorage`, a preallocated time-major
``(T, N)`` rollout that yields shuffled :class:`RolloutBatch` minibatches.

Beyond the core:

* :mod:`rl_buffers.goals`: HER relabelling (final, future, episode) and all-goals targets (LEO).
* :mod:`rl_buffers.offline`: Minari datasets in and out (extra ``rl-buffers[minari]``; Minari and
  h5py are imported only when a function needs them).
* :mod:`rl_buffers.multiagent`: PettingZoo parallel-API batches and a multi-agent replay buffer.

Files: :mod:`rl_buffers.io` (``save``, ``load``, ``CorruptFileError``, ``atomic_write``).
"""

from rl_buffers import io
from rl_buffers.batches import NStepBatch, SubTrajectoryBatch, TransitionBatch
from rl_buffers.goals import (
    AllGoalsTargets,
    GoalBatch,
    GoalEpisode,
    GoalEpisodeStorage,
    GoalRewardFn,
    HerSampler,
    HerStrategy,
    all_goals_from_achievements,
    all_goals_from_reward_fn,
    her_goal_steps,
    mask_achievements,
    relabel_prob_from_k,
)
from rl_buffers.multiagent import (
    MultiAgentBatch,
    MultiAgentReplayBuffer,
    stack_agents,
    unstack_agents,
)
from rl_buffers.offline import (
    DatasetError,
    DatasetNotFoundError,
    Episode,
    check_episode_against_spec,
    fill_buffer,
    load_minari,
    load_minari_goal_episodes,
    minari_dataset_dir,
    save_minari,
    validate_episode,
)
from rl_buffers.replay import ReplayBuffer
from rl_buffers.returns import n_step_returns, one_hot
from rl_buffers.rollout import RolloutBatch, RolloutStorage, gae, lambda_returns
from rl_buffers.samplers import (
    Backend,
    FadedLAPSampler,
    LAPSampler,
    Sampler,
    UniformSampler,
    sampler_from_config,
    young_max_age,
)
from rl_buffers.spec import ActionKind, ArrayLike, TransitionSpec
from rl_buffers.storage import TransitionStorage, Window
from rl_buffers.sumtree import SumTree

__version__ = "0.1.0"

__all__ = [
    "ActionKind",
    "AllGoalsTargets",
    "ArrayLike",
    "Backend",
    "DatasetError",
    "DatasetNotFoundError",
    "Episode",
    "FadedLAPSampler",
    "GoalBatch",
    "GoalEpisode",
    "GoalEpisodeStorage",
    "GoalRewardFn",
    "HerSampler",
    "HerStrategy",
    "LAPSampler",
    "MultiAgentBatch",
    "MultiAgentReplayBuffer",
    "NStepBatch",
    "ReplayBuffer",
    "RolloutBatch",
    "RolloutStorage",
    "Sampler",
    "SubTrajectoryBatch",
    "SumTree",
    "TransitionBatch",
    "TransitionSpec",
    "TransitionStorage",
    "UniformSampler",
    "Window",
    "all_goals_from_achievements",
    "all_goals_from_reward_fn",
    "check_episode_against_spec",
    "fill_buffer",
    "gae",
    "her_goal_steps",
    "io",
    "lambda_returns",
    "load_minari",
    "load_minari_goal_episodes",
    "mask_achievements",
    "minari_dataset_dir",
    "n_step_returns",
    "one_hot",
    "relabel_prob_from_k",
    "sampler_from_config",
    "save_minari",
    "stack_agents",
    "unstack_agents",
    "validate_episode",
    "young_max_age",
]
