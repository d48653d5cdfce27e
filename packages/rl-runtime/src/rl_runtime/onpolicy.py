"""The vectorised on-policy loop: N envs stepped as one batch, rollouts of T steps, then epochs
of minibatch updates (PPO and its relatives; PQN-style Q(lambda) fits the same loop).

One iteration::

    rollout  T times: agent.policy_step(obs) -> actions, log-probs, values for the N envs;
             envs.step(actions): ended envs are reset at once with their next episode's seed
             (same-step autoreset, see rl_runtime.vecenv); the step's true next observation
             (final_obs) gives the bootstrap value of a truncated step
    targets  GAE / lambda-returns (rl_buffers.gae): bootstrap through truncation from
             V(final_obs), never through termination; the rollout's last step bootstraps from
             V(obs after it)
    update   update_epochs x num_minibatches calls of agent.update(batch), minibatches drawn
             from the loop's own generator (checkpointed)
    log      train/ means of the updates, train/episode_return and train/episode_length of the
             episodes that ended, time/sps; eval/ on a separate env; checkpoints
    eta      once the speed is known (10 s in), the time left; again if it changes by half
    stop     on SIGTERM or Ctrl-C (``run.stop_requested``): checkpoint, raise ``RunInterrupted``

Steps are environment steps: a rollout adds ``N * T`` of them, and the run ends with the first
rollout that reaches ``total_steps`` (so the run's length is ``total_steps`` rounded up to a whole
rollout). Logging, evaluation and checkpoints happen at rollout boundaries, when a multiple of
their interval has been passed.

Exact resume. Checkpoints are taken between rollouts (the rollout storage is empty then). Env
``i``'s ``k``-th training episode starts from ``episode_seed(seed, "train/<i>", k)``. An env with a
readable state (array-native envs) is restored from it; a gymnasium vector env is rebuilt by
resetting every sub-env to its current episode's seed and replaying that episode's actions,
which the checkpoint stores. A sub-env whose replay does not reproduce the checkpointed
observation restarts its episode, with a warning. With those, a run killed with SIGKILL and
resumed ends bitwise equal to an uninterrupted one on CPU (the tests check it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

import gymnasium as gym
import numpy as np
import torch
from rl_buffers import RolloutBatch, RolloutStorage
from torch import Tensor

from rl_runtime.evaluation import EvalResult, agent_policy, evaluate
from rl_runtime.logger import MetricMeans, namespaced
from rl_runtime.run import Run
from rl_runtime.schedules import OnPolicyConfig, crossed
from rl_runtime.seeding import derive_seed, episode_seed, seed_spaces
from rl_runtime.vecenv import BatchedEnv

__all__ = [
    "EpisodeTracker",
    "OnPolicyAgent",
    "OnPolicyConfig",
    "PolicyStep",
    "evaluate_batched",
    "restore_envs",
    "train_on_policy",
    "train_stream",
]


class PolicyStep(NamedTuple):
    """What the acting policy gives for N observations.

    Attributes:
        actions: ``(N, *action_shape)`` actions to send to the envs (int64 for discrete).
        log_probs: ``(N,)`` float log-probabilities of ``actions``.
        values: ``(N,)`` float ``V(obs)`` (for Q-learning in this loop, ``max_a Q(obs, a)``).
    """

    actions: Tensor
    log_probs: Tensor
    values: Tensor


class OnPolicyAgent(Protocol):
    """The agent contract of the on-policy loop: no sampling, logging or ``.item()`` in update."""

    def act(self, obs: Tensor, *, explore: bool) -> Tensor:
        """Action(s) for observation(s) (evaluation uses ``explore=False``)."""
        ...

    def policy_step(self, obs: Tensor) -> PolicyStep:
        """Exploring actions with their log-probabilities and values, for ``(N, *obs_shape)``."""
        ...

    def value(self, obs: Tensor) -> Tensor:
        """``(B,)`` bootstrap values of ``(B, *obs_shape)`` observations."""
        ...

    def update(self, batch: RolloutBatch, /) -> Mapping[str, Tensor]:
        """One gradient step on a minibatch; returns detached 0-dim tensors."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers, generators, counters."""
        ...

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output."""
        ...


def train_stream(env_index: int) -> str:
    """The episode-seed stream of training env ``env_index``: ``"train/<i>"``."""
    return f"train/{env_index}"


@dataclasses.dataclass
class _Counters:
    step: int = 0
    """Environment steps taken (N per vector step)."""
    updates: int = 0
    """agent.update calls."""
    rollouts: int = 0
    """Rollouts completed."""
    episodes_done: int = 0
    """Training episodes completed over all envs."""


class EpisodeTracker:
    """Per-env episode bookkeeping: indices (for the reset seeds), running returns and lengths,
    and the actions of each env's current episode (for replay on resume)."""

    def __init__(self, num_envs: int, seed: int, record: bool) -> None:
        self.seed = seed
        self.index = [0] * num_envs
        # On the host, in numpy: a few element-wise ops per step, cheaper than torch's dispatch.
        self.ret = np.zeros(num_envs, dtype=np.float64)
        self.length = np.zeros(num_envs, dtype=np.int64)
        self.record = record
        self.history: list[Tensor] = []  # (N, *action_shape) CPU actions since history_base
        self.history_base = 0  # vector-step index of history[0]
        self.start = [0] * num_envs  # vector-step index where each env's episode started
        self.t = 0  # vector steps taken

    def reset_seed(self, env_index: int) -> int:
        """Seed of the next episode of env ``env_index`` (advances its episode index)."""
        self.index[env_index] += 1
        return episode_seed(self.seed, train_stream(env_index), self.index[env_index])

    def current_seeds(self) -> list[int]:
        return [episode_seed(self.seed, train_stream(i), k) for i, k in enumerate(self.index)]

    def step(self, actions: Tensor, reward: Tensor, ended: Tensor) -> tuple[float, int, int]:
        """Account one vector step; returns the summed return and length of the episodes that
        ended in it, and how many ended."""
        self.ret += reward.cpu().numpy()
        self.length += 1
        self.t += 1
        if self.record:
            self.history.append(actions.detach().to("cpu", copy=True))
        end = ended.cpu().numpy()
        if not end.any():
            return 0.0, 0, 0
        count = int(end.sum())
        done = float(self.ret[end].sum()), int(self.length[end].sum()), count
        self.ret[end] = 0.0
        self.length[end] = 0
        if self.record:  # drop actions older than every current episode
            for i in np.flatnonzero(end).tolist():
                self.start[i] = self.t
            oldest = min(self.start)
            del self.history[: oldest - self.history_base]
            self.history_base = oldest
        return done

    def actions_of(self, env_index: int) -> Tensor:
        """``(L, *action_shape)`` actions of env ``env_index``'s current episode."""
        rows = self.history[self.start[env_index] - self.history_base :]
        if not rows:
            return torch.zeros(0)
        return torch.stack([r[env_index] for r in rows])

    def state_dict(self) -> dict[str, Any]:
        return {
            "index": list(self.index),
            "return": torch.from_numpy(self.ret.copy()),
            "length": torch.from_numpy(self.length.copy()),
            "actions": [self.actions_of(i) for i in range(len(self.index))]
            if self.record
            else None,
        }

    def load_state_dict(self, state: Mapping[str, Any], actions_kept: list[bool]) -> None:
        """Restore; envs whose ``actions_kept`` is False restart their episode (return 0)."""
        self.index = list(state["index"])
        self.ret = state["return"].numpy().copy()
        self.length = state["length"].numpy().copy()
        self.t = 0
        self.history, self.history_base = [], 0
        self.start = [0] * len(self.index)
        actions = state["actions"]
        for i, kept in enumerate(actions_kept):
            if not kept:
                self.ret[i] = 0.0
                self.length[i] = 0
        if self.record and actions is not None:
            # Rebuild the history as if the longest current episode started at step 0; rows
            # before an env's episode start are never read (zeros).
            lengths = [len(a) if k else 0 for a, k in zip(actions, actions_kept, strict=True)]
            longest = max(lengths, default=0)
            self.t = longest
            self.start = [longest - n for n in lengths]
            if longest:
                template = next(a for a, n in zip(actions, lengths, strict=True) if n)[0]
                hist = torch.zeros(longest, len(actions), *template.shape, dtype=template.dtype)
                for i, n in enumerate(lengths):
                    if n:
                        hist[self.start[i] :, i] = actions[i]  # (L_i, *action_shape)
                self.history = list(hist.unbind(0))


