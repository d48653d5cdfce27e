"""Goal relabelling for goal-conditioned data: hindsight relabelling (HER) and all-goals targets.

Conventions (one episode of ``T`` transitions):

* ``observations[t]`` and ``achieved_goals[t]`` for ``t = 0..T``: the state after ``t`` steps and the
  goal that state achieves.
* Transition ``t`` (``t = 0..T-1``) goes from ``observations[t]`` to ``observations[t + 1]`` with
  ``actions[t]``. Its reward is judged on the goal achieved *after* the step:
  ``compute_reward(achieved_goals[t + 1], goal)``.

Hindsight strategies pick, for transition ``t``, a goal step ``j`` and use ``achieved_goals[j]`` of
the **same** episode as the new goal:

* ``"final"``: ``j = T`` (the goal achieved at the end of the episode).
* ``"future"``: ``j`` uniform in ``{t + 1, ..., T}``, the states reached strictly after ``t``
  (``j = t + 1`` is the state this very transition reaches, so it always yields a success).
* ``"episode"``: ``j`` uniform in ``{1, ..., T}``, every state reached by a transition of the
  episode (the reset state ``j = 0`` is excluded: no transition reaches it).

A transition is relabelled with probability ``relabel_prob``; :func:`relabel_prob_from_k` converts
the HER paper's ratio ``k`` (``k`` relabelled goals per original one) into ``k / (k + 1)``.

The all-goals view (:func:`all_goals_from_achievements`, :func:`all_goals_from_reward_fn`) gives,
for a batch of transitions and a finite goal set of ``K`` goals, the reward and termination for
every goal at once, as LEO's all-goals TD target needs: ``reward[b, k] = achieved[b, k]`` and
``terminated[b, k] = achieved[b, k] or terminated[b]``.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Protocol, cast

import torch
from torch import Tensor

__all__ = [
    "AllGoalsTargets",
    "GoalBatch",
    "GoalEpisode",
    "GoalEpisodeStorage",
    "GoalRewardFn",
    "HerSampler",
    "HerStrategy",
    "all_goals_from_achievements",
    "all_goals_from_reward_fn",
    "her_goal_steps",
    "mask_achievements",
    "relabel_prob_from_k",
]

HerStrategy = Literal["final", "future", "episode"]
"""How a hindsight goal is chosen for transition ``t`` of an episode of ``T`` transitions."""

_STRATEGIES: tuple[HerStrategy, ...] = ("final", "future", "episode")
_EPISODE_FIELDS = (
    "observations",
    "achieved_goals",
    "desired_goals",
    "actions",
    "terminations",
    "lengths",
)


class GoalRewardFn(Protocol):
    """Vectorised goal reward, gymnasium-robotics style.

    Called with ``achieved_goal`` and ``desired_goal`` of shape ``(B, goal_dim)``; returns
    ``(reward, terminated)``, both of shape ``(B,)``: ``reward`` a float tensor and ``terminated``
    a bool tensor saying whether reaching this goal ends the episode (all ``False`` for tasks that
    never stop at the goal, such as the Fetch tasks).
    """

    def __call__(self, achieved_goal: Tensor, desired_goal: Tensor, /) -> tuple[Tensor, Tensor]:
        """Reward and termination of each row; see the class docstring."""
        ...


class GoalEpisode(NamedTuple):
    """One goal-conditioned episode of ``T >= 1`` transitions (tensors on any device).

    Attributes:
        observations: ``(T + 1, *obs_shape)``, any dtype: states ``0..T``.
        achieved_goals: ``(T + 1, goal_dim)`` float: goal achieved in ``observations[t]``.
        desired_goals: ``(T, goal_dim)`` float: the goal the behaviour pursued at step ``t``.
        actions: ``(T, *action_shape)``, any dtype.
        terminations: ``(T,)`` bool: terminations that hold **whatever the goal** (the agent fell,
            died). Terminations caused by reaching the desired goal must not be included: they
            are recomputed by the reward function for whichever goal the transition is paired with.
    """

    observations: Tensor
    achieved_goals: Tensor
    desired_goals: Tensor
    actions: Tensor
    terminations: Tensor


class GoalBatch(NamedTuple):
    """A batch of ``B`` goal-conditioned transitions, after relabelling.

    Attributes:
        obs: ``(B, *obs_shape)``, the storage's obs dtype.
        action: ``(B, *action_shape)``, the storage's action dtype.
        reward: ``(B,)`` float32: ``compute_reward(next_achieved_goal, goal)``.
        next_obs: ``(B, *obs_shape)``.
        not_done: ``(B,)`` float32: 0 where the transition terminates for ``goal`` (goal reached
            and the reward function says so, or a goal-independent termination), else 1.
        goal: ``(B, goal_dim)`` float32: the goal the transition is paired with.
        achieved_goal: ``(B, goal_dim)`` float32: goal achieved in ``obs``.
        next_achieved_goal: ``(B, goal_dim)`` float32: goal achieved in ``next_obs``.
        relabelled: ``(B,)`` bool: whether ``goal`` is a hindsight goal.
        episode: ``(B,)`` int64: storage slot of the episode.
        step: ``(B,)`` int64: transition index ``t`` within the episode.
        goal_step: ``(B,)`` int64: step ``j`` whose achieved goal became ``goal``, ``-1`` where
            the original desired goal was kept.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    not_done: Tensor
    goal: Tensor
    achieved_goal: Tensor
    next_achieved_goal: Tensor
    relabelled: Tensor
    episode: Tensor
    step: Tensor
    goal_step: Tensor


