"""LEO speed: one LEO update against naive all-goals relabelling, and the whole training loop on
Craftax-Classic against the env alone.

1. ``update``: the paper's network (width 1024, 4 dense layers, a 32-feature conv on the map) at
   Craftax-Classic's (136 goals, 17 actions, 1562 one-hot inputs) and Craftax's (512 goals, 43
   actions, 9637 inputs) sizes. One batch of ``B`` transitions; LEO trains every goal on it with
   one forward/backward of ``B`` observations (plus one bootstrap forward); the naive baseline is
   ``pqn-her --q.her-mode all``: each transition relabelled to every goal, a goal-conditioned
   (UVFA) network of the same width run on the ``B * (1 + G)`` (transition, goal) pairs for the
   targets and the update. Both through the package's own learners (``learn`` on a one-step
   rollout, one epoch, one minibatch), timed in the same process; ratio = naive / LEO.
2. ``loop``: ``rl-train leo --env craftax-classic`` (LEO, width 1024) with N envs for a few
   rollouts: its time/sps after the first log (JIT compiles excluded), against the env alone
   (``CraftaxGoalEnv.step`` with random actions, same N, after its compile).

    uv run --no-sync python benchmarks/bench_leo_speed.py            # results/leo_speed.json
    uv run --no-sync python benchmarks/bench_leo_speed.py --quick    # small widths, smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from leo.agent import LEOLearner, Rollout, UVFALearner
from leo.config import NetworkConfig, QConfig
from leo.goals import CRAFTAX_CLASSIC_LAYOUT, CRAFTAX_LAYOUT, craftax_classic_goals, craftax_goals
from rl_buffers.io import atomic_write

RESULTS = Path(__file__).parent / "results" / "leo_speed.json"


def machine(threads: int) -> dict[str, Any]:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if "Model name" in ln), ""
        )
    except (OSError, subprocess.CalledProcessError):
        model = platform.processor()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "device": "cpu",
        "load_average_at_start": os.getloadavg(),
        "command": " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
    }


def _rollout(layout_dim: int, goals: Any, b: int, num_actions: int, seed: int) -> Rollout:
    """A one-step rollout of ``b`` envs with random one-hot-like observations and achievements."""
    gen = torch.Generator().manual_seed(seed)
    obs = (torch.rand(1, b, layout_dim, generator=gen) < 0.05).float()
    g = len(goals)
    return Rollout(
        obs=obs,
        actions=torch.randint(0, num_actions, (1, b), generator=gen),
        goals=torch.randint(0, g, (1, b), generator=gen),
        achieved=torch.rand(1, b, g, generator=gen) < 0.05,
        done=torch.zeros(1, b, dtype=torch.bool),
        last_obs=(torch.rand(b, layout_dim, generator=gen) < 0.05).float(),
        last_goals=torch.randint(0, g, (b,), generator=gen),
        seen=torch.ones(g, dtype=torch.bool),
        extras={
            "leo_max_q": torch.rand(1, b, g, generator=gen),
            "uvfa_max_q": torch.rand(1, b, generator=gen),
        },
    )


def time_update(env: str, b: int, width: int, repeats: int) -> dict[str, Any]:
    layout, goals, num_actions = (
        (CRAFTAX_CLASSIC_LAYOUT, craftax_classic_goals(), 17)
        if env == "craftax-classic"
        else (CRAFTAX_LAYOUT, craftax_goals(), 43)
    )
    g = len(goals)
    net = NetworkConfig(width=width)
    dev = torch.device("cpu")
    leo_q = QConfig(num_epochs=1, minibatch_size=b)
    pairs = b * (1 + g)
    her_q = QConfig(num_epochs=1, minibatch_size=pairs, her_mode="all")
    gen = torch.Generator().manual_seed(0)
    common = {"total_rollouts": 10, "generator": gen, "device": dev}
    leo = LEOLearner(layout, goals, num_actions, net, leo_q, batch=b, **common)  # type: ignore[arg-type]
    naive = UVFALearner(layout, goals, num_actions, net, her_q, batch=b, her="all", **common)  # type: ignore[arg-type]
    r = _rollout(layout.dim, goals, b, num_actions, 1)
    out: dict[str, Any] = {"env": env, "goals": g, "actions": num_actions, "obs_dim": layout.dim,
                           "batch_transitions": b, "naive_pairs": pairs, "width": width}  # fmt: skip
    for name, learner, reps in (
        ("leo", leo, repeats),
        ("naive_all_goals", naive, max(1, repeats // 3)),
    ):
        learner.learn(r)  # warm-up (allocator, first-call costs)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            learner.learn(r)
            times.append(time.perf_counter() - t0)
        out[f"{name}_seconds"] = statistics.median(times)
        out[f"{name}_repeats"] = reps
        print(
            f"{env} B={b}: {name} {statistics.median(times):.4f} s (median of {reps})", flush=True
        )
    out["speedup"] = out["naive_all_goals_seconds"] / out["leo_seconds"]
    out["load_average_after"] = os.getloadavg()
    print(f"{env}: LEO is {out['speedup']:.1f}x faster per update", flush=True)
    return out


def time_loop(num_envs: int, width: int, steps: int, threads: int) -> dict[str, Any]:
    from leo.envs import CraftaxGoalEnv
    from rl_train.methods.leo import METHOD

    env = CraftaxGoalEnv("craftax-classic", num_envs, reset_ratio=16, seed=0)
    env.reset(0)
    gen = torch.Generator().manual_seed(0)
    acts = torch.randint(0, env.num_actions, (200, num_envs), generator=gen)
    env.step(acts[0])  # compile
    t0 = time.perf_counter()
    for a in acts[1:]:
        env.step(a)
    env_sps = 199 * num_envs / (time.perf_counter() - t0)
    del env
    rollout = 32 * num_envs
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--env", "craftax-classic", "--envs.num-envs", str(num_envs),
                "--network.width", str(width), "--total-steps", str(steps),
                "--log-every", str(rollout), "--eval-episodes", "0",
                "--checkpoint-every", str(10 * steps), "--checkpoint-minutes", "0",
                "--root", tmp, "--name", "bench", "--no-tensorboard", "--quiet",
                "--torch-threads", str(threads), "--device", "cpu"]  # fmt: skip
        cfg = METHOD.parse(args)
        t0 = time.perf_counter()
        run = METHOD.train(cfg)
        wall = time.perf_counter() - t0
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    sps = [x["time/sps"] for x in lines if "time/sps" in x][1:]  # after the compile
    loop_sps = statistics.median(sps)
    print(f"loop: LEO {loop_sps:.0f} steps/s, env alone {env_sps:.0f} steps/s", flush=True)
    return {
        "env": "craftax-classic",
        "num_envs": num_envs,
        "num_steps": 32,
        "width": width,
        "total_steps": steps,
        "wall_seconds_incl_compile": wall,
        "loop_steps_per_second": loop_sps,
        "loop_sps_per_rollout": sps,
        "env_only_steps_per_second": env_sps,
        "loop_over_env": loop_sps / env_sps,
        "load_average_after": os.getloadavg(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="width 128, B 8, short loop")
    p.add_argument("--batch", type=int, default=16, help="transitions per update (both methods)")
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--loop-envs", type=int, default=64)
    p.add_argument("--skip-loop", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    width = 128 if a.quick else 1024
    b = 8 if a.quick else a.batch
    result: dict[str, Any] = {"machine": machine(a.threads), "paper_speedup": ">250x",
                              "update": [time_update(env, b, width, a.repeats)
                                         for env in ("craftax-classic", "craftax")]}  # fmt: skip
    if not a.skip_loop:
        steps = 4 * 32 * a.loop_envs if a.quick else 12 * 32 * a.loop_envs
        result["loop"] = time_loop(a.loop_envs, width, steps, a.threads)
    with atomic_write(a.out, "w") as f:
        f.write(json.dumps(result, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
