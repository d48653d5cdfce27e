"""Supervised warm start: teach the tasks' answer format until a stated partial accuracy.

The paper starts GRPO from instruct models that already solve part of each task; a model built
from a config solves nothing and GRPO's binary rewards would all be 0 (every group's advantages
0, no gradient). So the model is first fine-tuned on the reference answers (cross-entropy on the
answer tokens and the end-of-sequence token only), checking the sampled accuracy of each task
every ``eval_every`` steps, and stopped as soon as the mean over tasks reaches
``target_accuracy`` (or after ``max_steps``). The accuracy is measured as GRPO samples:
temperature sampling (top-k and top-p off), one completion per prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gradimbalance.config import SFTConfig
from gradimbalance.sampler import TaskSampler
from gradimbalance.tasks import Problem, Task, Verdict

__all__ = ["SFTResult", "encode_sft_batch", "sampled_accuracy", "supervised_warm_start"]


@dataclass
class SFTResult:
    """What the warm start did.

    Attributes:
        steps: SFT steps taken.
        accuracy: Task -> sampled accuracy at the end.
        loss: Mean cross-entropy of the last ``eval_every`` steps (NaN without steps).
        history: ``(step, task -> accuracy)`` of every check.
    """

    steps: int
    accuracy: dict[str, float]
    loss: float
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)

    @property
    def mean_accuracy(self) -> float:
        """Mean of the tasks' accuracies."""
        return sum(self.accuracy.values()) / len(self.accuracy)


def encode_sft_batch(
    tokenizer: Any, problems: Sequence[Problem], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask, labels)``, each ``(B, L)`` long, right-padded: prompt,
    reference answer, end of sequence; labels are -100 except on the answer and the EOS."""
    seqs: list[list[int]] = []
    targets: list[list[int]] = []
    for p in problems:
        prompt = tokenizer(p.prompt, add_special_tokens=False)["input_ids"]
        answer = [
            *tokenizer(p.answer, add_special_tokens=False)["input_ids"],
            tokenizer.eos_token_id,
        ]
        seqs.append(prompt + answer)
        targets.append([-100] * len(prompt) + answer)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (s, t) in enumerate(zip(seqs, targets, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        labels[i, : len(t)] = torch.tensor(t)
    return ids.to(device), mask.to(device), labels.to(device)


@torch.no_grad()
def sampled_accuracy(
    model: Any,
    tokenizer: Any,
    tasks: Mapping[str, Task],
    sampler: TaskSampler,
    count: int,
    *,
    temperature: float,
    max_new_tokens: int,
) -> dict[str, float]:
    """Task -> fraction of ``count`` fresh problems answered correctly by one sampled
    completion each."""
    problems = sampler.per_task(count)
    device = next(model.parameters()).device
    enc = tokenizer([p.prompt for p in problems], return_tensors="pt", padding=True,
                    add_special_tokens=False)  # fmt: skip
    was_training = model.training
    model.eval()
    try:
        out = model.generate(
            input_ids=enc["input_ids"].to(device),
            attention_mask=enc["attention_mask"].to(device),
            do_sample=True,
            temperature=temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    finally:
        model.train(was_training)
    texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    correct: dict[str, list[bool]] = {name: [] for name in tasks}
    for p, text in zip(problems, texts, strict=True):
        correct[p.task].append(tasks[p.task].check(p, text) is Verdict.CORRECT)
    return {name: sum(v) / len(v) for name, v in correct.items()}


def supervised_warm_start(
    model: Any,
    tokenizer: Any,
    tasks: Mapping[str, Task],
    sampler: TaskSampler,
    cfg: SFTConfig,
    *,
    temperature: float,
    max_new_tokens: int,
    log: Callable[[str], None] | None = None,
) -> SFTResult:
    """Fine-tune ``model`` on reference answers until the mean sampled accuracy reaches
    ``cfg.target_accuracy`` or ``cfg.max_steps`` steps are done (see the module doc). Problems
    come from ``sampler`` (tasks uniform); generation draws from torch's global RNG."""
    device = next(model.parameters()).device
    uniform = [1.0 / len(tasks)] * len(tasks)

    def check(step: int) -> dict[str, float]:
        acc = sampled_accuracy(
            model, tokenizer, tasks, sampler, cfg.eval_prompts,
            temperature=temperature, max_new_tokens=max_new_tokens,
        )  # fmt: skip
        history.append((step, acc))
        if log is not None:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in acc.items())
            log(f"SFT step {step}: sampled accuracy {parts}")
        return acc

    history: list[tuple[int, dict[str, float]]] = []
    acc = check(0)
    losses: list[float] = []
    step = 0
    if sum(acc.values()) / len(acc) >= cfg.target_accuracy or cfg.max_steps == 0:
        return SFTResult(0, acc, float("nan"), history)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    model.train()
    while step < cfg.max_steps:
        ids, mask, labels = encode_sft_batch(
            tokenizer, sampler.problems(cfg.batch_size, uniform), device
        )
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            acc = check(step)
            if sum(acc.values()) / len(acc) >= cfg.target_accuracy:
                break
    optimizer.zero_grad(set_to_none=True)
    recent = losses[-cfg.eval_every :]
    return SFTResult(step, acc, sum(recent) / len(recent), history)
