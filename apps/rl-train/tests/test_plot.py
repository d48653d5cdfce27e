"""rl-train plot: curves, the common grid, the confidence band, the PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from rl_train.cli import main
from rl_train.plot import Curve, aggregate, read_curve, student_t_quantile

# t_{0.975} closed forms: df=1 is the Cauchy quantile tan(0.95·π/2); for df=2 the two-sided CDF
# is t / sqrt(t² + 2), so t² = 2·0.95² / (1 - 0.95²).
T1 = math.tan(0.95 * math.pi / 2)
T2 = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))


def test_student_t_quantile_against_closed_forms_and_tables():
    assert student_t_quantile(0.975, 1) == pytest.approx(T1, rel=1e-10)
    assert student_t_quantile(0.975, 2) == pytest.approx(T2, rel=1e-10)
    assert pytest.approx(4.303, abs=1e-3) == T2
    # printed tables: t_{0.975,4} = 2.776, t_{0.975,9} = 2.262, t_{0.995,5} = 4.032
    assert student_t_quantile(0.975, 4) == pytest.approx(2.776, abs=1e-3)
    assert student_t_quantile(0.975, 9) == pytest.approx(2.262, abs=1e-3)
    assert student_t_quantile(0.995, 5) == pytest.approx(4.032, abs=1e-3)
    assert student_t_quantile(0.975, 10_000) == pytest.approx(1.960, abs=1e-3)
    with pytest.raises(ValueError, match="p must be in"):
        student_t_quantile(0.3, 2)


def _curve(steps, values, name="r"):
    return Curve(Path(name), np.array(steps, dtype=np.int64), np.array(values, dtype=np.float64))


def test_t_band_by_hand_on_aligned_curves():
    curves = [
        _curve([0, 10, 20], [0, 1, 2]),
        _curve([0, 10, 20], [2, 3, 4]),
        _curve([0, 10, 20], [1, 2, 6]),
    ]
    band = aggregate(curves, ci="t", confidence=0.95)
    # means 1, 2, 4; sample std (ddof=1) 1, 1, 2
    mean = np.array([1.0, 2.0, 4.0])
    half = T2 * np.array([1.0, 1.0, 2.0]) / math.sqrt(3)
    assert band.steps.tolist() == [0, 10, 20]
    np.testing.assert_allclose(band.mean, mean)
    np.testing.assert_allclose(band.low, mean - half)
    np.testing.assert_allclose(band.high, mean + half)


def test_interpolation_onto_the_overlap_by_hand():
    # D is known at 0 and 20; E at 0, 10, 30. Overlap [0, 20]; grid = union within it.
    d, e = _curve([0, 20], [0, 4], "d"), _curve([0, 10, 30], [0, 10, 20], "e")
    band = aggregate([d, e], ci="t")
    # D at 10 -> 2; E at 20 -> 15. Values D [0, 2, 4], E [0, 10, 15].
    assert band.steps.tolist() == [0, 10, 20]
    np.testing.assert_allclose(band.mean, [0, 6, 9.5])
    # n = 2: s = |a - b| / sqrt(2), half = t · s / sqrt(2) = t · |a - b| / 2
    np.testing.assert_allclose(band.high - band.mean, T1 * np.array([0, 4, 5.5]))
    with pytest.raises(ValueError, match="do not overlap"):
        aggregate([_curve([0, 5], [0, 1]), _curve([10, 20], [0, 1])], label="g")


def test_bootstrap_band_by_hand_for_two_runs_and_properties():
    # With two runs a resample's mean is a (1/4), (a+b)/2 (1/2) or b (1/4): the 95% percentile
    # band is exactly [min, max].
    a, b = _curve([0, 1], [1.0, 5.0]), _curve([0, 1], [3.0, -1.0])
    band = aggregate([a, b], ci="bootstrap", bootstrap_samples=4000)
    np.testing.assert_allclose(band.low, [1.0, -1.0])
    np.testing.assert_allclose(band.high, [3.0, 5.0])

    rng = np.random.default_rng(1)
    curves = [_curve(range(20), rng.normal(size=20), str(i)) for i in range(6)]
    band = aggregate(curves, ci="bootstrap", bootstrap_samples=2000)
    values = np.stack([c.values for c in curves])
    assert np.all(band.low <= band.mean)
    assert np.all(band.mean <= band.high)
    assert np.all(values.min(0) <= band.low)
    assert np.all(band.high <= values.max(0))
    again = aggregate(curves, ci="bootstrap", bootstrap_samples=2000)
    assert np.array_equal(again.low, band.low)  # fixed seed: the same figure every time


def test_a_single_run_has_no_band_and_long_curves_are_thinned():
    band = aggregate([_curve(range(1000), np.arange(1000.0))], max_points=50)
    assert len(band.steps) == 50
    assert np.array_equal(band.low, band.mean)
    assert np.array_equal(band.high, band.mean)
    np.testing.assert_allclose(band.mean, band.steps)  # linear data interpolates exactly


def test_read_curve_skips_a_torn_last_line_and_drops_nonfinite(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 0, "eval/return": 1.0}\n'
        '{"step": 5, "train/loss": 3.0}\n'
        '{"step": 10, "eval/return": NaN}\n'
        '{"step": 20, "eval/return": 2.0}\n'
        '{"step": 30, "eval/ret'
    )
    curve = read_curve(tmp_path, "eval/return")
    assert curve.steps.tolist() == [0, 20]
    assert curve.values.tolist() == [1.0, 2.0]
    with pytest.raises(
        ValueError,
        match=r"no finite 'eval/length' entries \(metrics logged: eval/return, train/loss\)",
    ):
        read_curve(tmp_path, "eval/length")
    (tmp_path / "metrics.jsonl").write_text('{"step": 0}\nnot json\n{"step": 1}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not JSON"):
        read_curve(tmp_path, "eval/return")


def _fake_run(
    root: Path,
    method: str,
    env: str,
    seed: int,
    evals: dict[int, float],
    name: str = "x",
    config: dict | None = None,
) -> Path:
    run = root / method / env / f"{seed}-{name}"
    run.mkdir(parents=True)
    config = {"env": env, "run": {"seed": seed, "name": name}, **(config or {})}
    (run / "config.json").write_text(
        json.dumps({"method": method, "env": env, "seed": seed, "config": config})
    )
    lines = []
    for step, value in evals.items():
        lines.append(json.dumps({"step": step, "train/loss": 0.1}))
        lines.append(json.dumps({"step": step, "eval/return": value}))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run


def test_plot_command_writes_the_png_and_the_numbers(tmp_path):
    root = tmp_path / "runs"
    for seed, values in enumerate([(0, 1, 2), (2, 3, 4), (1, 2, 6)]):
        _fake_run(root, "m", "Env-v0", seed, dict(zip((0, 10, 20), values, strict=True)))
    _fake_run(root, "other", "Env-v0", 0, {0: 5.0, 10: 6.0})
    out = tmp_path / "fig" / "curves.png"

    assert main(["plot", str(root), "--out", str(out)]) == 0

    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(out).shape
    assert (width, height) == (840, 540)  # 7 x 4.5 inches at 120 dpi
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["metric"] == "eval/return"
    assert summary["ci"] == "t"
    groups = {g["label"]: g for g in summary["groups"]}
    assert set(groups) == {"m · Env-v0", "other · Env-v0"}
    m = groups["m · Env-v0"]
    assert len(m["runs"]) == 3
    assert m["steps"] == [0, 10, 20]
    np.testing.assert_allclose(m["mean"], [1, 2, 4])
    np.testing.assert_allclose(
        np.array(m["high"]) - m["mean"], T2 * np.array([1, 1, 2]) / math.sqrt(3)
    )
    assert groups["other · Env-v0"]["low"] == groups["other · Env-v0"]["mean"]


def test_plot_groups_by_parent_folder(tmp_path):
    a = _fake_run(tmp_path / "a", "m", "E", 0, {0: 1.0, 1: 2.0})
    b = _fake_run(tmp_path / "b", "m", "E", 0, {0: 3.0, 1: 4.0})
    out = tmp_path / "c.png"
    assert main(["plot", str(a), str(b), "--group-by", "parent", "--out", str(out)]) == 0
    labels = [g["label"] for g in json.loads(out.with_suffix(".json").read_text())["groups"]]
    assert labels == [str(a.parent), str(b.parent)]


def test_plot_reports_missing_runs_in_one_line(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"rl-train: {tmp_path}: no run below it (no metrics.jsonl)\n"
    )
    assert main(["plot", str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def _summary(out: Path) -> dict:
    return json.loads(out.with_suffix(".json").read_text())


def test_runs_are_grouped_by_every_computed_field_and_labelled_by_the_differences(tmp_path, caplog):
    """Issue #12: DriftQL and FQL runs on one env were averaged into one curve (n=2)."""
    root = tmp_path / "runs"
    evals = {0: 0.0, 10: 1.0}
    for seed in (0, 1):
        _fake_run(root, "driftql", "cube", seed, evals, config={"agent": {"algo": "driftql"}})
        _fake_run(root, "driftql", "cube", seed, evals, "f", config={"agent": {"algo": "fql"}})
    # Options that do not change what is computed never split a group.
    quiet = {"agent": {"algo": "driftql"}, "run": {"seed": 2, "name": "q", "quiet": True,
             "device": "cuda", "root": "elsewhere", "tensorboard": False}}  # fmt: skip
    _fake_run(root, "driftql", "cube", 2, evals, "q", config=quiet)
    _fake_run(root, "tiny-q", "chain", 0, evals, config={"agent": {"lr": 0.1}})
    out = tmp_path / "c.png"
    assert main(["plot", str(root), "--out", str(out)]) == 0
    groups = {g["label"]: len(g["runs"]) for g in _summary(out)["groups"]}
    assert groups == {
        "driftql · cube · agent.algo=driftql": 3,
        "driftql · cube · agent.algo=fql": 2,
        "tiny-q · chain": 1,  # alone with its method and env: no fields in the label
    }
    assert "repeats seed" not in caplog.text


