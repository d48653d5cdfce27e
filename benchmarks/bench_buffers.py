"""rl-buffers speed: our samplers vs a full-buffer cumsum + searchsorted sampler (official MR.Q/DR.Q style).

HalfCheetah-sized data (obs 17 float32, action 6 float32), a buffer filled to capacity (1M by
default) with 1000-step truncated episodes, batch 256, torch on 1 thread, CPU.

Baseline, written here to mirror how the official MR.Q/DR.Q buffers work (no code copied): flat
float32 priority and validity-mask tensors over all slots; every prioritised draw computes
``cumsum(priority * mask)`` over the whole buffer and ``searchsorted``s uniform draws into it;
uniform draws take ``mask.nonzero()`` each call; DR.Q's faded variant multiplies every slot's
fade weight by ``fade`` on every add and clamps them into the weights at each draw.

Cases (each times our candidate against the baseline in alternating rounds, in one process, and
reports medians and ratio = candidate rate / baseline rate, > 1 means ours is faster):

* ``draw``: 256 indices from the sampler.
* ``nstep``: a full 3-step batch of 256 (indices + gathers + returns).
* ``rl_step``: one env step of an MR.Q/DR.Q loop: ``add`` one transition, draw a 3-step batch,
  ``update_priority`` with its TD errors. This is where DR.Q's per-add rescan shows.

File cost (``io`` in the results): seconds to save and to load a full 1M-transition HalfCheetah
buffer (uniform sampler) and an MR.Q-sized checkpoint (the HalfCheetah agent's networks, targets
and AdamW moments, RNG states, config, counters) with ``rl_buffers.io``. Loading is timed with
the safe loader (``weights_only=True`` plus the allowlist) against main's loader (same checks,
then full pickle) in alternating rounds; the writer did not change.

    uv run --no-sync python benchmarks/bench_buffers.py           # writes benchmarks/results/buffers.json
    uv run --no-sync python benchmarks/bench_buffers.py --quick   # 100k capacity, fewer rounds
    uv run --no-sync python benchmarks/bench_buffers.py --io-only # only the file cost, merged in
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rl_buffers import FadedLAPSampler, LAPSampler, ReplayBuffer, TransitionSpec, UniformSampler
from rl_buffers import io as rio
from rl_buffers.io import atomic_write
from rl_buffers.samplers import Sampler
from torch import Tensor

RESULTS = Path(__file__).parent / "results" / "buffers.json"
OBS_DIM, ACT_DIM, BATCH, N_STEP, GAMMA, EPISODE = 17, 6, 256, 3, 0.99, 1000


class FullScanBaseline:
    """Official-style buffer: flat tensors, O(capacity) work per draw (and per add when faded)."""

    def __init__(self, capacity: int, kind: str, fade: float = 0.9999, floor: float = 0.1) -> None:
        self.capacity, self.kind, self.fade, self.floor = capacity, kind, fade, floor
        self.obs = torch.zeros(capacity, OBS_DIM)
        self.next_obs = torch.zeros(capacity, OBS_DIM)
        self.action = torch.zeros(capacity, ACT_DIM)
        self.reward = torch.zeros(capacity)
        self.not_done = torch.ones(capacity)
        self.mask = torch.zeros(capacity)  # 1 where a start has a complete window
        self.priority = torch.ones(capacity)
        self.forget = torch.ones(capacity)
        self.max_priority = 1.0
        self.ptr = 0
        self.horizon = torch.arange(N_STEP)
        self.gammas = GAMMA ** torch.arange(N_STEP, dtype=torch.float32)

    def fill(
        self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, trunc: np.ndarray
    ) -> None:
        n = reward.shape[0]
        self.obs[:n] = torch.from_numpy(obs[:-1])
        self.next_obs[:n] = torch.from_numpy(obs[1:])
        self.action[:n] = torch.from_numpy(action)
        self.reward[:n] = torch.from_numpy(reward)
        # Starts whose window would cross a truncation (or the write head) are masked out.
        t = np.arange(n) % EPISODE
        self.mask[:n] = torch.from_numpy((t <= EPISODE - N_STEP).astype(np.float32))
        self.mask[n - N_STEP + 1 :] = 0
        if self.kind == "faded":  # ages 0..n-1 as if added one by one
            self.forget[:n] = torch.from_numpy(
                self.fade ** (n - 1 - np.arange(n, dtype=np.float64))
            ).float()
        self.ptr = n % self.capacity

    def add(self, obs: Tensor, action: Tensor, reward: float, next_obs: Tensor) -> None:
        i = self.ptr
        self.obs[i], self.action[i], self.next_obs[i] = obs, action, next_obs
        self.reward[i], self.not_done[i] = reward, 1.0
        self.priority[i] = self.max_priority
        self.mask[(i - N_STEP + 1) % self.capacity] = 1.0
        self.mask[i] = 0.0
        if self.kind == "faded":  # DR.Q: every slot's fade weight decays on every add
            self.forget.mul_(self.fade)
            self.forget[i] = 1.0
        self.ptr = (i + 1) % self.capacity

    def draw(self, g: torch.Generator) -> Tensor:
        if self.kind == "uniform":
            valid = self.mask.nonzero().reshape(-1)
            return valid[torch.randint(valid.numel(), (BATCH,), generator=g)]
        w = self.priority * self.mask
        if self.kind == "faded":
            w = w * self.forget.clamp(self.floor, 1.0)
        csum = torch.cumsum(w, 0)
        return torch.searchsorted(csum, torch.rand(BATCH, generator=g) * csum[-1]).clamp_(
            max=self.capacity - 1
        )

    def nstep(self, g: torch.Generator) -> tuple[Tensor, ...]:
        idx = self.draw(g)
        win = (idx[:, None] + self.horizon) % self.capacity  # (B, n)
        not_done = torch.cumprod(self.not_done[win], 1)
        mask = torch.cat([torch.ones(BATCH, 1), not_done[:, :-1]], 1)
        returns = (self.reward[win] * mask * self.gammas).sum(1)
        return (
            self.obs[idx],
            self.action[idx],
            returns,
            not_done[:, -1],
            self.next_obs[win[:, -1]],
            idx,
        )

    def update_priority(self, idx: Tensor, td: Tensor) -> None:
        p = td.abs().clamp(min=1.0).pow(0.4)
        self.priority[idx] = p
        self.max_priority = max(self.max_priority, float(p.max()))


def episodes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n transitions of 1000-step truncated episodes: obs (n+1, 17), action, reward, truncated."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n + 1, OBS_DIM)).astype(np.float32)
    action = rng.uniform(-1, 1, size=(n, ACT_DIM)).astype(np.float32)
    reward = rng.normal(size=n).astype(np.float32)
    trunc = np.zeros(n, dtype=bool)
    trunc[EPISODE - 1 :: EPISODE] = True
    return obs, action, reward, trunc


def ours(capacity: int, sampler: Sampler, data: tuple[np.ndarray, ...]) -> ReplayBuffer:
    obs, action, reward, trunc = data
    buf = ReplayBuffer(
        spec=TransitionSpec.continuous((OBS_DIM,), ACT_DIM),
        capacity=capacity,
        horizon=N_STEP,
        sampler=sampler,
    )
    # Episodes are truncated, so the obs after a truncation may be anything: reuse the stream.
    buf.extend(obs[:-1], action, reward, obs[1:], np.zeros(reward.shape[0], dtype=bool), trunc)
    return buf


def set_random_priorities(buf: ReplayBuffer, base: FullScanBaseline, seed: int) -> None:
    """The same LAP priorities on both: |td| ~ |N(0, 3)| on every slot."""
    td = torch.from_numpy(np.abs(np.random.default_rng(seed).normal(0, 3, buf.capacity)))
    idx = torch.arange(buf.capacity)
    buf.update_priority(idx, td)
    base.update_priority(idx, td.float())


def timed(fn: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def compare(
    baseline: Callable[[], object], candidate: Callable[[], object], rounds: int, repeats: int
) -> dict[str, float]:
    """Median seconds per call of each over alternating rounds (after warm-up)."""
    for fn in (baseline, candidate):
        fn()
        fn()
    base: list[float] = []
    cand: list[float] = []
    for _ in range(rounds):
        base.append(timed(baseline, repeats))
        cand.append(timed(candidate, repeats))
    b, c = statistics.median(base), statistics.median(cand)
    return {
        "baseline_ms": round(b * 1e3, 4),
        "ours_ms": round(c * 1e3, 4),
        "ratio": round(b / c, 2),
    }


def run(capacity: int, rounds: int, repeats: int) -> list[dict[str, Any]]:
    data = episodes(capacity, seed=0)
    stream = episodes(10_000, seed=1)  # transitions for the rl_step case
    cases: list[dict[str, Any]] = []
    samplers: dict[str, Callable[[], Sampler]] = {
        "uniform": lambda: UniformSampler(capacity),
        "lap": lambda: LAPSampler(capacity),
        "faded": lambda: FadedLAPSampler(capacity),
        "lap-scan": lambda: LAPSampler(capacity, backend="scan"),
        "faded-scan": lambda: FadedLAPSampler(capacity, backend="scan"),
    }
    for name, make in samplers.items():
        kind = name.removesuffix("-scan")
        t0 = time.perf_counter()
        buf = ours(capacity, make(), data)
        fill_s = time.perf_counter() - t0
        base = FullScanBaseline(capacity, kind)
        base.fill(*data)
        if kind != "uniform":
            set_random_priorities(buf, base, seed=2)
        g_ours, g_base = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
        step = {"i": 0}  # shared position in the stream; ours advances it

        def rl_ours(
            buf: ReplayBuffer = buf, g: torch.Generator = g_ours, step: dict[str, int] = step
        ) -> None:
            i = step["i"] % 10_000
            step["i"] += 1
            obs, action, reward, trunc = stream
            # Continue the stream: episodes truncated every 1000 steps and at the wrap-around, so
            # each new episode may start anywhere (the filled data also ended truncated).
            buf.add(
                obs[i], action[i], float(reward[i]), obs[i + 1], False, bool(trunc[i]) or i == 9_999
            )
            b = buf.sample_nstep(BATCH, g, n=N_STEP, gamma=GAMMA)
            buf.update_priority(b.indices, b.returns)

        def rl_base(
            base: FullScanBaseline = base, g: torch.Generator = g_base, step: dict[str, int] = step
        ) -> None:
            i = step["i"] % 10_000
            obs, action, reward, _ = stream
            base.add(
                torch.from_numpy(obs[i]),
                torch.from_numpy(action[i]),
                float(reward[i]),
                torch.from_numpy(obs[i + 1]),
            )
            b = base.nstep(g)
            base.update_priority(b[-1], b[2])

        for case, fb, fo in (
            (
                "draw",
                lambda base=base, g=g_base: base.draw(g),
                lambda buf=buf, g=g_ours: buf.sampler.sample(BATCH, g),
            ),
            (
                "nstep",
                lambda base=base, g=g_base: base.nstep(g),
                lambda buf=buf, g=g_ours: buf.sample_nstep(BATCH, g, n=N_STEP, gamma=GAMMA),
            ),
            ("rl_step", rl_base, rl_ours),
        ):
            r = compare(fb, fo, rounds, repeats)
            unit = "steps/s" if case == "rl_step" else "samples/s"
            per = 1 if case == "rl_step" else BATCH
            row = {
                "sampler": name,
                "case": case,
                **r,
                f"baseline_{unit.replace('/', '_per_')}": round(per / (r["baseline_ms"] / 1e3)),
                f"ours_{unit.replace('/', '_per_')}": round(per / (r["ours_ms"] / 1e3)),
            }
            cases.append(row)
            print(
                f"{name:>10} {case:>8}: ours {r['ours_ms']:8.3f} ms  baseline {r['baseline_ms']:8.3f} ms"
                f"  ratio {r['ratio']:7.2f}x"
            )
        cases.append(
            {"sampler": name, "case": "fill", "extend_s": round(fill_s, 2), "transitions": capacity}
        )
    return cases


def load_like_main(path: Path) -> Any:
    """``rl_buffers.io.load`` as it was on main (1f13e63): the same header and checksum checks,
    then full pickle (``weights_only=False``). The baseline of the load timings."""
    data = path.read_bytes()
    magic, version, length, digest = struct.unpack_from("<4sIQ32s", data)
    payload = data[48:]
    if (magic, version, length) != (b"RLWK", 1, len(payload)):
        raise ValueError(f"{path}: bad header")
    if hashlib.sha256(payload).digest() != digest:
        raise ValueError(f"{path}: checksum mismatch")
    return torch.load(BytesIO(payload), map_location="cpu", weights_only=False)


def mrq_checkpoint() -> dict[str, Any]:
    """What an MR.Q run on HalfCheetah checkpoints besides its buffer (the runtime's entries)."""
    from gymnasium.spaces import Box
    from mrq_drq.agent import MRQAgent
    from mrq_drq.config import gym as mrq_gym
    from mrq_drq.envs import check_spaces
    from rl_runtime.seeding import capture_rng

    cfg = mrq_gym("HalfCheetah-v5")
    spec = check_spaces(Box(-np.inf, np.inf, (OBS_DIM,)), Box(-1.0, 1.0, (ACT_DIM,)))
    agent = MRQAgent(cfg, spec, device="cpu")
    # One step with zero gradients, so that AdamW holds its moments as in any real checkpoint.
    for net, opt in (
        (agent.encoder, agent.encoder_optimizer),
        (agent.value, agent.value_optimizer),
        (agent.policy, agent.policy_optimizer),
    ):
        for param in net.parameters():
            param.grad = torch.zeros_like(param)
        opt.step()
    return {
        "format": 1,
        "method": "mrq-drq",
        "step": 1_000_000,
        "config": cfg.to_dict(),
        "rng": capture_rng(),
        "agent": agent.state_dict(),
        "counters": {"episode": np.int64(1_000), "returns": np.zeros(1_000, np.float32)},
    }


def io_cost(capacity: int, rounds: int) -> dict[str, Any]:
    """Save and load seconds (medians over alternating rounds) of a full buffer and of an MR.Q
    checkpoint: load through the safe loader (ours) and main's full-pickle loader (baseline)."""
    load_before = os.getloadavg()
    buffer = ours(capacity, UniformSampler(capacity), episodes(capacity, seed=0))
    payloads = {"buffer": {"buffer": buffer.state_dict()}, "mrq_checkpoint": mrq_checkpoint()}
    del buffer
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        for name, state in payloads.items():
            path = Path(tmp) / f"{name}.pt"
            rio.save(state, path)  # warm-up (page cache, first-call costs)
            rio.load(path)
            load_like_main(path)
            save_s: list[float] = []
            ours_s: list[float] = []
            base_s: list[float] = []
            for _ in range(rounds):
                start = time.perf_counter()
                rio.save(state, path)
                save_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                load_like_main(path)
                base_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                rio.load(path)
                ours_s.append(time.perf_counter() - start)
            base, cand = statistics.median(base_s), statistics.median(ours_s)
            row = {
                "payload": name,
                "megabytes": round(path.stat().st_size / 1e6, 2),
                "save_s": round(statistics.median(save_s), 3),
                "load_before_s": round(base, 3),
                "load_after_s": round(cand, 3),
                "load_ratio": round(base / cand, 2),
            }
            rows.append(row)
            print(
                f"{name:>15}: {row['megabytes']:8.2f} MB  save {row['save_s']:.3f} s  load: main "
                f"{row['load_before_s']:.3f} s, safe {row['load_after_s']:.3f} s "
                f"(ratio {row['load_ratio']:.2f}x)"
            )
    return {
        "capacity": capacity,
        "rounds": rounds,
        "save": "rl_buffers.io.save (unchanged: torch.save payload, header, fsync, rename)",
        "load_before": "main's rl_buffers.io.load: checksum, then torch.load(weights_only=False)",
        "load_after": "rl_buffers.io.load: checksum, then torch.load(weights_only=True) with the "
        "allowlist",
        "load_ratio": "load_before_s / load_after_s (medians); > 1 means the safe loader is faster",
        "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
        "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "cases": rows,
    }


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (platform.processor() is empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="100k capacity, fewer rounds (smoke run)"
    )
    parser.add_argument(
        "--io-only",
        action="store_true",
        help="only the save/load timing, merged into the existing results file",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    capacity = 100_000 if args.quick else 1_000_000
    rounds, repeats = (3, 10) if args.quick else (9, 30)
    io_rounds = 2 if args.quick else 5
    start = time.perf_counter()
    if args.io_only:
        result: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
        result["io"] = io_cost(capacity, io_rounds)
    else:
        cases = run(capacity, rounds, repeats)
        result = {
            "benchmark": "rl-buffers",
            "torch": torch.__version__,
            "numpy": np.__version__,
            "threads": torch.get_num_threads(),
            "device": "cpu",
            "machine": platform.machine(),
            "processor": cpu_model(),
            "quick": args.quick,
            "capacity": capacity,
            "batch_size": BATCH,
            "obs_dim": OBS_DIM,
            "action_dim": ACT_DIM,
            "n_step": N_STEP,
            "rounds": rounds,
            "repeats": repeats,
            "ratio": "baseline_ms / ours_ms (medians over alternating rounds); > 1 means ours is "
            "faster",
            "baseline": "flat tensors; cumsum(priority*mask) + searchsorted over all slots per draw "
            "(uniform: mask.nonzero() per draw); faded: all fade weights *= 0.9999 per add",
            "wall_s": 0.0,
            "cases": cases,
            "io": io_cost(capacity, io_rounds),
        }
        result["wall_s"] = round(time.perf_counter() - start, 1)
    if not args.quick or args.out != RESULTS:
        with atomic_write(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.out} ({round(time.perf_counter() - start, 1)} s)")


if __name__ == "__main__":
    main()
