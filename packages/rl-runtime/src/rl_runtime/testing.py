"""A tiny but real learner that drives the runtime's tests: ``rl-train tiny-q`` (hidden).

Linear Q-learning (a linear layer over the observation, which on the one-hot chain below is
tabular Q-learning) with epsilon-greedy exploration, a target network and Adam, trained from a
small replay buffer by :func:`rl_runtime.offpolicy.train_off_policy`. It follows the agent contract of
the house style (``act``, ``update -> detached metrics``, ``state_dict``), owns a
``torch.Generator`` for exploration, and its buffer owns one for sampling, so it exercises every
piece of state a real method checkpoints. It lives in the package (not in the tests) because the
kill-and-resume and sweep tests run it in subprocesses through the command line. Its configs
and presets live in :mod:`rl_runtime.testing_config` (without torch, for the command line's
``--help``) and are re-exported here.

The environment ``rltrain/Chain-v0``: states 0..n-1 (n = 6) seen as one-hot vectors, start in
state 0; action 1 moves right and 0 left, and each move slips the other way with probability
``slip`` = 0.1 (drawn from the environment's seeded RNG); reaching state n-1 gives reward 1 and
terminates; episodes are truncated after 20 steps. A uniformly random policy reaches the end in
45% of the episodes, a learned one in nearly all. ``rltrain/LongChain-v0`` is the same with
n = 12 and 40 steps, where a random policy reaches the end in 14% of the episodes.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from rl_buffers import ReplayBuffer, TransitionBatch, TransitionSpec
from torch import nn

from rl_runtime.offpolicy import SeededReplay, train_off_policy
from rl_runtime.run import open_run
from rl_runtime.seeding import derive_seed
from rl_runtime.testing_config import (
    CHAIN_ID,
    LONG_CHAIN_ID,
    TINY_Q_PRESETS,
    TinyQAgentConfig,
    TinyQConfig,
)

__all__ = [
    "CHAIN_ID",
    "LONG_CHAIN_ID",
    "TINY_Q_PRESETS",
    "ChainEnv",
    "FixedLengthEnv",
    "TinyPPOAgent",
    "TinyPPOAgentConfig",
    "TinyQAgent",
    "TinyQAgentConfig",
    "TinyQConfig",
    "TorchChainEnv",
    "kill_at_first_checkpoint",
    "train",
]


class ChainEnv(gym.Env[np.ndarray, int]):
    """A slippery chain of ``length`` states (see the module doc).

    Args:
        length: Number of states (>= 2).
        slip: Probability that a move goes the other way.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention

    def __init__(self, length: int = 6, slip: float = 0.1) -> None:
        if length < 2:
            raise ValueError(f"length must be >= 2, got {length}")
        if not 0.0 <= slip <= 1.0:
            raise ValueError(f"slip must be in [0, 1], got {slip}")
        self.length = length
        self.slip = slip
        self.observation_space = gym.spaces.Box(0.0, 1.0, (length,), np.float32)
        # gymnasium 1.2.0 types Discrete as Space[np.int64]; the env takes any int-like action.
        self.action_space = gym.spaces.Discrete(2)  # pyright: ignore[reportAttributeAccessIssue]
        self._pos = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.length, np.float32)
        obs[self._pos] = 1.0
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._pos = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"ChainEnv: action must be 0 or 1, got {action!r}")
        move = 1 if action == 1 else -1
        if self.np_random.random() < self.slip:
            move = -move
        self._pos = min(max(self._pos + move, 0), self.length - 1)
        terminated = self._pos == self.length - 1
        return self._obs(), float(terminated), terminated, False, {}


if CHAIN_ID not in gym.registry:
    gym.register(CHAIN_ID, entry_point=lambda **kwargs: ChainEnv(**kwargs), max_episode_steps=20)
if LONG_CHAIN_ID not in gym.registry:
    gym.register(
        LONG_CHAIN_ID,
        entry_point=lambda **kwargs: ChainEnv(**{"length": 12, **kwargs}),
        max_episode_steps=40,
    )


