"""The goal-conditioned on-policy loop (purejaxgcrl's training loop, in torch, on the runtime's
run directory, logging and checkpoints).

One iteration::

    rollout  T steps of N envs: agent.policy_step(obs, acting goal) -> actions (+ extras);
             env.step: next_obs (goals judged on it), done, obs (optimistic resets);
             achieved = goals.achieved(next_obs) for every goal; an env whose acting goal is
             reached, or whose episode ends, draws a new acting goal (from the goals seen so far)
    learn    agent.learn(rollout): the method's targets and minibatch epochs
    goals    goals seen |= the rollout's achieved goals; live success counts decay
    log      train/ (the agent's means, live success rates over all goals and per family,
             goals seen, episode lengths), time/sps
    test     eval/success_rate: every goal the acting goal of its own env's first episode
             (greedy), overall and per family
    save     checkpoint (agent, env state, goal tracker, observations, counters)

The runtime's :func:`rl_runtime.onpolicy.train_on_policy` stores one reward per step; LEO needs
every goal's achievement per step and an acting goal per env, so this loop is the goal-conditioned
twin, built on the same :class:`~rl_runtime.run.Run` (directory, logger, checkpoint schedule,
signals, progress) and :class:`~rl_runtime.logger.MetricMeans`. A run killed with SIGKILL and
resumed continues exactly from its last checkpoint (taken between rollouts).

Success rates (upstream's): an episode's first acting goal is a success when reached before the
episode ends and a failure otherwise; per goal, ``success / (success + failure)`` with both counts
decayed by ``live_decay`` each rollout; ``train/success_rate`` averages it over all goals (goals
never tried count 0, as upstream).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import torch
from rl_runtime.logger import MetricMeans, namespaced
from rl_runtime.run import Run
from rl_runtime.schedules import crossed
from rl_runtime.seeding import derive_seed
from torch import Tensor

from leo.agent import GoalAgent, Rollout
from leo.config import EvalConfig
from leo.envs import GoalEnv
from leo.goals import GoalSet

__all__ = ["GoalTracker", "evaluate_goals", "success_by_family", "train_goals"]


class GoalTracker:
    """Acting goals, goals seen and the live success counts of N envs.

    Args:
        goals: The goal set.
        num_envs: N.
        only_seen: New acting goals come from the goals seen so far (else from all).
        decay: Per-rollout decay of the success and failure counts.
        generator: Goal draws.
    """

    def __init__(
        self,
        goals: GoalSet,
        num_envs: int,
        *,
        only_seen: bool,
        decay: float,
        generator: torch.Generator,
    ) -> None:
        self.goals, self.only_seen, self.decay, self.gen = goals, only_seen, decay, generator
        dev = goals.table.device
        g = len(goals)
        self.goal = torch.zeros(num_envs, dtype=torch.int64, device=dev)
        self.completed = torch.zeros(num_envs, dtype=torch.int64, device=dev)
        self.seen = torch.zeros(g, dtype=torch.bool, device=dev)
        self.success = torch.zeros(g, dtype=torch.float64, device=dev)
        self.failure = torch.zeros(g, dtype=torch.float64, device=dev)

    def sample(self, n: int) -> Tensor:
        """``(n,)`` goals: uniform over the goals seen (or all goals)."""
        g = len(self.goals)
        if self.only_seen and bool(self.seen.any()):
            p = self.seen.double()
        else:
            p = torch.ones(g, dtype=torch.float64, device=self.seen.device)
        draws = torch.multinomial(p.to(self.gen.device), n, replacement=True, generator=self.gen)
        return draws.to(self.goal.device)

    def start(self, obs: Tensor) -> None:
        """First acting goals, from the goals the first observations achieve."""
        self.seen |= self.goals.achieved(obs).any(dim=0)
        self.goal = self.sample(self.goal.numel())

    def step(self, achieved: Tensor, done: Tensor) -> tuple[Tensor, Tensor]:
        """Account one step: ``achieved`` ``(N, G)`` of the next observations, ``done`` ``(N,)``.
        Returns the goals completed in the episodes that ended and their count ``(0-dim)``."""
        n = self.goal.numel()
        hit = achieved[torch.arange(n, device=achieved.device), self.goal]
        first = self.completed == 0
        ones = torch.ones(n, dtype=torch.float64, device=hit.device)
        self.success.index_add_(0, self.goal, ones * (hit & first))
        self.failure.index_add_(0, self.goal, ones * (done & first & ~hit))
        self.completed = self.completed + hit.long()
        ended_goals = (self.completed * done).sum()
        self.completed = torch.where(done, torch.zeros_like(self.completed), self.completed)
        # reaching the acting goal ends it; a new episode starts with a new goal
        self.goal = torch.where(hit | done, self.sample(n), self.goal)
        return ended_goals, done.sum()

    def end_rollout(self, achieved: Tensor) -> None:
        """After a rollout: its achieved goals become seen; the live counts decay."""
        self.seen |= achieved.reshape(-1, achieved.shape[-1]).any(dim=0)
        self.success *= self.decay
        self.failure *= self.decay

    def live_rates(self) -> Tensor:
        """``(G,)`` live success rates."""
        return self.success / (self.success + self.failure + 1e-7)

    def state_dict(self) -> dict[str, Any]:
        return {
            "goal": self.goal.cpu(),
            "completed": self.completed.cpu(),
            "seen": self.seen.cpu(),
            "success": self.success.cpu(),
            "failure": self.failure.cpu(),
            "generator": self.gen.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        dev = self.goal.device
        for key in ("goal", "completed", "seen", "success", "failure"):
            setattr(self, key, state[key].to(dev))
        self.gen.set_state(state["generator"])


def success_by_family(goals: GoalSet, rates: Tensor, prefix: str) -> dict[str, float]:
    """``{prefix: mean over all goals, prefix/<family>: mean over the family}``."""
    fam = goals.family_index().to(rates.device)
    out = {prefix: float(rates.mean())}
    for i, name in enumerate(goals.families):
        out[f"{prefix}/{name}"] = float(rates[fam == i].mean())
    return out


@torch.no_grad()
def evaluate_goals(
    agent: GoalAgent,
    env: GoalEnv,
    *,
    cfg: EvalConfig,
    seed: int,
    device: torch.device | None = None,
) -> Tensor:
    """Test every goal: env ``i`` pursues goal ``i mod G`` in its first episode (at most
    ``cfg.max_steps`` steps); a success when an observation of that episode achieves it.

    Args:
        agent: The agent (``act`` with ``cfg.epsilon``).
        env: A batch of ``G * cfg.repeats`` envs, reset here with ``seed``.
        cfg: Test settings.
        seed: Seed of the test worlds and of the test policy's draws.
        device: The agent's device (default: the env's).

    Returns:
        ``(G,)`` float success rates (means over the repeats).
    """
    device = env.device if device is None else device
    goals = env.goals.to(device)
    g = len(goals)
    n = env.num_envs
    if n != g * cfg.repeats:
        raise ValueError(f"the test env needs {g} x {cfg.repeats} envs, has {n}")
    goal = torch.arange(n, device=device) % g
    gen = torch.Generator(device).manual_seed(seed)
    obs = env.reset(seed).to(device)
    success = goals.achieved_one(obs, goal)
    active = torch.ones(n, dtype=torch.bool, device=device)
    for _ in range(cfg.max_steps):
        res = env.step(agent.act(obs, goal, epsilon=cfg.epsilon, generator=gen))
        success |= active & goals.achieved_one(res.next_obs.to(device), goal)
        active &= ~res.done.to(device)
        if not bool((active & ~success).any()):
            break
        obs = res.obs.to(device)
    return success.double().view(cfg.repeats, g).mean(dim=0)


@dataclasses.dataclass
class _Counters:
    step: int = 0
    rollouts: int = 0
    episodes: int = 0


def train_goals(
    run: Run,
    *,
    env: GoalEnv,
    agent: GoalAgent,
    eval_env: GoalEnv | None,
    evals: EvalConfig,
    only_seen: bool,
    device: torch.device | None = None,
) -> Tensor | None:
    """Train ``agent`` on ``env`` until ``run.run_cfg.total_steps`` env steps, resuming if
    ``run`` was restored.

    Args:
        run: The open run.
        env: N training envs.
        agent: The learner (see :class:`leo.agent.GoalAgent`).
        eval_env: ``G * evals.repeats`` envs for the goal test, or None (no test).
        evals: Test and live-rate settings.
        only_seen: New acting goals come from the goals seen so far.
        device: The agent's device (default: the env's); observations move there.

    Returns:
        The last test's per-goal success rates, or None.
    """
    rc = run.run_cfg
    device = env.device if device is None else device
    goals = env.goals.to(device)
    n, g = env.num_envs, len(goals)
    tracker = GoalTracker(
        goals,
        n,
        only_seen=only_seen,
        decay=evals.live_decay,
        generator=torch.Generator(device).manual_seed(derive_seed(rc.seed, "goals")),
    )
    means = MetricMeans()
    if run.restored is None:
        c = _Counters()
        obs = env.reset(derive_seed(rc.seed, "env")).to(device)
        tracker.start(obs)
    else:
        r = run.restored
        agent.load_state_dict(r["agent"])
        obs = env.load_state_dict(r["env"]).to(device)
        tracker.load_state_dict(r["goals"])
        means.load_state_dict(r["pending_metrics"])
        c = _Counters(**r["counters"])
    if c.step >= rc.total_steps:
        run.log.info("run already complete (%d steps)", c.step)
        return None
    run.restore_rng()

    def test(step: int) -> Tensor:
        assert eval_env is not None
        rates = evaluate_goals(
            agent, eval_env, cfg=evals, seed=derive_seed(rc.seed, "eval"), device=device
        )
        metrics = success_by_family(goals, rates, "eval/success_rate")
        run.logger.log(step, metrics)
        run.log.info("step %d: eval/success_rate %.3f over %d goals", step,
                     metrics["eval/success_rate"], g)  # fmt: skip
        return rates

    last_rates = None
    testing = eval_env is not None and rc.eval_episodes > 0
    t_log, step_log = time.perf_counter(), c.step
    with run.progress() as bar:
        if c.step == 0 and testing:
            last_rates = test(0)
        run.start_progress(c.step)
        while c.step < rc.total_steps:
            t_len = agent.num_steps
            d = obs.shape[-1]
            buf_obs = torch.empty(t_len, n, d, device=device)
            buf_act = torch.empty(t_len, n, dtype=torch.int64, device=device)
            buf_goal = torch.empty(t_len, n, dtype=torch.int64, device=device)
            buf_ach = torch.empty(t_len, n, g, dtype=torch.bool, device=device)
            buf_done = torch.empty(t_len, n, dtype=torch.bool, device=device)
            extras: dict[str, list[Tensor]] = {}
            ended_goals = torch.zeros((), device=device, dtype=torch.int64)
            ended = torch.zeros((), device=device, dtype=torch.int64)
            for t in range(t_len):
                out = agent.policy_step(obs, tracker.goal)
                res = env.step(out.actions)
                done = res.done.to(device)
                achieved = goals.achieved(res.next_obs.to(device))  # (N, G): every goal, every step
                buf_obs[t] = obs
                buf_act[t] = out.actions
                buf_goal[t] = tracker.goal
                buf_ach[t] = achieved
                buf_done[t] = done
                for k, v in out.extras.items():
                    extras.setdefault(k, []).append(v)
                eg, ec = tracker.step(achieved, done)
                ended_goals += eg
                ended += ec
                obs = res.obs.to(device)
                c.step += n
            rollout = Rollout(
                buf_obs, buf_act, buf_goal, buf_ach, buf_done, obs, tracker.goal.clone(),
                tracker.seen.clone(), {k: torch.stack(v) for k, v in extras.items()},
            )  # fmt: skip
            means.add(namespaced("train", agent.learn(rollout)))
            tracker.end_rollout(buf_ach)
            count = int(ended)
            if count:
                c.episodes += count
                means.add_sum({"train/goals_per_episode": float(ended_goals)}, count)
            previous = c.step - t_len * n
            c.rollouts += 1
            bar.update(t_len * n)
            run.report_progress(c.step)

            last = c.step >= rc.total_steps
            if crossed(c.step, previous, rc.log_every) or last:
                now = time.perf_counter()
                run.logger.log(
                    c.step,
                    {
                        **means.pop(),
                        **success_by_family(goals, tracker.live_rates(), "train/success_rate"),
                        "train/goals_seen": int(tracker.seen.sum()),
                        "train/episodes": c.episodes,
                        "time/sps": (c.step - step_log) / max(now - t_log, 1e-9),
                        "time/elapsed": run.elapsed(),
                    },
                )
                t_log, step_log = now, c.step
            if testing and (crossed(c.step, previous, rc.eval_every) or last):
                last_rates = test(c.step)
            stop = run.stop_requested and not last
            if stop or run.checkpoint_due(c.step, last=last, previous=previous):
                run.save_checkpoint(
                    c.step,
                    {
                        "agent": agent.state_dict(),
                        "env": env.state_dict(),
                        "goals": tracker.state_dict(),
                        "counters": dataclasses.asdict(c),
                        "pending_metrics": means.state_dict(),
                    },
                )
            if stop:
                raise run.interrupted(c.step)
    run.log.info("finished %d steps in %s", c.step, run.dir)
    return last_rates
