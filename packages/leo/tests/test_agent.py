"""Agents: every algorithm learns on a real rollout; determinism; checkpoint round trip; the
input rollout is left unchanged; hindsight goal draws."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from leo.agent import Rollout, UVFALearner, make_agent
from leo.config import ALGOS, EvalConfig, NetworkConfig, PPOConfig, QConfig
from leo.envs import Gridworld
from leo.loop import GoalTracker, evaluate_goals

NET = NetworkConfig(width=32, dense_layers=2)
Q = QConfig(num_steps=8, minibatch_size=32)
PPO = PPOConfig(num_steps=8, minibatch_size=32)


def _agent(algo: str, env: Gridworld, seed: int = 0):
    return make_agent(algo, layout=env.layout, goals=env.goals, num_actions=4, num_envs=env.num_envs,  # type: ignore[arg-type]
                      total_steps=10_000, network=NET, q=Q, ppo=PPO, only_seen=True, seed=seed,
                      device=torch.device("cpu"))  # fmt: skip


def _rollout(agent, env: Gridworld, seed: int = 0) -> Rollout:
    tracker = GoalTracker(env.goals, env.num_envs, only_seen=True, decay=0.999,
                          generator=torch.Generator().manual_seed(seed))  # fmt: skip
    obs = env.reset(seed)
    tracker.start(obs)
    rows: dict[str, list] = {k: [] for k in ("obs", "act", "goal", "ach", "done")}
    extras: dict[str, list] = {}
    for _ in range(agent.num_steps):
        out = agent.policy_step(obs, tracker.goal)
        res = env.step(out.actions)
        ach = env.goals.achieved(res.next_obs)
        for k, v in zip(rows, (obs, out.actions, tracker.goal, ach, res.done), strict=True):
            rows[k].append(v)
        for k, v in out.extras.items():
            extras.setdefault(k, []).append(v)
        tracker.step(ach, res.done)
        obs = res.obs
    s = {k: torch.stack(v) for k, v in rows.items()}
    return Rollout(s["obs"], s["act"], s["goal"], s["ach"], s["done"], obs, tracker.goal.clone(),
                   tracker.seen.clone(), {k: torch.stack(v) for k, v in extras.items()})  # fmt: skip


def _params(agent) -> list[torch.Tensor]:
    return [t.clone() for t in _flat(agent.state_dict())]


def _flat(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for v in state.values() for t in _flat(v)]
    if isinstance(state, list | tuple):
        return [t for v in state for t in _flat(v)]
    return []


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algorithm_learns_deterministically_and_leaves_the_rollout_alone(algo: str) -> None:
    env = Gridworld(8, size=6, reset_ratio=4, seed=0)
    a, b = _agent(algo, env), _agent(algo, env)
    ra, rb = _rollout(a, env), _rollout(b, env)
    before = copy.deepcopy(ra)
    metrics = a.learn(ra)
    b.learn(rb)
    assert metrics
    assert all(v.ndim == 0 and bool(torch.isfinite(v)) for v in metrics.values())
    assert all(not v.requires_grad for v in metrics.values())
    assert "critic_loss" in metrics
    for x, y in zip(_params(a), _params(b), strict=True):
        assert torch.equal(x, y)  # bitwise: same seed, same data
    for x, y in zip(_flat(before._asdict()), _flat(ra._asdict()), strict=True):
        assert torch.equal(x, y)  # the rollout is unchanged
    changed = any(not torch.equal(x, y) for x, y in zip(_params(_agent(algo, env)), _params(a),
                                                        strict=True))  # fmt: skip
    assert changed


@pytest.mark.parametrize("algo", ["leo", "dual-leo-ppo"])
def test_checkpoint_round_trip_gives_the_same_actions_and_next_update(algo: str) -> None:
    env = Gridworld(8, size=6, reset_ratio=4, seed=0)
    agent = _agent(algo, env)
    agent.learn(_rollout(agent, env))
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    other = _agent(algo, env, seed=5)
    other.load_state_dict(torch.load(buf, weights_only=True))
    obs = env.reset(3)
    goal = torch.arange(8) % len(env.goals)
    gen_a, gen_b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(agent.act(obs, goal, epsilon=0.1, generator=gen_a),
                       other.act(obs, goal, epsilon=0.1, generator=gen_b))  # fmt: skip
    r = _rollout(_agent(algo, env, seed=9), env, seed=4)  # act() above drew on its own generator
    agent.learn(r)
    other.learn(r)
    for x, y in zip(_params(agent), _params(other), strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("mode", ["random", "positive", "mixed", "all"])
def test_hindsight_goals_follow_the_mode(mode: str) -> None:
    env = Gridworld(8, size=6, reset_ratio=4, seed=0)
    agent = _agent("pqn", env)
    r = _rollout(agent, env)
    q = QConfig(num_steps=8, her_mode=mode, her_num_goals=4, her_random_fraction=0.5)  # type: ignore[arg-type]
    uvfa = UVFALearner(env.layout, env.goals, 4, NET, q, total_rollouts=1, batch=64,
                       generator=torch.Generator().manual_seed(0), device=torch.device("cpu"),
                       her=mode)  # type: ignore[arg-type]  # fmt: skip
    hg = uvfa.relabel(r)
    g = len(env.goals)
    if mode == "all":
        assert hg.shape == (8, 8, g)
        assert torch.equal(hg[3, 2], torch.arange(g))
        return
    assert hg.shape == (8, 8, 4)
    positive = env.goals.achieved(r.obs.reshape(64, -1)).view(8, 8, g).gather(-1, hg)
    if mode == "positive":
        assert bool(positive.all())  # the Gridworld's state always achieves its own cell
    if mode == "random":
        assert bool(r.seen[hg].all())
    if mode == "mixed":
        assert bool(r.seen[hg[..., :2]].all())
        assert bool(positive[..., 2:].all())


def test_goal_test_scores_a_goal_reached_in_the_first_episode() -> None:
    env = Gridworld(8, size=4, wall_threshold=0.0, reset_ratio=1, max_steps=60)
    g = len(env.goals)
    test_env = Gridworld(g, size=4, wall_threshold=0.0, reset_ratio=g, max_steps=60)

    class GoLeft:  # always LEFT: reaches (2, 1) and (2, 0) from the centre (2, 2) only
        def act(self, obs, goal, *, epsilon, generator):
            return torch.zeros(obs.shape[0], dtype=torch.int64)

    rates = evaluate_goals(GoLeft(), test_env, cfg=EvalConfig(max_steps=10), seed=0)  # type: ignore[arg-type]
    reached = {env.goals.names[i] for i in torch.nonzero(rates).flatten().tolist()}
    assert reached == {"position/2-0", "position/2-1", "position/2-2"}
