"""MR.Q / DR.Q CPU speed at the paper's architecture on HalfCheetah-v5.

Measures, per torch thread count:

* ms per encoder update (batch 256, 5-step unroll) and ms per value + policy update, for
  - ``baseline``: a plain-torch re-statement of the official MR.Q update written for this
    benchmark (separate Q networks, ``F.layer_norm`` + activation, argmin two-hot, the policy
    loss back-propagated into every network it touches, default AdamW, per-step action
    embedding), i.e. the official algorithm's computation in eager PyTorch;
  - ``ours_eager``: :class:`mrq_drq.MRQAgent` without ``torch.compile``;
  - ``ours_compiled``: :class:`mrq_drq.MRQAgent` with ``compile=True``;
  both with their dense layers on the GEMM path :mod:`rl_nets.gemm` picks (``"auto"``: oneDNN
  or torch's default, per product, by timing the network's own shapes once), and again as
  ``ours_eager_todays_gemm`` / ``ours_compiled_todays_gemm`` with every product forced onto
  torch's default path (``addmm``/``mm``, MKL), which is what ``fast_gemm_speedup`` compares;
* env steps/s of the full step schedule (act + env step + buffer add + sampling + a target sync
  with 250 encoder updates every 250 steps + one value/policy update per step): measured
  directly for the fastest of ours over ``--loop-steps`` steps (``loop_measured``), and, for
  every variant, computed as ``1000 / (encoder_ms + rl_ms + overhead_ms)`` from the interleaved
  update timings plus the per-step overhead (act, env, add, sampling, priority update) measured
  in that loop (``env_steps_per_s_from_components``: the fair comparison, since the loop itself
  cannot be interleaved with a baseline loop and other processes load the machine unevenly).

Timings alternate baseline and candidates in rounds so that load from other processes hits both
alike; medians are reported, wall-clock and process CPU time. With ``--official PATH`` (a checkout
of facebookresearch/MRQ; not part of this project, its licence is CC BY-NC 4.0) the official
agent itself is timed in the same rounds (``official``: its ``train_encoder``/``train_rl`` on
batches its own buffer sampled) and in its own ``train()`` loop (``official_loop_measured``), and
``speedup_vs_official_same_process`` gives the ratios. The official numbers quoted in the brief
(measured with its own code on another machine) are kept for reference; ratios against them mix
machines, ratios against ``official`` or ``baseline`` do not.

    uv run --no-sync python benchmarks/bench_mrq_speed.py                 # threads 1 and 2
    uv run --no-sync python benchmarks/bench_mrq_speed.py --quick         # smoke run
    uv run --no-sync python benchmarks/bench_mrq_speed.py --official ../MRQ   # and the official

Each full run ends with the 1-thread ceiling (``ceiling_1_thread``, also alone with ``--ceiling``):
the updates' matrix-product FLOPs over the fastest GEMM rate any path torch offers reaches on this
machine at the updates' shapes (MKL ``addmm``/``mm`` and oneDNN, forward and both gradient
layouts), naming the path that reached it. The JSON records the CPU model, family/model and vector
flags, torch's BLAS and oneDNN, the threads, the load average before and after every thread count,
the exact command, and the GEMM path decisions.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time

# A private inductor cache: compiled kernels of other processes sharing /tmp cannot race with (or
# be truncated under) this run. Set before torch is imported.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="inductor_bench_mrq_"))
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from mrq_drq import MRQAgent, MRQConfig, check_spaces, drq, gym, make_buffer, make_env
from rl_buffers import NStepBatch, ReplayBuffer, SubTrajectoryBatch
from rl_buffers.io import atomic_write
from rl_nets import gemm
from rl_runtime.evaluation import to_env_action
from torch import Tensor, nn

RESULTS = Path(__file__).parent / "results" / "mrq_speed.json"

# Official MR.Q on CPU (HalfCheetah, batch 256), from the project's research notes / brief.
OFFICIAL = {
    1: {"encoder_ms": 155.0, "rl_ms": 116.0, "env_steps_per_s": 3.7},
    2: {"encoder_ms": 80.0, "rl_ms": 69.0, "env_steps_per_s": 6.6},
}


# --------------------------------------------------------------------------------------------------
# Baseline: the official algorithm's update, restated in plain eager torch.
# --------------------------------------------------------------------------------------------------


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("relu"))
            nn.init.zeros_(m.bias)


class _ThreeLayer(nn.Module):
    """Linear → LN → act → Linear → LN → act → Linear."""

    def __init__(self, d_in: int, d_out: int, hidden: int, act: Callable[[Tensor], Tensor]):
        super().__init__()
        self.l1, self.l2, self.l3 = (
            nn.Linear(d_in, hidden),
            nn.Linear(hidden, hidden),
            nn.Linear(hidden, d_out),
        )
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(F.layer_norm(self.l1(x), (self.l1.out_features,)))
        x = self.act(F.layer_norm(self.l2(x), (self.l2.out_features,)))
        return self.l3(x)


class _BaselineEncoder(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, bins: int = 65, h: int = 512):
        super().__init__()
        self.zs_net = _ThreeLayer(obs_dim, 512, h, F.elu)
        self.za = nn.Linear(action_dim, 256)
        self.zsa = _ThreeLayer(512 + 256, 512, h, F.elu)
        self.head = nn.Linear(512, 1 + 512 + bins)
        _init(self)

    def zs(self, obs: Tensor) -> Tensor:
        return F.elu(F.layer_norm(self.zs_net(obs), (512,)))

    def forward(self, zs: Tensor, action: Tensor) -> Tensor:
        return self.zsa(torch.cat([zs, F.elu(self.za(action))], 1))

    def model(self, zs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.head(self.forward(zs, action))
        return out[:, :1], out[:, 1:513], out[:, 513:]


class _BaselineQ(nn.Module):
    def __init__(self, h: int = 512):
        super().__init__()
        self.body = _ThreeLayer(512, h, h, F.elu)
        self.out = nn.Linear(h, 1)
        _init(self)

    def forward(self, zsa: Tensor) -> Tensor:
        return self.out(F.elu(F.layer_norm(self.body(zsa), (self.out.in_features,))))


class _BaselineValue(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q1, self.q2 = _BaselineQ(), _BaselineQ()

    def forward(self, zsa: Tensor) -> Tensor:
        return torch.cat([self.q1(zsa), self.q2(zsa)], 1)


class _BaselinePolicy(nn.Module):
    def __init__(self, action_dim: int) -> None:
        super().__init__()
        self.net = _ThreeLayer(512, action_dim, 512, F.relu)
        _init(self)

    def forward(self, zs: Tensor) -> tuple[Tensor, Tensor]:
        pre = self.net(zs)
        return torch.tanh(pre), pre


class BaselineMRQ:
    """The official MR.Q update, restated (continuous actions, vector observations)."""

    def __init__(self, obs_dim: int, action_dim: int, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.encoder = _BaselineEncoder(obs_dim, action_dim)
        self.value = _BaselineValue()
        self.policy = _BaselinePolicy(action_dim)
        self.encoder_target = copy.deepcopy(self.encoder)
        self.value_target = copy.deepcopy(self.value)
        self.policy_target = copy.deepcopy(self.policy)
        self.enc_opt = torch.optim.AdamW(self.encoder.parameters(), lr=1e-4, weight_decay=1e-4)
        self.value_opt = torch.optim.AdamW(self.value.parameters(), lr=3e-4, weight_decay=1e-4)
        self.policy_opt = torch.optim.AdamW(self.policy.parameters(), lr=3e-4, weight_decay=1e-4)
        grid = torch.linspace(-10, 10, 65)
        self.bins = torch.sign(grid) * (grid.abs().exp() - 1)
        self.reward_scale, self.target_reward_scale = 1.0, 1.0

    def _two_hot(self, x: Tensor) -> Tensor:  # x: (B, 1)
        diff = x - self.bins.reshape(1, -1)
        diff = diff - 1e8 * (torch.sign(diff) - 1)
        ind = torch.argmin(diff, 1, keepdim=True)
        lower = self.bins[ind]
        upper = self.bins[(ind + 1).clamp(0, 64)]
        weight = (x - lower) / (upper - lower)
        out = torch.zeros(x.shape[0], 65)
        out.scatter_(1, ind, 1 - weight)
        out.scatter_(1, (ind + 1).clamp(0, 64), weight)
        return out

    def update_encoder(self, obs: Tensor, action: Tensor, reward: Tensor, not_done: Tensor) -> None:
        # obs (B, H+1, D), action (B, H, A), reward / not_done (B, H)
        batch, horizon = reward.shape
        with torch.no_grad():
            target = self.encoder_target.zs(obs[:, 1:].reshape(batch * horizon, -1)).reshape(
                batch, horizon, -1
            )
        zs = self.encoder.zs(obs[:, 0])
        prev_not_done: Tensor | float = 1.0
        loss: Tensor | float = 0.0
        for i in range(horizon):
            done, zs, logits = self.encoder.model(zs, action[:, i])
            dyn = (F.mse_loss(zs, target[:, i], reduction="none") * prev_not_done).mean()
            ce = -(self._two_hot(reward[:, i : i + 1]) * F.log_softmax(logits, -1)).sum(
                -1, keepdim=True
            )
            rew = (ce * prev_not_done).mean()
            done_l = (
                F.mse_loss(done, 1.0 - not_done[:, i : i + 1], reduction="none") * prev_not_done
            ).mean()
            loss = loss + dyn + 0.1 * rew + 0.1 * done_l
            prev_not_done = not_done[:, i : i + 1] * prev_not_done
        assert isinstance(loss, Tensor)
        self.enc_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.enc_opt.step()

    def update_rl(
        self, obs: Tensor, action: Tensor, returns: Tensor, discount: Tensor, next_obs: Tensor
    ) -> Tensor:
        with torch.no_grad():
            next_zs = self.encoder_target.zs(next_obs)
            noise = (torch.randn_like(action) * 0.2).clamp(-0.3, 0.3)
            next_action = (self.policy_target(next_zs)[0] + noise).clamp(-1, 1)
            next_q = self.value_target(self.encoder_target(next_zs, next_action)).min(
                1, keepdim=True
            )[0]
            target = (
                returns[:, None] + discount[:, None] * next_q * self.target_reward_scale
            ) / self.reward_scale
            zs = self.encoder.zs(obs)
            zsa = self.encoder(zs, action)
        q = self.value(zsa)
        value_loss = F.smooth_l1_loss(q, target.expand(-1, 2))
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.value.parameters(), 20.0)
        self.value_opt.step()
        policy_action, pre = self.policy(zs)
        q_pi = self.value(self.encoder(zs, policy_action))
        policy_loss = -q_pi.mean() + 1e-5 * pre.pow(2).mean()
        self.policy_opt.zero_grad(set_to_none=True)
        policy_loss.backward()
        self.policy_opt.step()
        return (q - target).abs().max(1).values


# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# The official implementation itself, from a checkout the user gives (``--official``). Nothing of it
# is part of this project (its licence is CC BY-NC 4.0): it is imported from that path at run time.
# --------------------------------------------------------------------------------------------------


class OfficialMRQ:
    """The official MR.Q ``Agent`` (facebookresearch/MRQ, ``MRQ/MRQ.py``) on the CPU, timed through
    its own ``train_encoder``/``train_rl``/``train`` methods.

    Its replay buffer asks ``torch.cuda.mem_get_info()`` for free GPU memory, which fails without
    CUDA (its issue #3); while the agent is built, that call reports 64 GiB free, so the buffer keeps
    its arrays on the CPU as the agent's device. ``buffer_size_before_training`` is set to the fill
    size so that its ``train()`` trains from the first timed step (a gate, not a computation).
    """

    def __init__(self, checkout: Path, obs_dim: int, action_dim: int, fill: int) -> None:
        folder = checkout / "MRQ" if (checkout / "MRQ" / "MRQ.py").exists() else checkout
        if not (folder / "MRQ.py").exists():
            raise FileNotFoundError(f"--official {checkout}: no MRQ.py there or in its MRQ/ folder")
        sys.path.insert(0, str(folder))
        try:
            module = importlib.import_module("MRQ")
        finally:
            sys.path.remove(str(folder))
        self.module = module
        mem_get_info = torch.cuda.mem_get_info
        if not torch.cuda.is_available():
            torch.cuda.mem_get_info = lambda *_: (64 << 30, 64 << 30)  # type: ignore[assignment]
        try:
            self.agent = module.Agent(
                (obs_dim,),
                action_dim,
                1.0,
                False,
                False,
                torch.device("cpu"),
                hp={"buffer_size_before_training": fill - 1},
            )
        finally:
            torch.cuda.mem_get_info = mem_get_info  # type: ignore[method-assign]

    def add(self, obs: Any, action: Any, reward: float, nxt: Any, term: bool, trunc: bool) -> None:
        """Our buffers' argument order; the official buffer takes ``next_state`` before ``reward``."""
        self.agent.replay_buffer.add(obs, action, nxt, reward, term, trunc)

    def sync(self) -> None:
        """What the official ``train()`` does at a target update, before its encoder burst."""
        a = self.agent
        a.policy_target.load_state_dict(a.policy.state_dict())
        a.value_target.load_state_dict(a.value.state_dict())
        a.encoder_target.load_state_dict(a.encoder.state_dict())
        a.target_reward_scale, a.reward_scale = a.reward_scale, a.replay_buffer.reward_scale()

    def encoder_batch(self) -> tuple[Tensor, ...]:
        return tuple(
            self.agent.replay_buffer.sample(self.agent.enc_horizon, include_intermediate=True)
        )

    def rl_batch(self) -> tuple[Tensor, ...]:
        a = self.agent
        state, action, next_state, reward, not_done = a.replay_buffer.sample(
            a.Q_horizon, include_intermediate=False
        )
        reward, not_done = self.module.multi_step_reward(reward, not_done, a.gammas)
        return state, action, next_state, reward, not_done

    def update_encoder(self, batch: tuple[Tensor, ...]) -> None:
        self.agent.train_encoder(*batch, self.agent.replay_buffer.env_terminates)

    def update_rl(self, batch: tuple[Tensor, ...]) -> None:
        a = self.agent
        a.train_rl(*batch, a.reward_scale, a.target_reward_scale)


def official_loop(official: OfficialMRQ, env: Any, obs: Any, steps: int) -> dict[str, float]:
    """Env steps/s of the official agent's own loop (``select_action``, env step, ``add``,
    ``train()``: its schedule, sampling and priority updates), as its ``main.py`` runs it."""
    agent = official.agent
    agent.training_steps = 0
    start = time.perf_counter()
    for _ in range(steps):
        action = agent.select_action(obs)
        if action is None:
            action = env.action_space.sample()
        nxt, reward, terminated, truncated, _ = env.step(action)
        official.add(obs, action, float(reward), nxt, terminated, truncated)
        obs = nxt
        if terminated or truncated:
            obs, _ = env.reset()
        agent.train()
    elapsed = time.perf_counter() - start
    return {
        "steps": steps,
        "seconds": round(elapsed, 1),
        "env_steps_per_s": round(steps / elapsed, 3),
    }


def _fill(
    cfg: MRQConfig, steps: int, seed: int = 0, official: OfficialMRQ | None = None
) -> tuple[ReplayBuffer, Any, Any, Any]:
    """A buffer filled with ``steps`` random-action steps; returns ``(buffer, spec, env, obs)``
    with ``env`` still running and ``obs`` its current observation. ``official``'s buffer gets
    the same transitions."""
    env = make_env(cfg.env, seed=seed)
    spec = check_spaces(env.observation_space, env.action_space)
    buf = make_buffer(cfg, spec)
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        action = env.action_space.sample()
        nxt, reward, terminated, truncated, _ = env.step(action)
        buf.add(obs, action, float(reward), nxt, terminated, truncated)
        if official is not None:
            official.add(obs, action, float(reward), nxt, terminated, truncated)
        obs = nxt
        if terminated or truncated:
            obs, _ = env.reset()
    return buf, spec, env, obs


def _time(fn: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU milliseconds of each of ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return wall, cpu


def components(
    cfg: MRQConfig,
    buf: ReplayBuffer,
    spec: Any,
    rounds: int,
    repeats: int,
    official: OfficialMRQ | None = None,
) -> dict[str, dict[str, float]]:
    """Median ms per encoder update and per value+policy update for baseline and ours (and the
    official agent, on batches its own buffer sampled, when it is given)."""
    gen = torch.Generator().manual_seed(0)
    enc_batches: list[SubTrajectoryBatch] = [
        buf.sample_subtrajectory(256, gen, horizon=5) for _ in range(4)
    ]
    rl_batches: list[NStepBatch] = [buf.sample_nstep(256, gen, n=3, gamma=0.99) for _ in range(4)]
    baseline = BaselineMRQ(spec.obs_shape[0], spec.action_dim)
    # name -> (agent, GEMM path of its dense layers)
    agents: dict[str, tuple[MRQAgent, gemm.GemmPath]] = {
        "ours_eager": (MRQAgent(cfg, spec, seed=0), "auto"),
        "ours_compiled": (MRQAgent(cfg, spec, seed=0, compile=True), "auto"),
        "ours_eager_todays_gemm": (MRQAgent(cfg, spec, seed=0), "default"),
        "ours_compiled_todays_gemm": (MRQAgent(cfg, spec, seed=0, compile=True), "default"),
    }
    for agent, _ in agents.values():
        agent.sync_targets(buf.reward_scale())

    counter = {"i": 0}

    def pick(batches: list[Any]) -> Any:
        counter["i"] += 1
        return batches[counter["i"] % len(batches)]

    def base_enc() -> None:
        b = pick(enc_batches)
        baseline.update_encoder(b.obs, b.action, b.reward, b.not_done)

    def base_rl() -> None:
        b = pick(rl_batches)
        baseline.update_rl(
            b.obs, b.action, b.returns, b.discount * b.bootstrap_not_done, b.bootstrap_obs
        )

    fns: dict[str, dict[str, Callable[[], object]]] = {
        "baseline": {"encoder_ms": base_enc, "rl_ms": base_rl},
    }

    def on_path(fn: Callable[[], object], path: gemm.GemmPath) -> Callable[[], object]:
        def run() -> object:
            with gemm.use_gemm_path(path):
                return fn()

        return run

    for name, (agent, path) in agents.items():
        fns[name] = {
            "encoder_ms": on_path(lambda a=agent: a.update_encoder(pick(enc_batches)), path),
            "rl_ms": on_path(lambda a=agent: a.update_rl(pick(rl_batches)), path),
        }
    if official is not None:
        official.sync()
        off_enc = [official.encoder_batch() for _ in range(4)]
        off_rl = [official.rl_batch() for _ in range(4)]
        fns["official"] = {
            "encoder_ms": lambda: official.update_encoder(pick(off_enc)),
            "rl_ms": lambda: official.update_rl(pick(off_rl)),
        }
    # Warm-up (compilation happens here).
    for per in fns.values():
        for fn in per.values():
            for _ in range(3):
                fn()
    keys = ("encoder_ms", "rl_ms", "encoder_cpu_ms", "rl_cpu_ms")
    times: dict[str, dict[str, list[float]]] = {n: {k: [] for k in keys} for n in fns}
    for _ in range(rounds):
        for name, per in fns.items():
            for what, fn in per.items():
                wall, cpu = _time(fn, repeats)
                times[name][what] += wall
                times[name][what.replace("_ms", "_cpu_ms")] += cpu
    return {
        name: {what: round(statistics.median(v), 2) for what, v in per.items()}
        for name, per in times.items()
    }


def full_loop(
    cfg: MRQConfig, steps: int, compile: bool, seed: int = 0, train: bool = True
) -> dict[str, float]:
    """Env steps/s of the full schedule over ``steps`` steps (starting with a sync + burst).

    With ``train=False`` only the per-step overhead is measured: act, env step, add and the
    sampling of both batches, without the updates (``--loop-steps 0``, for loaded machines)."""
    buf, spec, env, obs = _fill(cfg, cfg.schedule.random_steps, seed)
    agent = MRQAgent(cfg, spec, seed=seed, compile=compile)
    gen = torch.Generator().manual_seed(seed)
    if compile:  # compile outside the timed region
        agent.update_encoder(buf.sample_subtrajectory(256, gen, horizon=5))
        agent.update_rl(buf.sample_nstep(256, gen, n=3, gamma=0.99))
        agent.training_steps = 0
    overhead = 0.0
    start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        action = to_env_action(agent.act(obs, explore=True), env.action_space)
        nxt, reward, terminated, truncated, _ = env.step(action)
        buf.add(obs, action, float(reward), nxt, terminated, truncated)
        obs = nxt
        if terminated or truncated:
            obs, _ = env.reset()
        overhead += time.perf_counter() - t0
        if not train:
            t0 = time.perf_counter()
            buf.sample_subtrajectory(256, gen, horizon=5)
            buf.sample_nstep(256, gen, n=3, gamma=0.99)
            overhead += time.perf_counter() - t0
            continue
        if agent.sync_due:
            agent.sync_targets(buf.reward_scale())
            for _ in range(cfg.schedule.encoder_updates_per_sync):
                t0 = time.perf_counter()
                batch = buf.sample_subtrajectory(256, gen, horizon=5)
                overhead += time.perf_counter() - t0
                agent.update_encoder(batch)
        t0 = time.perf_counter()
        rl_batch = buf.sample_nstep(256, gen, n=3, gamma=0.99)
        overhead += time.perf_counter() - t0
        _, td = agent.update_rl(rl_batch)
        t0 = time.perf_counter()
        buf.update_priority(rl_batch.indices, td)
        overhead += time.perf_counter() - t0
    elapsed = time.perf_counter() - start
    return {
        "steps": steps,
        "seconds": round(elapsed, 1),
        "env_steps_per_s": round(steps / elapsed, 3),
        "overhead_ms_per_step": round(overhead / steps * 1e3, 2),
    }


def gemm_rates(threads: int, calls: int = 40) -> dict[str, dict[str, float]]:
    """GFLOPS of every GEMM path torch offers at the updates' shapes (rows x in x out), for the
    forward ``x @ W.T + b`` and the two gradient products (``g @ W`` and ``g.T @ x``), timed
    interleaved on ``threads`` threads: MKL (``addmm``/``mm``, torch's default) and oneDNN
    (``torch.ops.mkldnn._linear_pointwise``) when this torch has it."""
    torch.set_num_threads(threads)
    lp = torch.ops.mkldnn._linear_pointwise if gemm.onednn_available() else None
    rates: dict[str, dict[str, float]] = {}
    for m, k, n in ((256, 512, 512), (1280, 512, 512), (256, 768, 512), (256, 512, 578)):
        x, w, b, g = torch.randn(m, k), torch.randn(n, k), torch.randn(n), torch.randn(m, n)
        fns: dict[str, Callable[[], object]] = {
            "mkl forward": lambda x=x, w=w, b=b: torch.addmm(b, x, w.t()),
            "mkl grad_input": lambda g=g, w=w: g.mm(w),
            "mkl grad_weight": lambda g=g, x=x: x.t().mm(g),
        }
        if lp is not None:
            fns |= {
                "onednn forward": lambda x=x, w=w, b=b: lp(x, w, b, "none", [], ""),
                "onednn grad_input": lambda g=g, w=w: lp(g, w.t(), None, "none", [], ""),
                "onednn grad_weight": lambda g=g, x=x: lp(g.t(), x.t(), None, "none", [], ""),
            }
        for fn in fns.values():
            _time(fn, 5)  # warm-up
        walls: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(4):
            for name, fn in fns.items():
                walls[name] += _time(fn, calls // 4)[0]
        rates[f"{m}x{k}x{n}"] = {
            name: round(2 * m * k * n / (statistics.median(v) / 1e3) / 1e9, 1)
            for name, v in walls.items()
        }
    return rates


def ceiling(
    cfg: MRQConfig, buf: ReplayBuffer, spec: Any, overhead_ms: float, threads: int = 1
) -> dict[str, Any]:
    """The fastest any implementation of these updates can be on ``threads`` threads here.

    Counts the matrix-product FLOPs of one encoder and one value + policy update of
    :class:`MRQAgent` (``torch.utils.flop_counter``: forward and backward, counted on torch's
    default path, which the counter understands), times every GEMM path torch offers at the
    updates' shapes (:func:`gemm_rates`) to find the fastest rate on this machine, and divides:
    the GEMM time alone, at that rate, plus the measured per-step overhead, gives the ceiling in
    env steps/s. The ceiling with MKL's best rate alone (the previous definition) is kept too.
    """
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    agent = MRQAgent(cfg, spec, seed=0)
    agent.sync_targets(buf.reward_scale())
    flops = {}
    with gemm.use_gemm_path("default"):
        for name, fn in (
            (
                "encoder",
                lambda: agent.update_encoder(buf.sample_subtrajectory(256, gen, horizon=5)),
            ),
            ("rl", lambda: agent.update_rl(buf.sample_nstep(256, gen, n=3, gamma=0.99))),
        ):
            with FlopCounterMode(display=False) as counter:
                fn()
            flops[name] = counter.get_total_flops()
    rates = gemm_rates(threads)
    best_of = {name: max(r[name] for r in rates.values()) for name in next(iter(rates.values()))}
    fastest = max(best_of, key=lambda name: best_of[name])
    peak = best_of[fastest]
    mkl_peak = max(v for name, v in best_of.items() if name.startswith("mkl"))

    def steps_per_s(rate: float) -> float:
        floor = sum(f / rate / 1e6 for f in flops.values())
        return round(1e3 / (floor + overhead_ms), 2)

    return {
        "threads": threads,
        "gemm_gflop_per_update": {name: round(f / 1e9, 2) for name, f in flops.items()},
        "gemm_gflops_by_path_and_shape": rates,
        "best_gflops_by_path": best_of,
        "fastest_gemm": fastest,
        "peak_gflops": peak,
        "gemm_floor_ms": {name: round(f / peak / 1e6, 1) for name, f in flops.items()},
        "overhead_ms_per_step": overhead_ms,
        "ceiling_env_steps_per_s": steps_per_s(peak),
        "mkl_peak_gflops": mkl_peak,
        "ceiling_env_steps_per_s_with_mkl_only": steps_per_s(mkl_peak),
    }


def _ceiling_entry(
    results: dict[str, Any], cfg: MRQConfig, buf: ReplayBuffer, spec: Any
) -> dict[str, Any]:
    """:func:`ceiling` at 1 thread, set against the 1-thread rates of ``results``."""
    one = results["by_threads"]["1"]
    load_before = os.getloadavg()
    entry = ceiling(cfg, buf, spec, one["loop_measured"]["overhead_ms_per_step"])
    entry["load_average_before"] = load_before
    rates = one["env_steps_per_s_from_components"]
    best = one["loop_measured"]["config"]
    entry["ours"] = best
    ceiling_rate = entry["ceiling_env_steps_per_s"]
    entry["ours_fraction_of_ceiling"] = round(rates[best] / ceiling_rate, 3)
    cpu_rates = one.get("env_steps_per_s_from_cpu_times", {})
    if best in cpu_rates:
        entry["ours_fraction_of_ceiling_cpu_times"] = round(cpu_rates[best] / ceiling_rate, 3)
    if "official" in rates:
        entry["ceiling_over_official"] = round(ceiling_rate / rates["official"], 3)
    if "official" in cpu_rates:
        entry["ceiling_over_official_cpu_times"] = round(ceiling_rate / cpu_rates["official"], 3)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--loop-steps",
        type=int,
        default=250,
        help="steps of the measured loops; 0: no loops, the per-step overhead from 100 steps "
        "without updates (for loaded machines)",
    )
    parser.add_argument("--fill", type=int, default=10_000, help="random transitions in the buffer")
    parser.add_argument("--algorithm", choices=["mrq", "drq"], default="mrq")
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--official",
        type=Path,
        help="a checkout of facebookresearch/MRQ: also time the official agent in this process",
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="only (re)compute the 1-thread GEMM ceiling into the existing --out file",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.repeats, args.loop_steps, args.fill = 1, 1, 10, 1_000

    cfg = gym("HalfCheetah-v5")
    if args.algorithm == "drq":
        cfg = drq(cfg)
    cfg = MRQConfig.from_dict(
        {**cfg.to_dict(), "schedule": {**cfg.to_dict()["schedule"], "random_steps": args.fill}}  # type: ignore[dict-item]
    )
    if args.ceiling:
        results = json.loads(args.out.read_text())
        buf, spec, _, _ = _fill(cfg, args.fill)
        results["ceiling_1_thread"] = _ceiling_entry(results, cfg, buf, spec)
        print(json.dumps(results["ceiling_1_thread"], indent=2))
        with atomic_write(args.out, "w") as f:
            json.dump(results, f, indent=2)
        return
    official = None
    if args.official is not None:
        probe = make_env(cfg.env, seed=0)
        probe_spec = check_spaces(probe.observation_space, probe.action_space)
        probe.close()
        official = OfficialMRQ(
            args.official, probe_spec.obs_shape[0], probe_spec.action_dim, args.fill
        )
    buf, spec, env, obs = _fill(cfg, args.fill, official=official)
    results: dict[str, Any] = {
        "benchmark": "mrq_speed",
        "algorithm": args.algorithm,
        "env": "HalfCheetah-v5",
        "architecture": "paper (zs/zsa 512, za 256, hidden 512, 65 bins), batch 256, horizon 5, 3-step",
        "command": " ".join(["python", *sys.argv]),
        "machine": gemm.machine_report(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "gemm_paths": (
            "ours_*: rl_nets.gemm 'auto' (oneDNN or torch's default per product, chosen by timing "
            "the network's shapes once); ours_*_todays_gemm: every product on torch's default "
            "path (addmm/mm, MKL); official and baseline: plain torch (addmm/mm)"
        ),
        "baseline": "plain-torch re-statement of the official MR.Q update (this file, BaselineMRQ)",
        "official_reference": OFFICIAL,
        "official_checkout": str(args.official) if args.official else None,
        "by_threads": {},
    }
    for threads in args.threads:
        torch.set_num_threads(threads)
        load_before = os.getloadavg()
        comp = components(cfg, buf, spec, args.rounds, args.repeats, official)
        best = min(
            ("ours_eager", "ours_compiled"),
            key=lambda n: comp[n]["encoder_ms"] + comp[n]["rl_ms"],
        )
        train_loop = args.loop_steps > 0
        loop = full_loop(
            cfg,
            args.loop_steps if train_loop else 100,
            compile=best == "ours_compiled" and train_loop,
            train=train_loop,
        )
        overhead = loop["overhead_ms_per_step"]
        # Amortised schedule: one encoder update + one value/policy update + act/env/add/sampling
        # per env step; the same overhead for everyone, update times from the interleaved rounds.
        rates = {
            name: round(1e3 / (c["encoder_ms"] + c["rl_ms"] + overhead), 3)
            for name, c in comp.items()
        }
        cpu_rates = {
            name: round(1e3 / (c["encoder_cpu_ms"] + c["rl_cpu_ms"] + overhead), 3)
            for name, c in comp.items()
        }
        entry: dict[str, Any] = {
            "threads": threads,
            "load_average_before": load_before,
            "components_ms": comp,
            "env_steps_per_s_from_components": rates,
            "env_steps_per_s_from_cpu_times": cpu_rates,
            "loop_measured": {"config": best, **loop},
            "speedup_vs_baseline": {
                "encoder": round(comp["baseline"]["encoder_ms"] / comp[best]["encoder_ms"], 3),
                "rl": round(comp["baseline"]["rl_ms"] / comp[best]["rl_ms"], 3),
                "env_steps_per_s": round(rates[best] / rates["baseline"], 3),
            },
            "fast_gemm_speedup": {
                variant: {
                    "encoder": round(
                        comp[f"{variant}_todays_gemm"]["encoder_ms"] / comp[variant]["encoder_ms"],
                        3,
                    ),
                    "rl": round(
                        comp[f"{variant}_todays_gemm"]["rl_ms"] / comp[variant]["rl_ms"], 3
                    ),
                }
                for variant in ("ours_eager", "ours_compiled")
            },
        }
        if official is not None:
            entry["speedup_vs_official_same_process"] = {
                "encoder": round(comp["official"]["encoder_ms"] / comp[best]["encoder_ms"], 3),
                "rl": round(comp["official"]["rl_ms"] / comp[best]["rl_ms"], 3),
                "env_steps_per_s_from_components": round(rates[best] / rates["official"], 3),
                "env_steps_per_s_from_cpu_times": round(cpu_rates[best] / cpu_rates["official"], 3),
            }
            if train_loop:
                off_loop = official_loop(official, env, obs, args.loop_steps)
                entry["official_loop_measured"] = off_loop
                entry["speedup_vs_official_same_process"]["env_steps_per_s_loops"] = round(
                    loop["env_steps_per_s"] / off_loop["env_steps_per_s"], 3
                )
        if threads in OFFICIAL:
            off = OFFICIAL[threads]
            entry["vs_official_numbers_other_machine"] = {
                "baseline_encoder_over_official": round(
                    comp["baseline"]["encoder_ms"] / off["encoder_ms"], 3
                ),
                "baseline_rl_over_official": round(comp["baseline"]["rl_ms"] / off["rl_ms"], 3),
                "ours_env_steps_per_s_over_official": round(
                    rates[best] / off["env_steps_per_s"], 3
                ),
            }
        entry["load_average_after"] = os.getloadavg()
        results["by_threads"][str(threads)] = entry
        print(json.dumps(entry, indent=2), flush=True)
        if not args.quick:  # keep what is measured so far (a long run may be cut short)
            results["complete"] = False
            with atomic_write(args.out, "w") as f:
                json.dump(results, f, indent=2)
    results["gemm_decisions"] = gemm.gemm_decisions()
    if "1" in results["by_threads"] and not args.quick:
        results["ceiling_1_thread"] = _ceiling_entry(results, cfg, buf, spec)
        print(json.dumps(results["ceiling_1_thread"], indent=2))
    results["load_average_at_end"] = os.getloadavg()
    results["complete"] = True
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.out, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