def train_on_policy(
    run: Run,
    *,
    envs: BatchedEnv,
    eval_env: gym.Env[Any, Any] | BatchedEnv | None,
    agent: OnPolicyAgent,
    cfg: OnPolicyConfig,
) -> EvalResult | None:
    """Train ``agent`` on ``envs`` until ``run.run_cfg.total_steps``, resuming if ``run`` was.

    Args:
        run: The open run (directory, logger, checkpoints, restored state).
        envs: N training environments (see :mod:`rl_runtime.vecenv`); ``cfg.num_envs`` of them.
        eval_env: A separate environment for evaluation: one gymnasium env (episodes run one
            after another) or a batched env (episodes run side by side); None: no evaluation.
        agent: The learner.
        cfg: The loop's schedule.

    Returns:
        The last evaluation, or None if there was none.
    """
    rc = run.run_cfg
    if envs.num_envs != cfg.num_envs:
        raise ValueError(f"envs has {envs.num_envs} envs, --loop.num-envs is {cfg.num_envs}")
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    obs_shape = tuple(obs_space.shape or ())
    action_shape = tuple(action_space.shape or ())
    discrete = isinstance(action_space, gym.spaces.Discrete)
    storage = RolloutStorage(
        cfg.num_steps,
        cfg.num_envs,
        obs_shape,
        () if discrete else action_shape,
        obs_dtype=torch.float32,
        action_dtype=torch.int64 if discrete else torch.float32,
        device=run.device,
    )
    generator = torch.Generator(run.device).manual_seed(derive_seed(rc.seed, "minibatches"))
    means = MetricMeans()
    device = run.device
    zeros = torch.zeros(cfg.num_envs, device=device)
    episodes = EpisodeTracker(cfg.num_envs, rc.seed, record=False)

    if run.restored is None:
        c = _Counters()
        if isinstance(eval_env, gym.Env):
            seed_spaces(rc.seed, eval_env)
        obs = envs.reset(episodes.current_seeds())
        has_state = envs.env_state() is not None
        episodes.record = not has_state  # a simulator without a readable state: replay
    else:
        r = run.restored
        has_state = r["env_state"] is not None
        episodes.record = not has_state
        agent.load_state_dict(r["agent"])
        means.load_state_dict(r["pending_metrics"])
        generator.set_state(r["generator"])
        c = _Counters(**r["counters"])
        obs = restore_envs(run, envs, episodes, r["episodes"], r["env_state"], r["obs"])
    if c.step >= rc.total_steps:
        run.log.info("run already complete (%d steps)", c.step)
        return None
    run.restore_rng()  # last: building the agent and replaying drew random numbers

    last_eval = None
    t_log, step_log = time.perf_counter(), c.step
    with run.progress() as bar:
        if c.step == 0 and rc.eval_episodes and eval_env is not None:
            last_eval = _evaluate(run, agent, eval_env, 0, bar)
        run.start_progress(c.step)  # the speed of training, without the step-0 evaluation
        while c.step < rc.total_steps:
            # Rollout. Each step's next_values are known one step later (the next V(obs)),
            # except at a truncation, where they are V(final_obs) of that step.
            pending: _Pending | None = None
            for _ in range(cfg.num_steps):
                obs = obs.to(device)
                with torch.no_grad():
                    ps = agent.policy_step(obs)
                if pending is not None:
                    _add(storage, pending, ps.values)
                result = envs.step(ps.actions, episodes.reset_seed)
                terminated = result.terminated.to(device)
                truncated = result.truncated.to(device)
                ret, length, ended = episodes.step(
                    ps.actions, result.reward, result.terminated | result.truncated
                )
                if ended:
                    means.add_sum(
                        {"train/episode_return": ret, "train/episode_length": length}, ended
                    )
                    c.episodes_done += ended
                bootstrap = zeros  # V(final_obs) where truncated (rare): computed only then
                if bool(truncated.any()):
                    cut = truncated & ~terminated
                    bootstrap = zeros.clone()
                    with torch.no_grad():
                        bootstrap[cut] = agent.value(result.final_obs.to(device)[cut]).float()
                pending = _Pending(
                    obs,
                    ps.actions,
                    ps.log_probs,
                    ps.values,
                    result.reward.to(device),
                    terminated,
                    truncated,
                    bootstrap,
                )
                obs = result.obs
                c.step += cfg.num_envs
            with torch.no_grad():
                last_values = agent.value(obs.to(device)).float()
            assert pending is not None
            _add(storage, pending, last_values)
            storage.compute(cfg.gamma, cfg.gae_lambda)

            # Update.
            for _ in range(cfg.update_epochs):
                for batch in storage.minibatches(cfg.num_minibatches, generator):
                    means.add(namespaced("train", agent.update(batch)))
                    c.updates += 1
            storage.reset()
            previous = c.step - cfg.rollout_steps
            c.rollouts += 1
            bar.update(cfg.rollout_steps)
            run.report_progress(c.step)

            # Log, evaluate, then checkpoint: a checkpoint covers every entry of its step.
            last = c.step >= rc.total_steps
            if crossed(c.step, previous, rc.log_every) or last:
                now = time.perf_counter()
                run.logger.log(
                    c.step,
                    {
                        **means.pop(),
                        "train/updates": c.updates,
                        "train/episodes": c.episodes_done,
                        "time/sps": (c.step - step_log) / max(now - t_log, 1e-9),
                        "time/elapsed": run.elapsed(),
                    },
                )
                t_log, step_log = now, c.step
            if (
                rc.eval_episodes
                and eval_env is not None
                and (crossed(c.step, previous, rc.eval_every) or last)
            ):
                last_eval = _evaluate(run, agent, eval_env, c.step, bar)
            # SIGTERM / Ctrl-C: here, between two rollouts, is a state a resume continues exactly.
            stop = run.stop_requested and not last
            if stop or run.checkpoint_due(c.step, last=last, previous=previous):
                run.save_checkpoint(
                    c.step,
                    {
                        "agent": agent.state_dict(),
                        "counters": dataclasses.asdict(c),
                        "episodes": episodes.state_dict(),
                        "env_state": envs.env_state() if has_state else None,
                        "obs": obs.cpu(),
                        "generator": generator.get_state(),
                        "pending_metrics": means.state_dict(),
                    },
                )
            if stop:
                raise run.interrupted(c.step)
    run.log.info("finished %d steps in %s", c.step, run.dir)
    return last_eval


