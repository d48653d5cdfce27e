"""The hierarchical on-policy loop: N NetHack envs stepped as one batch, a controller deciding at
option boundaries, a worker acting every step, PPO on both.

One vector step, for each env::

    option over?   (its length ran out, or the episode ended)  -> controller: w, length 2^j
                   the env's previous decision is complete now: its return is the task reward
                   summed over its option, its next value this decision's value
    worker         action from pi(. | s, [w, 0])
    env step       the batch; ended envs reset at once with their next episode's seed
    rewards        (N, K) reward functions on (s, s'); worker reward scale * sum_k w_k s_k r_k
                   (flat: the task reward); the controller's decision collects the task reward

Targets:

* worker: GAE per env step; the recursion is cut where an episode ends and where an option ends,
  and an option end bootstraps from ``V(s', [w_old, 0])`` (SOL's ``bootstrap_on_option_switch``,
  on in its multi-weight NetHack configs): each option is its own task;
* controller: GAE over each env's chain of decisions (SMDP: one step per decision, discount
  ``controller_gamma`` per decision as SOL's per-policy chains), cut at episode ends. A decision
  whose option is still running when the rollout ends waits for the next rollout (its log-prob
  is then one update old; PPO's ratio accounts for it).

Controller and worker minibatches go through the network together and their PPO losses are
summed (one optimiser step): both levels train at once on one network, as in SOL.

Why PPO and not APPO with V-trace (SOL's): on one machine the rollout and the update alternate,
so the data is on-policy up to PPO's own epochs and V-trace's importance truncation has no lag
to correct; the runtime's PPO loss is shared with every on-policy method of the workspace. The
one off-policy piece, a decision that completes a rollout later, is one update stale and
clipped by the same ratio.

Exact resume: checkpoints between rollouts hold the agent, the loop's option state, the reward
functions' memory, the exploration records and each env's current-episode actions; NLE has no
readable state, so a resume replays each env's current episode from its seed
(``rl_runtime.onpolicy``'s replay, checked against the saved observation).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import torch
from rl_buffers import gae
from rl_runtime.evaluation import EvalResult
from rl_runtime.logger import MetricMeans

# The on-policy loop's episode bookkeeping (seeds, returns, action history) and replay restore,
# shared rather than re-typed.
from rl_runtime.onpolicy import EpisodeTracker, restore_envs
from rl_runtime.run import Run
from rl_runtime.schedules import crossed
from rl_runtime.seeding import derive_seed, episode_seed
from rl_runtime.vecenv import BatchedEnv
from torch import Tensor

from hbs.agent import ControllerBatch, HBSAgent, WorkerBatch
from hbs.config import HBSConfig
from hbs.envs import ObsLayout, is_blank
from hbs.losses import worker_reward as weighted
from hbs.metrics import EPISODE_METRICS, ExplorationTracker
from hbs.rewards import RewardState, check_rewards, compute_rewards

__all__ = ["OptionState", "evaluate_hbs", "train_hbs"]


@dataclasses.dataclass
class _Counters:
    step: int = 0
    updates: int = 0
    rollouts: int = 0
    episodes_done: int = 0
    decisions: int = 0


class OptionState:
    """Each env's running option and its controller decision that has not completed yet.

    Attributes (``N`` envs, ``K`` rewards):
        weights: ``(N, K)`` the running option's weights.
        remaining: ``(N,)`` int64 steps left in it; 0 means the controller decides next step.
        has_carry: ``(N,)`` bool, a decision is open (its option runs, or its successor is
            not made yet).
        c_obs, c_weights, c_length, c_log_prob, c_value: the open decision.
        c_reward: ``(N,)`` task reward collected since it (scaled).
        c_terminated, c_truncated: ``(N,)`` bool, its option ended with its episode.
        c_boot: ``(N,)`` the controller's value of the truncated episode's last observation.
        c_step: ``(N,)`` int64 vector step at which it was made (orders the chain).
    """

    def __init__(self, num_envs: int, num_rewards: int, obs_size: int) -> None:
        n = num_envs
        self.weights = torch.zeros(n, num_rewards)
        self.remaining = torch.zeros(n, dtype=torch.int64)
        self.has_carry = torch.zeros(n, dtype=torch.bool)
        self.c_obs = torch.zeros(n, obs_size, dtype=torch.int32)
        self.c_weights = torch.zeros(n, num_rewards)
        self.c_length = torch.zeros(n, dtype=torch.int64)
        self.c_log_prob = torch.zeros(n)
        self.c_value = torch.zeros(n)
        self.c_reward = torch.zeros(n)
        self.c_terminated = torch.zeros(n, dtype=torch.bool)
        self.c_truncated = torch.zeros(n, dtype=torch.bool)
        self.c_boot = torch.zeros(n)
        self.c_step = torch.zeros(n, dtype=torch.int64)

    def state_dict(self) -> dict[str, Tensor]:
        return {k: v.clone() for k, v in vars(self).items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k in vars(self):
            setattr(self, k, state[k].clone())


class _Decisions:
    """Completed controller decisions of one rollout (lists of per-step tensors)."""

    FIELDS = ("env", "step", "obs", "weights", "length", "log_prob", "value", "reward",
              "terminated", "episode_end", "next_value")  # fmt: skip

    def __init__(self) -> None:
        self.parts: dict[str, list[Tensor]] = {f: [] for f in self.FIELDS}

    def add(self, **fields: Tensor) -> None:
        for f in self.FIELDS:
            self.parts[f].append(fields[f])

    def __len__(self) -> int:
        return sum(t.shape[0] for t in self.parts["env"])

    def batch(self, gamma: float, lam: float) -> ControllerBatch | None:
        """All decisions with GAE over each env's chain, or None if there are none."""
        if len(self) == 0:
            return None
        d = {f: torch.cat(v) for f, v in self.parts.items()}
        # Chains: order by env, then by the step of the decision.
        order = torch.argsort(d["env"] * (1 << 40) + d["step"])
        d = {f: v[order] for f, v in d.items()}
        env = d["env"]
        counts = torch.bincount(env)
        rows = counts.max().item()
        present = torch.nonzero(counts).flatten()
        cols = {int(e): j for j, e in enumerate(present.tolist())}
        col = torch.tensor([cols[int(e)] for e in env.tolist()])
        first = torch.cumsum(counts[present], 0) - counts[present]  # each chain's first row
        pos = torch.arange(env.shape[0]) - first[col]  # position in its chain
        shape = (int(rows), len(cols))
        # (chain position, env) grids, time-major like a rollout; padding rows end episodes
        # and carry nothing, and each chain's last decision ends its recursion (A beyond = 0).
        grid = {
            name: torch.zeros(shape).index_put((pos, col), d[name])
            for name in ("reward", "value", "next_value")
        }
        terminated = torch.zeros(shape, dtype=torch.bool).index_put((pos, col), d["terminated"])
        last = pos == counts[env] - 1
        end = torch.ones(shape, dtype=torch.bool).index_put((pos, col), d["episode_end"] | last)
        adv, ret = gae(
            grid["reward"], grid["value"], grid["next_value"], terminated, end, gamma, lam
        )
        return ControllerBatch(
            obs=d["obs"],
            weights=d["weights"],
            length_index=d["length"],
            log_probs=d["log_prob"],
            values=d["value"],
            advantages=adv[pos, col],
            returns=ret[pos, col],
        )


