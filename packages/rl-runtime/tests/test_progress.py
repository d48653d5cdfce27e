"""The time-left line (rl_runtime.run.ProgressEstimate, Run.report_progress) on a fake clock.

No test sleeps or reads the wall clock: the estimator takes its clocks as arguments, and the
loop tests replace ``time.perf_counter`` by a clock that the agent's updates advance (one
second per update), so every estimate is known in advance.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch
from rl_buffers import ReplayBuffer, TransitionSpec
from rl_runtime.config import RunConfig
from rl_runtime.offline import train_offline
from rl_runtime.offpolicy import OffPolicyConfig, SeededReplay, train_off_policy
from rl_runtime.run import ProgressEstimate, open_run
from rl_runtime.testing import CHAIN_ID, TinyQAgent, TinyQAgentConfig

torch.set_num_threads(1)

NOON = dt.datetime(2025, 1, 1, 12, 0)  # a Wednesday
LINE = re.compile(r"step \d+/\d+: about [\d.]+ (min|h) left at the current speed \(ETA .+\)")


class FakeClock:
    """Monotonic seconds that only the test advances."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _estimate(clock: FakeClock, total: int = 10_000, **kwargs: Any) -> ProgressEstimate:
    return ProgressEstimate(
        total, clock=clock, now=lambda: NOON + dt.timedelta(seconds=clock.t), **kwargs
    )


def test_first_line_once_the_speed_is_measured() -> None:
    clock = FakeClock()
    progress = _estimate(clock)
    progress.start(0)
    clock.t = 5.0
    assert progress.update(100) is None  # 5 s are not enough to tell
    clock.t = 10.0
    # 200 steps in 10 s: 9800 steps left take 490 s; it is 12:00:10 now.
    assert progress.update(200) == (
        "step 200/10000: about 8.2 min left at the current speed (ETA 12:08)"
    )
    clock.t = 20.0
    assert progress.update(400) is None  # the same speed: nothing new to say
    assert progress.lines == 1


def test_a_speed_change_of_more_than_half_is_said_again() -> None:
    clock = FakeClock()
    progress = _estimate(clock)
    progress.start(0)
    clock.t = 10.0
    assert progress.update(200) is not None  # the end predicted at 500 s, 490 s from now
    # Slower, but the predicted end moves by less than half of those 490 s (to 714 s).
    clock.t = 30.0
    assert progress.update(420) is None
    # Much slower: 600 steps in 100 s predict the end at 1667 s.
    clock.t = 100.0
    assert progress.update(600) == (
        "step 600/10000: about 26 min left at the current speed (ETA 12:27)"
    )
    # Faster again, by more than half of the 1567 s left at the last line.
    clock.t = 400.0
    line = progress.update(6_000)
    assert line is not None
    assert line.startswith("step 6000/10000: about 4.4 min left")
    assert progress.lines == 3


def test_at_most_max_lines() -> None:
    clock = FakeClock()
    progress = _estimate(clock, total=1_000_000, max_lines=2)
    progress.start(0)
    lines = []
    step = 0
    for second in range(10, 1_000, 10):
        clock.t = float(second)
        step += 1_000 if (second // 100) % 2 else 10  # the speed swings by 100x
        lines.append(progress.update(step))
    assert len([line for line in lines if line is not None]) == 2


def test_start_measures_again() -> None:
    """The off-policy loop starts over when its updates begin: the random steps before them
    are much faster and would promise an early end."""
    clock = FakeClock()
    progress = _estimate(clock, total=1_000)
    progress.start(0)
    clock.t = 2.0
    progress.start(500)  # 500 random steps in 2 s
    clock.t = 10.0
    assert progress.update(520) is None  # 8 s since the start: not measured yet
    clock.t = 12.0
    assert progress.update(525) == (
        "step 525/1000: about 3.2 min left at the current speed (ETA 12:03)"
    )


def test_no_line_without_a_start_or_near_the_end() -> None:
    clock = FakeClock()
    progress = _estimate(clock, total=100)
    assert progress.update(10) is None  # the first update starts the measurement
    clock.t = 500.0
    assert progress.update(100) is None  # done: nothing left to estimate
    assert progress.update(99) is None  # 5.6 s left: the run is about to end
    assert progress.update(90) is not None  # 62.5 s left


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (90.0, "about 1.5 min left"),
        (7_200.0, "about 2.0 h left"),
        (12 * 3600.0 + 1_800, "(ETA Thu 00:30)"),
        (30 * 86_400.0, "(ETA 2025-01-31 12:00)"),
    ],
)
def test_duration_and_eta_formats(seconds: float, shown: str) -> None:
    clock = FakeClock()
    progress = ProgressEstimate(2, clock=clock, now=lambda: NOON)
    progress.start(0)
    clock.t = seconds  # one step took this long, and one is left
    line = progress.update(1)
    assert line is not None
    assert shown in line