class TinyQAgent:
    """Q(s, .) = W s + b; epsilon-greedy; Huber TD loss against a periodically copied target.

    Args:
        cfg: Hyperparameters.
        obs_dim: Observation size D.
        num_actions: Number of discrete actions A.
        device: Where the parameters live.
        seed: Seed of the exploration generator.
    """

    def __init__(
        self,
        cfg: TinyQAgentConfig,
        obs_dim: int,
        num_actions: int,
        *,
        device: torch.device,
        seed: int,
    ) -> None:
        self.cfg = cfg
        self.num_actions = num_actions
        self.q = nn.Linear(obs_dim, num_actions).to(device)
        # Q = 0 to start, as tabular Q-learning does: the initial greedy policy (ties -> action 0,
        # "left" on the chain) never reaches the goal, so learning is visible in eval/return.
        nn.init.zeros_(self.q.weight)
        nn.init.zeros_(self.q.bias)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=cfg.lr)
        self.generator = torch.Generator(device).manual_seed(seed)
        self.updates = 0

    def act(self, obs: torch.Tensor, *, explore: bool) -> torch.Tensor:
        """Greedy action for ``obs`` (D,) or (B, D); with ``explore``, epsilon-greedy.

        Returns:
            int64 action(s), shape () or (B,).
        """
        with torch.no_grad():
            greedy = self.q(obs).argmax(-1)
        if not explore:
            return greedy
        device = greedy.device
        random_action = torch.randint(
            self.num_actions, greedy.shape, generator=self.generator, device=device
        )
        coin = torch.rand(greedy.shape, generator=self.generator, device=device)
        return torch.where(coin < self.cfg.epsilon, random_action, greedy)

    def update(self, batch: TransitionBatch) -> dict[str, torch.Tensor]:
        """One TD step on ``batch``; returns detached 0-dim ``critic_loss`` and ``q_mean``."""
        with torch.no_grad():
            next_q = self.q_target(batch.next_obs).max(-1).values  # (B,)
            target = batch.reward + self.cfg.discount * batch.not_done * next_q
        q = self.q(batch.obs).gather(1, batch.action[:, None]).squeeze(1)  # (B, A) -> (B,)
        loss = F.smooth_l1_loss(q, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        if self.updates % self.cfg.target_every == 0:
            self.q_target.load_state_dict(self.q.state_dict())
        return {"critic_loss": loss.detach(), "q_mean": q.detach().mean()}

    def state_dict(self) -> dict[str, Any]:
        """Weights, target weights, optimiser, exploration generator, update counter."""
        return {
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])


def train(cfg: TinyQConfig) -> Path:
    """Train linear Q-learning as ``cfg`` says; returns the run directory."""
    with (
        open_run("tiny-q", cfg) as run,
        gym.make(cfg.env) as env,
        gym.make(cfg.env) as eval_env,
    ):
        obs_space, action_space = env.observation_space, env.action_space
        if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
            raise ValueError(
                f"tiny-q needs a flat Box observation space, {cfg.env} has {obs_space}"
            )
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(f"tiny-q needs a Discrete action space, {cfg.env} has {action_space}")
        obs_dim, num_actions = obs_space.shape[0], int(action_space.n)

        seed = cfg.run.seed
        agent = TinyQAgent(
            cfg.agent, obs_dim, num_actions, device=run.device, seed=derive_seed(seed, "agent")
        )
        replay = SeededReplay(
            ReplayBuffer(
                spec=TransitionSpec.discrete((obs_dim,), num_actions),
                capacity=cfg.loop.buffer_capacity,
                device=run.device,
            ),
            seed=derive_seed(seed, "buffer"),
        )
        train_off_policy(
            run,
            env=env,
            eval_env=eval_env,
            agent=agent,
            buffer=replay,
            sample=lambda: replay.buffer.sample(cfg.loop.batch_size, replay.generator),
            cfg=cfg.loop,
        )
        return run.dir