def _active_rewards(cfg: HBSConfig, step: int) -> int:
    o = cfg.options
    return o.num_rewards - len(o.growing_rewards) + sum(step >= s for s in o.growing_rewards)


def train_hbs(
    run: Run,
    *,
    envs: BatchedEnv,
    agent: HBSAgent,
    cfg: HBSConfig,
    layout: ObsLayout,
    eval_envs: BatchedEnv | None = None,
) -> EvalResult | None:
    """Train ``agent`` until ``run.run_cfg.total_steps`` environment steps, resuming if ``run``
    was (see the module doc). Returns the last evaluation, or None."""
    rc, p, o = run.run_cfg, cfg.ppo, cfg.options
    n, t_len, k = p.num_envs, p.num_steps, o.num_rewards
    if envs.num_envs != n:
        raise ValueError(f"envs has {envs.num_envs} envs, --agent.ppo.num-envs is {n}")
    hierarchical = cfg.algo != "flat"
    specs = check_rewards(o.rewards, layout.keys)
    scales = torch.tensor(o.scales)
    reward_state = RewardState(specs, n)
    tracker = ExplorationTracker(n)
    state = OptionState(n, k, layout.size)
    episodes = EpisodeTracker(n, rc.seed, record=True)
    generator = torch.Generator().manual_seed(derive_seed(rc.seed, "minibatches"))
    means = MetricMeans()
    if run.restored is None:
        c = _Counters()
        obs = envs.reset(episodes.current_seeds()).cpu()
        tracker.observe(layout.split(obs))
        if not hierarchical:
            state.weights = agent.flat_weights(n).cpu()
    else:
        r = run.restored
        agent.load_state_dict(r["agent"])
        means.load_state_dict(r["pending_metrics"])
        generator.set_state(r["generator"])
        c = _Counters(**r["counters"])
        state.load_state_dict(r["options"])
        reward_state.load_state_dict(r["reward_state"])
        tracker.load_state_dict(r["tracker"])
        saved = r["obs"]
        obs = restore_envs(run, envs, episodes, r["episodes"], None, saved).cpu()
        restarted = ~(obs == saved).all(1)
        if bool(restarted.any()):  # those episodes start over: so does their bookkeeping
            reward_state.reset(restarted)
            tracker.finish(torch.nonzero(restarted).flatten())
            tracker.observe(layout.split(obs[restarted]), torch.nonzero(restarted).flatten())
            state.remaining[restarted] = 0
            state.has_carry[restarted] = False
    if c.step >= rc.total_steps:
        run.log.info("run already complete (%d steps)", c.step)
        return None
    run.restore_rng()

    device = run.device
    last_eval: EvalResult | None = None
    t_log, step_log = time.perf_counter(), c.step
    with run.progress() as bar:
        if c.step == 0 and rc.eval_episodes and eval_envs is not None:
            last_eval = _log_eval(run, agent, eval_envs, cfg, layout, 0, bar)
        run.start_progress(c.step)
        while c.step < rc.total_steps:
            agent.set_active_rewards(_active_rewards(cfg, c.step))
            if p.anneal_lr:
                agent.set_lr(p.lr * (1.0 - c.step / rc.total_steps))
            buf_obs = torch.zeros(t_len, n, layout.size, dtype=torch.int32)
            buf_cond = torch.zeros(t_len, n, k + 1)
            buf_act = torch.zeros(t_len, n, dtype=torch.int64)
            buf_logp = torch.zeros(t_len, n)
            buf_val = torch.zeros(t_len, n)
            buf_rew = torch.zeros(t_len, n)
            buf_term = torch.zeros(t_len, n, dtype=torch.bool)
            buf_end = torch.zeros(t_len, n, dtype=torch.bool)
            buf_next = torch.zeros(t_len, n)
            decisions = _Decisions()
            option_ended = torch.zeros(n, dtype=torch.bool)  # at the previous step
            reward_sums = torch.zeros(k)
            for t in range(t_len):
                vstep = c.step // n + t
                obs_d = obs.to(device)
                if hierarchical:
                    need = state.remaining <= 0
                    if bool(need.any()):
                        rows = torch.nonzero(need).flatten()
                        # The worker's step before an option end bootstraps under the old w,
                        # in the same forward pass as the decisions.
                        boot_rows = torch.nonzero(option_ended).flatten() if t > 0 else rows[:0]
                        dec, boot = agent.decide_and_value(
                            obs_d[rows],
                            obs_d[boot_rows] if boot_rows.numel() else None,
                            agent.worker_cond(state.weights[boot_rows].to(device))
                            if boot_rows.numel()
                            else None,
                        )
                        if boot is not None:
                            buf_next[t - 1, boot_rows] = boot.cpu()
                        _complete(state, decisions, rows, dec.value.cpu())
                        state.c_obs[rows] = obs[rows]
                        state.c_weights[rows] = dec.weights.cpu()
                        state.c_length[rows] = dec.length_index.cpu()
                        state.c_log_prob[rows] = dec.log_prob.cpu()
                        state.c_value[rows] = dec.value.cpu()
                        state.c_reward[rows] = 0.0
                        state.c_terminated[rows] = False
                        state.c_truncated[rows] = False
                        state.c_step[rows] = vstep
                        state.has_carry[rows] = True
                        state.weights[rows] = dec.weights.cpu()
                        state.remaining[rows] = 2 ** dec.length_index.cpu()
                        c.decisions += int(rows.numel())
                        means.add_sum(
                            {"train/option_length": float(state.remaining[rows].sum())},
                            int(rows.numel()),
                        )
                        means.add_sum(
                            {
                                f"train/weight_{name}": float(w)
                                for name, w in zip(
                                    o.rewards, dec.weights.sum(0).tolist(), strict=True
                                )
                            },
                            int(rows.numel()),
                        )
                cond = agent.worker_cond(state.weights.to(device))
                ws = agent.act(obs_d, state.weights.to(device))
                values = ws.values.cpu()
                if t > 0:  # the previous step's next value, unless set at an option end
                    keep = ~buf_end[t - 1]
                    buf_next[t - 1] = torch.where(keep, values, buf_next[t - 1])
                result = envs.step(ws.actions, episodes.reset_seed)
                final = result.final_obs.cpu()
                term, trunc = result.terminated.cpu(), result.truncated.cpu()
                env_reward = result.reward.cpu().float()
                ended = term | trunc
                rewards = compute_rewards(layout, obs, final, term, reward_state)  # (N, K)
                reward_sums += rewards.sum(0)
                task = o.controller_reward_scale * env_reward
                if hierarchical:
                    worker_reward = weighted(rewards, state.weights, scales, o.worker_reward_scale)
                else:
                    worker_reward = task
                state.c_reward += task
                # Bootstraps of truncated episodes (rare): V(last observation) per level.
                boot = torch.zeros(n)
                cut = trunc & ~term
                if bool(cut.any()):
                    last = torch.where(is_blank(layout.split(final).blstats)[:, None], obs, final)
                    rows = torch.nonzero(cut).flatten()
                    last_d = last[rows].to(device)
                    boot[rows] = agent.value(
                        last_d, agent.worker_cond(state.weights[rows].to(device))
                    ).cpu()
                    if hierarchical:
                        state.c_boot[rows] = agent.value(
                            last_d, agent.controller_cond(int(rows.numel()))
                        ).cpu()
                state.c_terminated |= term & state.has_carry
                state.c_truncated |= cut & state.has_carry
                state.remaining -= 1
                option_ended = (state.remaining <= 0) & ~ended if hierarchical else ended & False
                buf_obs[t] = obs
                buf_cond[t] = cond.cpu()
                buf_act[t] = ws.actions.cpu()
                buf_logp[t] = ws.log_probs.cpu()
                buf_val[t] = values
                buf_rew[t] = worker_reward
                buf_term[t] = term
                buf_end[t] = ended | option_ended
                buf_next[t] = boot
                # Exploration records and the rewards' memory follow the episodes.
                live = ~is_blank(layout.split(final).blstats)
                if bool(live.all()):
                    tracker.observe(layout.split(final))
                elif bool(live.any()):
                    rows = torch.nonzero(live).flatten()
                    tracker.observe(layout.split(final[rows]), rows)
                ret, length, count = episodes.step(ws.actions.cpu(), env_reward, ended)
                obs = result.obs.cpu()
                if count:
                    rows = torch.nonzero(ended).flatten()
                    records = tracker.finish(rows)
                    means.add_sum(
                        {"train/episode_return": ret, "train/episode_length": length}, count
                    )
                    means.add_sum(
                        {
                            f"train/{key}": sum(rec[key] for rec in records)
                            for key in EPISODE_METRICS
                        },
                        count,
                    )
                    c.episodes_done += count
                    reward_state.reset(ended)
                    tracker.observe(layout.split(obs[rows]), rows)
                    state.remaining[ended] = 0
            # Rollout end: the last step bootstraps from V(s_T, [w, 0]) (w still the running
            # option's, also where it just ended).
            last_values = agent.value(
                obs.to(device), agent.worker_cond(state.weights.to(device))
            ).cpu()
            buf_next[t_len - 1] = torch.where(
                buf_end[t_len - 1] & ~option_ended, buf_next[t_len - 1], last_values
            )
            adv, ret = gae(buf_rew, buf_val, buf_next, buf_term, buf_end, p.gamma, p.gae_lambda)
            controller = decisions.batch(p.controller_gamma, p.gae_lambda)
            c.step += p.rollout_steps
            means.add_sum(
                {
                    f"train/reward_{name}": float(v)
                    for name, v in zip(o.rewards, reward_sums.tolist(), strict=True)
                },
                p.rollout_steps,
            )
            means.add({"train/active_rewards": float(agent.active_rewards)})
            # Update: each epoch splits the worker steps and the decisions num_minibatches ways.
            worker_flat = WorkerBatch(
                buf_obs.reshape(-1, layout.size),  # (T * N, D)
                buf_cond.reshape(-1, k + 1),
                buf_act.reshape(-1),
                buf_logp.reshape(-1),
                buf_val.reshape(-1),
                adv.reshape(-1),
                ret.reshape(-1),
            )
            m_w = worker_flat.obs.shape[0]
            m_c = 0 if controller is None else controller.obs.shape[0]
            for _ in range(p.update_epochs):
                perm_w = torch.randperm(m_w, generator=generator).chunk(p.num_minibatches)
                perm_c = torch.randperm(m_c, generator=generator).chunk(p.num_minibatches)
                for j, idx in enumerate(perm_w):
                    wb = WorkerBatch(*(x[idx].to(device) for x in worker_flat))
                    cb = None
                    if controller is not None and j < len(perm_c):
                        cb = ControllerBatch(*(x[perm_c[j]].to(device) for x in controller))
                    means.add({f"train/{key}": v for key, v in agent.update(wb, cb).items()})
                    c.updates += 1
            c.rollouts += 1
            previous = c.step - p.rollout_steps
            bar.update(p.rollout_steps)
            run.report_progress(c.step)
            last = c.step >= rc.total_steps
            if crossed(c.step, previous, rc.log_every) or last:
                now = time.perf_counter()
                run.logger.log(
                    c.step,
                    {
                        **means.pop(),
                        "train/updates": c.updates,
                        "train/episodes": c.episodes_done,
                        "train/decisions": c.decisions,
                        "time/sps": (c.step - step_log) / max(now - t_log, 1e-9),
                        "time/elapsed": run.elapsed(),
                    },
                )
                t_log, step_log = now, c.step
            if (
                rc.eval_episodes
                and eval_envs is not None
                and (crossed(c.step, previous, rc.eval_every) or last)
            ):
                last_eval = _log_eval(run, agent, eval_envs, cfg, layout, c.step, bar)
            stop = run.stop_requested and not last
            if stop or run.checkpoint_due(c.step, last=last, previous=previous):
                run.save_checkpoint(
                    c.step,
                    {
                        "agent": agent.state_dict(),
                        "counters": dataclasses.asdict(c),
                        "episodes": episodes.state_dict(),
                        "env_state": None,
                        "obs": obs.clone(),
                        "options": state.state_dict(),
                        "reward_state": reward_state.state_dict(),
                        "tracker": tracker.state_dict(),
                        "generator": generator.get_state(),
                        "pending_metrics": means.state_dict(),
                    },
                )
            if stop:
                raise run.interrupted(c.step)
    run.log.info("finished %d steps in %s", c.step, run.dir)
    return last_eval


