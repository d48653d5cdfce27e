"""TRL's GRPO trainer with per-task measurements hooked into its batch.

:class:`MeasuredGRPOTrainer` is ``trl.GRPOTrainer`` with three additions, none of which changes
what TRL computes:

* the task checkers as its reward function (:meth:`task_reward`): a dataset row carries
  ``prompt``, ``task`` and ``problem`` (:meth:`gradimbalance.tasks.Problem.to_json`);
* the batch dict that ``_generate_and_score_completions`` returns also holds ``task_ids``,
  ``group_ids``, ``rewards`` and ``malformed`` (per completion, batch dimension first, so they
  survive TRL's shuffling and splitting);
* :meth:`task_gradients`: for each task, TRL's own ``_compute_loss`` on m disjoint sets of that
  task's prompt groups, differentiated with ``torch.autograd.grad`` (so ``.grad``, the parameters
  and the optimizer are untouched), fed to the cross-product estimator.

It works in TRL's own loop (``trainer.train()``: with ``measure_every > 0`` it measures the
training batch every that many optimizer steps and logs ``grad_sq_norm/<task>`` with TRL's
metrics), and in the step-by-step loop of :class:`gradimbalance.agent.GradImbalanceRunner`,
which measures a batch of its own and samples tasks as the arm says.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from trl.trainer.grpo_config import GRPOConfig
from trl.trainer.grpo_trainer import GRPOTrainer

from gradimbalance.config import GRPOSettings
from gradimbalance.measures import CrossProductAccumulator
from gradimbalance.sampler import rows_of
from gradimbalance.tasks import Problem, Task, Verdict

__all__ = ["MeasuredGRPOTrainer", "TaskGradient", "grpo_args", "select_rows", "task_batch_stats"]


def grpo_args(
    cfg: GRPOSettings, *, output_dir: Path, seed: int, use_cpu: bool, max_steps: int
) -> GRPOConfig:
    """The ``trl.GRPOConfig`` of ``cfg`` for the step-by-step loop: one generation batch per
    optimizer step (``prompts_per_step x num_generations`` completions), no checkpoints,
    logging or reports of TRL's own (the run directory has them), float32 on a CPU."""
    return GRPOConfig(
        output_dir=str(output_dir),
        use_cpu=use_cpu,
        bf16=False,
        fp16=False,
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations,
        gradient_accumulation_steps=1,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_k=0,
        top_p=1.0,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        epsilon=cfg.epsilon,
        beta=cfg.beta,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        num_iterations=1,
        max_steps=max_steps,
        seed=seed,
        report_to="none",
        activation_checkpointing=False,
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1,
    )


@dataclass(frozen=True)
class TaskGradient:
    """One task's gradient measurement.

    Attributes:
        sq_norm: The cross-product (unbiased) estimate of ``||grad J_t||^2``.
        plain_sq_norm: ``||mean_i g_i||^2`` (biased up by ``trace(Cov)/m``).
        mean_sq_norm: ``mean_i ||g_i||^2``.
        microbatches: m, the number of micro-batch gradients.
        groups: Prompt groups measured.
    """

    sq_norm: float
    plain_sq_norm: float
    mean_sq_norm: float
    microbatches: int
    groups: int