def kill_at_first_checkpoint(argv: list[str], latest: Path, log: Path) -> None:
    """Start ``argv`` (output to ``log``, so a full pipe never blocks it), SIGKILL it as soon as
    ``latest`` (its checkpoint pointer) exists, and check that it died of the signal.

    The kill-and-resume tests of every package use this one helper.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            while not latest.exists():  # poll for the first checkpoint; never a fixed sleep
                if proc.poll() is not None:
                    raise AssertionError(
                        f"{argv[0]} ended before its first checkpoint:\n" + log.read_text()
                    )
                time.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
            if proc.wait() != -signal.SIGKILL:
                raise AssertionError(f"expected death by SIGKILL, got {proc.returncode}")
        finally:
            if proc.poll() is None:
                proc.kill()


# ------------------------------------------------------------------------------------------
# On-policy: a tiny PPO agent, a batched torch chain (array-native env) and a fixed-length env.


@dataclasses.dataclass(frozen=True)
class TinyPPOAgentConfig:
    """PPO with a small MLP actor-critic over a discrete action space."""

    hidden: int = 32
    """Width of the one hidden layer of the actor and of the critic."""
    lr: float = 3e-3
    """Adam learning rate."""
    clip_coef: float = 0.2
    """PPO ratio clip (and value clip)."""
    vf_coef: float = 0.5
    """Value-loss coefficient."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""