def test_same_seed_runs_are_never_averaged_as_seeds(tmp_path, caplog):
    root = tmp_path / "runs"
    a = _fake_run(root, "m", "E", 0, {0: 0.0, 10: 1.0, 20: 2.0}, "a")
    b = _fake_run(root, "m", "E", 0, {0: 5.0, 10: 5.0}, "b")  # the same seed again, shorter
    c = _fake_run(root, "m", "E", 1, {0: 2.0, 10: 3.0, 20: 4.0}, "c")
    out = tmp_path / "c.png"
    assert main(["plot", str(root), "--out", str(out)]) == 0
    (group,) = _summary(out)["groups"]
    assert group["runs"] == [str(a), str(c)]
    np.testing.assert_allclose(group["mean"], [1, 2, 3])  # b's values are in no mean
    assert f"{b} repeats seed 0 of {a}" in caplog.text
    assert group["notes"] == [
        f"m · E: {b} repeats seed 0 of {a}; runs of one seed are not independent samples, "
        f"so only {a} is drawn"
    ]


def test_cut_curves_and_unplottable_runs_are_reported(tmp_path, caplog):
    root = tmp_path / "runs"
    long = _fake_run(root, "m", "E", 0, {0: 0.0, 10: 1.0, 20: 2.0})
    short = _fake_run(root, "m", "E", 1, {0: 2.0, 10: 3.0})
    empty = _fake_run(root, "m", "E", 2, {})  # a run that stopped before logging anything
    assert (empty / "metrics.jsonl").read_text() == "\n"
    (empty / "metrics.jsonl").write_text("")
    other = _fake_run(root, "m", "E", 3, {0: 1.0}, config={"x": 1})
    (other / "metrics.jsonl").write_text('{"step": 0, "train/loss": 1.0}\n')
    out = tmp_path / "c.png"
    assert main(["plot", str(root), "--out", str(out)]) == 0
    summary = _summary(out)
    (group,) = summary["groups"]
    assert group["steps"] == [0, 10]
    assert group["notes"] == [
        f"m · E: curves cut to steps 0-10, the range every run covers ({short} ends at step "
        "10, the longest at 20)"
    ]
    assert [s["run"] for s in summary["skipped"]] == [str(empty), str(other)]
    assert summary["skipped"][0]["reason"].endswith(
        "metrics.jsonl is empty (the run logged nothing)"
    )
    assert "no finite 'eval/return' entries (metrics logged: train/loss)" in caplog.text
    assert f"skipped {empty}" in caplog.text
    assert str(long) in group["runs"]


def test_the_history_of_a_restarted_run_is_not_a_run_of_its_own(tmp_path):
    root = tmp_path / "runs"
    run = _fake_run(root, "m", "E", 0, {0: 1.0, 10: 2.0})
    aside = run / "previous-20250101-000000"
    aside.mkdir()
    (aside / "config.json").write_text((run / "config.json").read_text())
    (aside / "metrics.jsonl").write_text('{"step": 0, "eval/return": 9.0}\n')
    out = tmp_path / "c.png"
    assert main(["plot", str(root), "--out", str(out)]) == 0
    assert [g["runs"] for g in _summary(out)["groups"]] == [[str(run)]]
    assert main(["plot", str(aside), "--out", str(out)]) == 0  # named explicitly: plotted
    assert [g["runs"] for g in _summary(out)["groups"]] == [[str(aside)]]


def test_plot_with_nothing_to_draw_says_so_in_one_line(tmp_path, capsys):
    run = _fake_run(tmp_path, "m", "E", 0, {})
    (run / "metrics.jsonl").write_text("")
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        "rl-train: nothing to plot: none of the 1 runs found has 'eval/return' (see the "
        "warnings above; --metric chooses another key)"
    )
    assert "Traceback" not in err
