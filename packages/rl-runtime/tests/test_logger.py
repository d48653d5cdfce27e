"""Metric conversion, interval means and the metrics.jsonl sink."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from rl_runtime.logger import MetricLogger, MetricMeans, namespaced, to_floats


def test_to_floats_converts_tensors_numbers_and_keeps_order():
    out = to_floats(
        {
            "train/loss": torch.tensor(0.5),
            "train/n": 3,
            "eval/x": np.float32(0.25),
            "buffer/size": torch.tensor([7.0]),
            "time/ok": True,
        }
    )
    assert out == {
        "train/loss": 0.5,
        "train/n": 3.0,
        "eval/x": 0.25,
        "buffer/size": 7.0,
        "time/ok": 1.0,
    }
    assert list(out) == ["train/loss", "train/n", "eval/x", "buffer/size", "time/ok"]
    assert all(type(v) is float for v in out.values())


@pytest.mark.parametrize(
    ("metrics", "error", "message"),
    [
        ({"loss": 1.0}, ValueError, "metric key 'loss' must be '<namespace>/<name>'"),
        ({"debug/x": 1.0}, ValueError, "metric key 'debug/x'"),
        ({"train/": 1.0}, ValueError, "metric key 'train/'"),
        (
            {"train/q": torch.zeros(2, 3)},
            ValueError,
            r"'train/q': expected a 0-dim tensor, got shape \(2, 3\)",
        ),
        ({"train/q": "high"}, TypeError, "'train/q': expected a number or a 0-dim tensor, got str"),
    ],
)
def test_to_floats_rejects_bad_metrics(metrics, error, message):
    with pytest.raises(error, match=message):
        to_floats(metrics)


def test_namespaced_prefixes_only_bare_keys():
    assert namespaced("train", {"loss": 1, "buffer/size": 2}) == {"train/loss": 1, "buffer/size": 2}
    with pytest.raises(ValueError, match="namespace must be one of"):
        namespaced("misc", {})


def test_metric_means_hand_computed_with_keys_at_different_rates():
    means = MetricMeans()
    means.add({"train/loss": torch.tensor(1.0), "train/return": 10.0})
    means.add({"train/loss": torch.tensor(2.0)})
    means.add({"train/loss": torch.tensor(6.0), "train/return": 20.0})
    saved = means.state_dict()
    got = to_floats(means.pop())
    assert got == {"train/loss": 3.0, "train/return": 15.0}
    assert len(means) == 0
    assert means.pop() == {}

    restored = MetricMeans()
    restored.load_state_dict(saved)
    assert to_floats(restored.pop()) == got


def test_metric_means_does_not_modify_the_agents_tensors():
    t = torch.tensor(1.0)
    means = MetricMeans()
    means.add({"train/x": t})
    means.add({"train/x": torch.tensor(2.0)})
    means.pop()
    assert t.item() == 1.0


def test_jsonl_lines_truncation_and_nonfinite_warning(tmp_path, caplog):
    log = logging.getLogger("test-logger")
    logger = MetricLogger(tmp_path, log=log, tensorboard=False)
    logger.log(0, {"eval/return": 1.0})
    cut = logger.jsonl_bytes()
    with caplog.at_level(logging.WARNING, logger="test-logger"):
        logger.log(10, {"train/loss": torch.tensor(float("nan"))})
        logger.log(20, {"train/loss": torch.tensor(float("nan"))})
    logger.close()
    assert caplog.text.count("metric train/loss is nan at step 10") == 1
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"step": 0, "eval/return": 1.0}
    assert np.isnan(json.loads(lines[1])["train/loss"])

    # Resuming from a checkpoint taken after the first line cuts the rest (and a torn tail).
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 30, "train/lo')
    MetricLogger(tmp_path, log=log, truncate_to=cut, tensorboard=False).close()
    assert (tmp_path / "metrics.jsonl").read_text().splitlines() == [lines[0]]


def test_add_sum_counts_as_that_many_observations():
    means = MetricMeans()
    means.add_sum({"train/episode_return": 6.0}, count=3)  # three episodes: 1, 2, 3
    means.add({"train/episode_return": 4.0})
    assert means.pop() == {"train/episode_return": 2.5}  # (1 + 2 + 3 + 4) / 4
    with pytest.raises(ValueError, match="count must be >= 1"):
        means.add_sum({"train/x": 1.0}, count=0)
