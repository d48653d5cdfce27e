"""Metric logging: ``metrics.jsonl`` always, TensorBoard by default, W&B only on request.

Keys are namespaced: ``train/`` (losses, episode returns of the behaviour policy), ``eval/``
(evaluation episodes), ``time/`` (throughput, wall time) and ``buffer/`` (replay contents).
Values may be python numbers, numpy scalars or 0-dim tensors: agents return detached tensors
from ``update`` and the logger does the host transfer, one per device per call.

Every line of ``metrics.jsonl`` is one JSON object ``{"step": int, "<ns>/<name>": float, ...}``,
written and flushed as a whole. NaN and infinity are written as the (non-standard but Python-,
pandas- and JavaScript-readable) tokens ``NaN``/``Infinity``, with a warning the first time a key
goes non-finite. On resume the file is cut back to its length at the checkpoint, so a curve never
has duplicate steps.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rl_buffers import io

__all__ = ["NAMESPACES", "MetricLogger", "MetricMeans", "Scalar", "namespaced", "to_floats"]

NAMESPACES = ("train", "eval", "time", "buffer")
"""Allowed first components of a metric key."""

Scalar = float | int | bool | np.number[Any] | np.bool_ | torch.Tensor
"""A metric value: a python or numpy number, or a tensor with one element."""


def _check_key(key: str) -> None:
    head, sep, tail = key.partition("/")
    if not sep or head not in NAMESPACES or not tail:
        raise ValueError(
            f"metric key {key!r} must be '<namespace>/<name>' with namespace in {NAMESPACES}"
        )


def namespaced(namespace: str, metrics: Mapping[str, Scalar]) -> dict[str, Scalar]:
    """Prefix keys that have no namespace yet with ``namespace/``.

    Example:
        >>> namespaced("train", {"loss": 1.0, "buffer/size": 3})
        {'train/loss': 1.0, 'buffer/size': 3}
    """
    if namespace not in NAMESPACES:
        raise ValueError(f"namespace must be one of {NAMESPACES}, got {namespace!r}")
    return {(k if "/" in k else f"{namespace}/{k}"): v for k, v in metrics.items()}


def to_floats(metrics: Mapping[str, Scalar]) -> dict[str, float]:
    """Validate keys and convert values to python floats.

    Tensors are detached and moved to the host together: one transfer per device, not one per
    metric, so logging a dozen GPU metrics costs one synchronisation.

    Raises:
        ValueError: a key is not namespaced, or a tensor value has more than one element.
        TypeError: a value is neither a number nor a tensor.
    """
    out: dict[str, float] = {}
    tensors: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
    for key, value in metrics.items():
        _check_key(key)
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(
                    f"metric {key!r}: expected a 0-dim tensor, got shape {tuple(value.shape)}"
                )
            tensors.setdefault(value.device, []).append((key, value.detach().reshape(())))
            out[key] = math.nan  # placeholder keeps the caller's key order
        elif isinstance(value, bool | int | float | np.number | np.bool_):
            out[key] = float(value)
        else:
            raise TypeError(
                f"metric {key!r}: expected a number or a 0-dim tensor, got {type(value).__name__}"
            )
    for items in tensors.values():
        stacked = torch.stack([t.to(torch.float64) for _, t in items])
        for (key, _), v in zip(items, stacked.cpu().tolist(), strict=True):
            out[key] = v
    return out


class MetricMeans:
    """Means of metrics between two log calls, kept on their device until :meth:`pop`.

    ``add`` is called once per update (or per episode) and costs no host synchronisation:
    tensor values are summed as tensors. Keys may be added at different rates; each key's mean
    is over the calls that included it.
    """

    def __init__(self) -> None:
        self._sums: dict[str, Scalar] = {}
        self._counts: dict[str, int] = {}

    def add(self, metrics: Mapping[str, Scalar]) -> None:
        """Accumulate one observation of each metric in ``metrics``."""
        self.add_sum(metrics, 1)

    def add_sum(self, sums: Mapping[str, Scalar], count: int) -> None:
        """Accumulate ``count`` observations of each metric given by their sum (e.g. the
        episodes that ended in one vector step), as ``count`` calls of :meth:`add` would."""
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        for key, value in sums.items():
            _check_key(key)
            v = value.detach() if isinstance(value, torch.Tensor) else value
            if key in self._sums:
                total: Any = self._sums[key]
                self._sums[key] = total + v
                self._counts[key] += count
            else:
                self._sums[key] = v
                self._counts[key] = count

    def pop(self) -> dict[str, Scalar]:
        """Return the mean of every metric since the last pop, and reset."""
        means = {k: s / self._counts[k] for k, s in self._sums.items()}
        self._sums, self._counts = {}, {}
        return means

    def __len__(self) -> int:
        return len(self._sums)

    def state_dict(self) -> dict[str, Any]:
        """The pending sums and counts (saved in checkpoints so a resumed interval is exact)."""
        return {"sums": dict(self._sums), "counts": dict(self._counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        if set(state["sums"]) != set(state["counts"]):
            raise ValueError("MetricMeans state: sums and counts have different keys")
        self._sums = dict(state["sums"])
        self._counts = dict(state["counts"])


class _Wandb:
    """A W&B run resumed across restarts of the same run directory (its id is kept in the dir)."""

    def __init__(
        self, run_dir: Path, *, project: str, entity: str | None, config: dict[str, Any]
    ) -> None:
        try:
            import wandb  # optional extra, imported only when asked for
        except ImportError as e:
            raise ImportError(
                "W&B logging was asked for (--wandb) but wandb is not installed: "
                "pip install 'rl-runtime[wandb]' (or 'rl-train[wandb]')"
            ) from e
        id_file = run_dir / "wandb_id"
        if id_file.exists():
            run_id = id_file.read_text().strip()
        else:
            run_id = secrets.token_hex(8)
            with io.atomic_write(id_file, "w") as f:
                f.write(run_id + "\n")
        self.run = wandb.init(
            project=project,
            entity=entity,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            name=f"{run_dir.parent.parent.name}/{run_dir.parent.name}/{run_dir.name}",
            config=config,
        )
        # Our step, not W&B's internal counter: after a resume the steps repeat from the
        # checkpoint, which W&B's own step (monotonic per run) would drop.
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")

    def log(self, step: int, values: Mapping[str, float]) -> None:
        self.run.log({"step": step, **values})

    def close(self) -> None:
        self.run.finish()


class MetricLogger:
    """Writes metrics of one run to ``metrics.jsonl``, TensorBoard and (optionally) W&B.

    Args:
        run_dir: The run directory.
        log: Logger for warnings (non-finite values, lost entries).
        truncate_to: On resume, the byte length ``metrics.jsonl`` had at the checkpoint; the file
            is cut back to it. None for a fresh run.
        tensorboard: Write event files under ``run_dir/tb``.
        purge_step: On resume, TensorBoard hides events at or after this step from the previous
            attempt (the checkpoint's step + 1).
        wandb: Keyword arguments for the W&B run (``project``, ``entity``, ``config``), or None.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        log: logging.Logger,
        truncate_to: int | None = None,
        tensorboard: bool = True,
        purge_step: int | None = None,
        wandb: dict[str, Any] | None = None,
    ) -> None:
        self.path = run_dir / "metrics.jsonl"
        self._log = log
        if truncate_to is not None:
            _truncate(self.path, truncate_to, log)
        # An append-only log is the one file not written through rl_buffers.io.atomic_write:
        # rewriting it whole for every line would be quadratic. Torn tails are cut on resume.
        self._file = self.path.open("a", encoding="utf-8")
        self._nonfinite: set[str] = set()
        self._tb: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow import

            self._tb = SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)
        self._wandb = _Wandb(run_dir, **wandb) if wandb is not None else None

    def log(self, step: int, metrics: Mapping[str, Scalar]) -> dict[str, float]:
        """Write one entry at ``step``; returns the values as floats."""
        values = to_floats(metrics)
        for key, v in values.items():
            if not math.isfinite(v) and key not in self._nonfinite:
                self._nonfinite.add(key)
                self._log.warning("metric %s is %s at step %d", key, v, step)
        self._file.write(json.dumps({"step": step, **values}) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, v in values.items():
                self._tb.add_scalar(key, v, step)
        if self._wandb is not None:
            self._wandb.log(step, values)
        return values

    def jsonl_bytes(self) -> int:
        """Current length of ``metrics.jsonl`` in bytes (every entry so far is flushed)."""
        self._file.flush()
        return self._file.tell()

    def flush(self) -> None:
        """Flush every sink."""
        self._file.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        """Flush and close every sink."""
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.close()


def _truncate(path: Path, size: int, log: logging.Logger) -> None:
    if not path.exists():
        if size:
            log.warning("%s is missing; the checkpoint expected %d bytes of it", path, size)
        return
    current = path.stat().st_size
    if current < size:
        log.warning(
            "%s has %d bytes, fewer than the %d at the checkpoint: entries were lost",
            path,
            current,
            size,
        )
        return
    if current > size:
        with path.open("r+b") as f:
            f.truncate(size)
        log.info("cut %s back to its %d bytes at the checkpoint", path.name, size)