# ------------------------------------------------------------------------ the loops, end to end


@dataclasses.dataclass(frozen=True)
class _Config:
    env: str = "synthetic"
    run: RunConfig = RunConfig()  # noqa: RUF009 - frozen


class _SlowAgent:
    """Each update takes one second of the fake clock."""

    def __init__(self, clock: FakeClock, inner: Any = None) -> None:
        self.clock = clock
        self.inner = inner

    def act(self, obs: torch.Tensor, *, explore: bool) -> torch.Tensor:
        return self.inner.act(obs, explore=explore)

    def update(self, batch: Any) -> Mapping[str, torch.Tensor]:
        self.clock.t += 1.0
        if self.inner is None:
            return {"loss": torch.zeros(())}
        return self.inner.update(batch)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.inner is None else self.inner.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.inner is not None:
            self.inner.load_state_dict(state)


class _Batches:
    def sample(self) -> None:
        return None

    def __len__(self) -> int:
        return 1

    def state_dict(self) -> dict[str, Any]:
        return {"size": 1}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


def _run_cfg(root: Path, **kwargs: Any) -> RunConfig:
    return RunConfig(
        root=root, name="eta", eval_episodes=0, tensorboard=False, device="cpu", **kwargs
    )


def _eta_lines(run_dir: Path) -> list[str]:
    text = (run_dir / "run.log").read_text()
    return [m.group(0) for m in LINE.finditer(text)]


@pytest.mark.parametrize("quiet", [False, True])
def test_offline_loop_says_the_time_left_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], quiet: bool
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    cfg = _Config(run=_run_cfg(tmp_path, total_steps=100, log_every=50, quiet=quiet))
    with open_run("eta-test", cfg) as run:
        train_offline(run, agent=_SlowAgent(clock), source=_Batches(), evaluate=None)
    # One second per step: after 10 s, 90 steps are left at 1 step/s.
    lines = _eta_lines(run.dir)
    assert len(lines) == 1
    assert lines[0].startswith("step 10/100: about 1.5 min left at the current speed (ETA ")
    # The terminal shows it too, unless --quiet (run.log keeps it either way).
    assert (lines[0] in capsys.readouterr().err) is not quiet


def test_off_policy_loop_measures_from_the_first_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    cfg = _Config(env=CHAIN_ID, run=_run_cfg(tmp_path, total_steps=200, log_every=100, quiet=True))
    loop = OffPolicyConfig(batch_size=8, buffer_capacity=1_000, random_steps=50, learning_starts=50)
    with open_run("eta-test", cfg) as run, gym.make(CHAIN_ID) as env, gym.make(CHAIN_ID) as ev:
        agent = TinyQAgent(TinyQAgentConfig(), 6, 2, device=run.device, seed=0)
        replay = SeededReplay(
            ReplayBuffer(spec=TransitionSpec.discrete((6,), 2), capacity=1_000), seed=1
        )
        train_off_policy(
            run,
            env=env,
            eval_env=ev,
            agent=_SlowAgent(clock, agent),
            buffer=replay,
            sample=lambda: replay.buffer.sample(8, replay.generator),
            cfg=loop,
        )
    # The 50 random steps take no time; from step 50 on, one second per step: at step 59, 10 s
    # in, 141 steps are left at 0.9 step/s (measured from step 0, it would say 24 s).
    lines = _eta_lines(run.dir)
    assert len(lines) == 1
    assert lines[0].startswith("step 59/200: about 2.6 min left at the current speed (ETA ")