class _Pending(NamedTuple):
    """One rollout step waiting for its next values (known one policy step later)."""

    obs: Tensor
    actions: Tensor
    log_probs: Tensor
    values: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    bootstrap: Tensor
    """``(N,)`` V(final_obs) where the step was truncated, else 0."""


def _add(storage: RolloutStorage, p: _Pending, following_values: Tensor) -> None:
    """Store the pending step. Its next values: V of the following observation where no episode
    ended, V(final_obs) where it was truncated, 0 where it terminated (ignored there)."""
    ended = p.terminated | p.truncated
    next_values = torch.where(ended, p.bootstrap, following_values.float())
    # Shapes and dtypes are checked on the first step of each rollout; they cannot change after.
    storage.add(*p[:7], next_values, check=len(storage) == 0)


def restore_envs(
    run: Run,
    envs: BatchedEnv,
    episodes: EpisodeTracker,
    state: Mapping[str, Any],
    env_state: Any,
    saved_obs: Tensor,
) -> Tensor:
    """Bring ``envs`` back to where a checkpoint left them and return their observations.

    Envs that can save their state (``env_state`` not None) load it. Otherwise each env resets
    with its current episode's seed (from ``episodes``, restored from ``state``) and replays the
    episode's recorded actions; an env whose replay does not reproduce the checkpoint's
    ``saved_obs`` bitwise is logged and restarts its episode from the reset instead."""
    n = envs.num_envs
    if env_state is not None:
        episodes.load_state_dict(state, [True] * n)
        return envs.load_env_state(env_state)
    episodes.index = list(state["index"])
    seeds = episodes.current_seeds()
    actions = [_replay_actions(a, envs.single_action_space) for a in state["actions"]]
    obs = envs.replay(seeds, actions)
    same = [bool(torch.equal(obs[i].cpu(), saved_obs[i])) for i in range(n)]
    if not all(same):
        bad = [i for i in range(n) if not same[i]]
        run.log.warning(
            "replaying the current episodes of envs %s did not reproduce the checkpointed "
            "observations (the environment is not deterministic given its reset seed and "
            "actions): those episodes restart from their reset",
            bad,
        )
        obs = envs.replay(seeds, [a if same[i] else [] for i, a in enumerate(actions)])
    else:
        run.log.info("replayed the current episodes of %d envs", n)
    episodes.load_state_dict(state, same)
    return obs


