"""The off-policy training loop shared by trainers: act, store, update, log, evaluate, checkpoint.

A trainer builds its environments, agent and buffer, then hands them to
:func:`train_off_policy`, which runs one environment step per iteration::

    act      uniform random actions (seeded action space) for the first `random_steps`,
             then agent.act(obs, explore=True)
    store    buffer.add(obs, action, reward, next_obs, terminated, truncated)
    update   from `learning_starts` on, every `update_every` steps: `updates_per_round` times
             agent.update(sample()); the metrics are averaged until the next log entry
    log      every `log_every` steps: train/ means, buffer/size, time/sps, time/elapsed
    eta      once the speed is known (10 s in), the time left; again if it changes by half
    eval     at step 0, every `eval_every` steps and at the end: eval/return, eval/length, ...
    save     every `checkpoint_every` steps, every `checkpoint_minutes`, and at the end
    stop     on SIGTERM or Ctrl-C (``run.stop_requested``): save, raise ``RunInterrupted``

Exact resume without pickling the environment: training episode k starts from
``env.reset(seed=episode_seed(seed, "train", k))`` and the checkpoint stores the actions taken so
far in the current episode. Resuming resets to episode k's seed and replays those actions (not
storing them again: their transitions are in the restored buffer), which rebuilds the
environment's state exactly for any environment that is deterministic given its reset seed and
the actions (MuJoCo, classic control, most simulators). If the replay does not reach the
checkpointed observation, a warning says so and the interrupted episode restarts from its reset
instead; the step counter is not rewound. Environment wrappers that carry state from one
episode to the next (running observation normalisation) are not supported by this scheme.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from rl_buffers import ReplayBuffer

from rl_runtime.evaluation import EvalResult, agent_policy, evaluate, obs_to_tensor, to_env_action
from rl_runtime.logger import MetricMeans, namespaced
from rl_runtime.run import Run
from rl_runtime.schedules import OffPolicyConfig
from rl_runtime.seeding import episode_seed, seed_spaces, set_space_rng_state, space_rng_state

__all__ = ["Agent", "OffPolicyConfig", "SeededReplay", "TransitionStore", "train_off_policy"]

_CPU = torch.device("cpu")


class Agent(Protocol):
    """The agent contract (see the house style): no sampling, logging or ``.item()`` in update."""

    def act(self, obs: torch.Tensor, *, explore: bool) -> torch.Tensor:
        """Action for one observation (shape of the observation space) on the agent's device."""
        ...

    def update(self, batch: Any, /) -> Mapping[str, torch.Tensor]:
        """One gradient step; returns detached 0-dim tensors (keys get ``train/`` if bare)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: networks, targets, optimisers, generators, counters."""
        ...

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output."""
        ...


class TransitionStore(Protocol):
    """What the loop needs from a replay buffer (sampling is the trainer's ``sample`` callable).

    ``add`` receives one transition as CPU tensors: ``obs``/``next_obs`` shaped like the
    observation space (float64 turned float32), ``action`` shaped like the action space,
    ``reward`` float32 ``()``, ``terminated``/``truncated`` bool ``()``.
    """

    def add(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        /,
    ) -> None:
        """Store one transition."""
        ...

    def __len__(self) -> int:
        """Transitions stored."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Contents, write position and sampler generator state."""
        ...

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output."""
        ...


class SeededReplay:
    """An ``rl_buffers.ReplayBuffer`` and the generator its batches are drawn with.

    The loop checkpoints both together, so sampling resumes exactly: the trainer's ``sample``
    callable draws with ``replay.buffer.sample*(..., replay.generator)``.

    Args:
        buffer: The replay buffer.
        seed: Seed of the sampling generator, which lives on ``buffer.sampler.device``.
    """

    def __init__(self, buffer: ReplayBuffer, *, seed: int) -> None:
        self.buffer = buffer
        self.generator = torch.Generator(buffer.sampler.device).manual_seed(seed)

    def add(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        /,
    ) -> None:
        """Store one transition (see :meth:`rl_buffers.ReplayBuffer.add`)."""
        self.buffer.add(obs, action, reward, next_obs, terminated, truncated)

    def __len__(self) -> int:
        return len(self.buffer)

    def state_dict(self) -> dict[str, Any]:
        """The buffer's state and the generator's."""
        return {"buffer": self.buffer.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output."""
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])