def _complete(state: OptionState, decisions: _Decisions, rows: Tensor, values: Tensor) -> None:
    """Close the open decisions of envs ``rows``, whose successors have ``values``."""
    open_rows = state.has_carry[rows]
    if not bool(open_rows.any()):
        return
    r = rows[open_rows]
    succ = values[open_rows]
    term, trunc = state.c_terminated[r], state.c_truncated[r]
    # A truncated episode bootstraps from its last observation, a terminated one from nothing
    # (ignored by GAE); otherwise the successor decision's value.
    next_value = torch.where(trunc, state.c_boot[r], succ)
    decisions.add(
        env=r.clone(),
        step=state.c_step[r].clone(),
        obs=state.c_obs[r].clone(),
        weights=state.c_weights[r].clone(),
        length=state.c_length[r].clone(),
        log_prob=state.c_log_prob[r].clone(),
        value=state.c_value[r].clone(),
        reward=state.c_reward[r].clone(),
        terminated=term.clone(),
        episode_end=term | trunc,
        next_value=next_value,
    )
    state.has_carry[r] = False


def evaluate_hbs(
    agent: HBSAgent,
    envs: BatchedEnv,
    cfg: HBSConfig,
    layout: ObsLayout,
    *,
    episodes: int,
    seed: int,
) -> tuple[EvalResult, dict[str, float]]:
    """Run ``episodes`` evaluation episodes (episode ``j`` seeded with
    ``episode_seed(seed, "eval", j)``, env ``i`` running ``i, i + N, ...``), the controller and
    the worker sampling from their policies (an argmax NetHack policy walks into the same wall
    until the time limit). Returns the returns and lengths and the mean exploration records
    (``eval/<metric>``)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    n = envs.num_envs
    quota = [len(range(i, episodes, n)) for i in range(n)]
    count = [0] * n

    def next_seed(i: int) -> int:
        count[i] += 1
        return episode_seed(seed, "eval", i + n * count[i])

    obs = envs.reset([episode_seed(seed, "eval", i) for i in range(n)]).cpu()
    tracker = ExplorationTracker(n)
    tracker.observe(layout.split(obs))
    weights = agent.flat_weights(n).cpu()
    remaining = torch.zeros(n, dtype=torch.int64)
    ret = torch.zeros(n, dtype=torch.float64)
    length = torch.zeros(n, dtype=torch.int64)
    results: dict[int, tuple[float, int, dict[str, float]]] = {}
    device = agent.device
    while any(count[i] < quota[i] for i in range(n)):
        if cfg.algo != "flat" and bool((remaining <= 0).any()):
            rows = torch.nonzero(remaining <= 0).flatten()
            dec = agent.decide(obs[rows].to(device))
            weights[rows] = dec.weights.cpu()
            remaining[rows] = 2 ** dec.length_index.cpu()
        actions = agent.act(obs.to(device), weights.to(device)).actions
        episode_of = list(count)
        result = envs.step(actions, next_seed)
        final = result.final_obs.cpu()
        live = ~is_blank(layout.split(final).blstats)
        if bool(live.any()):
            rows = torch.nonzero(live).flatten()
            tracker.observe(layout.split(final[rows]), rows)
        ret += result.reward.double().cpu()
        length += 1
        remaining -= 1
        ended = (result.terminated | result.truncated).cpu()
        obs = result.obs.cpu()
        if bool(ended.any()):
            rows = torch.nonzero(ended).flatten()
            for i, rec in zip(rows.tolist(), tracker.finish(rows), strict=True):
                if episode_of[i] < quota[i]:
                    results[i + n * episode_of[i]] = (float(ret[i]), int(length[i]), rec)
            tracker.observe(layout.split(obs[rows]), rows)
            ret[ended] = 0.0
            length[ended] = 0
            remaining[ended] = 0
    order = sorted(results)
    result = EvalResult(tuple(results[j][0] for j in order), tuple(results[j][1] for j in order))
    explore = {
        f"eval/{key}": sum(results[j][2][key] for j in order) / len(order)
        for key in EPISODE_METRICS
    }
    return result, explore


def _log_eval(
    run: Run,
    agent: HBSAgent,
    envs: BatchedEnv,
    cfg: HBSConfig,
    layout: ObsLayout,
    step: int,
    bar: Any,
) -> EvalResult:
    result, explore = evaluate_hbs(
        agent, envs, cfg, layout, episodes=run.run_cfg.eval_episodes, seed=run.run_cfg.seed
    )
    run.logger.log(step, explore)
    return run.log_evaluation(step, result, bar)
