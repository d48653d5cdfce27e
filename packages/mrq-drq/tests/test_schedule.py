"""The per-step schedule: when syncs and encoder bursts happen, and what they change."""

from __future__ import annotations

import torch
from mrq_drq import MRQAgent, apply_round, draw_round, training_step
from mrq_drq_testkit import VECTOR_SPEC, filled_buffer, micro, params, same


def test_burst_every_interval_and_priorities_written() -> None:
    cfg = micro()  # sync + 5 encoder updates every 5 RL updates
    agent = MRQAgent(cfg, VECTOR_SPEC, seed=0)
    buf = filled_buffer(cfg, VECTOR_SPEC)
    gen = torch.Generator().manual_seed(0)
    bursts = []
    for _ in range(12):
        batches = draw_round(agent, buf, gen)
        bursts.append(batches.reward_scale is not None)
        before = params(agent.encoder)
        metrics = apply_round(agent, buf, batches)
        # The encoder moves only in a burst; its metrics are reported only then.
        assert same(before, params(agent.encoder)) != bursts[-1]
        assert ("encoder_loss" in metrics) == bursts[-1]
        assert "critic_loss" in metrics
    assert bursts == [True, False, False, False, False] * 2 + [True, False]
    assert agent.training_steps == 12
    # The reward scale the first sync saw is the buffer's mean |r|.
    expected = buf.reward_scale()
    assert torch.allclose(agent.reward_scale, torch.as_tensor(expected, dtype=torch.float32))


def test_encoder_batches_are_drawn_lazily_in_order() -> None:
    cfg = micro()
    agent = MRQAgent(cfg, VECTOR_SPEC, seed=0)
    buf = filled_buffer(cfg, VECTOR_SPEC)
    gen = torch.Generator().manual_seed(3)
    batches = draw_round(agent, buf, gen)
    # Drawing the burst later, one at a time, gives the same sequence as the generator would
    # produce right after the RL batch.
    state = gen.get_state()
    first = next(batches.encoder_batches)
    gen.set_state(state)
    again = buf.sample_subtrajectory(cfg.replay.batch_size, gen, horizon=cfg.encoder.horizon)
    assert torch.equal(first.indices, again.indices)


def test_training_step_equals_draw_then_apply() -> None:
    cfg = micro()
    runs = []
    for split in (True, False):
        agent = MRQAgent(cfg, VECTOR_SPEC, seed=0)
        buf = filled_buffer(cfg, VECTOR_SPEC)
        gen = torch.Generator().manual_seed(1)
        for _ in range(7):
            if split:
                apply_round(agent, buf, draw_round(agent, buf, gen))
            else:
                training_step(agent, buf, gen)
        runs.append(params(agent.value))
    assert same(runs[0], runs[1])
