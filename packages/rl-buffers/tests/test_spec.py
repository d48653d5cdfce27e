"""TransitionSpec: construction checks and the errors ``add`` raises on bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rl_buffers import ReplayBuffer, TransitionSpec

torch.set_num_threads(1)

OBS = np.zeros(3, dtype=np.float32)
ACT = np.zeros(2, dtype=np.float32)


def vec_buffer() -> ReplayBuffer:
    return ReplayBuffer(spec=TransitionSpec.continuous((3,), 2), capacity=8)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"obs": np.zeros(4, np.float32)}, ValueError, r"obs: expected shape \(3,\), got \(4,\)"),
        (
            {"next_obs": np.zeros((1, 3), np.float32)},
            ValueError,
            r"next_obs: expected shape \(3,\), got \(1, 3\)",
        ),
        (
            {"action": np.zeros(3, np.float32)},
            ValueError,
            r"action: expected shape \(2,\), got \(3,\)",
        ),
        ({"obs": np.zeros(3, np.int64)}, TypeError, "obs: expected a floating dtype .*got int64"),
        (
            {"action": np.zeros(2, np.int32)},
            TypeError,
            "action: expected a floating dtype .*got int32",
        ),
        ({"reward": np.float32("nan")}, ValueError, "reward: is NaN or inf"),
        ({"reward": float("inf")}, ValueError, "reward: is NaN or inf"),
        ({"reward": np.zeros(2)}, ValueError, r"reward: expected shape \(\) .*got \(2,\)"),
        ({"obs": np.array([0.0, np.nan, 0.0])}, ValueError, "obs: contains NaN or inf"),
        ({"next_obs": np.array([0.0, np.inf, 0.0])}, ValueError, "next_obs: contains NaN or inf"),
        ({"action": np.array([np.nan, 0.0])}, ValueError, "action: contains NaN or inf"),
        ({"terminated": 1}, TypeError, "terminated: expected a bool, got dtype int64"),
        ({"truncated": np.array([True, False])}, ValueError, r"truncated: expected shape \(\)"),
        ({"obs": "abc"}, ValueError, "obs: expected shape"),
    ],
)
def test_add_rejects_bad_fields_naming_them(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    buf = vec_buffer()
    fields: dict[str, object] = {
        "obs": OBS,
        "action": ACT,
        "reward": 1.0,
        "next_obs": OBS,
        "terminated": False,
        "truncated": False,
    }
    fields.update(kwargs)
    with pytest.raises(error, match=match):
        buf.add(**fields)  # pyright: ignore[reportArgumentType]
    assert len(buf) == 0  # nothing half-written


def test_accepts_tensors_python_scalars_and_float64() -> None:
    buf = vec_buffer()
    buf.add(
        torch.zeros(3, dtype=torch.float64),
        torch.ones(2),
        torch.tensor(2.0),
        np.ones(3),
        np.bool_(False),
        torch.tensor(True),
    )
    buf.add(np.ones(3), [0.5, 0.5], 3, np.ones(3) * 2, True, False)
    assert len(buf) == 2
    assert buf.storage.window(torch.tensor([0, 1]), 1).reward[:, 0].tolist() == [2.0, 3.0]


def test_pixels_must_be_uint8() -> None:
    spec = TransitionSpec.discrete((1, 4, 4), 3, obs_dtype=torch.uint8, history=2)
    buf = ReplayBuffer(spec=spec, capacity=4)
    img = np.zeros((2, 1, 4, 4), dtype=np.uint8)
    with pytest.raises(TypeError, match="obs: expected dtype uint8, got float32"):
        buf.add(img.astype(np.float32), 0, 0.0, img, False, False)
    with pytest.raises(ValueError, match=r"obs: expected shape \(2, 1, 4, 4\), got \(1, 4, 4\)"):
        buf.add(img[0], 0, 0.0, img, False, False)


def test_discrete_actions_checked() -> None:
    buf = ReplayBuffer(spec=TransitionSpec.discrete((3,), 4), capacity=4)
    with pytest.raises(ValueError, match=r"action: discrete index must be in \[0, 4\), got 4"):
        buf.add(OBS, 4, 0.0, OBS, False, False)
    with pytest.raises(ValueError, match=r"got -1"):
        buf.add(OBS, np.int64(-1), 0.0, OBS, False, False)
    with pytest.raises(TypeError, match="action: expected an integer dtype"):
        buf.add(OBS, 1.0, 0.0, OBS, False, False)
    buf.add(OBS, np.int32(3), 0.0, OBS, False, False)
    assert buf.storage.window(torch.tensor([0]), 1).action.dtype == torch.int64


def test_observation_must_continue_the_episode() -> None:
    buf = vec_buffer()
    buf.add(OBS, ACT, 0.0, OBS + 1, False, False)
    with pytest.raises(
        ValueError, match="obs does not continue the previous transition's next_obs"
    ):
        buf.add(OBS + 5, ACT, 0.0, OBS, False, False)
    buf.add(OBS + 1, ACT, 0.0, OBS + 2, False, True)  # truncated: the next obs may be anything
    buf.add(OBS + 9, ACT, 0.0, OBS, False, False)
    assert len(buf) == 2 + 1


def test_frame_stack_must_shift() -> None:
    spec = TransitionSpec.continuous((2,), 1, history=3)
    buf = ReplayBuffer(spec=spec, capacity=4)
    obs = np.arange(6, dtype=np.float32).reshape(3, 2)
    bad_next = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="next_obs at step 0: its first history-1 frames"):
        buf.add(obs, np.zeros(1), 0.0, bad_next, False, False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"obs_shape": (0,)}, "obs_shape must be a tuple of ints >= 1"),
        ({"obs_shape": [3]}, "obs_shape must be a tuple"),
        ({"obs_shape": (3,), "history": 0}, "history must be an int >= 1"),
        ({"obs_shape": (3,), "action_dtype": torch.int64}, "action_dtype must be float16/32/64"),
        (
            {"obs_shape": (3,), "action_kind": "discrete", "action_dtype": torch.int64},
            "num_actions must be an int >= 1",
        ),
        (
            {"obs_shape": (3,), "action_kind": "discrete", "num_actions": 3},
            "action_dtype must be torch.int64",
        ),
        ({"obs_shape": (3,), "num_actions": 3}, "num_actions is only for discrete"),
        ({"obs_shape": (3,), "action_kind": "multi"}, "action_kind must be"),
        ({"obs_shape": (3,), "obs_dtype": torch.bool}, "obs_dtype must be one of"),
    ],
)
def test_spec_construction_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        TransitionSpec(**kwargs)  # pyright: ignore[reportArgumentType]


def test_spec_round_trips_through_dict() -> None:
    spec = TransitionSpec.discrete((3, 84, 84), 18, obs_dtype=torch.uint8, history=4)
    assert TransitionSpec.from_dict(spec.to_dict()) == spec
    assert spec.stacked_obs_shape == (4, 3, 84, 84)
    assert spec.pixels
    assert spec.frame_bytes == 3 * 84 * 84


def test_buffer_constructor_errors() -> None:
    spec = TransitionSpec.continuous((3,), 2)
    with pytest.raises(ValueError, match="capacity must be an int >= 1"):
        ReplayBuffer(spec=spec, capacity=0)
    with pytest.raises(ValueError, match=r"horizon must be an int in \[1, capacity=4\]"):
        ReplayBuffer(spec=spec, capacity=4, horizon=5)
    with pytest.raises(TypeError, match="spec must be a TransitionSpec"):
        ReplayBuffer(spec=(3,), capacity=4)  # pyright: ignore[reportArgumentType]