def _replay_actions(actions: Tensor, space: gym.Space[Any]) -> list[Any]:
    """A stored ``(L, *action_shape)`` tensor as the L actions one gymnasium env takes."""
    rows = actions.numpy()
    if isinstance(space, gym.spaces.Discrete):
        return [int(a) for a in rows]
    return [np.asarray(a, dtype=space.dtype) for a in rows]


def _evaluate(
    run: Run,
    agent: OnPolicyAgent,
    eval_env: gym.Env[Any, Any] | BatchedEnv,
    step: int,
    bar: Any,
) -> EvalResult:
    rc = run.run_cfg
    if isinstance(eval_env, gym.Env):
        policy = agent_policy(agent, eval_env.action_space, run.device)
        result = evaluate(policy, eval_env, episodes=rc.eval_episodes, seed=rc.seed)
    else:
        result = evaluate_batched(
            agent, eval_env, episodes=rc.eval_episodes, seed=rc.seed, device=run.device
        )
    return run.log_evaluation(step, result, bar)


def evaluate_batched(
    agent: OnPolicyAgent,
    envs: BatchedEnv,
    *,
    episodes: int,
    seed: int,
    device: torch.device,
) -> EvalResult:
    """Evaluate ``agent.act(obs, explore=False)`` on N envs side by side.

    Env ``i`` runs its episodes ``i, i + N, i + 2N, ...`` (of ``episodes``), episode ``j``
    reset with ``episode_seed(seed, "eval", j)`` as in :func:`rl_runtime.evaluation.evaluate`, so
    the result does not depend on N's timing; an env that has run its share idles (its further
    episodes are not counted).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    n = envs.num_envs
    # episode j runs on env j % n as that env's (j // n)-th episode
    quota = [len(range(i, episodes, n)) for i in range(n)]
    count = [0] * n
    returns: dict[int, float] = {}
    lengths: dict[int, int] = {}

    def next_seed(i: int) -> int:
        count[i] += 1
        return episode_seed(seed, "eval", i + n * count[i])

    obs = envs.reset([episode_seed(seed, "eval", i) for i in range(n)])
    ret = torch.zeros(n, dtype=torch.float64)
    length = torch.zeros(n, dtype=torch.int64)
    while any(count[i] < quota[i] for i in range(n)):
        with torch.no_grad():
            actions = agent.act(obs.to(device), explore=False)
        episode_of = list(count)
        result = envs.step(actions, next_seed)
        ret += result.reward.double().cpu()
        length += 1
        ended = (result.terminated | result.truncated).cpu()
        for i in torch.nonzero(ended).flatten().tolist():
            if episode_of[i] < quota[i]:
                j = i + n * episode_of[i]
                returns[j], lengths[j] = float(ret[i]), int(length[i])
        ret[ended] = 0.0
        length[ended] = 0
        obs = result.obs
    order = sorted(returns)
    return EvalResult(tuple(returns[j] for j in order), tuple(lengths[j] for j in order))
