"""Update time of the vectorised IR-2 critic against Python loops over agents and over pairs.

One critic update (forward over a batch of joint actions, backward, Adam step) of the IR-2
critic ``Q^i = sum_j f(s, a_i, a_j)`` for N agents, three ways, in the same process on the same
parameters and batch:

* ``vectorised``: ``IR2Critic.forward``, all N x N pairs as one broadcast tensor;
* ``agent_loop``: ``IR2Critic.forward_looped``, a Python loop over the N agents (each call
  vectorised over j);
* ``pair_loop``: a Python loop over the N^2 ordered pairs, one term-network call each (the
  literal sum; only up to ``--pair-loop-max-n`` agents, it grows as N^2).

Each is timed as the median of ``--repeats`` updates after a warm-up update. The JSON records
the CPU (lscpu), torch threads, the load average and the command.

    uv run --no-sync python benchmarks/bench_marl_lowrank_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from marl_lowrank.config import CriticConfig
from marl_lowrank.networks import IR2Critic
from rl_buffers.io import atomic_write
from rl_nets import set_gemm_path
from torch import Tensor

OUT = Path(__file__).parent / "results" / "marl_lowrank_speed.json"


def _pair_loop(critic: IR2Critic, obs: Tensor, action: Tensor) -> Tensor:
    rows = torch.cat([critic._with_id(obs), action], dim=-1)  # pyright: ignore[reportPrivateUsage]
    n = critic.num_agents
    values = []
    for i in range(n):
        total = rows.new_zeros(rows.shape[0])
        for j in range(n):
            total = total + critic.term.diag(rows[:, i], rows[:, j])
        values.append(total)
    return torch.stack(values, dim=1)


def _time_update(
    critic: IR2Critic,
    forward: Callable[[Tensor, Tensor], Tensor],
    obs: Tensor,
    action: Tensor,
    reward: Tensor,
    repeats: int,
) -> float:
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3)

    def update() -> None:
        loss = (forward(obs, action) - reward).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    update()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        update()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[5, 10, 25, 50])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, nargs="+", default=[32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pair-loop-max-n", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_gemm_path("default")
    load_start = os.getloadavg()
    cases: list[dict[str, Any]] = []
    for n in args.agents:
        torch.manual_seed(0)
        critic = IR2Critic(n, 2, 1, CriticConfig(hidden_sizes=tuple(args.hidden)))
        obs = torch.rand(args.batch_size, n, 2) * 2 - 1
        action = torch.rand(args.batch_size, n, 1) * 2 - 1
        reward = action[..., 0] * action[..., 0].mean(dim=-1, keepdim=True)
        with torch.no_grad():  # the three are the same function
            ref = critic(obs, action)
            torch.testing.assert_close(critic.forward_looped(obs, action), ref)
            torch.testing.assert_close(_pair_loop(critic, obs, action), ref)
        case: dict[str, Any] = {"num_agents": n, "pairs": n * n}
        case["vectorised_s"] = _time_update(critic, critic, obs, action, reward, args.repeats)
        case["agent_loop_s"] = _time_update(
            critic, critic.forward_looped, obs, action, reward, args.repeats
        )
        if n <= args.pair_loop_max_n:
            loop = _time_update(
                critic,
                lambda o, a, c=critic: _pair_loop(c, o, a),
                obs,
                action,
                reward,
                max(1, args.repeats // 2),
            )
            case["pair_loop_s"] = loop
            case["speedup_vs_pair_loop"] = loop / case["vectorised_s"]
        case["speedup_vs_agent_loop"] = case["agent_loop_s"] / case["vectorised_s"]
        cases.append(case)
        print(
            f"N={n:3d}: vectorised {case['vectorised_s'] * 1e3:8.2f} ms | agent loop "
            f"{case['agent_loop_s'] * 1e3:8.2f} ms (x{case['speedup_vs_agent_loop']:.1f})"
            + (
                f" | pair loop {case['pair_loop_s'] * 1e3:9.1f} ms "
                f"(x{case['speedup_vs_pair_loop']:.1f})"
                if "pair_loop_s" in case
                else ""
            )
        )
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next(
        (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if "Model name" in ln), ""
    )
    out = {
        "benchmark": "marl_lowrank_speed",
        "command": " ".join(["python", *sys.argv]),
        "what": "one IR-2 critic update (forward, backward, Adam) per timing, median",
        "batch_size": args.batch_size,
        "hidden_sizes": args.hidden,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": model or platform.processor(),
        "load_average_start": list(load_start),
        "load_average_end": list(os.getloadavg()),
        "target": "vectorised at least 20x faster than a loop at N = 50",
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
