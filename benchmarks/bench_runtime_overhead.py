"""What the runtime costs on top of the work it orchestrates.

Two measurements, both with the tiny test agent on the chain (a worst case for relative
overhead: the agent's step is as cheap as a torch agent gets):

1. Steps per second of ``train_off_policy`` (metrics.jsonl, TensorBoard, checkpoints, progress
   bar disabled, no evaluation) against a bare loop in this process doing the same work (act,
   env step, buffer add, update every 2nd step) and nothing else; the ratio is the overhead.
2. Seconds to write and to verify-and-read a checkpoint holding a replay buffer of a MuJoCo-sized
   shape (obs 17, action 6) for a few capacities, through ``rl_buffers.io`` (fsync included).

Usage: ``uv run --no-sync python benchmarks/bench_runtime_overhead.py [--out F]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import torch
from rl_buffers import ReplayBuffer, TransitionSpec, io
from rl_runtime.config import RunConfig
from rl_runtime.evaluation import obs_to_tensor, to_env_action
from rl_runtime.offpolicy import OffPolicyConfig, SeededReplay, train_off_policy
from rl_runtime.run import open_run
from rl_runtime.seeding import episode_seed, seed_everything
from rl_runtime.testing import CHAIN_ID, TinyQAgent, TinyQAgentConfig, TinyQConfig

THREADS = 1
STEPS = 4_000
LOOP = OffPolicyConfig(
    batch_size=32, buffer_capacity=10_000, random_steps=100, learning_starts=100, update_every=2
)


def _replay(device: torch.device) -> SeededReplay:
    spec = TransitionSpec.discrete((6,), 2)
    buffer = ReplayBuffer(spec=spec, capacity=LOOP.buffer_capacity, device=device)
    return SeededReplay(buffer, seed=1)


def bare_loop(steps: int) -> float:
    """The same work as the runtime's loop, without it. Returns steps per second."""
    seed_everything(0)
    device = torch.device("cpu")
    with gym.make(CHAIN_ID) as env:
        agent = TinyQAgent(TinyQAgentConfig(), 6, 2, device=device, seed=0)
        replay = _replay(device)
        env.action_space.seed(0)
        obs, _ = env.reset(seed=episode_seed(0, "train", 0))
        episode = 0
        start = time.perf_counter()
        for step in range(1, steps + 1):
            if step <= LOOP.random_steps:
                action = env.action_space.sample()
            else:
                with torch.no_grad():
                    action = to_env_action(
                        agent.act(obs_to_tensor(obs, device), explore=True), env.action_space
                    )
            next_obs, reward, terminated, truncated, _ = env.step(action)
            replay.add(
                obs_to_tensor(obs, device),
                torch.as_tensor(action),
                torch.tensor(float(reward)),
                obs_to_tensor(next_obs, device),
                torch.tensor(terminated),
                torch.tensor(truncated),
            )
            if terminated or truncated:
                episode += 1
                obs, _ = env.reset(seed=episode_seed(0, "train", episode))
            else:
                obs = next_obs
            if step >= LOOP.learning_starts and step % LOOP.update_every == 0:
                agent.update(replay.buffer.sample(LOOP.batch_size, replay.generator))
        return steps / (time.perf_counter() - start)


def runtime_loop(steps: int, root: Path, *, tensorboard: bool) -> float:
    """``train_off_policy`` on the same work. Returns steps per second of the loop alone."""
    cfg = TinyQConfig(
        loop=LOOP,
        run=RunConfig(
            total_steps=steps,
            eval_episodes=0,
            log_every=250,
            checkpoint_every=1_000,
            root=root,
            name=f"tb-{tensorboard}",
            tensorboard=tensorboard,
            quiet=True,
            device="cpu",
        ),
    )
    with open_run("tiny-q", cfg) as run, gym.make(cfg.env) as env, gym.make(cfg.env) as eval_env:
        agent = TinyQAgent(cfg.agent, 6, 2, device=run.device, seed=0)
        replay = _replay(run.device)
        start = time.perf_counter()
        train_off_policy(
            run,
            env=env,
            eval_env=eval_env,
            agent=agent,
            buffer=replay,
            sample=lambda: replay.buffer.sample(LOOP.batch_size, replay.generator),
            cfg=LOOP,
        )
        return steps / (time.perf_counter() - start)


def checkpoint_cost(capacity: int, directory: Path) -> dict[str, float]:
    """Write and read back a checkpoint holding a full HalfCheetah-sized ReplayBuffer (17, 6)."""
    buffer = ReplayBuffer(spec=TransitionSpec.continuous((17,), 6), capacity=capacity)
    obs = torch.randn(capacity + 1, 17)
    done = torch.zeros(capacity, dtype=torch.bool)
    done[999::1000] = True  # 1000-step episodes, truncated as in MuJoCo
    buffer.extend(obs[:-1], torch.rand(capacity, 6) * 2 - 1, torch.randn(capacity), obs[1:],
                  torch.zeros(capacity, dtype=torch.bool), done)  # fmt: skip
    state = {"buffer": buffer.state_dict()}
    path = directory / f"ckpt-{capacity}.pt"
    start = time.perf_counter()
    io.save(state, path)
    written = time.perf_counter()
    io.load(path)
    read = time.perf_counter()
    size = path.stat().st_size
    path.unlink()
    return {
        "capacity": capacity,
        "megabytes": size / 1e6,
        "save_s": written - start,
        "load_s": read - written,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="What the runtime costs on top of its work.")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/runtime_overhead.json")
    )
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bare_loop(500)  # warm-up: imports, first-call costs
        runtime_loop(500, root / "warm", tensorboard=True)
        # Interleaved repeats, median of each: the machine may be shared, and drifts.
        runs: dict[str, list[float]] = {"bare": [], "runtime": [], "runtime_tb": []}
        for r in range(args.repeats):
            runs["bare"].append(bare_loop(args.steps))
            runs["runtime"].append(runtime_loop(args.steps, root / f"r{r}", tensorboard=False))
            runs["runtime_tb"].append(runtime_loop(args.steps, root / f"r{r}", tensorboard=True))
        bare, plain, with_tb = (
            statistics.median(runs[k]) for k in ("bare", "runtime", "runtime_tb")
        )
        ckpt = [checkpoint_cost(c, root) for c in (10_000, 100_000, 1_000_000)]

    result = {
        "benchmark": "rl_train runtime overhead",
        "torch_threads": THREADS,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "steps": args.steps,
        "repeats": args.repeats,
        "steps_per_s_of_each_repeat": runs,
        "bare_loop_steps_per_s": bare,
        "runtime_steps_per_s": plain,
        "runtime_with_tensorboard_steps_per_s": with_tb,
        "runtime_over_bare_time_ratio": bare / plain,
        "runtime_with_tensorboard_over_bare_time_ratio": bare / with_tb,
        "checkpoint_with_mujoco_sized_buffer": ckpt,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_write(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
