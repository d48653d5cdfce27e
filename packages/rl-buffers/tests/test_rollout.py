"""GAE, lambda-returns and the rollout storage: hand-computed cases and hypothesis invariants."""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rl_buffers import RolloutBatch, RolloutStorage, gae, lambda_returns

torch.set_num_threads(1)

F64 = torch.float64


def assert_close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> None:
    # (torch.testing.assert_close spends ~10 s importing on its first call)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, rtol=1e-6, atol=atol), (a, b)


def col(*xs: float) -> torch.Tensor:
    """A (T, 1) float64 column: one env."""
    return torch.tensor(xs, dtype=F64).unsqueeze(1)


def flags(*xs: int) -> torch.Tensor:
    """A (T, 1) bool column."""
    return torch.tensor(xs, dtype=torch.bool).unsqueeze(1)


# ----------------------------------------------------------------------------- the toy rollout
# 6 steps, 1 env. Episode A = steps 0, 1, 2 (terminates at 2); episode B = steps 3, 4 (truncated
# at 4, the time limit); episode C = step 5, cut by the end of the rollout.
# next_values[t] = V(true next state): values[t + 1] inside an episode, 100 at the terminal step
# (must be ignored), V(final obs) = 7 at the truncation (not values[5] = 3, which belongs to C),
# and V(obs after the rollout) = 4 at the last step.
G, L = 0.9, 0.8
REWARDS = col(1, 2, 3, 4, 5, 6)
VALUES = col(0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
NEXT_VALUES = col(1.0, 1.5, 100.0, 2.5, 7.0, 4.0)
TERMINATED = flags(0, 0, 1, 0, 0, 0)
TRUNCATED = flags(0, 0, 0, 0, 1, 0)
EPISODE_END = TERMINATED | TRUNCATED


def toy_gae(**changes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    args = {
        "rewards": REWARDS,
        "values": VALUES,
        "next_values": NEXT_VALUES,
        "terminated": TERMINATED,
        "episode_end": EPISODE_END,
    }
    args.update(changes)
    return gae(**args, gamma=G, lam=L)


def toy_lambda(**changes: torch.Tensor) -> torch.Tensor:
    args = {
        "rewards": REWARDS,
        "next_values": NEXT_VALUES,
        "terminated": TERMINATED,
        "episode_end": EPISODE_END,
    }
    args.update(changes)
    return lambda_returns(**args, gamma=G, lam=L)


def test_gae_hand_computed_toy() -> None:
    d0 = 1 + 0.9 * 1.0 - 0.5  # 1.4
    d1 = 2 + 0.9 * 1.5 - 1.0  # 2.35
    d2 = 3 - 1.5  # 1.5: terminated, the 100 is not bootstrapped
    d3 = 4 + 0.9 * 2.5 - 2.0  # 4.25
    d4 = 5 + 0.9 * 7.0 - 2.5  # 8.8: truncated, bootstraps from V(final obs) = 7
    d5 = 6 + 0.9 * 4.0 - 3.0  # 6.6: end of the rollout, bootstraps from 4
    gl = 0.9 * 0.8  # 0.72
    a5 = d5
    a4 = d4  # the recursion is cut: nothing of episode C leaks in
    a3 = d3 + gl * a4  # 10.586
    a2 = d2  # cut at the terminal
    a1 = d1 + gl * a2  # 3.43
    a0 = d0 + gl * a1  # 3.8696
    adv, ret = toy_gae()
    assert_close(adv, col(a0, a1, a2, a3, a4, a5))
    assert_close(adv, col(3.8696, 3.43, 1.5, 10.586, 8.8, 6.6))
    assert_close(ret, col(a0 + 0.5, a1 + 1.0, a2 + 1.5, a3 + 2.0, a4 + 2.5, a5 + 3.0))


def test_lambda_returns_hand_computed_toy() -> None:
    g5 = 6 + 0.9 * 4.0  # 9.6: last step, c = 0
    g4 = 5 + 0.9 * 7.0  # 11.3: truncated, bootstraps from V(final obs) only
    g3 = 4 + 0.9 * ((1 - 0.8) * 2.5 + 0.8 * g4)  # 12.586
    g2 = 3.0  # terminated: no bootstrap at all
    g1 = 2 + 0.9 * ((1 - 0.8) * 1.5 + 0.8 * g2)  # 4.43
    g0 = 1 + 0.9 * ((1 - 0.8) * 1.0 + 0.8 * g1)  # 4.3696
    out = toy_lambda()
    assert_close(out, col(g0, g1, g2, g3, g4, g5))
    assert_close(out, col(4.3696, 4.43, 3.0, 12.586, 11.3, 9.6))
    # next_values of the toy are V shifted inside episodes, so this equals gae's returns.
    assert_close(out, toy_gae()[1])


def test_lambda_returns_use_next_values_not_values() -> None:
    # PQN: next_values = max_a Q(s_{t+1}, a) need not equal anything the rollout stored.
    out = lambda_returns(
        col(1.0, 2.0), col(10.0, 20.0), flags(0, 0), flags(0, 0), gamma=0.5, lam=0.5
    )
    g1 = 2 + 0.5 * 20.0  # 12
    g0 = 1 + 0.5 * ((1 - 0.5) * 10.0 + 0.5 * g1)  # 6.5
    assert_close(out, col(g0, g1))


def test_truncation_bootstraps_and_nothing_leaks() -> None:
    adv, _ = toy_gae()
    ret_l = toy_lambda()
    # One more unit of V(final obs) at the truncation reaches steps 4 and 3 only.
    nv = NEXT_VALUES.clone()
    nv[4] += 1.0
    adv2, _ = toy_gae(next_values=nv)
    assert_close(adv2 - adv, col(0, 0, 0, 0.9 * 0.8 * 0.9, 0.9, 0))
    assert_close(toy_lambda(next_values=nv) - ret_l, col(0, 0, 0, 0.9 * 0.8 * 0.9, 0.9, 0))
    # Episode C (step 5) can change arbitrarily without touching episodes A and B.
    r, v, nv = REWARDS.clone(), VALUES.clone(), NEXT_VALUES.clone()
    r[5], v[5], nv[5] = -50.0, 80.0, 33.0
    adv3, _ = toy_gae(rewards=r, values=v, next_values=nv)
    assert_close(adv3[:5], adv[:5])
    assert_close(toy_lambda(rewards=r, next_values=nv)[:5], ret_l[:5])


def test_termination_does_not_bootstrap() -> None:
    adv, _ = toy_gae()
    nv = NEXT_VALUES.clone()
    nv[2] = -1e6  # V after a terminal step is ignored
    assert_close(toy_gae(next_values=nv)[0], adv)
    assert_close(toy_lambda(next_values=nv), toy_lambda())
    # Episode B can change without touching episode A.
    r, v = REWARDS.clone(), VALUES.clone()
    r[3:], v[3:] = 9.0, -9.0
    assert_close(toy_gae(rewards=r, values=v)[0][:3], adv[:3])


def test_two_envs_equal_each_env_alone() -> None:
    g = torch.Generator().manual_seed(0)
    T = 7
    rewards = torch.randn(T, 2, generator=g, dtype=F64)
    values = torch.randn(T, 2, generator=g, dtype=F64)
    next_values = torch.randn(T, 2, generator=g, dtype=F64)
    terminated = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 1], [0, 0], [0, 0], [1, 0]]).bool()
    truncated = torch.tensor([[0, 0], [0, 1], [0, 0], [0, 0], [1, 0], [0, 0], [0, 0]]).bool()
    end = terminated | truncated
    adv, ret = gae(rewards, values, next_values, terminated, end, 0.97, 0.9)
    lam_ret = lambda_returns(rewards, next_values, terminated, end, 0.97, 0.9)
    for n in range(2):
        s = slice(n, n + 1)
        adv_n, ret_n = gae(
            rewards[:, s], values[:, s], next_values[:, s], terminated[:, s], end[:, s], 0.97, 0.9
        )
        assert_close(adv[:, s], adv_n)
        assert_close(ret[:, s], ret_n)
        lam_n = lambda_returns(
            rewards[:, s], next_values[:, s], terminated[:, s], end[:, s], 0.97, 0.9
        )
        assert_close(lam_ret[:, s], lam_n)