class AllGoalsTargets(NamedTuple):
    """Reward and termination of ``B`` transitions for each of ``K`` goals.

    Attributes:
        reward: ``(B, K)`` float32.
        terminated: ``(B, K)`` bool: goal reached (and terminating) or goal-independent termination.
        not_done: ``(B, K)`` float32: ``1 - terminated``.
    """

    reward: Tensor
    terminated: Tensor
    not_done: Tensor


def relabel_prob_from_k(k: int) -> float:
    """Relabel probability for the HER paper's ratio ``k`` of hindsight to original goals.

    Args:
        k: Number of relabelled goals per original goal (``k >= 0``; the paper uses 4).

    Returns:
        ``k / (k + 1)``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError(f"k must be an int >= 0, got {k!r}")
    return k / (k + 1)


def _check_strategy(strategy: str) -> None:
    if strategy not in _STRATEGIES:
        raise ValueError(f"strategy must be one of {_STRATEGIES}, got {strategy!r}")


def _check_prob(relabel_prob: float) -> None:
    if not 0.0 <= relabel_prob <= 1.0:
        raise ValueError(f"relabel_prob must be in [0, 1], got {relabel_prob!r}")


def her_goal_steps(
    step: Tensor,
    length: Tensor,
    strategy: HerStrategy,
    generator: torch.Generator,
) -> Tensor:
    """Pick the hindsight goal step ``j`` for each transition (see the module docstring).

    Args:
        step: ``(B,)`` int64: transition index ``t``, with ``0 <= t < length``.
        length: ``(B,)`` int64: number of transitions ``T`` of each transition's episode.
        strategy: ``"final"``, ``"future"`` or ``"episode"``.
        generator: Source of randomness; its device is where the random numbers are drawn.

    Returns:
        ``(B,)`` int64 on ``step``'s device: ``j`` in ``{T}``, ``{t+1..T}`` or ``{1..T}``.
    """
    _check_strategy(strategy)
    if step.ndim != 1 or length.shape != step.shape:
        raise ValueError(
            f"step and length must both be (B,), got step {tuple(step.shape)}, "
            f"length {tuple(length.shape)}"
        )
    if step.dtype != torch.int64 or length.dtype != torch.int64:
        raise ValueError(
            f"step and length must be int64, got step {step.dtype}, length {length.dtype}"
        )
    if step.numel() > 0 and bool(((step < 0) | (step >= length)).any()):
        raise ValueError("every step t must satisfy 0 <= t < length")
    if strategy == "final":
        return length.clone()
    # "future": the first state strictly after t; "episode": the first state after the reset.
    low = step + 1 if strategy == "future" else torch.ones_like(step)
    count = length - low + 1  # size of {low..T}, >= 1 because t < T
    u = torch.rand(step.shape, generator=generator, device=generator.device).to(step.device)
    # floor(u * count) is in 0..count-1; the min guards against u * count rounding up to count.
    offset = torch.minimum((u * count).long(), count - 1)
    return low + offset


def mask_achievements(observations: Tensor, goal_masks: Tensor) -> Tensor:
    """Goals achieved by observations, as in LEO's goal-conditioned Craftax.

    Goal ``k`` is achieved when ``sum(observation * goal_masks[k]) > 0`` (for one-hot observation
    features the mask selects a set of slots, and the goal holds when any of them is on).

    Args:
        observations: ``(B, D)`` float: flat observations (usually next observations).
        goal_masks: ``(K, D)`` float: one mask per goal.

    Returns:
        ``(B, K)`` bool.
    """
    if observations.ndim != 2 or goal_masks.ndim != 2:
        raise ValueError(
            f"observations must be (B, D) and goal_masks (K, D), got "
            f"{tuple(observations.shape)} and {tuple(goal_masks.shape)}"
        )
    if observations.shape[1] != goal_masks.shape[1]:
        raise ValueError(
            f"observation width {observations.shape[1]} != goal mask width {goal_masks.shape[1]}"
        )
    dtype = torch.promote_types(observations.dtype, goal_masks.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    # (B, D) @ (D, K) -> (B, K): the per-goal sums of obs * mask.
    return (observations.to(dtype) @ goal_masks.to(dtype).T) > 0


def _goal_independent_terminated(
    terminated: Tensor | None, batch: int, device: torch.device
) -> Tensor:
    if terminated is None:
        return torch.zeros(batch, dtype=torch.bool, device=device)
    if terminated.shape != (batch,):
        raise ValueError(f"terminated must be ({batch},), got {tuple(terminated.shape)}")
    if terminated.dtype != torch.bool:
        raise ValueError(f"terminated must be bool, got {terminated.dtype}")
    return terminated.to(device)


def all_goals_from_achievements(
    achieved: Tensor,
    terminated: Tensor | None = None,
    *,
    goal_ids: Tensor | None = None,
) -> AllGoalsTargets:
    """All-goals targets when goals are discrete achievements (LEO, Craftax).

    Goal ``k`` gives reward 1 and ends (for that goal) on the step where it is achieved:
    ``reward[b, k] = achieved[b, k]``, ``terminated[b, k] = achieved[b, k] or terminated[b]``.

    Args:
        achieved: ``(B, K_all)`` bool: which goals the transition's next state achieves (for
            example from :func:`mask_achievements` or an env's achievement vector).
        terminated: ``(B,)`` bool, optional: goal-independent terminations (the episode ended
            for every goal). Truncations must not be passed here: they do not stop bootstrapping.
        goal_ids: ``(K,)`` int64, optional: the goal subset (columns of ``achieved``), in order.

    Returns:
        :class:`AllGoalsTargets` with ``(B, K)`` tensors (``K = K_all`` without ``goal_ids``).
    """
    if achieved.ndim != 2:
        raise ValueError(f"achieved must be (B, K), got {tuple(achieved.shape)}")
    if achieved.dtype != torch.bool:
        raise ValueError(f"achieved must be bool, got {achieved.dtype}")
    if goal_ids is not None:
        if goal_ids.ndim != 1 or goal_ids.dtype != torch.int64:
            raise ValueError(
                f"goal_ids must be (K,) int64, got {tuple(goal_ids.shape)} {goal_ids.dtype}"
            )
        n_goals = achieved.shape[1]
        if goal_ids.numel() > 0 and bool(((goal_ids < 0) | (goal_ids >= n_goals)).any()):
            raise ValueError(
                f"goal_ids must lie in [0, {n_goals}), got min {int(goal_ids.min())}, max {int(goal_ids.max())}"
            )
        achieved = achieved[:, goal_ids.to(achieved.device)]
    term = _goal_independent_terminated(terminated, achieved.shape[0], achieved.device)
    done = achieved | term[:, None]  # (B, K): the episode end stops every goal
    return AllGoalsTargets(
        reward=achieved.to(torch.float32),
        terminated=done,
        not_done=(~done).to(torch.float32),
    )


def all_goals_from_reward_fn(
    next_achieved_goal: Tensor,
    goals: Tensor,
    compute_reward: GoalRewardFn,
    terminated: Tensor | None = None,
) -> AllGoalsTargets:
    """All-goals targets for goal vectors and a vectorised reward function.

    Evaluates ``compute_reward`` once on all ``B * K`` (achieved, goal) pairs.

    Args:
        next_achieved_goal: ``(B, goal_dim)``: goal achieved by each transition's next state.
        goals: ``(K, goal_dim)``: the finite goal set.
        compute_reward: See :class:`GoalRewardFn`.
        terminated: ``(B,)`` bool, optional: goal-independent terminations.

    Returns:
        :class:`AllGoalsTargets` with ``(B, K)`` tensors;
        ``reward[b, k] = compute_reward(next_achieved_goal[b], goals[k])[0]``.
    """
    if next_achieved_goal.ndim != 2 or goals.ndim != 2:
        raise ValueError(
            f"next_achieved_goal must be (B, goal_dim) and goals (K, goal_dim), got "
            f"{tuple(next_achieved_goal.shape)} and {tuple(goals.shape)}"
        )
    if next_achieved_goal.shape[1] != goals.shape[1]:
        raise ValueError(
            f"goal_dim mismatch: next_achieved_goal has {next_achieved_goal.shape[1]}, "
            f"goals has {goals.shape[1]}"
        )
    batch, goal_dim = next_achieved_goal.shape
    n_goals = goals.shape[0]
    goals = goals.to(next_achieved_goal.device)
    # (B, 1, G) and (1, K, G) -> (B, K, G) -> (B*K, G): row b*K + k pairs transition b with goal k.
    achieved_rows = (
        next_achieved_goal[:, None, :].expand(batch, n_goals, goal_dim).reshape(-1, goal_dim)
    )
    goal_rows = goals[None, :, :].expand(batch, n_goals, goal_dim).reshape(-1, goal_dim)
    reward, goal_term = _call_reward(compute_reward, achieved_rows, goal_rows)
    term = _goal_independent_terminated(terminated, batch, next_achieved_goal.device)
    done = goal_term.view(batch, n_goals) | term[:, None]
    return AllGoalsTargets(
        reward=reward.view(batch, n_goals),
        terminated=done,
        not_done=(~done).to(torch.float32),
    )


def _call_reward(
    compute_reward: GoalRewardFn, achieved: Tensor, desired: Tensor
) -> tuple[Tensor, Tensor]:
    rows = achieved.shape[0]
    out = cast(object, compute_reward(achieved, desired))  # user code: check what it returns
    if not isinstance(out, tuple) or len(cast(tuple[object, ...], out)) != 2:
        raise TypeError("compute_reward must return a (reward, terminated) tuple")
    reward, term = cast(tuple[object, object], out)
    if not isinstance(reward, Tensor) or not isinstance(term, Tensor):
        raise TypeError("compute_reward must return tensors (reward, terminated)")
    if reward.shape != (rows,) or term.shape != (rows,):
        raise ValueError(
            f"compute_reward must return reward and terminated of shape ({rows},), got "
            f"{tuple(reward.shape)} and {tuple(term.shape)}"
        )
    if term.dtype != torch.bool:
        raise ValueError(f"compute_reward's terminated must be bool, got {term.dtype}")
    return reward.to(torch.float32), term


class GoalEpisodeStorage:
    """Ring storage of whole goal-conditioned episodes, padded to ``max_episode_steps``.

    Episodes are kept whole (hindsight goals need the rest of the episode), in ``capacity``
    slots; when full, the oldest episode is overwritten. Tensors live on ``device``.

    Args:
        capacity: Number of episodes kept.
        max_episode_steps: Largest number of transitions ``T`` of an episode.
        obs_shape: Shape of one observation.
        goal_dim: Size of a goal vector.
        action_shape: Shape of one action (``()`` for a discrete action index).
        obs_dtype: Storage dtype of observations.
        action_dtype: Storage dtype of actions.
        device: Where the tensors live; chosen by the caller.
    """

    def __init__(
        self,
        capacity: int,
        max_episode_steps: int,
        obs_shape: tuple[int, ...],
        goal_dim: int,
        action_shape: tuple[int, ...] = (),
        *,
        obs_dtype: torch.dtype = torch.float32,
        action_dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        if capacity < 1 or max_episode_steps < 1 or goal_dim < 1:
            raise ValueError(
                f"capacity, max_episode_steps and goal_dim must be >= 1, got {capacity}, "
                f"{max_episode_steps}, {goal_dim}"
            )
        self.capacity = capacity
        self.max_episode_steps = max_episode_steps
        self.obs_shape = tuple(obs_shape)
        self.goal_dim = goal_dim
        self.action_shape = tuple(action_shape)
        self.device = torch.device(device)
        e, t = capacity, max_episode_steps
        self.observations = torch.zeros(
            (e, t + 1, *self.obs_shape), dtype=obs_dtype, device=self.device
        )
        self.achieved_goals = torch.zeros(
            (e, t + 1, goal_dim), dtype=torch.float32, device=self.device
        )
        self.desired_goals = torch.zeros((e, t, goal_dim), dtype=torch.float32, device=self.device)
        self.actions = torch.zeros(
            (e, t, *self.action_shape), dtype=action_dtype, device=self.device
        )
        self.terminations = torch.zeros((e, t), dtype=torch.bool, device=self.device)
        # lengths[e] = T of the episode in slot e; 0 marks an empty slot (never sampled).
        self.lengths = torch.zeros(e, dtype=torch.int64, device=self.device)
        self._next_slot = 0
        self._episodes_added = 0

    @property
    def num_episodes(self) -> int:
        """Number of episodes stored."""
        return min(self._episodes_added, self.capacity)

    @property
    def num_transitions(self) -> int:
        """Number of transitions stored (over all episodes)."""
        return int(self.lengths.sum())

    def __len__(self) -> int:
        return self.num_transitions

    def add_episode(self, episode: GoalEpisode) -> int:
        """Store one episode (copied to ``device``), overwriting the oldest when full.

        Args:
            episode: A :class:`GoalEpisode` with ``1 <= T <= max_episode_steps``.

        Returns:
            The slot it was written to.
        """
        n = episode.actions.shape[0] if episode.actions.ndim > 0 else 0
        if not 1 <= n <= self.max_episode_steps:
            raise ValueError(
                f"episode has {n} transitions (actions.shape[0]); expected 1..{self.max_episode_steps}"
            )
        expected = {
            "observations": (n + 1, *self.obs_shape),
            "achieved_goals": (n + 1, self.goal_dim),
            "desired_goals": (n, self.goal_dim),
            "actions": (n, *self.action_shape),
            "terminations": (n,),
        }
        for name, shape in expected.items():
            got = tuple(getattr(episode, name).shape)
            if got != shape:
                raise ValueError(f"episode.{name} has shape {got}, expected {shape}")
        if episode.terminations.dtype != torch.bool:
            raise ValueError(f"episode.terminations must be bool, got {episode.terminations.dtype}")
        for name in ("achieved_goals", "desired_goals"):
            value: Tensor = getattr(episode, name)
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ValueError(f"episode.{name} contains NaN or inf")
        if bool(episode.terminations[:-1].any()):
            first = int(episode.terminations.nonzero()[0, 0])
            raise ValueError(
                f"episode.terminations is True at step {first} before the last step {n - 1}: "
                "an episode must end at its first termination"
            )
        slot = self._next_slot
        self.observations[slot, : n + 1] = episode.observations.to(self.device)
        self.achieved_goals[slot, : n + 1] = episode.achieved_goals.to(self.device)
        self.desired_goals[slot, :n] = episode.desired_goals.to(self.device)
        self.actions[slot, :n] = episode.actions.to(self.device)
        self.terminations[slot] = False
        self.terminations[slot, :n] = episode.terminations.to(self.device)
        self.lengths[slot] = n
        self._next_slot = (slot + 1) % self.capacity
        self._episodes_added += 1
        return slot

    def sample_transitions(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Draw transitions uniformly over all stored transitions (not over episodes).

        Args:
            batch_size: ``B``.
            generator: Source of randomness (drawn on its own device).

        Returns:
            ``(episode, step)``, both ``(B,)`` int64 on ``device``.
        """
        total = self.num_transitions
        if total == 0:
            raise ValueError("cannot sample from an empty GoalEpisodeStorage")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        flat = torch.randint(total, (batch_size,), generator=generator, device=generator.device).to(
            self.device
        )
        ends = torch.cumsum(self.lengths, 0)  # (E,): one past the last flat index of each slot
        # right=True: flat index i belongs to the first slot whose end is > i (empty slots skipped).
        episode = torch.searchsorted(ends, flat, right=True)
        step = flat - (ends[episode] - self.lengths[episode])
        return episode, step

    def state_dict(self) -> dict[str, Any]:
        """CPU copies of the tensors plus the ring counters (for ``rl_buffers.io.save``)."""
        state: dict[str, Any] = {
            name: getattr(self, name).cpu().clone() for name in _EPISODE_FIELDS
        }
        state["next_slot"] = self._next_slot
        state["episodes_added"] = self._episodes_added
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; shapes and dtypes must match this storage."""
        for name in _EPISODE_FIELDS:
            if name not in state:
                raise KeyError(f"GoalEpisodeStorage state is missing {name!r}")
            mine: Tensor = getattr(self, name)
            theirs = state[name]
            if (
                not isinstance(theirs, Tensor)
                or theirs.shape != mine.shape
                or theirs.dtype != mine.dtype
            ):
                got = (
                    f"{tuple(theirs.shape)} {theirs.dtype}"
                    if isinstance(theirs, Tensor)
                    else type(theirs).__name__
                )
                raise ValueError(
                    f"GoalEpisodeStorage state {name!r}: expected {tuple(mine.shape)} {mine.dtype}, got {got}"
                )
        for name in _EPISODE_FIELDS:
            getattr(self, name).copy_(state[name])
        self._next_slot = int(state["next_slot"])
        self._episodes_added = int(state["episodes_added"])


class HerSampler:
    """Hindsight experience replay sampling from a :class:`GoalEpisodeStorage`.

    Transitions are drawn uniformly; each is relabelled with probability ``relabel_prob`` to a goal
    achieved later in (or anywhere in, or at the end of) its own episode, then rewarded with
    ``compute_reward``. Stateless apart from its settings: the randomness comes from the
    generator passed to :meth:`sample`.

    Args:
        compute_reward: Vectorised reward, see :class:`GoalRewardFn`.
        strategy: ``"final"``, ``"future"`` (the HER default) or ``"episode"``.
        relabel_prob: Probability that a sampled transition gets a hindsight goal
            (``relabel_prob_from_k(4) = 0.8`` is the HER paper's setting).
    """

    def __init__(
        self,
        compute_reward: GoalRewardFn,
        strategy: HerStrategy = "future",
        relabel_prob: float = 0.8,
    ) -> None:
        _check_strategy(strategy)
        _check_prob(relabel_prob)
        self.compute_reward = compute_reward
        self.strategy: HerStrategy = strategy
        self.relabel_prob = relabel_prob

    def sample(
        self, storage: GoalEpisodeStorage, batch_size: int, generator: torch.Generator
    ) -> GoalBatch:
        """Draw ``batch_size`` relabelled transitions.

        Args:
            storage: Where the episodes are.
            batch_size: ``B``.
            generator: Source of randomness.

        Returns:
            A :class:`GoalBatch` on ``storage.device``.
        """
        episode, step = storage.sample_transitions(batch_size, generator)
        return self.relabel(storage, episode, step, generator)

    def relabel(
        self,
        storage: GoalEpisodeStorage,
        episode: Tensor,
        step: Tensor,
        generator: torch.Generator,
    ) -> GoalBatch:
        """Build a relabelled batch for given transitions (episode slot, step).

        Args:
            storage: Where the episodes are.
            episode: ``(B,)`` int64 slots.
            step: ``(B,)`` int64 transition indices, ``0 <= step < length``.
            generator: Source of randomness.

        Returns:
            A :class:`GoalBatch` on ``storage.device``.
        """
        length = storage.lengths[episode]
        goal_step = her_goal_steps(step, length, self.strategy, generator)
        coin = torch.rand(step.shape, generator=generator, device=generator.device).to(step.device)
        relabelled = coin < self.relabel_prob
        hindsight = storage.achieved_goals[episode, goal_step]  # (B, goal_dim), same episode
        goal = torch.where(relabelled[:, None], hindsight, storage.desired_goals[episode, step])
        next_achieved = storage.achieved_goals[episode, step + 1]
        reward, goal_term = _call_reward(self.compute_reward, next_achieved, goal)
        # Goal-independent terminations (falling, dying) end the episode for every goal.
        done = goal_term | storage.terminations[episode, step]
        return GoalBatch(
            obs=storage.observations[episode, step],
            action=storage.actions[episode, step],
            reward=reward,
            next_obs=storage.observations[episode, step + 1],
            not_done=(~done).to(torch.float32),
            goal=goal,
            achieved_goal=storage.achieved_goals[episode, step],
            next_achieved_goal=next_achieved,
            relabelled=relabelled,
            episode=episode,
            step=step,
            goal_step=torch.where(relabelled, goal_step, torch.full_like(goal_step, -1)),
        )