@dataclasses.dataclass
class _Counters:
    step: int = 0
    """Environment steps taken."""
    updates: int = 0
    """agent.update calls."""
    episode: int = 0
    """Index of the current training episode (= episodes completed)."""
    episode_actions: list[Any] = dataclasses.field(default_factory=list[Any])
    """Actions taken so far in the current episode (replayed on resume)."""
    episode_return: float = 0.0
    episode_length: int = 0

    def next_episode(self) -> None:
        self.episode += 1
        self.episode_actions = []
        self.episode_return = 0.0
        self.episode_length = 0


def train_off_policy(
    run: Run,
    *,
    env: gym.Env[Any, Any],
    eval_env: gym.Env[Any, Any],
    agent: Agent,
    buffer: TransitionStore,
    sample: Callable[[], Any],
    cfg: OffPolicyConfig,
) -> EvalResult | None:
    """Train ``agent`` in ``env`` until ``run.run_cfg.total_steps``, resuming if ``run`` was.

    Args:
        run: The open run (directory, logger, checkpoints, restored state).
        env: Training environment (never pickled; see the module doc for resume).
        eval_env: A separate environment for evaluation.
        agent: The learner.
        buffer: Replay storage.
        sample: Draws one batch from ``buffer`` for ``agent.update`` (the buffer's generator is
            part of its state_dict, so sampling resumes exactly).
        cfg: The loop's schedule.

    Returns:
        The last evaluation, or None if there was none (``eval_episodes`` 0, or the run was
        already complete).
    """
    rc = run.run_cfg
    means = MetricMeans()
    policy = agent_policy(agent, eval_env.action_space, run.device)
    saved_obs = None
    if run.restored is None:
        c = _Counters()
        seed_spaces(rc.seed, env, eval_env)
    else:
        r = run.restored
        agent.load_state_dict(r["agent"])
        buffer.load_state_dict(r["buffer"])
        means.load_state_dict(r["pending_metrics"])
        set_space_rng_state(env.action_space, r["action_space_rng"][0])
        set_space_rng_state(eval_env.action_space, r["action_space_rng"][1])
        c = _Counters(**r["counters"])
        saved_obs = r["obs"]
    if c.step >= rc.total_steps:
        run.log.info("run already complete (%d steps)", c.step)
        return None
    obs = _start_episode(run, env, c, saved_obs)
    run.restore_rng()  # last: building the agent and replaying drew random numbers

    last_eval = None
    t_log, step_log = time.perf_counter(), c.step
    with run.progress() as bar:
        if c.step == 0 and rc.eval_episodes:
            last_eval = _evaluate(run, policy, eval_env, 0, bar)
        run.start_progress(c.step)  # the speed of training, without the step-0 evaluation
        while c.step < rc.total_steps:
            # Act: seeded uniform actions first, so early data does not depend on the init.
            if c.step < cfg.random_steps:
                action = env.action_space.sample()
            else:
                with torch.no_grad():
                    out = agent.act(obs_to_tensor(obs, run.device), explore=True)
                action = to_env_action(out, env.action_space)
            next_obs, reward, terminated, truncated, _ = env.step(action)

            # Store. A single env does not autoreset, so next_obs is the true next observation
            # even on the last step; `terminated` stops bootstrapping, `truncated` does not.
            buffer.add(
                obs_to_tensor(obs, _CPU),
                torch.as_tensor(np.asarray(action)),
                torch.tensor(float(reward), dtype=torch.float32),
                obs_to_tensor(next_obs, _CPU),
                torch.tensor(bool(terminated)),
                torch.tensor(bool(truncated)),
            )
            c.step += 1
            c.episode_actions.append(np.array(action) if isinstance(action, np.ndarray) else action)
            c.episode_return += float(reward)
            c.episode_length += 1
            if terminated or truncated:
                means.add(
                    {
                        "train/episode_return": c.episode_return,
                        "train/episode_length": c.episode_length,
                    }
                )
                c.next_episode()
                obs, _ = env.reset(seed=episode_seed(rc.seed, "train", c.episode))
            else:
                obs = next_obs

            # Learn.
            if c.step == cfg.learning_starts:
                run.start_progress(c.step)  # the steps before took no update: not the speed
            if c.step >= cfg.learning_starts and c.step % cfg.update_every == 0:
                for _ in range(cfg.updates_per_round):
                    means.add(namespaced("train", agent.update(sample())))
                    c.updates += 1
            bar.update(1)
            run.report_progress(c.step)

            # Log, evaluate, then checkpoint: a checkpoint covers every entry of its step.
            last = c.step == rc.total_steps
            if c.step % rc.log_every == 0 or last:
                now = time.perf_counter()
                metrics = {
                    **means.pop(),
                    "train/updates": c.updates,
                    "train/episodes": c.episode,
                    "buffer/size": len(buffer),
                    "time/sps": (c.step - step_log) / max(now - t_log, 1e-9),
                    "time/elapsed": run.elapsed(),
                }
                run.logger.log(c.step, metrics)
                t_log, step_log = now, c.step
            if rc.eval_episodes and (c.step % rc.eval_every == 0 or last):
                last_eval = _evaluate(run, policy, eval_env, c.step, bar)
            # SIGTERM / Ctrl-C: here, between two steps, is a state a resume continues exactly.
            stop = run.stop_requested and not last
            if stop or run.checkpoint_due(c.step, last=last):
                run.save_checkpoint(
                    c.step,
                    {
                        "agent": agent.state_dict(),
                        "buffer": buffer.state_dict(),
                        "counters": dataclasses.asdict(c),
                        "obs": obs,
                        "action_space_rng": [
                            space_rng_state(env.action_space),
                            space_rng_state(eval_env.action_space),
                        ],
                        "pending_metrics": means.state_dict(),
                    },
                )
            if stop:
                raise run.interrupted(c.step)
    run.log.info("finished %d steps in %s", c.step, run.dir)
    return last_eval