def select_rows(inputs: Mapping[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    """The batch dict restricted to completions ``rows`` (``(n,)`` long), with
    ``num_items_in_batch`` recounted for the slice (TRL's token-normalised losses divide by
    it)."""
    size = inputs["completion_ids"].shape[0]
    out: dict[str, Any] = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == size:
            out[key] = value[rows]
        else:
            out[key] = value
    mask = out["completion_mask"]
    if "tool_mask" in out:
        mask = mask * out["tool_mask"]
    out["num_items_in_batch"] = mask.sum()
    return out


def task_batch_stats(
    inputs: Mapping[str, Any], task_names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per task of a scored batch: ``reward`` (mean), ``abs_advantage`` (mean |A|),
    ``zero_adv_groups`` (fraction of its groups whose advantages are all 0: equal rewards),
    ``response_length`` (mean completion tokens), ``malformed`` (fraction of malformed answers)
    and ``completions``. Tasks absent from the batch are left out."""
    task_ids = inputs["task_ids"]
    group_ids = inputs["group_ids"]
    lengths = inputs["completion_mask"].sum(1).to(torch.float64)  # (B,)
    advantages = inputs["advantages"].to(torch.float64)
    if advantages.dim() == 2:  # per-token advantages of a subclass: one value per completion
        advantages = advantages[:, 0]
    out: dict[str, dict[str, float]] = {}
    for index, name in enumerate(task_names):
        rows = task_ids == index
        if not bool(rows.any()):
            continue
        groups = group_ids[rows].unique()
        zero = [bool((advantages[group_ids == g] == 0).all()) for g in groups.tolist()]
        out[name] = {
            "reward": float(inputs["rewards"][rows].to(torch.float64).mean()),
            "abs_advantage": float(advantages[rows].abs().mean()),
            "zero_adv_groups": sum(zero) / len(zero),
            "response_length": float(lengths[rows].mean()),
            "malformed": float(inputs["malformed"][rows].to(torch.float64).mean()),
            "completions": float(rows.sum()),
        }
    return out


class MeasuredGRPOTrainer(GRPOTrainer):
    """``trl.GRPOTrainer`` whose reward is the tasks' checkers and whose batch knows each
    completion's task and group (see the module doc).

    Args:
        model: A ``transformers`` causal LM, or a path TRL loads.
        tasks: Task name -> task (the ``task`` column of the rows names one of them).
        args: TRL's config (:func:`grpo_args` builds the one the runner uses).
        processing_class: The tokenizer.
        train_dataset: Rows for ``trainer.train()`` (columns ``prompt``, ``task``,
            ``problem``); the step-by-step runner passes its rows to ``training_step``.
        measure_every: In ``trainer.train()``, measure the training batch every this many
            optimizer steps (0: never; the runner measures batches of its own).
        microbatches: m of the cross-product estimator in those measurements.
    """

    def __init__(
        self,
        model: Any,
        *,
        tasks: Mapping[str, Task],
        args: GRPOConfig,
        processing_class: Any,
        train_dataset: Any = None,
        measure_every: int = 0,
        microbatches: int = 4,
    ) -> None:
        self.tasks = dict(tasks)
        self.task_names: tuple[str, ...] = tuple(tasks)
        self.measure_every = measure_every
        self.microbatches = microbatches
        self.last_inputs: dict[str, Any] | None = None
        self.measurements: list[tuple[int, dict[str, TaskGradient]]] = []
        self._last_verdicts: list[Verdict] = []
        if train_dataset is None:
            # TRL requires a dataset; the step-by-step runner never reads it (one problem of
            # each task, drawn from a generator of its own).
            from datasets import Dataset

            placeholder = random.Random(0)
            problems = [task.sample(placeholder) for task in self.tasks.values()]
            train_dataset = Dataset.from_list(rows_of(problems, 1))
        super().__init__(
            model=model,
            reward_funcs=[self._make_reward()],
            args=args,
            train_dataset=train_dataset,
            processing_class=processing_class,
        )
        # Set per optimizer step by transformers' own loop; the step-by-step runner does not
        # accumulate gradients.
        self.current_gradient_accumulation_steps = args.gradient_accumulation_steps

    def _make_reward(self) -> Any:
        def task_reward(
            prompts: list[Any], completions: list[Any], problem: list[str], **kwargs: Any
        ) -> list[float]:
            """1 for an answer the task's checker accepts, 0 for a wrong or malformed one."""
            del prompts, kwargs
            self._last_verdicts = [
                self.check(Problem.from_json(spec), text)
                for spec, text in zip(problem, completions, strict=True)
            ]
            return [v.reward for v in self._last_verdicts]

        return task_reward

    def check(self, problem: Problem, completion: Any) -> Verdict:
        """The checker's verdict on one completion (TRL passes text; a conversational
        completion's last message content is checked)."""
        if not isinstance(completion, str):
            completion = str(completion[-1]["content"]) if completion else ""
        return self.tasks[problem.task].check(problem, completion)

    @property
    def policy(self) -> torch.nn.Module:
        """The model being trained (TRL's ``model``, never None once built)."""
        if self.model is None:
            raise RuntimeError("the trainer has no model")
        return self.model

    # --- TRL hooks -----------------------------------------------------------------------------

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        device = output["completion_ids"].device
        size = len(inputs)
        g = self.num_generations if self.policy.training else self.num_generations_eval
        g = g or 1  # TRL types both as optional; they are set once the trainer is built
        output["task_ids"] = torch.tensor(
            [self.task_names.index(row["task"]) for row in inputs], device=device
        )
        # TRL normalises rewards over consecutive runs of num_generations rows (one prompt).
        output["group_ids"] = torch.arange(size, device=device) // g
        output["rewards"] = torch.tensor([v.reward for v in self._last_verdicts], device=device)
        output["malformed"] = torch.tensor(
            [v is Verdict.MALFORMED for v in self._last_verdicts], device=device
        )
        return output

    def _prepare_inputs(self, generation_batch: Any) -> dict[str, Any]:
        inputs = super()._prepare_inputs(generation_batch)
        if self.policy.training:
            self.last_inputs = inputs
            step = self.state.global_step
            first_micro_step = self._step % self.current_gradient_accumulation_steps == 0
            if self.measure_every > 0 and step % self.measure_every == 0 and first_micro_step:
                measured = self.task_gradients(inputs, self.microbatches)
                self.measurements.append((step, measured))
                for name, grad in measured.items():
                    self._metrics["train"][f"grad_sq_norm/{name}"].append(grad.sq_norm)
        return inputs

    # --- measurements ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def metrics_untouched(self) -> Iterator[None]:
        """TRL's logged metrics and token count as they were before the block (a
        measurement's own generations and forward passes would otherwise count as training)."""
        saved = {
            mode: {k: list(v) for k, v in table.items()} for mode, table in self._metrics.items()
        }
        tokens = self.state.num_input_tokens_seen
        try:
            yield
        finally:
            self.state.num_input_tokens_seen = tokens
            for mode, table in self._metrics.items():
                lengths = saved.get(mode, {})
                for key in list(table):
                    if key not in lengths:
                        del table[key]
                    else:
                        table[key] = lengths[key]

    def score(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Generate and score ``rows`` (G consecutive copies per prompt) with TRL's own code, in
        training mode, leaving TRL's logged metrics untouched: a measurement batch."""
        self.policy.train()
        with self.metrics_untouched():
            return self._generate_and_score_completions(rows)

    def task_gradients(
        self, inputs: Mapping[str, Any], microbatches: int
    ) -> dict[str, TaskGradient]:
        """Per task of the scored batch ``inputs``: the cross-product estimate of the squared
        norm of its policy gradient from ``microbatches`` gradients, each of TRL's loss on a
        disjoint set of the task's prompt groups (groups are independent given the policy;
        completions of one group are not, since their advantages share the group's mean).

        The gradients come from ``torch.autograd.grad``: ``.grad``, the parameters and the
        optimizer state are untouched. Tasks with fewer groups than ``microbatches`` are left
        out."""
        model = self.policy
        params = [p for p in model.parameters() if p.requires_grad]
        was_training = model.training
        model.train()
        out: dict[str, TaskGradient] = {}
        try:
            with self.metrics_untouched():
                for index, name in enumerate(self.task_names):
                    rows = (inputs["task_ids"] == index).nonzero().squeeze(1)
                    groups = inputs["group_ids"][rows].unique()
                    if groups.numel() < microbatches:
                        continue
                    acc = CrossProductAccumulator()
                    for part in torch.tensor_split(groups, microbatches):
                        chosen = rows[torch.isin(inputs["group_ids"][rows], part)]
                        with self.compute_loss_context_manager():
                            loss = self._compute_loss(model, select_rows(inputs, chosen))
                        acc.add(torch.autograd.grad(loss, params, allow_unused=True))
                    out[name] = TaskGradient(
                        sq_norm=acc.estimate(),
                        plain_sq_norm=acc.plain(),
                        mean_sq_norm=acc.mean_sq(),
                        microbatches=microbatches,
                        groups=int(groups.numel()),
                    )
        finally:
            model.train(was_training)
        return out


def nan_if_missing(values: Mapping[str, float], names: Sequence[str]) -> list[float]:
    """``values[name]`` for each name, NaN where absent."""
    return [values.get(name, math.nan) for name in names]