def test_lam_one_is_monte_carlo_and_lam_zero_is_td() -> None:
    gamma = 0.9
    r = col(1.0, -2.0, 3.0, 0.5)
    v = col(0.3, 0.7, -0.4, 1.1)
    nv = col(0.7, -0.4, 1.1, 2.0)  # V shifted, and V(obs after the rollout) = 2
    no = flags(0, 0, 0, 0)
    adv1, _ = gae(r, v, nv, no, no, gamma, 1.0)
    mc = col(
        1.0 - 2.0 * 0.9 + 3.0 * 0.81 + 0.5 * 0.729 + 2.0 * 0.6561,
        -2.0 + 3.0 * 0.9 + 0.5 * 0.81 + 2.0 * 0.729,
        3.0 + 0.5 * 0.9 + 2.0 * 0.81,
        0.5 + 2.0 * 0.9,
    )
    assert_close(adv1, mc - v)
    assert_close(lambda_returns(r, nv, no, no, gamma, 1.0), mc)
    # lam = 0: one-step TD errors, with any next_values.
    nv0 = col(5.0, -1.0, 0.0, 2.0)
    adv0, ret0 = gae(r, v, nv0, no, no, gamma, 0.0)
    td = col(1.0 + 0.9 * 5.0 - 0.3, -2.0 - 0.9 - 0.7, 3.0 + 0.4, 0.5 + 1.8 - 1.1)
    assert_close(adv0, td)
    assert_close(ret0, r + gamma * nv0)
    assert_close(lambda_returns(r, nv0, no, no, gamma, 0.0), r + gamma * nv0)


