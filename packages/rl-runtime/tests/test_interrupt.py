"""SIGTERM and Ctrl-C stop a run at a safe point with a checkpoint of exactly that state: each
loop (off-policy, offline, on-policy), resumed, ends bitwise equal to an uninterrupted run.

The signals are real (``os.kill`` of this process from inside ``agent.update``): the run's
handler only sets a flag, and the loop acts on it after the step (or rollout) it is in.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rl_buffers import ReplayBuffer, TransitionSpec, io
from rl_runtime.config import RunConfig
from rl_runtime.offline import SeededBatches, train_offline
from rl_runtime.onpolicy import OnPolicyConfig, train_on_policy
from rl_runtime.run import RunInterrupted, open_run
from rl_runtime.testing import (
    TinyPPOAgent,
    TinyPPOAgentConfig,
    TinyQAgent,
    TinyQConfig,
    TorchChainEnv,
    train,
)
from rl_runtime.vecenv import ArrayVecEnv

torch.set_num_threads(1)


def _lines(run: Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]


def _run_cfg(root: Path, name: str, **kw: Any) -> RunConfig:
    base: dict[str, Any] = dict(
        total_steps=240, eval_every=96, eval_episodes=2, log_every=24, checkpoint_every=96,
        keep_checkpoints=50, root=root, name=name, device="cpu", torch_threads=1,
        tensorboard=False, quiet=True,
    )  # fmt: skip
    base.update(kw)
    return RunConfig(**base)


@dataclasses.dataclass(frozen=True)
class _Config:
    env: str = "synthetic"
    run: RunConfig = RunConfig()  # noqa: RUF009 - frozen


# ------------------------------------------------------------------------------ three loops


def _offpolicy(root: Path, name: str) -> Path:
    cfg = TinyQConfig(run=_run_cfg(root, name))
    return train(
        dataclasses.replace(
            cfg, loop=dataclasses.replace(cfg.loop, random_steps=30, learning_starts=30)
        )
    )


class _Regression:
    """Linear regression of the reward, with noise from its own generator."""

    def __init__(self) -> None:
        self.net = torch.nn.Linear(3, 1)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=0.01)
        self.generator = torch.Generator().manual_seed(1)

    def act(self, obs: torch.Tensor, *, explore: bool) -> torch.Tensor:
        return self.net(obs)

    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        noise = 0.01 * torch.randn(batch.obs.shape, generator=self.generator)
        loss = ((self.net(batch.obs + noise).squeeze(-1) - batch.reward) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(),
                "generator": self.generator.get_state()}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.generator.set_state(state["generator"])


def _offline(root: Path, name: str) -> Path:
    with open_run("offline-toy", _Config(run=_run_cfg(root, name))) as run:
        rng = np.random.default_rng(0)
        obs = rng.normal(size=(33, 3)).astype(np.float32)
        buffer = ReplayBuffer(spec=TransitionSpec.continuous((3,), 1), capacity=32)
        done = np.zeros(32, bool)
        buffer.extend(obs[:-1], np.zeros((32, 1), np.float32), obs[:-1, 0], obs[1:], done, done)
        agent = _Regression()
        source = SeededBatches(buffer, batch_size=8, seed=2)
        train_offline(
            run,
            agent=agent,
            source=source,
            evaluate=lambda: {"return": float(agent.net.bias.detach()) + float(torch.rand(()))},
        )
        return run.dir


def _onpolicy(root: Path, name: str) -> Path:
    cfg = OnPolicyConfig(num_envs=3, num_steps=8, update_epochs=2, num_minibatches=2)
    with open_run("ppo-toy", _Config(env="toy", run=_run_cfg(root, name))) as run:
        agent = TinyPPOAgent(TinyPPOAgentConfig(), 6, 2, device=run.device, seed=5)
        envs, eval_env = ArrayVecEnv(TorchChainEnv(3)), ArrayVecEnv(TorchChainEnv(2))
        train_on_policy(run, envs=envs, eval_env=eval_env, agent=agent, cfg=cfg)
        return run.dir


LOOPS: dict[str, tuple[Callable[[Path, str], Path], type, list[str]]] = {
    # loop: (run it, the agent class to signal from, checkpoint entries to compare)
    "off-policy": (_offpolicy, TinyQAgent, ["agent", "buffer", "counters", "obs", "rng"]),
    "offline": (_offline, _Regression, ["agent", "source", "counters", "rng"]),
    "on-policy": (_onpolicy, TinyPPOAgent, ["agent", "counters", "env_state", "generator", "rng"]),
}


def _signal_on_update(
    monkeypatch: pytest.MonkeyPatch, agent_type: type, at: int, *signums: int
) -> None:
    """Make update number ``at`` (1-based) of ``agent_type`` send ``signums`` to this process."""
    update = agent_type.update
    calls = 0

    def signalling_update(self: Any, batch: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == at:
            for signum in signums:
                os.kill(os.getpid(), signum)
        return update(self, batch)

    monkeypatch.setattr(agent_type, "update", signalling_update)


@pytest.fixture
def handlers_kept() -> Iterator[None]:
    """The run puts back the handlers it found."""
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    assert {s: signal.getsignal(s) for s in before} == before


@pytest.mark.parametrize("loop", list(LOOPS))
def test_sigterm_checkpoints_and_the_resumed_run_equals_an_uninterrupted_one(
    tmp_path: Path, loop: str, monkeypatch: pytest.MonkeyPatch, same_state, handlers_kept
) -> None:
    run_loop, agent_type, keys = LOOPS[loop]
    _signal_on_update(monkeypatch, agent_type, 10, signal.SIGTERM)
    with pytest.raises(RunInterrupted) as stop:
        run_loop(tmp_path, "stopped")
    monkeypatch.undo()
    stopped = stop.value
    assert (stopped.signum, stopped.signal_name, stopped.exit_status) == (15, "SIGTERM", 143)
    assert stopped.step is not None
    assert 0 < stopped.step < 240
    assert stopped.step % 96  # not a periodic checkpoint: one of its own, of exactly that state
    assert stopped.checkpoint == stopped.run_dir / "checkpoints" / f"ckpt-{stopped.step:012d}.pt"
    assert stopped.checkpoint.is_file()
    if loop == "offline":  # one update per step: it stops right after the step that signalled
        assert stopped.step == 10
    log = (stopped.run_dir / "run.log").read_text()
    assert f"interrupted by SIGTERM at step {stopped.step}; checkpoint" in log

    assert run_loop(tmp_path, "stopped") == stopped.run_dir  # resumes from that checkpoint
    reference = run_loop(tmp_path, "reference")
    final = "checkpoints/ckpt-000000000240.pt"
    a, b = io.load(stopped.run_dir / final), io.load(reference / final)
    for key in keys:
        same_state(a[key], b[key], key)
    assert _lines(stopped.run_dir) == _lines(reference)


def test_a_second_signal_stops_at_once_from_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, same_state, handlers_kept
) -> None:
    _signal_on_update(monkeypatch, _Regression, 100, signal.SIGINT, signal.SIGINT)
    with pytest.raises(RunInterrupted) as stop:
        _offline(tmp_path, "stopped")
    monkeypatch.undo()
    assert (stop.value.signal_name, stop.value.exit_status, stop.value.step) == (
        "SIGINT",
        130,
        None,
    )
    run = stop.value.run_dir
    assert sorted(p.name for p in (run / "checkpoints").glob("ckpt-*")) == ["ckpt-000000000096.pt"]
    assert "interrupted by SIGINT; resume from the last checkpoint" in (run / "run.log").read_text()

    _offline(tmp_path, "stopped")
    reference = _offline(tmp_path, "reference")
    final = "checkpoints/ckpt-000000000240.pt"
    same_state(io.load(run / final)["agent"], io.load(reference / final)["agent"], "agent")
    assert _lines(run) == _lines(reference)


def test_a_signal_at_the_last_step_lets_the_run_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, handlers_kept
) -> None:
    _signal_on_update(monkeypatch, _Regression, 240, signal.SIGTERM)
    run = _offline(tmp_path, "a")  # no exception: the run is complete, nothing to resume
    steps = sorted(p.name for p in (run / "checkpoints").glob("ckpt-*"))
    assert steps == ["ckpt-000000000096.pt", "ckpt-000000000192.pt", "ckpt-000000000240.pt"]
