"""mrq_drq.learner: MR.Q's schedule behind the off-policy loop, and agents read back from runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from mrq_drq import MRQAgent, check_spaces, make_buffer, make_env
from mrq_drq.config import EnvConfig
from mrq_drq.learner import RUN_METHOD, MRQLearner, load_run_agent, loop_config
from mrq_drq_testkit import VECTOR_SPEC, filled_buffer, micro, params, same
from rl_runtime.config import RunConfig, RunOptions
from rl_runtime.offpolicy import SeededReplay, train_off_policy
from rl_runtime.run import open_run

RANDOM_STEPS = 20
TOTAL_STEPS = 50
INTERVAL = 5  # micro(): a sync and 5 encoder updates every 5 RL updates


class _Spy:
    """Counts the agent's sync and encoder-update calls, in order, and still runs them."""

    def __init__(self, agent: MRQAgent) -> None:
        self.calls: list[str] = []
        for name in ("sync_targets", "update_encoder", "update_rl"):
            real = getattr(agent, name)

            def spy(*args: Any, _real: Any = real, _name: str = name) -> Any:
                self.calls.append(_name)
                return _real(*args)

            setattr(agent, name, spy)


def test_each_update_is_one_round_with_a_sync_and_burst_every_interval() -> None:
    cfg = micro()
    agent = MRQAgent(cfg, VECTOR_SPEC, seed=0)
    buffer = filled_buffer(cfg, VECTOR_SPEC)
    learner = MRQLearner(agent, buffer, torch.Generator().manual_seed(0))
    spy = _Spy(agent)
    written: list[torch.Tensor] = []
    real_priority = buffer.update_priority

    def update_priority(indices: torch.Tensor, priority: torch.Tensor) -> None:
        written.append(indices)
        real_priority(indices, priority)

    buffer.update_priority = update_priority  # type: ignore[method-assign]
    for round_ in range(12):
        spy.calls.clear()
        target_before, value_before = params(agent.value_target), params(agent.value)
        batch = learner.sample()
        metrics = learner.update(batch)
        sync = round_ % INTERVAL == 0
        burst = ["sync_targets", *["update_encoder"] * INTERVAL] if sync else []
        assert spy.calls == [*burst, "update_rl"]
        # A sync copies the online critic (before this round's update) into the target;
        # otherwise the target stays. The encoder's metrics are reported only after a sync.
        assert same(value_before if sync else target_before, params(agent.value_target))
        assert not same(value_before, params(agent.value))
        assert ("encoder_loss" in metrics) == sync
        assert {"critic_loss", "actor_loss", "q_mean"} <= set(metrics)
        assert all(v.dim() == 0 and not v.requires_grad for v in metrics.values())
        # The RL batch's slots get their new priorities.
        assert torch.equal(written[-1], batch.rl_batch.indices)
    assert agent.training_steps == 12
    assert len(written) == 12


def test_state_is_the_agents() -> None:
    cfg = micro()
    agent = MRQAgent(cfg, VECTOR_SPEC, seed=0)
    learner = MRQLearner(agent, filled_buffer(cfg, VECTOR_SPEC), torch.Generator())
    learner.update(learner.sample())
    other = MRQLearner(
        MRQAgent(cfg, VECTOR_SPEC, seed=1), filled_buffer(cfg, VECTOR_SPEC), torch.Generator()
    )
    other.load_state_dict(learner.state_dict())
    obs = torch.randn(5)
    assert torch.equal(other.act(obs, explore=False), learner.act(obs, explore=False))
    assert other.agent.training_steps == 1


def test_loop_config_trains_after_the_random_phase_one_round_per_step() -> None:
    cfg = micro()
    loop = loop_config(cfg)
    assert (loop.random_steps, loop.learning_starts) == (cfg.schedule.random_steps,) * 2
    assert (loop.update_every, loop.updates_per_round) == (1, 1)
    assert (loop.batch_size, loop.buffer_capacity) == (cfg.replay.batch_size, cfg.replay.capacity)


# ----------------------------------------------------------------------------- a real run


@dataclasses.dataclass(frozen=True)
class _RunConfig:
    """The shape of an ``rl-train mrq-drq`` config as far as the runtime reads it."""

    env: str = "Pendulum-v1"
    run: RunOptions = dataclasses.field(default_factory=RunConfig)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MRQAgent, list[str]]:
    """A 50-step MR.Q run on Pendulum-v1 through the runtime's loop: 20 random steps."""
    base = micro()
    cfg = dataclasses.replace(
        base,
        env=EnvConfig(suite="gym", env_id="Pendulum-v1"),
        schedule=dataclasses.replace(base.schedule, random_steps=RANDOM_STEPS),
    )
    run_cfg = _RunConfig(
        run=RunConfig(
            root=tmp_path_factory.mktemp("runs"),
            name="mrq",
            total_steps=TOTAL_STEPS,
            eval_every=TOTAL_STEPS,
            eval_episodes=0,
            log_every=10,
            checkpoint_every=TOTAL_STEPS,
            tensorboard=False,
            quiet=True,
            device="cpu",
        )
    )
    with (
        open_run(RUN_METHOD, run_cfg) as run,
        make_env(cfg.env, seed=1) as env,
        make_env(cfg.env, seed=2, evaluation=True) as eval_env,
    ):
        agent = MRQAgent(cfg, check_spaces(env.observation_space, env.action_space), seed=0)
        replay = SeededReplay(make_buffer(cfg, agent.spec), seed=3)
        learner = MRQLearner(agent, replay.buffer, replay.generator)
        spy = _Spy(agent)
        train_off_policy(
            run,
            env=env,
            eval_env=eval_env,
            agent=learner,
            buffer=replay,
            sample=learner.sample,
            cfg=loop_config(cfg),
        )
        return run.dir, agent, spy.calls


def test_in_the_loop_one_rl_update_per_step_after_the_random_phase(trained) -> None:
    run_dir, agent, calls = trained
    # Steps 20, 21, ..., 50 (the buffer holds >= 20 transitions) each end with one round.
    updates = TOTAL_STEPS - RANDOM_STEPS + 1
    assert agent.training_steps == updates == calls.count("update_rl")
    syncs = -(-updates // INTERVAL)  # before RL updates 0, 5, ..., 30
    assert calls.count("sync_targets") == syncs
    assert calls.count("update_encoder") == syncs * INTERVAL
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [line["step"] for line in lines if "train/critic_loss" in line]
    assert train == [20, 30, 40, 50]  # the first update is at step 20


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in [directory, *directory.rglob("*")]
    }


def test_load_run_agent_restores_the_trained_agent_reading_only(trained) -> None:
    run_dir, agent, _ = trained
    before = _snapshot(run_dir)
    loaded = load_run_agent(run_dir)
    assert _snapshot(run_dir) == before
    assert loaded.step == TOTAL_STEPS
    assert loaded.agent.cfg == agent.cfg
    assert loaded.agent.training_steps == agent.training_steps
    obs = torch.randn(8, 3)
    assert torch.equal(loaded.agent.act(obs, explore=False), agent.act(obs, explore=False))


def test_load_run_agent_refuses_other_runs(tmp_path: Path, trained) -> None:
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        load_run_agent(tmp_path)
    info = json.loads((trained[0] / "config.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({**info, "method": "tiny-q"}))
    with pytest.raises(ValueError, match="holds a 'tiny-q' run, not an mrq-drq one"):
        load_run_agent(other)
    (other / "config.json").write_text(json.dumps(info))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_run_agent(other)
