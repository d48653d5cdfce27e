"""The offline training loop shared by trainers: sample, update, log, evaluate, checkpoint.

The offline counterpart of :func:`rl_runtime.offpolicy.train_off_policy`. A trainer loads its dataset
into a buffer, builds its agent, an evaluation callable and a :class:`BatchSource`, then hands
them to :func:`train_offline`, which runs one gradient step per iteration::

    update   agent.update(source.sample()); the metrics are averaged until the next log entry
    log      every `log_every` steps: train/ means, buffer/size, time/ups, time/elapsed
    eta      once the speed is known (10 s in), the time left; again if it changes by half
    eval     at step 0, every `eval_every` steps and at the end: whatever `evaluate()` returns
    save     every `checkpoint_every` steps, every `checkpoint_minutes`, and at the end
    stop     on SIGTERM or Ctrl-C (``run.stop_requested``): save, raise ``RunInterrupted``

Steps are gradient steps (``run.run_cfg.total_steps`` of them). Nothing here knows the method,
the data format or how evaluation works, so any offline method (single- or multi-agent) reuses
it.

Exact resume: the dataset is not stored in checkpoints (it is the trainer's input and can be
large); the trainer rebuilds the buffer from it, and the checkpoint holds the agent, the
source's state (its generator, and whatever else its ``state_dict`` has), the counters, the
pending metric means and every global RNG. A ``data_fingerprint`` given by the trainer is stored
too and checked on resume, so a run cannot silently continue on different data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from rl_buffers import ReplayBuffer, TransitionBatch

from rl_runtime.errors import UsageError
from rl_runtime.logger import MetricMeans, Scalar, namespaced
from rl_runtime.offpolicy import Agent
from rl_runtime.run import Run

__all__ = ["BatchSource", "DataMismatchError", "SeededBatches", "train_offline"]


class DataMismatchError(UsageError):
    """A run is resumed on data other than the data it was trained on (a ``UsageError``:
    ``rl-train`` reports it in one line)."""


class BatchSource(Protocol):
    """Where the loop's batches come from: a fixed dataset and the generator that draws from it."""

    def sample(self) -> Any:
        """One batch for ``agent.update``."""
        ...

    def __len__(self) -> int:
        """Transitions in the dataset (logged as ``buffer/size``)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The sampling state (generator), not the data."""
        ...

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output."""
        ...


class SeededBatches:
    """Uniform batches of ``batch_size`` transitions from a filled :class:`rl_buffers.ReplayBuffer`.

    The buffer holds the dataset and is never written to again; the generator (on the
    sampler's device) is the only state, so checkpoints stay small.

    Args:
        buffer: A buffer holding the whole dataset (e.g. ``driftql.make_offline_buffer``).
        batch_size: ``B``.
        seed: Seed of the sampling generator.
    """

    def __init__(self, buffer: ReplayBuffer, *, batch_size: int, seed: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if buffer.num_sampleable == 0:
            raise ValueError("the buffer has no sampleable transition (empty dataset?)")
        self.buffer = buffer
        self.batch_size = batch_size
        self.generator = torch.Generator(buffer.sampler.device).manual_seed(seed)

    def sample(self) -> TransitionBatch:
        """``B`` transitions drawn uniformly (with replacement)."""
        return self.buffer.sample(self.batch_size, self.generator)

    def __len__(self) -> int:
        return len(self.buffer)

    def state_dict(self) -> dict[str, Any]:
        """The generator state and the buffer's size (checked on load)."""
        return {"generator": self.generator.get_state(), "size": len(self.buffer)}

    def load_state_dict(self, state: Mapping[str, Any], /) -> None:
        """Restore :meth:`state_dict` output.

        Raises:
            DataMismatchError: the buffer holds a different number of transitions.
        """
        if int(state["size"]) != len(self.buffer):
            raise DataMismatchError(
                f"the checkpoint was sampling from {int(state['size'])} transitions, this "
                f"buffer holds {len(self.buffer)}"
            )
        self.generator.set_state(state["generator"])


def train_offline(
    run: Run,
    *,
    agent: Agent,
    source: BatchSource,
    evaluate: Callable[[], Mapping[str, Scalar]] | None,
    data_fingerprint: str | None = None,
) -> dict[str, float] | None:
    """Train ``agent`` on ``source`` for ``run.run_cfg.total_steps`` gradient steps, resuming
    if ``run`` was.

    Args:
        run: The open run (directory, logger, checkpoints, restored state).
        agent: The learner (``update(batch) -> metrics``, ``act`` unused here).
        source: The dataset's batches.
        evaluate: Called at step 0, every ``eval_every`` steps and at the end; returns metrics,
            keys without a namespace get ``eval/``. None (or ``eval_episodes == 0``) disables
            evaluation. It may use the agent's generators: they are checkpointed after it.
        data_fingerprint: Identifies the dataset (e.g. a hash); stored in checkpoints and
            compared on resume.

    Returns:
        The last evaluation's metrics as floats, or None if there was none.

    Raises:
        DataMismatchError: resuming with a different ``data_fingerprint``.
    """
    rc = run.run_cfg
    means = MetricMeans()
    step = updates = 0
    if run.restored is not None:
        r = run.restored
        saved = r.get("data_fingerprint")
        if saved != data_fingerprint:
            raise DataMismatchError(
                f"{run.dir} was trained on data with fingerprint {saved}, the dataset given now "
                f"has {data_fingerprint}: resume it with the same dataset"
            )
        agent.load_state_dict(r["agent"])
        source.load_state_dict(r["source"])
        means.load_state_dict(r["pending_metrics"])
        step, updates = int(r["counters"]["step"]), int(r["counters"]["updates"])
    if step >= rc.total_steps:
        run.log.info("run already complete (%d steps)", step)
        return None
    run.restore_rng()  # last: building the agent and the buffer drew random numbers
    do_eval = evaluate is not None and rc.eval_episodes > 0

    last_eval: dict[str, float] | None = None
    t_log, step_log = time.perf_counter(), step
    with run.progress() as bar:
        if step == 0 and do_eval:
            last_eval = _evaluate(run, evaluate, 0, bar)
        run.start_progress(step)  # the speed of training, without the step-0 evaluation
        while step < rc.total_steps:
            means.add(namespaced("train", agent.update(source.sample())))
            step += 1
            updates += 1
            bar.update(1)
            run.report_progress(step)

            # Log, evaluate, then checkpoint: a checkpoint covers every entry of its step.
            last = step == rc.total_steps
            if step % rc.log_every == 0 or last:
                now = time.perf_counter()
                metrics: dict[str, Scalar] = {
                    **means.pop(),
                    "train/updates": updates,
                    "buffer/size": len(source),
                    "time/ups": (step - step_log) / max(now - t_log, 1e-9),
                    "time/elapsed": run.elapsed(),
                }
                run.logger.log(step, metrics)
                t_log, step_log = now, step
            if do_eval and (step % rc.eval_every == 0 or last):
                last_eval = _evaluate(run, evaluate, step, bar)
            # SIGTERM / Ctrl-C: here, between two updates, is a state a resume continues exactly.
            stop = run.stop_requested and not last
            if stop or run.checkpoint_due(step, last=last):
                run.save_checkpoint(
                    step,
                    {
                        "agent": agent.state_dict(),
                        "source": source.state_dict(),
                        "counters": {"step": step, "updates": updates},
                        "pending_metrics": means.state_dict(),
                        "data_fingerprint": data_fingerprint,
                    },
                )
            if stop:
                raise run.interrupted(step)
    run.log.info("finished %d gradient steps in %s", step, run.dir)
    return last_eval


def _evaluate(
    run: Run, evaluate: Callable[[], Mapping[str, Scalar]] | None, step: int, bar: Any
) -> dict[str, float]:
    assert evaluate is not None
    values = run.logger.log(step, namespaced("eval", evaluate()))
    shown = {k.removeprefix("eval/"): f"{v:.4g}" for k, v in values.items() if k.count("/") == 1}
    bar.set_postfix(shown, refresh=False)
    run.log.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
    return values
