"""The vectorised on-policy loop: its overhead, and sync against async vector envs.

1. Overhead. ``train_on_policy`` with a no-op agent (zero actions, zero values, an update that
   does nothing) against a bare loop in the same process over the same envs (the same
   :class:`GymVectorEnv`, with the same per-episode reset seeds) and the same no-op actions,
   nothing else. The loop's extra work is the episode bookkeeping, the rollout storage, GAE, the
   minibatch permutations, the metric log and one final checkpoint. The ratio is
   (loop seconds) / (bare seconds) for the same number of environment steps; target at most
   1.10. For reference, the adapter itself is timed against gymnasium's own vector env in its
   SAME_STEP autoreset mode, which resets without a seed per episode (``raw_s``).
2. Throughput. Environment steps per second of :class:`rl_runtime.vecenv.GymVectorEnv` (sync and
   async) stepping uniformly random actions on CartPole-v1 and a MuJoCo task (HalfCheetah-v5) at
   N = 8, 32, 128, on this machine; the faster mode per task and N is reported, and the default
   of ``OnPolicyConfig.vector_mode`` is chosen from it.

Medians over ``--repeats`` runs; each configuration runs ``--seconds`` of stepping at least.
Usage: ``uv run --no-sync python benchmarks/bench_onpolicy.py [--out F] [--quick]``
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from rl_buffers import RolloutBatch
from rl_runtime.config import RunConfig
from rl_runtime.onpolicy import OnPolicyConfig, PolicyStep, train_on_policy, train_stream
from rl_runtime.run import open_run
from rl_runtime.seeding import episode_seed
from rl_runtime.vecenv import make_gym_vector_env

THREADS = 1


class NoOpAgent:
    """Zero actions (discrete) or zero vectors (continuous), zero values, no learning."""

    def __init__(self, action_space: gym.Space[Any]) -> None:
        self.shape = tuple(action_space.shape or ())
        self.dtype = torch.int64 if isinstance(action_space, gym.spaces.Discrete) else torch.float32

    def act(self, obs: torch.Tensor, *, explore: bool) -> torch.Tensor:
        return torch.zeros((obs.shape[0], *self.shape), dtype=self.dtype)

    def policy_step(self, obs: torch.Tensor) -> PolicyStep:
        n = obs.shape[0]
        return PolicyStep(self.act(obs, explore=True), torch.zeros(n), torch.zeros(n))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(obs.shape[0])

    def update(self, batch: RolloutBatch) -> dict[str, torch.Tensor]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class _Cfg:
    env: str
    run: RunConfig


def loop_seconds(env_id: str, num_envs: int, steps: int, root: Path) -> float:
    """Seconds of ``train_on_policy`` (no evaluation, no TensorBoard) for ``steps`` env steps."""
    cfg = OnPolicyConfig(num_envs=num_envs, num_steps=128, update_epochs=4, num_minibatches=4)
    run_cfg = RunConfig(
        total_steps=steps, eval_episodes=0, log_every=cfg.rollout_steps,
        checkpoint_every=10**9, checkpoint_minutes=0, root=root, name=f"{env_id}-{num_envs}-{time.time_ns()}",
        device="cpu", torch_threads=THREADS, tensorboard=False, quiet=True,
    )  # fmt: skip
    envs = make_gym_vector_env(env_id, num_envs)
    agent = NoOpAgent(envs.single_action_space)
    with open_run("bench-onpolicy", _Cfg(env_id, run_cfg)) as run:
        start = time.perf_counter()
        train_on_policy(run, envs=envs, eval_env=None, agent=agent, cfg=cfg)
        seconds = time.perf_counter() - start
    envs.close()
    return seconds


def bare_seconds(env_id: str, num_envs: int, steps: int) -> float:
    """Seconds of a bare loop over the same envs, seeds and actions for ``steps`` env steps."""
    envs = make_gym_vector_env(env_id, num_envs)
    agent = NoOpAgent(envs.single_action_space)
    count = [0] * num_envs

    def reset_seed(i: int) -> int:
        count[i] += 1
        return episode_seed(0, train_stream(i), count[i])

    obs = envs.reset([episode_seed(0, train_stream(i), 0) for i in range(num_envs)])
    vector_steps = -(-steps // num_envs)
    start = time.perf_counter()
    for _ in range(vector_steps):
        obs = envs.step(agent.act(obs, explore=True), reset_seed).obs
    seconds = time.perf_counter() - start
    envs.close()
    return seconds


def raw_seconds(env_id: str, num_envs: int, steps: int) -> float:
    """Seconds of a bare loop over gymnasium's SAME_STEP vector env for ``steps`` env steps."""
    vec = gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id)] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP
    )
    agent = NoOpAgent(vec.single_action_space)
    obs, _ = vec.reset(seed=0)
    vector_steps = -(-steps // num_envs)
    start = time.perf_counter()
    for _ in range(vector_steps):
        o = torch.tensor(obs)
        actions = agent.act(o, explore=True).numpy()
        obs, *_ = vec.step(actions)
    seconds = time.perf_counter() - start
    vec.close()
    return seconds


def throughput(env_id: str, num_envs: int, mode: str, seconds: float, repeats: int) -> list[float]:
    """Env steps per second of GymVectorEnv stepping random actions, ``repeats`` windows of about
    ``seconds`` each on one vector env (building an async one starts N processes: done once)."""
    envs = make_gym_vector_env(env_id, num_envs, mode=mode)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    space = envs.single_action_space
    envs.reset(list(range(num_envs)))

    def actions() -> torch.Tensor:
        if isinstance(space, gym.spaces.Discrete):
            return torch.as_tensor(rng.integers(0, int(space.n), num_envs))
        assert isinstance(space, gym.spaces.Box)
        return torch.as_tensor(
            rng.uniform(space.low, space.high, (num_envs, *space.shape)).astype(np.float32)
        )

    for _ in range(3):  # warm-up
        envs.step(actions(), lambda i: i)
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            envs.step(actions(), lambda i: i)
            n += 1
        rates.append(n * num_envs / (time.perf_counter() - start))
    envs.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onpolicy.json"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--overhead-steps", type=int, default=32_768)
    parser.add_argument("--quick", action="store_true", help="one repeat, N = 8 only")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    repeats = 1 if args.quick else args.repeats
    sizes = [8] if args.quick else [8, 32, 128]
    tasks = ["CartPole-v1", "HalfCheetah-v5"]
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_model": next(
                (
                    line.split(":", 1)[1].strip()
                    for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")
                ),
                "",
            )
            if Path("/proc/cpuinfo").exists()
            else "",
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "gymnasium": gym.__version__,
            "torch_threads": THREADS,
            "load_average_before": os.getloadavg(),
        },
        "overhead": [],
        "throughput": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for env_id, num_envs in itertools.product(tasks, sizes):
            steps = args.overhead_steps
            loop, bare, raw = [], [], []
            for _ in range(repeats):  # interleaved, so drift in load hits all alike
                raw.append(raw_seconds(env_id, num_envs, steps))
                bare.append(bare_seconds(env_id, num_envs, steps))
                loop.append(loop_seconds(env_id, num_envs, steps, Path(tmp)))
            row = {
                "env": env_id,
                "num_envs": num_envs,
                "env_steps": steps,
                "bare_s": statistics.median(bare),
                "loop_s": statistics.median(loop),
                "ratio": statistics.median(loop) / statistics.median(bare),
                "raw_s": statistics.median(raw),
                "adapter_ratio": statistics.median(bare) / statistics.median(raw),
                "raw_s_all": raw,
                "bare_s_all": bare,
                "loop_s_all": loop,
            }
            results["overhead"].append(row)
            print(
                f"overhead {env_id} N={num_envs}: bare {row['bare_s']:.2f} s, loop "
                f"{row['loop_s']:.2f} s, ratio {row['ratio']:.3f}; gymnasium raw {row['raw_s']:.2f} s",
                flush=True,
            )
    for env_id in tasks:
        for num_envs in sizes:
            row: dict[str, Any] = {"env": env_id, "num_envs": num_envs}
            for mode in ("sync", "async"):
                rates = throughput(env_id, num_envs, mode, args.seconds, repeats)
                row[f"{mode}_sps"] = statistics.median(rates)
                row[f"{mode}_sps_all"] = rates
            row["faster"] = "async" if row["async_sps"] > row["sync_sps"] else "sync"
            results["throughput"].append(row)
            print(
                f"{env_id} N={num_envs}: sync {row['sync_sps']:.0f} steps/s, async "
                f"{row['async_sps']:.0f} steps/s -> {row['faster']}",
                flush=True,
            )
    results["machine"]["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
