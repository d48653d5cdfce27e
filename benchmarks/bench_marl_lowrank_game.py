"""Critic classes on the paper's contextual game: TD3+BC return against N and dataset size, and
DR-AC's exact CCE gap on the discrete game.

``--part td3bc``: for every N in ``--agents``, dataset size in ``--sizes``, critic class in
``--critics`` and seed in ``--seeds``: a dataset of ``--behaviour`` (uniform by default) is
generated from the seed, decentralised TD3+BC trains ``--steps`` updates, and the final policy
is evaluated exactly (expected reward, distance to the nearer coordinated optimum, Nash gap) on
1,024 fresh contexts. The paper's claim: the IR-2 critic above the joint-action critic and above
IR-1 / independent critics.

``--part drac``: for every N, critic class, regulariser weight and seed: DR-AC on the discrete
game (actions -1 and +1) from a ``biased`` dataset, ``--critic-steps`` least-squares steps then
``--iterations`` no-regret iterations; the exact CCE gap of the mixture of iterates, of the last
iterate, and of the behaviour policy.

Every run is in this process, one torch thread, the GEMM path fixed. The JSON records the CPU
(lscpu), torch threads, the load average at start and end, the command and the budget; a PNG
plots the table.

    uv run --no-sync python benchmarks/bench_marl_lowrank_game.py --part td3bc
    uv run --no-sync python benchmarks/bench_marl_lowrank_game.py --part drac
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
from pathlib import Path
from typing import Any

import torch
from marl_lowrank.agent import TD3BCAgent
from marl_lowrank.config import CriticConfig, DRACConfig, GameConfig, TD3BCConfig
from marl_lowrank.data import MultiAgentBatches
from marl_lowrank.drac import DRACAgent, behaviour_estimate
from marl_lowrank.game import (
    action_values,
    evaluate_actions,
    expected_rewards,
    make_game_dataset,
    mixture_cce_gap,
    mixture_return,
)
from rl_buffers.io import atomic_write
from rl_nets import set_gemm_path

RESULTS = Path(__file__).parent / "results"


def td3bc_run(n: int, size: int, kind: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    game = GameConfig(num_agents=n, dataset_size=size, behaviour=args.behaviour, sigma=args.sigma)
    data = make_game_dataset(game, seed=1000 + seed)
    cfg = TD3BCConfig(
        critic=CriticConfig(kind=kind, hidden_sizes=(args.hidden,), num_critics=1),  # pyright: ignore[reportArgumentType]
        discount=0.0,
        batch_size=args.batch_size,
        actor_lr=args.lr,
        critic_lr=args.lr,
    )
    agent = TD3BCAgent(cfg, n, game.context_dim, 1, seed=seed)
    batches = MultiAgentBatches(data, batch_size=args.batch_size, seed=seed, device="cpu")
    t = time.perf_counter()
    for _ in range(args.steps):
        agent.update(batches.sample())
    seconds = time.perf_counter() - t
    result = evaluate_actions(game, agent.act, contexts=1024, seed=99)
    behaviour = float(expected_rewards(data.action[..., 0]).mean())
    return {**result, "behaviour_return": behaviour, "train_seconds": seconds}


def drac_run(n: int, kind: str, coef: float, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    game = GameConfig(
        num_agents=n,
        num_actions=2,
        dataset_size=args.drac_size,
        behaviour="biased",
        sigma=args.sigma,
    )
    data = make_game_dataset(game, seed=1000 + seed)
    cfg = DRACConfig(
        critic=CriticConfig(kind=kind, hidden_sizes=(args.hidden,), num_critics=1),  # pyright: ignore[reportArgumentType]
        critic_steps=args.critic_steps,
        iterations=args.iterations,
        reg_coef=coef,
        critic_lr=3e-3,
    )
    mu = behaviour_estimate(data, 1, 2, cfg.behaviour_smoothing)
    agent = DRACAgent(cfg, n, 1, 2, mu, seed=seed)
    batches = MultiAgentBatches(data, batch_size=cfg.batch_size, seed=seed, device="cpu")
    t = time.perf_counter()
    for _ in range(agent.total_updates):
        agent.update(batches.sample())
    seconds = time.perf_counter() - t
    values = action_values(2)
    iterates = agent.iterates()
    return {
        "cce_gap": mixture_cce_gap(iterates, values),
        "last_iterate_cce_gap": mixture_cce_gap(iterates[-1:], values),
        "return": mixture_return(iterates, values),
        "behaviour_cce_gap": mixture_cce_gap(mu[None], values),
        "behaviour_return": mixture_return(mu[None], values),
        "train_seconds": seconds,
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in runs[0] if isinstance(runs[0][k], float)]
    out: dict[str, Any] = {}
    for k in keys:
        vals = [r[k] for r in runs]
        out[k] = {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals), "runs": vals}
    return out


def _plot(cases: list[dict[str, Any]], part: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if part == "td3bc":
        sizes = sorted({c["dataset_size"] for c in cases})
        fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False)
        for ax, size in zip(axes[0], sizes, strict=True):
            for kind in sorted({c["critic"] for c in cases}):
                rows = sorted(
                    (c for c in cases if c["critic"] == kind and c["dataset_size"] == size),
                    key=lambda c: c["num_agents"],
                )
                xs = [c["num_agents"] for c in rows]
                ys = [c["summary"]["return"]["mean"] for c in rows]
                es = [c["summary"]["return"]["std"] for c in rows]
                ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=kind)
            ax.set_title(f"TD3+BC, {size} samples")
            ax.set_xlabel("agents N")
            ax.set_ylabel("expected return (optimum 1)")
            ax.legend()
    else:
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = [f"N={c['num_agents']}\n{c['critic']}\nλ={c['reg_coef']}" for c in cases]
        ys = [c["summary"]["cce_gap"]["mean"] for c in cases]
        es = [c["summary"]["cce_gap"]["std"] for c in cases]
        ax.bar(range(len(cases)), ys, yerr=es, capsize=3)
        ax.set_xticks(range(len(cases)), labels, fontsize=6)
        ax.set_ylabel("exact CCE gap of the mixture")
        ax.set_title("DR-AC on the discrete game (biased data)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--part", choices=["td3bc", "drac"], required=True)
    parser.add_argument("--agents", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--critics", nargs="+", default=["ir1", "ir2", "joint", "independent"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--behaviour", default="uniform")
    parser.add_argument("--sigma", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--reg-coefs", type=float, nargs="+", default=[0.0, 0.01])
    parser.add_argument("--critic-steps", type=int, default=500)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--drac-size", type=int, default=5000)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)
    set_gemm_path("default")
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    cases: list[dict[str, Any]] = []
    if args.part == "td3bc":
        for n in args.agents:
            for size in args.sizes:
                for kind in args.critics:
                    runs = [td3bc_run(n, size, kind, s, args) for s in args.seeds]
                    case = {"num_agents": n, "dataset_size": size, "critic": kind}
                    case["summary"] = _summary(runs)
                    cases.append(case)
                    m = case["summary"]
                    print(
                        f"N={n:3d} size={size:6d} {kind:11s} return {m['return']['mean']:.3f} ± "
                        f"{m['return']['std']:.3f}  distance {m['optimum_distance']['mean']:.3f}  "
                        f"({m['train_seconds']['mean']:.1f} s/run)",
                        flush=True,
                    )
    else:
        for n in args.agents:
            for coef in args.reg_coefs:
                for kind in args.critics:
                    runs = [drac_run(n, kind, coef, s, args) for s in args.seeds]
                    case = {"num_agents": n, "reg_coef": coef, "critic": kind}
                    case["summary"] = _summary(runs)
                    cases.append(case)
                    m = case["summary"]
                    print(
                        f"N={n:3d} λ={coef:<5g} {kind:11s} cce_gap {m['cce_gap']['mean']:.4f} ± "
                        f"{m['cce_gap']['std']:.4f}  last {m['last_iterate_cce_gap']['mean']:.3f}  "
                        f"behaviour {m['behaviour_cce_gap']['mean']:.3f}  return "
                        f"{m['return']['mean']:.3f} ({m['train_seconds']['mean']:.1f} s/run)",
                        flush=True,
                    )
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next(
        (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if "Model name" in ln), ""
    )
    name = f"marl_lowrank_{args.part}{'_' + args.tag if args.tag else ''}"
    out = {
        "benchmark": name,
        "command": " ".join(["python", *sys.argv]),
        "paper_claim": "IR-2 critics above the joint-action critic and above IR-1 / independent "
        "critics offline (Zhan et al. 2025, Section 6; N = 50)",
        "settings": vars(args),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": model or platform.processor(),
        "load_average_start": list(load_start),
        "load_average_end": list(os.getloadavg()),
        "wall_seconds": time.perf_counter() - t0,
        "cases": cases,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    with atomic_write(RESULTS / f"{name}.json", "w") as f:
        json.dump(out, f, indent=2)
    _plot(cases, args.part, RESULTS / f"{name}.png")
    print(f"wrote {RESULTS / name}.json and .png in {out['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