def test_dtype_follows_rewards() -> None:
    r32 = REWARDS.float()
    adv, ret = gae(r32, VALUES.float(), NEXT_VALUES.float(), TERMINATED, EPISODE_END, G, L)
    assert adv.dtype == ret.dtype == torch.float32
    assert toy_lambda(rewards=r32, next_values=NEXT_VALUES.float()).dtype == torch.float32


@pytest.mark.parametrize(
    ("changes", "gamma", "lam", "match"),
    [
        ({"rewards": torch.zeros(6)}, G, L, r"rewards must be \(T, N\)"),
        ({"values": torch.zeros(5, 1, dtype=F64)}, G, L, "values must have the shape"),
        ({"next_values": torch.zeros(6, 2, dtype=F64)}, G, L, "next_values must have the shape"),
        ({"values": torch.zeros(6, 1)}, G, L, "values must have the dtype of rewards"),
        ({"terminated": torch.zeros(6, 1)}, G, L, "terminated must be a bool"),
        ({"episode_end": torch.zeros(6, 1, dtype=torch.int64)}, G, L, "episode_end must be a bool"),
        ({"rewards": torch.zeros(6, 1, dtype=torch.int64)}, G, L, "rewards must be a float"),
        ({"episode_end": TRUNCATED}, G, L, "episode_end must be true wherever terminated"),
        ({}, 1.5, L, "gamma must be in"),
        ({}, G, -0.1, "lam must be in"),
    ],
)
def test_bad_inputs_are_rejected(
    changes: dict[str, torch.Tensor], gamma: float, lam: float, match: str
) -> None:
    args = {
        "rewards": REWARDS,
        "values": VALUES,
        "next_values": NEXT_VALUES,
        "terminated": TERMINATED,
        "episode_end": EPISODE_END,
    }
    args.update(changes)
    with pytest.raises(ValueError, match=match):
        gae(**args, gamma=gamma, lam=lam)
    del args["values"]
    if "values" not in changes:
        with pytest.raises(ValueError, match=match):
            lambda_returns(**args, gamma=gamma, lam=lam)


# ----------------------------------------------------------------------------- hypothesis


