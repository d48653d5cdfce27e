"""rl_runtime.offline: logging, evaluation, checkpoints and exact resume after SIGKILL.

The agent is a small stand-in (linear regression of the reward with noise from its own
generator), so that these tests exercise only the loop; the subprocess runs ``main`` below.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rl_buffers import ReplayBuffer, TransitionBatch, TransitionSpec, io
from rl_runtime.config import RunConfig
from rl_runtime.offline import DataMismatchError, SeededBatches, train_offline
from rl_runtime.run import open_run

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent


class StandInAgent:
    """Linear regression of the reward on noised observations (noise from its own generator)."""

    def __init__(self, seed: int, delay: float = 0.0) -> None:
        self.net = torch.nn.Linear(3, 1)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=0.01)
        self.generator = torch.Generator().manual_seed(seed)
        self.delay = delay

    def act(self, obs: torch.Tensor, *, explore: bool) -> torch.Tensor:
        return self.net(obs)

    def update(self, batch: TransitionBatch) -> dict[str, torch.Tensor]:
        if self.delay:
            time.sleep(self.delay)  # slows the child down so that it can be killed mid-run
        noise = 0.01 * torch.randn(batch.obs.shape, generator=self.generator)
        loss = ((self.net(batch.obs + noise).squeeze(-1) - batch.reward) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), "bias": self.net.bias.detach()[0]}

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.generator.set_state(state["generator"])


@dataclasses.dataclass(frozen=True)
class StandInConfig:
    env: str = "synthetic"
    run: RunConfig = RunConfig()  # noqa: RUF009 - frozen


def _buffer(data_seed: int) -> ReplayBuffer:
    rng = np.random.default_rng(data_seed)
    n = 64
    obs = rng.normal(size=(n + 1, 3)).astype(np.float32)
    reward = (obs[:-1] @ np.array([1.0, -2.0, 0.5], np.float32) + 0.3).astype(np.float32)
    buffer = ReplayBuffer(spec=TransitionSpec.continuous((3,), 1), capacity=n)
    done = np.zeros(n, bool)
    done[-1] = True
    buffer.extend(obs[:-1], np.zeros((n, 1), np.float32), reward, obs[1:], done, np.zeros(n, bool))
    return buffer


def main(root: str, name: str, total: int, data_seed: int = 0, delay: float = 0.0) -> Path:
    cfg = StandInConfig(
        run=RunConfig(
            total_steps=total, eval_every=100, eval_episodes=1, log_every=25,
            checkpoint_every=50, keep_checkpoints=50, root=Path(root), name=name,
            device="cpu", torch_threads=1, tensorboard=False, quiet=True,
        )
    )  # fmt: skip
    with open_run("offline-standin", cfg) as run:
        agent = StandInAgent(seed=1, delay=delay)
        source = SeededBatches(_buffer(data_seed), batch_size=8, seed=2)

        def evaluate() -> dict[str, float]:
            # Draws from the global torch RNG too, which the checkpoint must restore.
            return {"return": float(agent.net.bias.detach()) + float(torch.rand(()))}

        train_offline(
            run, agent=agent, source=source, evaluate=evaluate, data_fingerprint=f"d{data_seed}"
        )
        return run.dir


def _lines(run: Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]


def test_logs_evaluates_and_checkpoints(tmp_path: Path) -> None:
    run = main(str(tmp_path), "a", 120)
    lines = _lines(run)
    assert [e["step"] for e in lines if "train/loss" in e] == [25, 50, 75, 100, 120]
    assert [e["step"] for e in lines if "eval/return" in e] == [0, 100, 120]
    assert all(e["buffer/size"] == 64 for e in lines if "buffer/size" in e)
    assert [e["train/updates"] for e in lines if "train/updates" in e] == [25, 50, 75, 100, 120]
    state = io.load(run / "checkpoints" / "ckpt-000000000120.pt")
    assert state["counters"] == {"step": 120, "updates": 120}
    assert state["data_fingerprint"] == "d0"
    assert set(state["source"]) == {"generator", "size"}  # the data itself is not stored
    loss = [e["train/loss"] for e in lines if "train/loss" in e]
    assert loss[-1] < loss[0]  # the stand-in learns: the loop really updates it
    assert main(str(tmp_path), "a", 120) == run  # complete: nothing more is done
    assert _lines(run) == lines


def test_resume_on_other_data_is_refused(tmp_path: Path) -> None:
    main(str(tmp_path), "b", 50)
    with pytest.raises(DataMismatchError, match=r"fingerprint d0.*has d1"):
        main(str(tmp_path), "b", 50, data_seed=1)


def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, same_state, kill_at_checkpoint
) -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); "
        f"from test_offline import main; main({str(tmp_path)!r}, 'killed', 400, delay=0.003)"
    )
    latest = tmp_path / "offline-standin" / "synthetic" / "0-killed" / "checkpoints" / "latest"
    kill_at_checkpoint([sys.executable, "-c", code], latest, tmp_path / "child.log")
    killed = latest.parent.parent
    written = sorted((killed / "checkpoints").glob("ckpt-*.pt"))
    assert written
    assert written[-1].name != "ckpt-000000000400.pt", "killed after it finished"

    assert main(str(tmp_path), "killed", 400) == killed  # resumes from the last checkpoint
    reference = main(str(tmp_path), "reference", 400)
    final = "checkpoints/ckpt-000000000400.pt"
    a, b = io.load(killed / final), io.load(reference / final)
    for key in ("agent", "source", "counters", "rng", "pending_metrics"):
        same_state(a[key], b[key], key)
    assert _lines(killed) == _lines(reference)
    assert [e["step"] for e in _lines(killed) if "eval/return" in e] == [0, 100, 200, 300, 400]
