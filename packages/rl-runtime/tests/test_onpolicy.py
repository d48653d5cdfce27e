"""rl_runtime.onpolicy: rollouts with autoresets, targets, schedule, learning, exact resume.

The SIGKILL test runs ``main`` below in a subprocess.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import pytest
import torch
from rl_buffers import RolloutBatch, io
from rl_runtime.config import RunConfig
from rl_runtime.onpolicy import OnPolicyConfig, PolicyStep, train_on_policy
from rl_runtime.run import open_run
from rl_runtime.seeding import episode_seed
from rl_runtime.testing import (
    CHAIN_ID,
    FixedLengthEnv,
    TinyPPOAgent,
    TinyPPOAgentConfig,
    TorchChainEnv,
)
from rl_runtime.vecenv import ArrayVecEnv, make_gym_vector_env

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    env: str = "toy"
    run: RunConfig = RunConfig()  # noqa: RUF009 - frozen


def _run_cfg(root: Path, name: str, total: int, **kw: Any) -> ToyConfig:
    base = dict(
        total_steps=total, eval_every=10_000, eval_episodes=0, log_every=8,
        checkpoint_every=10_000, keep_checkpoints=50, root=root, name=name,
        device="cpu", torch_threads=1, tensorboard=False, quiet=True,
    )  # fmt: skip
    base.update(kw)
    return ToyConfig(run=RunConfig(**base))  # type: ignore[arg-type]


class ConstantAgent:
    """Action 0, log-prob 0, V = ``value`` everywhere; records every batch it is given."""

    def __init__(self, value: float) -> None:
        self.v = value
        self.batches: list[RolloutBatch] = []

    def act(self, obs: torch.Tensor, *, explore: bool) -> torch.Tensor:
        return torch.zeros(obs.shape[:-1], dtype=torch.int64)

    def policy_step(self, obs: torch.Tensor) -> PolicyStep:
        n = obs.shape[0]
        return PolicyStep(torch.zeros(n, dtype=torch.int64), torch.zeros(n), self.value(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.full((obs.shape[0],), self.v)

    def update(self, batch: RolloutBatch) -> dict[str, torch.Tensor]:
        self.batches.append(batch)
        return {"critic_loss": batch.returns.mean()}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


def _lines(run: Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]


@pytest.mark.parametrize("truncate", [False, True])
def test_rollout_targets_and_autoresets_by_hand(tmp_path: Path, truncate: bool) -> None:
    # Two envs, episodes of exactly 3 steps with reward 1; rollouts of T = 4 steps, so episodes
    # straddle rollouts. gamma = 0.5, lambda = 1 (Monte Carlo within the rollout), V = 2.
    cfg = OnPolicyConfig(
        num_envs=2, num_steps=4, gamma=0.5, gae_lambda=1.0, update_epochs=1, num_minibatches=1
    )
    agent = ConstantAgent(2.0)
    envs = make_gym_vector_env(lambda: FixedLengthEnv(3, 1.0, truncate), 2)
    with open_run("toy", _run_cfg(tmp_path, f"t{truncate}", total=16)) as run:
        train_on_policy(run, envs=envs, eval_env=None, agent=agent, cfg=cfg)
    envs.close()
    assert len(agent.batches) == 2  # 16 steps = 2 rollouts of 2 x 4, one minibatch each
    # The flattened batch is permuted: recover time order through the observation (steps left
    # 3, 2, 1 at the three steps of an episode) and rollout position.
    v, g = 2.0, 0.5
    # Rollout 1, in each env: steps with 3, 2, 1 steps left (the episode ends at t = 2), then
    # the first step of the next episode (t = 3), bootstrapped from V(obs after it) = 2.
    end = g * v if truncate else 0.0  # truncation bootstraps from V(final obs); termination not
    g3 = 1 + end
    g2 = 1 + g * g3
    g1 = 1 + g * g2
    batch = agent.batches[0]
    returns = {
        left: sorted(batch.returns[batch.obs[:, 0] == left].tolist()) for left in (3.0, 2.0, 1.0)
    }
    assert returns[3.0] == pytest.approx(sorted([g1, g1, 1 + g * v, 1 + g * v]))
    assert returns[2.0] == pytest.approx([g2, g2])
    assert returns[1.0] == pytest.approx([g3, g3])
    # Every episode lasts 3 steps with return 3; 8 steps per env complete 2 episodes each.
    lines = _lines(run.dir)
    episodes = [e for e in lines if "train/episode_return" in e]
    assert all(e["train/episode_return"] == 3.0 for e in episodes)
    assert all(e["train/episode_length"] == 3.0 for e in episodes)
    assert lines[-1]["train/episodes"] == 2 * (16 // 2 // 3)


def test_rollout_returns_match_a_hand_computation_exactly(tmp_path: Path) -> None:
    # One env, T = 6, episodes of 3 steps ending in a truncation; V = 2, gamma = 0.5,
    # lambda = 0.5. Steps t = 0..5 have steps-left 3, 2, 1, 3, 2, 1; the truncations at t = 2
    # and t = 5 bootstrap from V(final obs) = 2; nothing crosses an episode boundary.
    cfg = OnPolicyConfig(
        num_envs=1, num_steps=6, gamma=0.5, gae_lambda=0.5, update_epochs=1, num_minibatches=1
    )
    agent = ConstantAgent(2.0)
    envs = make_gym_vector_env(lambda: FixedLengthEnv(3, 1.0, truncate=True), 1)
    with open_run("toy", _run_cfg(tmp_path, "hand", total=6)) as run:
        train_on_policy(run, envs=envs, eval_env=None, agent=agent, cfg=cfg)
    envs.close()
    (batch,) = agent.batches
    # delta = r + gamma * V' - V = 1 + 1 - 2 = 0 at every step (V' = 2 also at truncations),
    # so every advantage is 0 and every return is V = 2.
    assert batch.advantages.tolist() == [0.0] * 6
    assert batch.returns.tolist() == [2.0] * 6
    # With terminations instead, the last step's delta is 1 - 2 = -1 and the advantages are
    # -1 (t=2), 0.5 * 0.5 * -1 = -0.25 (t=1), -0.0625 (t=0).
    agent = ConstantAgent(2.0)
    envs = make_gym_vector_env(lambda: FixedLengthEnv(3, 1.0, truncate=False), 1)
    with open_run("toy", _run_cfg(tmp_path, "hand-term", total=6)) as run:
        train_on_policy(run, envs=envs, eval_env=None, agent=agent, cfg=cfg)
    envs.close()
    (batch,) = agent.batches
    by_obs = {float(o): float(a) for o, a in zip(batch.obs[:, 0], batch.advantages, strict=True)}
    assert by_obs == pytest.approx({3.0: -0.0625, 2.0: -0.25, 1.0: -1.0})


def test_episode_seeds_are_per_env_and_per_episode(tmp_path: Path) -> None:
    seen: list[int | None] = []

    class Recorder(FixedLengthEnv):
        def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
            seen.append(seed)
            return super().reset(seed=seed, options=options)

    cfg = OnPolicyConfig(num_envs=2, num_steps=3, update_epochs=1, num_minibatches=1)
    envs = make_gym_vector_env(lambda: Recorder(3), 2)
    with open_run("toy", _run_cfg(tmp_path, "seeds", total=12)) as run:
        train_on_policy(run, envs=envs, eval_env=None, agent=ConstantAgent(0.0), cfg=cfg)
    envs.close()
    expected = [episode_seed(0, f"train/{i}", 0) for i in range(2)]
    for k in (1, 2):  # 6 steps per env: episodes end at steps 3 and 6
        expected += [episode_seed(0, f"train/{i}", k) for i in range(2)]
    assert seen == expected
    assert len(set(seen)) == len(seen)


def main(
    root: str,
    name: str,
    total: int,
    kind: Literal["gym", "array"] = "gym",
    delay: float = 0.0,
    mode: Literal["sync", "async"] = "sync",
) -> Path:
    """A small TinyPPO run on the chain: gymnasium vector env (replay) or torch array env."""
    cfg = OnPolicyConfig(num_envs=3, num_steps=16, update_epochs=2, num_minibatches=2)
    run_cfg = _run_cfg(
        Path(root), name, total, log_every=48, eval_every=96, eval_episodes=3,
        checkpoint_every=48,
    )  # fmt: skip
    with open_run(f"ppo-{kind}", run_cfg) as run:
        if kind == "gym":
            envs: Any = make_gym_vector_env(CHAIN_ID, 3, mode=mode)
            eval_env: Any = gym.make(CHAIN_ID)
        else:
            envs = ArrayVecEnv(TorchChainEnv(3))
            eval_env = ArrayVecEnv(TorchChainEnv(2))
        agent = TinyPPOAgent(TinyPPOAgentConfig(), 6, 2, device=run.device, seed=5)
        if delay:
            update = agent.update

            def slow_update(batch: RolloutBatch) -> dict[str, torch.Tensor]:
                time.sleep(delay)  # lets the parent kill the child mid-run
                return update(batch)

            agent.update = slow_update  # type: ignore[method-assign]
        try:
            train_on_policy(run, envs=envs, eval_env=eval_env, agent=agent, cfg=cfg)
        finally:
            envs.close()
        return run.dir


def test_logs_and_evaluates_on_rollout_boundaries(tmp_path: Path) -> None:
    run = main(str(tmp_path), "a", 200)  # 5 rollouts of 48 steps: 240 steps
    lines = _lines(run)
    assert [e["step"] for e in lines if "train/updates" in e] == [48, 96, 144, 192, 240]
    assert [e["train/updates"] for e in lines if "train/updates" in e] == [4, 8, 12, 16, 20]
    assert [e["step"] for e in lines if "eval/return" in e] == [0, 96, 192, 240]
    keys = set().union(*lines)
    for key in ("train/actor_loss", "train/critic_loss", "train/entropy", "train/approx_kl"):
        assert key in keys
    state = io.load(run / "checkpoints" / "ckpt-000000000240.pt")
    assert state["counters"]["rollouts"] == 5
    assert len(state["episodes"]["actions"]) == 3  # replay material for each env


@pytest.mark.parametrize("kind", ["gym", "array"])
def test_same_seed_gives_bitwise_equal_runs(tmp_path: Path, kind: str, same_state) -> None:
    a = main(str(tmp_path), "a", 96, kind=kind)  # type: ignore[arg-type]
    b = main(str(tmp_path), "b", 96, kind=kind)  # type: ignore[arg-type]
    final = "checkpoints/ckpt-000000000096.pt"
    same_state(io.load(a / final)["agent"], io.load(b / final)["agent"], "agent")
    assert _lines(a) == _lines(b)


def test_async_and_sync_vector_envs_give_the_same_run(tmp_path: Path, same_state) -> None:
    a = main(str(tmp_path), "sync", 96, mode="sync")
    b = main(str(tmp_path), "async", 96, mode="async")
    final = "checkpoints/ckpt-000000000096.pt"
    same_state(io.load(a / final)["agent"], io.load(b / final)["agent"], "agent")
    assert _lines(a) == _lines(b)


@pytest.mark.parametrize("kind", ["gym", "array"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, kind: str, same_state, kill_at_checkpoint
) -> None:
    total = 480
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); from test_onpolicy import main; "
        f"main({str(tmp_path)!r}, 'killed', {total}, kind={kind!r}, delay=0.01)"
    )
    killed = tmp_path / f"ppo-{kind}" / "toy" / "0-killed"
    latest = killed / "checkpoints" / "latest"
    kill_at_checkpoint([sys.executable, "-c", code], latest, tmp_path / "child.log")
    written = sorted((killed / "checkpoints").glob("ckpt-*.pt"))
    assert written
    assert written[-1].name != f"ckpt-{total:012d}.pt", "killed after it finished"

    assert main(str(tmp_path), "killed", total, kind=kind) == killed  # type: ignore[arg-type]
    reference = main(str(tmp_path), "reference", total, kind=kind)  # type: ignore[arg-type]
    final = f"checkpoints/ckpt-{total:012d}.pt"
    a, b = io.load(killed / final), io.load(reference / final)
    for key in ("agent", "counters", "episodes", "env_state", "generator", "rng", "obs"):
        same_state(a[key], b[key], key)
    assert _lines(killed) == _lines(reference)
    if kind == "gym":  # a replay really happened: episodes were cut by the kill
        assert "replayed the current episodes" in (killed / "run.log").read_text()


def test_ppo_learns_the_chain_through_the_loop(tmp_path: Path) -> None:
    # A random policy reaches the end of the 6-state chain in 45% of its 20-step episodes
    # (return 0.45 on average); greedy PPO after 4,800 steps reaches it nearly always.
    run = main(str(tmp_path), "learn", 4_800, kind="array")
    evals = [e["eval/return"] for e in _lines(run) if "eval/return" in e]
    assert evals[-1] >= 0.9, evals


def test_bad_schedules_are_refused_by_flag() -> None:
    with pytest.raises(ValueError, match=r"--loop.num-minibatches .3. must divide"):
        OnPolicyConfig(num_envs=2, num_steps=5, num_minibatches=3)
    with pytest.raises(ValueError, match=r"--loop.gae-lambda must be a finite number in \[0, 1\]"):
        OnPolicyConfig(gae_lambda=1.5)
    with pytest.raises(ValueError, match=r"--loop.num-envs must be an int >= 1"):
        OnPolicyConfig(num_envs=0)