class TinyPPOAgent:
    """PPO (clipped objective from :func:`rl_runtime.losses.ppo_loss`) on discrete actions.

    Follows :class:`rl_runtime.onpolicy.OnPolicyAgent`; samples actions from its own
    ``torch.Generator`` (part of its state), so runs are reproducible and resumable.

    Args:
        cfg: Hyperparameters.
        obs_dim: Observation size D.
        num_actions: Number of discrete actions A.
        device: Where the parameters live.
        seed: Seed of the initialisation and the action-sampling generator.
    """

    def __init__(
        self,
        cfg: TinyPPOAgentConfig,
        obs_dim: int,
        num_actions: int,
        *,
        device: torch.device,
        seed: int,
    ) -> None:
        self.cfg = cfg
        init = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (), generator=init)))
            self.actor = nn.Sequential(
                nn.Linear(obs_dim, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, num_actions)
            ).to(device)
            self.critic = nn.Sequential(
                nn.Linear(obs_dim, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, 1)
            ).to(device)
        params = [*self.actor.parameters(), *self.critic.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)
        self.generator = torch.Generator(device).manual_seed(seed + 1)
        self.updates = 0

    def _dist(self, obs: torch.Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.actor(obs))

    def act(self, obs: torch.Tensor, *, explore: bool) -> torch.Tensor:
        """Greedy action(s) for ``obs`` (D,) or (B, D); sampled ones with ``explore``."""
        with torch.no_grad():
            logits = self.actor(obs)
            if not explore:
                return logits.argmax(-1)
            probs = torch.softmax(logits, -1).reshape(-1, logits.shape[-1])  # (B, A)
            return torch.multinomial(probs, 1, generator=self.generator).reshape(logits.shape[:-1])

    def policy_step(self, obs: torch.Tensor) -> Any:
        """Sampled actions, their log-probabilities and V(obs) for ``(N, D)``."""
        from rl_runtime.onpolicy import PolicyStep

        actions = self.act(obs, explore=True)  # (N,)
        log_probs = self._dist(obs).log_prob(actions)
        return PolicyStep(actions, log_probs, self.value(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B,)`` state values."""
        return self.critic(obs).squeeze(-1)

    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        """One PPO step on a :class:`rl_buffers.RolloutBatch` minibatch."""
        from rl_runtime.losses import ppo_loss

        dist = self._dist(batch.obs)
        loss, metrics = ppo_loss(
            dist.log_prob(batch.actions),
            batch.log_probs,
            batch.advantages,
            self.value(batch.obs),
            batch.values,
            batch.returns,
            dist.entropy(),
            clip_coef=self.cfg.clip_coef,
            vf_coef=self.cfg.vf_coef,
            ent_coef=self.cfg.ent_coef,
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimiser, sampling generator, update counter."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])


class TorchChainEnv:
    """The slippery chain of :class:`ChainEnv`, N copies as one array-native env on a device.

    Implements :class:`rl_runtime.vecenv.ArrayEnv`: the state (positions, step counters, and one
    random generator per env seeded at each reset) is a pytree of tensors. Episode rules as
    :class:`ChainEnv` (reward 1 and termination at the right end, truncation after
    ``max_steps``).

    Args:
        num_envs: N.
        length: States per chain.
        slip: Probability that a move goes the other way.
        max_steps: Time limit.
        device: Where the state lives.
    """

    def __init__(
        self,
        num_envs: int,
        *,
        length: int = 6,
        slip: float = 0.1,
        max_steps: int = 20,
        device: torch.device | str = "cpu",
    ) -> None:
        self.num_envs = num_envs
        self.length = length
        self.slip = slip
        self.max_steps = max_steps
        self.device = torch.device(device)
        self.single_observation_space = gym.spaces.Box(0.0, 1.0, (length,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self._pos = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._t = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        # One uniform stream per env: a 63-bit LCG state per env, exact and cheap on any device.
        self._rng = torch.zeros(num_envs, dtype=torch.int64, device=self.device)

    def _obs(self) -> torch.Tensor:
        return F.one_hot(self._pos, self.length).float()  # (N, length)

    def _uniform(self) -> torch.Tensor:
        # 63-bit LCG per env (Knuth's MMIX constants, masked to stay non-negative).
        self._rng = (self._rng * 6364136223846793005 + 1442695040888963407) & (2**63 - 1)
        return (self._rng >> 11).double() / float(2**52)  # (N,) in [0, 1)

    def reset(self, seeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self._pos = torch.where(mask, 0, self._pos)
        self._t = torch.where(mask, 0, self._t)
        self._rng = torch.where(mask, seeds.to(self.device) & (2**63 - 1), self._rng)
        return self._obs()

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        move = torch.where(actions == 1, 1, -1)
        move = torch.where(self._uniform() < self.slip, -move, move)
        self._pos = (self._pos + move).clamp(0, self.length - 1)
        self._t += 1
        terminated = self._pos == self.length - 1
        truncated = (self._t >= self.max_steps) & ~terminated
        return self._obs(), terminated.float(), terminated, truncated

    def state(self) -> dict[str, torch.Tensor]:
        return {"pos": self._pos, "t": self._t, "rng": self._rng}

    def load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self._pos = state["pos"].clone()
        self._t = state["t"].clone()
        self._rng = state["rng"].clone()


class FixedLengthEnv(gym.Env[np.ndarray, int]):
    """Episodes of exactly ``length`` steps with reward ``reward`` per step, ending in a
    termination (``truncate=False``) or a truncation; the observation counts the steps left.

    Its returns and lengths are known in closed form, which the loop tests check.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention

    def __init__(self, length: int = 3, reward: float = 1.0, truncate: bool = False) -> None:
        self.length = length
        self.reward = reward
        self.truncate = truncate
        self.observation_space = gym.spaces.Box(0.0, float(length), (1,), np.float32)
        # gymnasium 1.2.0 types Discrete as Space[np.int64]; the env takes any int-like action.
        self.action_space = gym.spaces.Discrete(2)  # pyright: ignore[reportAttributeAccessIssue]
        self._left = length

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._left = self.length
        return np.array([self._left], np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._left -= 1
        end = self._left == 0
        obs = np.array([self._left], np.float32)
        return obs, self.reward, end and not self.truncate, end and self.truncate, {}
