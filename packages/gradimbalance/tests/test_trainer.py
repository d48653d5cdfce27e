"""TRL's GRPO trainer with the measurement hooks: the batch, the per-task gradients, untouched
state, determinism, resumable state, and TRL's own loop."""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from gradimbalance.agent import GradImbalanceRunner, RunnerSettings
from gradimbalance.config import GRPOSettings, MeasureConfig, ModelConfig, SamplingConfig
from gradimbalance.measures import gradient_proportional_probs, group_advantages
from gradimbalance.networks import build_model
from gradimbalance.sampler import TaskSampler, rows_of
from gradimbalance.tasks import Problem, Verdict
from gradimbalance.tokenizer import char_tokenizer
from gradimbalance.trainer import MeasuredGRPOTrainer, grpo_args, select_rows, task_batch_stats

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@dataclasses.dataclass(frozen=True)
class LengthParityTask:
    """A test task that a random policy solves about half the time, so GRPO groups have mixed
    rewards from the first step: correct when the completion's length has the parity of the
    prompt's digit."""

    name: str

    def sample(self, rng: random.Random) -> Problem:
        n = rng.randint(0, 9)
        return Problem(self.name, f"A:{n}=", "ab" if n % 2 == 0 else "a", target=n)

    def check(self, problem: Problem, completion: str) -> Verdict:
        return Verdict.CORRECT if len(completion) % 2 == problem.target % 2 else Verdict.WRONG


TASKS = {"even": LengthParityTask("even"), "odd": LengthParityTask("odd")}
NET = ModelConfig(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, max_positions=32)
GRPO = GRPOSettings(
    prompts_per_step=4, num_generations=4, max_completion_length=6, learning_rate=1e-2
)


def make_trainer(
    tmp: Path, grpo: GRPOSettings = GRPO, seed: int = 0, **kwargs: Any
) -> MeasuredGRPOTrainer:
    tokenizer = char_tokenizer()
    torch.manual_seed(seed)
    model = build_model(NET, tokenizer)
    args = grpo_args(grpo, output_dir=tmp / "trl", seed=seed, use_cpu=True, max_steps=10)
    return MeasuredGRPOTrainer(model, tasks=TASKS, args=args, processing_class=tokenizer, **kwargs)


def make_runner(tmp: Path, arm: str = "uniform", seed: int = 0) -> GradImbalanceRunner:
    trainer = make_trainer(tmp, seed=seed)
    measure = MeasureConfig(every=1, microbatches=2, groups_per_microbatch=2, gain_window=1)
    settings = RunnerSettings(GRPO, measure, SamplingConfig(arm=arm, floor=0.1))  # type: ignore[arg-type]
    return GradImbalanceRunner(trainer, TaskSampler(TASKS, seed), settings, total_steps=10)


def scored(trainer: MeasuredGRPOTrainer, per_task: int = 3) -> dict[str, Any]:
    sampler = TaskSampler(TASKS, 1)
    return trainer.score(rows_of(sampler.per_task(per_task), GRPO.num_generations))


