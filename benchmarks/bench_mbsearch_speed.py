"""MRS.Q planning speed per environment step on this CPU, beside TD-MPC2's own planner.

Times one MPPI plan (= one environment step's action) of

* ``mrsq``: :class:`mbsearch.MRSQAgent` at the paper's sizes (MR.Q's ``gym`` preset,
  HalfCheetah-v5 shapes: obs 17, actions 6; zs/zsa 512, 10 critics of 3 x 512 as one batched
  ensemble, SimNorm), TD-MPC2's planner settings (H 3, 6 iterations, 512 sequences of which 24
  from the policy, 64 elites);
* ``mrsq_separate_critics``: the same with the 10 critics as separate MLPs;
* ``mpc``: MR.Q + MPPI (2 critics, their mean at the horizon);
* ``tdmpc2``: TD-MPC2's own planning code (``TDMPC2._plan`` and ``_estimate_value`` and its
  ``WorldModel`` methods, nicklashansen/tdmpc2, MIT) at its default 5M model (``model_size: 5``:
  latent 512, mlp 512, 5 Q heads of 101 bins), imported from a checkout given with
  ``--tdmpc2 PATH`` (the repository root; nothing of it is in this project) and run on the CPU.
  Its code imports ``tensordict``, which this project does not install; the benchmark puts a
  stand-in ``tensordict`` module in ``sys.modules`` before importing it and swaps TD-MPC2's
  ``layers.Ensemble`` (a ``tensordict.from_modules`` + ``torch.vmap`` container) for the same
  computation written with ``torch.func.stack_module_state`` + ``torch.vmap`` (one vmapped
  forward of the 5 Q networks), and skips ``WorldModel.init`` (target/detached Q copies, used only
  for training). ``TDMPC2.__init__`` hard-codes ``cuda:0``, so ``_plan`` runs on a stand-in
  ``self`` holding the world model, its config and the discount of a 1,000-step episode (0.995).
  Everything else is TD-MPC2's code as it is in the checkout.

Rounds alternate the candidates so load from other processes hits all alike; medians of
wall-clock ms per plan are reported, with process CPU time. FLOPs per plan are counted with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products only).

    uv run --no-sync python benchmarks/bench_mbsearch_speed.py --tdmpc2 /tmp/tdmpc2
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mbsearch.agent import MRSQAgent
from mbsearch.config import MRSQConfig, gym_arm
from mrq_drq.envs import EnvSpec
from rl_buffers.io import atomic_write
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

RESULTS = Path(__file__).parent / "results" / "mbsearch_speed.json"
OBS_DIM, ACTION_DIM = 17, 6  # HalfCheetah-v5
SPEC = EnvSpec(
    obs_shape=(OBS_DIM,),
    pixels=False,
    discrete=False,
    action_dim=ACTION_DIM,
    action_low=(-1.0,) * ACTION_DIM,
    action_high=(1.0,) * ACTION_DIM,
)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


# ----------------------------------------------------------------------------------------------
# TD-MPC2 from a user's checkout.


class _StandInTensorDict(dict[str, Any]):
    """What ``WorldModel.pi`` builds its ``info`` with (only read as a mapping here)."""

    def __init__(self, data: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(data or {}, **kwargs)


def _install_tensordict_stand_in() -> None:
    """A ``tensordict`` module with the names TD-MPC2 imports; the ensemble is replaced below."""

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tensordict is not installed; the benchmark replaces this call")

    module = types.ModuleType("tensordict")
    module.TensorDict = _StandInTensorDict  # type: ignore[attr-defined]
    module.from_modules = unavailable  # type: ignore[attr-defined]
    nn_module = types.ModuleType("tensordict.nn")
    nn_module.TensorDictParams = unavailable  # type: ignore[attr-defined]
    module.nn = nn_module  # type: ignore[attr-defined]
    sys.modules.setdefault("tensordict", module)
    sys.modules.setdefault("tensordict.nn", nn_module)


class _Params(dict[str, torch.Tensor]):
    """Stacked parameters, also indexable as TD-MPC2 does: ``params["2", "weight"]``."""

    def __getitem__(self, key: str | tuple[str, ...]) -> torch.Tensor:
        return super().__getitem__(".".join(key) if isinstance(key, tuple) else key)


class VmapEnsemble(nn.Module):
    """TD-MPC2's ``layers.Ensemble`` computation without tensordict: the members' parameters
    stacked (``torch.func.stack_module_state``) and one ``torch.vmap`` over them."""

    def __init__(self, modules: list[nn.Module], **kwargs: Any) -> None:
        super().__init__()
        params, buffers = torch.func.stack_module_state(modules)  # type: ignore[arg-type]
        self.params = _Params(params)
        self._params_list = nn.ParameterList(list(params.values()))
        self._buffers_stacked = buffers
        self.module = copy.deepcopy(modules[0]).to("meta")
        self._n = len(modules)

    def __len__(self) -> int:
        return self._n

    def forward(self, *args: Any) -> torch.Tensor:
        def call(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], *a: Any):
            return torch.func.functional_call(self.module, (params, buffers), a)

        in_dims = (0, 0, *([None] * len(args)))
        return torch.vmap(call, in_dims, randomness="different")(
            dict(self.params), self._buffers_stacked, *args
        )


def load_tdmpc2(checkout: Path) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Module]:
    """TD-MPC2's planner (its code, from ``checkout``) at the default 5M model on the CPU.

    Returns:
        ``(plan, world_model)``: ``plan(obs (1, 17))`` runs ``TDMPC2._plan`` once.
    """
    root = checkout / "tdmpc2"
    if not (root / "tdmpc2.py").is_file():
        raise FileNotFoundError(f"--tdmpc2 {checkout}: no tdmpc2/tdmpc2.py in that checkout")
    _install_tensordict_stand_in()
    sys.path.insert(0, str(root))
    from common import MODEL_SIZE, layers  # type: ignore[import-not-found]
    from common.world_model import WorldModel  # type: ignore[import-not-found]
    from tdmpc2 import TDMPC2  # type: ignore[import-not-found]

    size = MODEL_SIZE[5]  # the default model (5M parameters)
    cfg = types.SimpleNamespace(
        obs="state", obs_shape={"state": (OBS_DIM,)}, action_dim=ACTION_DIM, task_dim=0,
        multitask=False, episodic=False, num_bins=101, vmin=-10.0, vmax=10.0, num_q=5,
        dropout=0.01, simnorm_dim=8, log_std_min=-10.0, log_std_max=2.0, mlp_dim=512,
        num_enc_layers=2, enc_dim=256, latent_dim=512, horizon=3, iterations=6,
        num_samples=512, num_elites=64, num_pi_trajs=24, min_std=0.05, max_std=2.0,
        temperature=0.5, compile=False,
    )  # fmt: skip
    for key, value in size.items():
        setattr(cfg, key, value)
    layers.Ensemble = VmapEnsemble
    # The target / detached Q copies are for training only; ``train()`` reads the target's.
    WorldModel.init = lambda self: setattr(self, "_target_Qs", nn.Identity())
    model = WorldModel(cfg).eval()
    fake = types.SimpleNamespace(
        cfg=cfg,
        model=model,
        device=torch.device("cpu"),
        discount=0.995,  # TDMPC2._get_discount(1000)
        _prev_mean=torch.zeros(cfg.horizon, cfg.action_dim),
    )
    fake._estimate_value = types.MethodType(TDMPC2._estimate_value, fake)

    def plan(obs: torch.Tensor) -> torch.Tensor:
        return TDMPC2._plan(fake, obs, t0=False, eval_mode=False, task=None)

    return plan, model


# ----------------------------------------------------------------------------------------------


def ours(
    cfg: MRSQConfig, seed: int = 0
) -> tuple[Callable[[torch.Tensor], torch.Tensor], MRSQAgent]:
    agent = MRSQAgent(cfg, SPEC, seed=seed)
    return (lambda obs: agent.act(obs[0], explore=True)), agent


def flops_of(fn: Callable[[], object]) -> int:
    """Matrix-product FLOPs of one call, counted on torch's default GEMM path (the oneDNN
    products of ``rl_nets.gemm`` are opaque ops the counter does not see; same products)."""
    from rl_nets import gemm

    counter = FlopCounterMode(display=False)
    with gemm.use_gemm_path("default"), counter:
        fn()
    return int(counter.get_total_flops())


def params_of(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tdmpc2", type=Path, default=None, help="TD-MPC2 checkout (repo root)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    mrsq = gym_arm("mrsq")
    candidates: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    info: dict[str, dict[str, Any]] = {}
    fn, agent = ours(mrsq)
    candidates["mrsq"] = fn
    info["mrsq"] = {"params": params_of(agent.mrq.encoder) + params_of(agent.mrq.value)
                    + params_of(agent.mrq.policy)}  # fmt: skip
    sep = dataclasses.replace(mrsq, critics=dataclasses.replace(mrsq.critics, batched=False))
    candidates["mrsq_separate_critics"], _ = ours(sep)
    info["mrsq_separate_critics"] = dict(info["mrsq"])
    candidates["mpc"], agent_mpc = ours(gym_arm("mpc"))
    info["mpc"] = {"params": params_of(agent_mpc.mrq.encoder) + params_of(agent_mpc.mrq.value)
                   + params_of(agent_mpc.mrq.policy)}  # fmt: skip
    if args.tdmpc2 is not None:
        plan, model = load_tdmpc2(args.tdmpc2)
        candidates["tdmpc2"] = plan
        info["tdmpc2"] = {"params": params_of(model)}

    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.standard_normal((1, OBS_DIM)), dtype=torch.float32)
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cpu_model": cpu_model(),
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg(),
        "tdmpc2_checkout": str(args.tdmpc2) if args.tdmpc2 else None,
        "planner": dataclasses.asdict(mrsq.planner),
        "by_threads": {},
    }
    with torch.no_grad():
        for name, fn in candidates.items():
            fn(obs)  # warm-up (oneDNN / GEMM path decisions, allocator)
            info[name]["flops_per_plan"] = flops_of(lambda fn=fn: fn(obs))
    for threads in args.threads:
        torch.set_num_threads(threads)
        wall: dict[str, list[float]] = {n: [] for n in candidates}
        cpu: dict[str, list[float]] = {n: [] for n in candidates}
        load_before = os.getloadavg()
        with torch.no_grad():
            for _ in range(args.rounds):
                for name, fn in candidates.items():
                    for _ in range(args.repeats):
                        t, c = time.perf_counter(), time.process_time()
                        fn(obs)
                        wall[name].append((time.perf_counter() - t) * 1e3)
                        cpu[name].append((time.process_time() - c) * 1e3)
        entry: dict[str, Any] = {"load_average_before": load_before,
                                 "load_average_after": os.getloadavg()}  # fmt: skip
        for name in candidates:
            entry[name] = {
                "ms_per_plan_median": round(statistics.median(wall[name]), 2),
                "cpu_ms_per_plan_median": round(statistics.median(cpu[name]), 2),
                "samples": len(wall[name]),
                "gflop_per_plan": round(info[name]["flops_per_plan"] / 1e9, 2),
                "achieved_gflops": round(
                    info[name]["flops_per_plan"] / 1e6 / statistics.median(wall[name]), 1
                ),
            }
        if "tdmpc2" in candidates:
            ref = entry["tdmpc2"]["ms_per_plan_median"]
            entry["speedup_vs_tdmpc2"] = {
                n: round(ref / entry[n]["ms_per_plan_median"], 3) for n in candidates
            }
        result["by_threads"][str(threads)] = entry
        print(json.dumps({threads: entry}, indent=2))
    result["params"] = {n: v.get("params") for n, v in info.items()}
    with contextlib.suppress(Exception):
        from rl_nets import gemm

        result["gemm"] = gemm.machine_report()
    with atomic_write(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