class Rollout(NamedTuple):
    """A random (T, N) float64 rollout for the property tests."""

    rewards: torch.Tensor
    values: torch.Tensor
    next_values: torch.Tensor
    terminated: torch.Tensor
    episode_end: torch.Tensor
    gamma: float
    lam: float

    def gae(self) -> tuple[torch.Tensor, torch.Tensor]:
        return gae(*self[:5], self.gamma, self.lam)

    def lambda_returns(self) -> torch.Tensor:
        return lambda_returns(
            self.rewards, self.next_values, self.terminated, self.episode_end, self.gamma, self.lam
        )


@st.composite
def rollouts(draw: st.DrawFn) -> Rollout:
    """A random (T, N) rollout with consistent flags; next_values = V shifted inside episodes."""
    T = draw(st.integers(1, 8))
    N = draw(st.integers(1, 3))
    floats = st.floats(-10, 10, allow_nan=False, allow_infinity=False)

    def tensor(dtype: type[np.generic], elements: st.SearchStrategy[float] | None) -> torch.Tensor:
        return torch.from_numpy(draw(arrays(dtype, (T, N), elements=elements)))

    values = tensor(np.float64, floats)
    terminated = tensor(np.bool_, None)
    end = terminated | tensor(np.bool_, None)  # episode_end = terminated | truncated
    # V(s_{t+1}) = values[t + 1] where step t neither ends an episode nor is the last one;
    # elsewhere next_values is free (V(final obs) at truncations, anything at terminals).
    next_values = tensor(np.float64, floats)
    inside = ~end[:-1]  # (T - 1, N)
    next_values[:-1][inside] = values[1:][inside]
    return Rollout(
        rewards=tensor(np.float64, floats),
        values=values,
        next_values=next_values,
        terminated=terminated,
        episode_end=end,
        gamma=draw(st.floats(0, 1)),
        lam=draw(st.floats(0, 1)),
    )


@given(rollouts())
def test_gae_returns_equal_lambda_returns(ro: Rollout) -> None:
    adv, ret = ro.gae()
    lam_ret = ro.lambda_returns()
    assert adv.shape == ro.rewards.shape
    assert ret.shape == lam_ret.shape == ro.rewards.shape
    assert adv.dtype == ret.dtype == lam_ret.dtype == F64
    assert_close(ret, lam_ret, atol=1e-6)
    assert_close(ret - adv, ro.values)


@given(rollouts(), st.integers(0, 2**31 - 1))
def test_nothing_after_an_episode_end_matters(ro: Rollout, seed: int) -> None:
    # Scramble every input after each env's first episode end: results up to it are unchanged.
    T, N = ro.episode_end.shape
    step = torch.arange(T).unsqueeze(1)  # (T, 1)
    first_end = torch.where(ro.episode_end.any(0), ro.episode_end.int().argmax(0), T)  # (N,)
    later = step > first_end  # (T, N)
    g = torch.Generator().manual_seed(seed)

    def noise() -> torch.Tensor:
        return 100 * torch.randn(T, N, generator=g, dtype=F64)

    new_term = torch.rand(T, N, generator=g) < 0.5
    new_end = new_term | (torch.rand(T, N, generator=g) < 0.5)
    scrambled = ro._replace(
        rewards=torch.where(later, noise(), ro.rewards),
        values=torch.where(later, noise(), ro.values),
        next_values=torch.where(later, noise(), ro.next_values),
        terminated=torch.where(later, new_term, ro.terminated),
        episode_end=torch.where(later, new_end, ro.episode_end),
    )
    keep = ~later
    adv, ret = ro.gae()
    adv2, ret2 = scrambled.gae()
    assert torch.equal(adv[keep], adv2[keep])
    assert torch.equal(ret[keep], ret2[keep])
    assert torch.equal(ro.lambda_returns()[keep], scrambled.lambda_returns()[keep])


# ----------------------------------------------------------------------------- storage