def test_batch_holds_tasks_groups_rewards_and_trl_advantages(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path)
    inputs = scored(trainer)
    g = GRPO.num_generations
    assert inputs["task_ids"].tolist() == [0] * 3 * g + [1] * 3 * g
    assert inputs["group_ids"].tolist() == [i // g for i in range(6 * g)]
    rewards = inputs["rewards"]
    assert set(rewards.tolist()) == {0.0, 1.0}  # mixed rewards (the test can see groups)
    # The rewards are the checker's verdicts on the decoded completions.
    texts = trainer.processing_class.batch_decode(
        inputs["completion_ids"], skip_special_tokens=True
    )
    problems = TaskSampler(TASKS, 1).per_task(3)
    expected = [float(len(t) % 2 == problems[i // g].target % 2) for i, t in enumerate(texts)]
    assert rewards.tolist() == expected
    # TRL's advantages are GRPO's group-normalised ones; all-equal groups get exactly 0.
    torch.testing.assert_close(inputs["advantages"], group_advantages(rewards, g))
    stats = task_batch_stats(inputs, trainer.task_names)
    for index, name in enumerate(trainer.task_names):
        groups = rewards.view(-1, g)[index * 3 : index * 3 + 3]
        equal = [(row == row[0]).all().item() for row in groups]
        assert stats[name]["zero_adv_groups"] == pytest.approx(sum(equal) / 3)
        assert stats[name]["reward"] == pytest.approx(groups.mean().item())


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_task_slices_recombine_into_trls_full_gradient(tmp_path: Path, loss_type: str) -> None:
    """TRL's loss on a task's slice, weighted by its share (completions for ``grpo``, tokens
    for ``dapo``), sums to TRL's loss on the whole batch: the slices are TRL's own loss."""
    trainer = make_trainer(tmp_path, dataclasses.replace(GRPO, loss_type=loss_type))
    inputs = scored(trainer)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    full = torch.autograd.grad(trainer._compute_loss(trainer.model, inputs), params)
    mask = inputs["completion_mask"]
    total = torch.zeros_like(torch.cat([p.reshape(-1) for p in full]))
    for index in range(2):
        rows = (inputs["task_ids"] == index).nonzero().squeeze(1)
        part = select_rows(inputs, rows)
        grads = torch.autograd.grad(trainer._compute_loss(trainer.model, part), params)
        share = len(rows) / mask.shape[0] if loss_type == "grpo" else mask[rows].sum() / mask.sum()
        total += share * torch.cat([g.reshape(-1) for g in grads])
    torch.testing.assert_close(
        total, torch.cat([p.reshape(-1) for p in full]), rtol=1e-4, atol=1e-7
    )


def test_measurement_leaves_parameters_gradients_and_optimizer_untouched(tmp_path: Path) -> None:
    runner = make_runner(tmp_path)
    runner.train_step(0)  # the optimizer has state (Adam moments) now
    trainer = runner.trainer
    params = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.optimizer is not None
    opt = copy.deepcopy(trainer.optimizer.state_dict())
    sched = copy.deepcopy(trainer.lr_scheduler.state_dict())  # type: ignore[union-attr]
    logged = {k: list(v) for k, v in trainer._metrics["train"].items()}
    out = runner.measure()
    assert any(key.startswith("eval/grad_sq_norm/") for key in out)
    assert out["eval/grad_sq_norm_plain/even"] > 0.0
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, params[key]), key
    assert all(p.grad is None for p in trainer.model.parameters())
    after = trainer.optimizer.state_dict()
    assert after["param_groups"] == opt["param_groups"]
    for index, state in opt["state"].items():
        for name, value in state.items():
            assert torch.equal(after["state"][index][name], value), (index, name)
    assert trainer.lr_scheduler.state_dict() == sched  # type: ignore[union-attr]
    assert {k: list(v) for k, v in trainer._metrics["train"].items()} == logged


def test_all_equal_groups_give_an_estimate_of_exactly_zero(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path)
    inputs = scored(trainer, per_task=4)
    inputs["advantages"] = torch.zeros_like(inputs["advantages"])  # as if every group tied
    grads = trainer.task_gradients(inputs, microbatches=2)
    assert grads["even"].sq_norm == 0.0
    assert grads["even"].plain_sq_norm == 0.0
    assert grads["even"].microbatches == 2
    assert grads["even"].groups == 4
    assert trainer.task_gradients(inputs, microbatches=5) == {}  # fewer groups than m


def _run(
    tmp: Path, steps: int, arm: str = "gradient"
) -> tuple[GradImbalanceRunner, list[dict[str, float]]]:
    random.seed(0)
    runner = make_runner(tmp, arm=arm)
    logs = [{**runner.measure(), **runner.train_step(step)} for step in range(steps)]
    return runner, logs


def _without_time(logs: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in e.items() if not k.startswith("time/")} for e in logs]


def test_two_runs_with_one_seed_are_bitwise_equal(tmp_path: Path) -> None:
    a, la = _run(tmp_path / "a", 2)
    b, lb = _run(tmp_path / "b", 2)
    assert _without_time(la) == _without_time(lb)
    for (ka, va), (kb, vb) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert ka == kb
        assert torch.equal(va, vb), ka
    # The gradient arm's probabilities follow the last estimates, within the floor.
    assert a.probs == gradient_proportional_probs(a.estimates, 0.1)
    assert not any(math.isnan(e) for e in a.estimates)


def test_state_dict_round_trip_continues_identically(tmp_path: Path) -> None:
    a, _ = _run(tmp_path / "a", 1)
    state = copy.deepcopy(a.state_dict())
    rng = torch.get_rng_state()
    a.measure()
    a.train_step(1)
    b = make_runner(tmp_path / "b", arm="gradient", seed=5)  # other init, other sampler
    b.load_state_dict(state)
    torch.set_rng_state(rng)
    b.measure()
    b.train_step(1)
    for (k, va), vb in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb), k
    assert a.reward_history == b.reward_history
    assert a.probs == b.probs


def test_trls_own_loop_measures_every_k_steps(tmp_path: Path) -> None:
    from datasets import Dataset

    problems = TaskSampler(TASKS, 2).per_task(8)
    trainer = make_trainer(
        tmp_path, train_dataset=Dataset.from_list(rows_of(problems, 1)), measure_every=2,
        microbatches=2,
    )  # fmt: skip
    trainer.args.max_steps = 3
    trainer.train()
    assert [step for step, _ in trainer.measurements] == [0, 2]
    # Tasks with at least m groups in the step's batch are measured and logged with TRL's metrics.
    logged = [e for e in trainer.state.log_history if any(k.startswith("grad_sq_norm/") for k in e)]
    assert len(logged) == 2
    assert all(measured for _, measured in trainer.measurements)


@pytest.mark.slow
def test_grpo_through_trl_learns_what_a_random_policy_cannot(tmp_path: Path) -> None:
    """Length parity conditioned on the prompt's digit: a random policy is right about half
    the time; GRPO through TRL's step gets it nearly always within 150 steps."""
    grpo = dataclasses.replace(
        GRPO, prompts_per_step=8, num_generations=8, learning_rate=1e-2, max_completion_length=4
    )
    trainer = make_trainer(tmp_path, grpo)
    settings = RunnerSettings(grpo, MeasureConfig(), SamplingConfig())
    runner = GradImbalanceRunner(trainer, TaskSampler(TASKS, 0), settings, total_steps=150)
    rewards = [runner.train_step(step)["train/reward"] for step in range(150)]
    assert sum(rewards[:10]) / 10 < 0.6
    assert sum(rewards[-20:]) / 20 > 0.85