def _evaluate(
    run: Run, policy: Callable[[Any], Any], eval_env: gym.Env[Any, Any], step: int, bar: Any
) -> EvalResult:
    rc = run.run_cfg
    result = evaluate(policy, eval_env, episodes=rc.eval_episodes, seed=rc.seed)
    return run.log_evaluation(step, result, bar)


def _start_episode(run: Run, env: gym.Env[Any, Any], c: _Counters, saved_obs: Any) -> Any:
    """Reset to the current episode's seed and replay its checkpointed actions (see module doc)."""
    seed = episode_seed(run.run_cfg.seed, "train", c.episode)
    obs, _ = env.reset(seed=seed)
    if not c.episode_actions:
        return obs
    ended_early = False
    for action in c.episode_actions:
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            ended_early = True
            break
    if ended_early or not _same_obs(obs, saved_obs):
        run.log.warning(
            "replaying the %d steps of episode %d did not reproduce the checkpointed observation "
            "(the environment is not deterministic given its reset seed and actions): "
            "restarting that episode from its reset",
            len(c.episode_actions),
            c.episode,
        )
        c.episode_actions, c.episode_return, c.episode_length = [], 0.0, 0
        obs, _ = env.reset(seed=seed)
    else:
        run.log.info("replayed %d steps of episode %d", len(c.episode_actions), c.episode)
    return obs


def _same_obs(a: Any, b: Any) -> bool:
    if isinstance(a, Mapping):
        return (
            isinstance(b, Mapping)
            and a.keys() == b.keys()
            and all(_same_obs(a[k], b[k]) for k in a)
        )
    if isinstance(a, tuple):
        return (
            isinstance(b, tuple)
            and len(a) == len(b)
            and all(_same_obs(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))