def fill(storage: RolloutStorage, steps: range, seed: int = 0) -> None:
    """Write deterministic steps: obs[t, n] = (t * N + n, -1), actions int64."""
    N = storage.num_envs
    for t in steps:
        g = torch.Generator().manual_seed(seed * 1000 + t)
        ids = torch.arange(t * N, (t + 1) * N, dtype=torch.float32)  # (N,)
        storage.add(
            obs=torch.stack([ids, -torch.ones(N)], dim=1),  # (N, 2)
            actions=torch.randint(0, 3, (N,), generator=g),
            log_probs=-torch.rand(N, generator=g),
            values=torch.randn(N, generator=g),
            rewards=torch.randn(N, generator=g),
            terminated=torch.rand(N, generator=g) < 0.2,
            truncated=torch.rand(N, generator=g) < 0.2,
            next_values=torch.randn(N, generator=g),
        )


def make_storage(T: int = 5, N: int = 3) -> RolloutStorage:
    return RolloutStorage(T, N, (2,), (), action_dtype=torch.int64, device="cpu")


def test_storage_compute_matches_gae() -> None:
    s = make_storage()
    assert len(s) == 0
    assert not s.full
    fill(s, range(5))
    assert len(s) == 5
    assert s.full
    s.compute(0.99, 0.95)
    state = s.state_dict()["fields"]
    adv, ret = gae(
        state["rewards"],
        state["values"],
        state["next_values"],
        state["terminated"],
        state["terminated"] | state["truncated"],
        0.99,
        0.95,
    )
    assert torch.equal(s.advantages, adv)
    assert torch.equal(s.returns, ret)
    assert s.advantages.shape == (5, 3)
    assert s.advantages.dtype == torch.float32


def test_storage_truncation_bootstraps_through_next_values() -> None:
    # One env, two steps; the first is truncated: its advantage uses next_values[0] only.
    s = RolloutStorage(2, 1, (), (), device="cpu")
    one = torch.ones(1)
    s.add(one, one, -one, 0.5 * one, one, one < 0, one > 0, 7 * one)
    s.add(one, one, -one, 3 * one, 2 * one, one < 0, one < 0, 4 * one)
    s.compute(0.9, 0.8)
    assert_close(
        s.advantages[:, 0].double(), torch.tensor([1 + 0.9 * 7 - 0.5, 2 + 0.9 * 4 - 3]).double()
    )


@given(T=st.integers(1, 6), N=st.integers(1, 4), k=st.integers(1, 24), seed=st.integers(0, 10**6))
def test_minibatches_cover_every_step_once(T: int, N: int, k: int, seed: int) -> None:
    s = make_storage(T, N)
    fill(s, range(T))
    s.compute(0.99, 0.95)
    if (T * N) % k:
        with pytest.raises(ValueError, match="divide"):
            s.minibatches(k, torch.Generator().manual_seed(seed))
        return
    batches = list(s.minibatches(k, torch.Generator().manual_seed(seed)))
    assert len(batches) == k
    ids = torch.cat([b.obs[:, 0] for b in batches]).long()
    assert sorted(ids.tolist()) == list(range(T * N))
    for b in batches:
        assert isinstance(b, RolloutBatch)
        M = T * N // k
        assert b.obs.shape == (M, 2)
        assert b.actions.shape == (M,)
        assert b.actions.dtype == torch.int64
        # Every field of a row belongs to the step its obs id names.
        t, n = b.obs[:, 0].long() // N, b.obs[:, 0].long() % N
        assert torch.equal(b.advantages, s.advantages[t, n])
        assert torch.equal(b.returns, s.returns[t, n])
        assert torch.equal(b.values, s.values[t, n])
        for name in ("log_probs", "values", "advantages", "returns"):
            assert getattr(b, name).shape == (M,)


def test_same_generator_seed_same_minibatches() -> None:
    s = make_storage(4, 4)
    fill(s, range(4))
    s.compute(0.99, 0.95)
    a = [b.obs[:, 0] for b in s.minibatches(4, torch.Generator().manual_seed(3))]
    b = [b.obs[:, 0] for b in s.minibatches(4, torch.Generator().manual_seed(3))]
    c = [b.obs[:, 0] for b in s.minibatches(4, torch.Generator().manual_seed(4))]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    # The permutation is drawn at the call, so an unconsumed iterator still advances the generator.
    g = torch.Generator().manual_seed(3)
    s.minibatches(4, g)
    assert not torch.equal(
        next(iter(s.minibatches(4, g))).obs,
        next(iter(s.minibatches(4, torch.Generator().manual_seed(3)))).obs,
    )


