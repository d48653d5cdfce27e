"""Learners for OT imitation, set up for an off-policy training loop.

The OT reward does not care which off-policy learner maximises it. A learner here is anything
with the loop's agent contract plus a replay buffer and its sampling generator
(:class:`OffPolicyLearner`): the paper's TD3 (:func:`make_td3_learner`, which also sets its
input normalisation from the expert's states), or another package's learner that has the same
shape (``mrq_drq.learner.MRQLearner``), passed in by the trainer. :class:`RelabelledReplay` is
the loop's transition store in front of the learner's buffer: finished episodes enter it with
optimal-transport rewards (:class:`ot_ilfo.relabel.OTRelabelStore`).

A trainer reads::

    learner = make_td3_learner(td3_cfg, obs_dim, action_dim, normalizer=rewarder.state_normalizer,
                               batch_size=100, capacity=1_000_000, device=device,
                               seed=agent_seed, replay_seed=replay_seed)
    replay = RelabelledReplay(learner, rewarder, seed=draw_seed, state_dims=state_dim)
    train_off_policy(run, env=env, eval_env=eval_env, agent=learner, buffer=replay,
                     sample=learner.sample, cfg=...)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import torch
from rl_buffers import ReplayBuffer, TransitionBatch, TransitionSpec
from torch import Tensor

from ot_ilfo.agent import TD3Agent
from ot_ilfo.config import TD3Config
from ot_ilfo.relabel import EpisodeStats, OTRelabelStore
from ot_ilfo.rewards import OTRewarder, StateNormalizer

__all__ = ["OffPolicyLearner", "RelabelledReplay", "TD3Learner", "make_td3_learner"]

B = TypeVar("B")


class OffPolicyLearner(Protocol[B]):
    """What OT imitation needs from a learner: the off-policy loop's agent contract
    (``rl_runtime.offpolicy.Agent``), its batches of type ``B`` drawn by :meth:`sample`, and
    the buffer the relabelled episodes go to with the generator that samples it."""

    @property
    def buffer(self) -> ReplayBuffer:
        """Replay storage (1-D float observations) that :meth:`sample` draws from."""
        ...

    @property
    def generator(self) -> torch.Generator:
        """The sampling generator, on ``buffer.sampler.device``; checkpointed by
        :class:`RelabelledReplay`."""
        ...

    def act(self, obs: Tensor, *, explore: bool) -> Tensor:
        """Action for one observation."""
        ...

    def sample(self) -> B:
        """The next update's batch (or batches), drawn with :attr:`generator`."""
        ...

    def update(self, batch: B, /) -> Mapping[str, Tensor]:
        """One update from :meth:`sample`'s output; detached 0-dim metrics."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The learner's state (not the buffer's: that is :class:`RelabelledReplay`'s)."""
        ...

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output."""
        ...


class TD3Learner:
    """The paper's TD3 with uniform batches of ``batch_size`` from its replay buffer.

    Args:
        agent: The TD3 agent.
        buffer: Its replay buffer.
        generator: The sampling generator, on ``buffer.sampler.device``.
        batch_size: Transitions per update.
    """

    def __init__(
        self, agent: TD3Agent, buffer: ReplayBuffer, generator: torch.Generator, batch_size: int
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.agent = agent
        self.buffer = buffer
        self.generator = generator
        self.batch_size = batch_size

    def act(self, obs: Tensor, *, explore: bool) -> Tensor:
        """The agent's action in ``[-1, 1]^A``."""
        return self.agent.act(obs, explore=explore)

    def sample(self) -> TransitionBatch:
        """``batch_size`` transitions drawn uniformly."""
        return self.buffer.sample(self.batch_size, self.generator)

    def update(self, batch: TransitionBatch, /) -> Mapping[str, Tensor]:
        """One TD3 update (critic; actor and targets every ``policy_freq``)."""
        return self.agent.update(batch)

    def state_dict(self) -> dict[str, Any]:
        """The agent's state."""
        return self.agent.state_dict()

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output."""
        self.agent.load_state_dict(state)


def make_td3_learner(
    cfg: TD3Config,
    obs_dim: int,
    action_dim: int,
    *,
    normalizer: StateNormalizer,
    batch_size: int,
    capacity: int,
    device: torch.device | str = "cpu",
    seed: int = 0,
    replay_seed: int = 1,
) -> TD3Learner:
    """The paper's TD3 set up for OT imitation.

    Its networks see the state entries normalised with the expert's state statistics (the
    rewarder's normaliser, floored std), as the paper's code; its replay buffer holds
    ``capacity`` continuous transitions on ``device``, sampled uniformly.

    Args:
        cfg: TD3 settings; ``cfg.horizon`` must be the environment's episode length when
            ``cfg.time_input``.
        obs_dim: Observation entries, the time-to-horizon entry included if ``cfg.time_input``.
        action_dim: ``A``.
        normalizer: ``OTRewarder.state_normalizer`` (mean and std of ``obs_dim - time_input``
            entries).
        batch_size: Transitions per update.
        capacity: Replay capacity in transitions.
        device: Where networks and buffer live.
        seed: The agent's seed (initialisation, exploration and target noise).
        replay_seed: The sampling generator's seed.

    Raises:
        ValueError: the normaliser's dimension is not the agent's state dimension.
    """
    agent = TD3Agent(cfg, obs_dim, action_dim, device=device, seed=seed)
    agent.set_obs_normalizer(
        torch.as_tensor(normalizer.mean, dtype=torch.float32),
        torch.as_tensor(normalizer.std, dtype=torch.float32),
    )
    buffer = ReplayBuffer(
        spec=TransitionSpec.continuous((obs_dim,), action_dim),
        capacity=capacity,
        device=device,
    )
    generator = torch.Generator(buffer.sampler.device).manual_seed(replay_seed)
    return TD3Learner(agent, buffer, generator, batch_size)


class RelabelledReplay:
    """The loop's transition store for OT imitation, in front of a learner's buffer.

    An :class:`~ot_ilfo.relabel.OTRelabelStore` stages each episode and stores it with OT
    rewards when it ends; the learner's sampling generator is checkpointed with it (so sampling
    resumes exactly), and :attr:`steps` counts the transitions added, so that each episode's
    statistics are reported at the environment step where it ended.

    Args:
        learner: The learner whose buffer receives the relabelled episodes.
        rewarder: Computes the OT rewards against the expert trajectories.
        seed: Seed of the per-episode expert draw.
        state_dims: The first ``state_dims`` observation entries are the state the rewards
            compare (leaving out a time-to-horizon entry); None: all of them.
        on_episode: Called with ``(step, stats)`` after each relabelled episode (logging).
    """

    def __init__(
        self,
        learner: OffPolicyLearner[Any],
        rewarder: OTRewarder,
        *,
        seed: int,
        state_dims: int | None = None,
        on_episode: Callable[[int, EpisodeStats], None] | None = None,
    ) -> None:
        self.store = OTRelabelStore(
            learner.buffer, rewarder, seed=seed, state_dims=state_dims, on_episode=self._ended
        )
        self.generator = learner.generator
        self.on_episode = on_episode
        self.steps = 0

    def _ended(self, stats: EpisodeStats) -> None:
        if self.on_episode is not None:
            self.on_episode(self.steps, stats)

    def add(
        self,
        obs: Tensor,
        action: Tensor,
        reward: Tensor,
        next_obs: Tensor,
        terminated: Tensor,
        truncated: Tensor,
        /,
    ) -> None:
        """Stage one transition (see :meth:`OTRelabelStore.add`; ``reward`` is replaced)."""
        self.steps += 1
        self.store.add(obs, action, reward, next_obs, terminated, truncated)

    def __len__(self) -> int:
        """Transitions in the learner's buffer (the running episode's are not counted)."""
        return len(self.store)

    def state_dict(self) -> dict[str, Any]:
        """The store's state (buffer, staged steps, expert draws), the sampling generator's
        state and the step counter."""
        return {
            "store": self.store.state_dict(),
            "generator": self.generator.get_state(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output."""
        self.store.load_state_dict(state["store"])
        self.generator.set_state(state["generator"])
        self.steps = int(state["steps"])