def test_state_dict_round_trip_mid_rollout() -> None:
    a = make_storage()
    fill(a, range(3))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)  # as a checkpoint would
    buf.seek(0)
    b = make_storage()
    b.load_state_dict(torch.load(buf))
    assert len(b) == 3
    assert not b.full
    fill(a, range(3, 5))
    fill(b, range(3, 5))
    a.compute(0.99, 0.95)
    b.compute(0.99, 0.95)
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for x, y in zip(a.minibatches(5, ga), b.minibatches(5, gb), strict=True):
        for fx, fy in zip(x, y, strict=True):
            assert torch.equal(fx, fy)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["pos"] == sb["pos"] == 5
    assert sa["computed"]
    assert sb["computed"]
    for name, x in sa["fields"].items():
        assert torch.equal(x, sb["fields"][name]), name


def test_reset_starts_a_new_rollout() -> None:
    s = make_storage()
    fill(s, range(5))
    s.compute(0.99, 0.95)
    s.reset()
    assert len(s) == 0
    assert not s.full
    assert not s.computed
    with pytest.raises(RuntimeError, match="compute"):
        s.minibatches(1, torch.Generator())
    fill(s, range(5), seed=1)
    s.compute(0.99, 0.95)
    assert len(list(s.minibatches(3, torch.Generator()))) == 3


def test_load_state_dict_rejects_other_shapes() -> None:
    state = make_storage(5, 3).state_dict()
    with pytest.raises(ValueError, match="field 'obs'"):
        make_storage(5, 2).load_state_dict(state)
    state["pos"] = 9
    with pytest.raises(ValueError, match="pos"):
        make_storage(5, 3).load_state_dict(state)


GOOD = {
    "obs": torch.zeros(3, 2),
    "actions": torch.zeros(3, dtype=torch.int64),
    "log_probs": torch.zeros(3),
    "values": torch.zeros(3),
    "rewards": torch.zeros(3),
    "terminated": torch.zeros(3, dtype=torch.bool),
    "truncated": torch.zeros(3, dtype=torch.bool),
    "next_values": torch.zeros(3),
}


@pytest.mark.parametrize("field", list(GOOD))
def test_add_rejects_bad_shapes_naming_the_field(field: str) -> None:
    s = make_storage()
    bad = dict(GOOD)
    bad[field] = torch.zeros(4, *GOOD[field].shape[1:], dtype=GOOD[field].dtype)
    with pytest.raises(ValueError, match=rf"{field} must have shape \(3,"):
        s.add(**bad)
    assert len(s) == 0  # nothing was written


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("obs", torch.zeros(3, 2, dtype=torch.float64), "obs must have dtype torch.float32"),
        ("actions", torch.zeros(3), "actions must have dtype torch.int64"),
        ("terminated", torch.zeros(3), "terminated must have dtype torch.bool"),
        ("rewards", torch.zeros(3, dtype=torch.int64), "rewards must be a float"),
    ],
)
def test_add_rejects_bad_dtypes(field: str, value: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_storage().add(**{**GOOD, field: value})


def test_call_order_errors() -> None:
    s = make_storage(2, 3)
    s.add(**GOOD)
    with pytest.raises(RuntimeError, match="1 of 2"):
        s.compute(0.99, 0.95)
    s.add(**GOOD)
    with pytest.raises(RuntimeError, match="full"):
        s.add(**GOOD)
    with pytest.raises(RuntimeError, match="compute"):
        s.minibatches(2, torch.Generator())
    with pytest.raises(ValueError, match="gamma"):
        s.compute(1.5, 0.95)
    with pytest.raises(ValueError, match="num_steps"):
        RolloutStorage(0, 1, (), (), device="cpu")
