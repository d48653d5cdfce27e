"""Samplers: LAP priorities, faded priorities against a brute-force reference, draw frequencies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rl_buffers import FadedLAPSampler, LAPSampler, UniformSampler, young_max_age
from rl_buffers.samplers import Backend, Sampler, sampler_from_config

torch.set_num_threads(1)

BACKENDS: list[Backend] = ["tree", "scan"]

# Chi-square critical values at p = 1e-6 (scipy.stats.chi2.isf(1e-6, df)): with a fixed generator
# the test is deterministic, and a correct sampler would fail it only with probability 1e-6.
CHI2_CRIT = {7: 40.52, 9: 44.81}


def chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def draw_counts(sampler: Sampler, n_batches: int, batch: int, seed: int = 0) -> np.ndarray:
    g = torch.Generator(device=sampler.device).manual_seed(seed)
    counts = np.zeros(sampler.capacity)
    for _ in range(n_batches):
        idx = sampler.sample(batch, g).cpu().numpy()
        counts += np.bincount(idx, minlength=sampler.capacity)
    return counts


# ---------------------------------------------------------------- uniform


def test_uniform_draws_only_active_and_evenly() -> None:
    s = UniformSampler(12)
    s.insert(np.arange(12))
    s.set_active(np.arange(2, 12), True)
    s.set_active(np.array([5]), False)
    active = [2, 3, 4, 6, 7, 8, 9, 10, 11]
    counts = draw_counts(s, 20, 5000)
    assert set(np.flatnonzero(counts).tolist()) == set(active)
    probs = np.zeros(12)
    probs[active] = 1 / 9
    assert np.allclose(s.probabilities().numpy(), probs)
    stat = chi_square(counts[active], probs[active])
    assert stat < 42.7  # chi2.isf(1e-6, df=8)
    # A wrong hypothesis (one slot twice as likely) is rejected by a wide margin.
    wrong = probs[active].copy()
    wrong[0] *= 2
    assert chi_square(counts[active], wrong / wrong.sum()) > 10 * CHI2_CRIT[7]


def test_uniform_bulk_deactivation_keeps_the_rest() -> None:
    s = UniformSampler(300)
    s.insert(np.arange(300))
    s.set_active(np.arange(300), True)
    s.insert(np.arange(0, 300, 2))  # 150 overwritten: bulk path
    assert s.num_active == 150
    g = torch.Generator().manual_seed(1)
    assert (s.sample(1000, g) % 2 == 1).all()


# ---------------------------------------------------------------- LAP


@pytest.mark.parametrize("backend", BACKENDS)
def test_lap_frequencies_match_priorities(backend: Backend) -> None:
    s = LAPSampler(10, backend=backend)
    s.insert(np.arange(10))
    s.set_active(np.arange(10), True)
    td = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0])
    s.update_priority(torch.arange(10), td)
    p = np.maximum(np.abs(td.numpy().astype(np.float64)), 1.0) ** 0.4
    expect = p / p.sum()
    assert np.allclose(s.probabilities().numpy(), expect, rtol=1e-12)
    counts = draw_counts(s, 40, 5000)
    assert chi_square(counts, expect) < CHI2_CRIT[9]
    uniform = np.full(10, 0.1)
    assert chi_square(counts, uniform) > 10 * CHI2_CRIT[9]
    wrong_alpha = np.maximum(np.abs(td.numpy()), 1.0) ** 0.5
    assert chi_square(counts, wrong_alpha / wrong_alpha.sum()) > CHI2_CRIT[9]


@settings(deadline=None, max_examples=30)
@given(
    backend=st.sampled_from(BACKENDS),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["insert", "activate", "deactivate", "update"]),
            st.lists(st.integers(0, 15), min_size=1, max_size=6, unique=True),
            st.lists(st.floats(-50, 50), min_size=6, max_size=6),
        ),
        max_size=25,
    ),
)
def test_lap_priority_invariants(
    backend: Backend, ops: list[tuple[str, list[int], list[float]]]
) -> None:
    cap, alpha, minp = 16, 0.4, 1.0
    s = LAPSampler(cap, alpha=alpha, min_priority=minp, backend=backend)
    max_p = minp**alpha
    prio = np.full(cap, max_p)  # never-inserted slots hold the minimum priority
    active = np.zeros(cap, dtype=bool)
    for op, slots, tds in ops:
        idx = np.array(slots)
        if op == "insert":
            s.insert(idx)
            prio[idx] = max_p  # new items get the running max
            active[idx] = False
        elif op == "activate":
            s.set_active(idx, True)
            active[idx] = True
        elif op == "deactivate":
            s.set_active(idx, False)
            active[idx] = False
        else:
            td = np.array(tds[: idx.size])
            s.update_priority(torch.from_numpy(idx), torch.from_numpy(td))
            new = np.maximum(np.abs(td), minp) ** alpha
            prio[idx] = new
            max_p = max(max_p, float(new.max()))
        assert s.max_priority == pytest.approx(max_p, rel=1e-12)
        assert np.allclose(s.priorities().numpy(), prio, rtol=1e-12)
        assert (s.priorities().numpy() >= minp**alpha).all()
        assert s.num_active == active.sum()
        if active.any():
            w = prio * active
            assert np.allclose(s.probabilities().numpy(), w / w.sum(), rtol=1e-10, atol=1e-15)
            g = torch.Generator().manual_seed(0)
            assert active[s.sample(64, g).numpy()].all()


def test_lap_duplicate_indices_take_the_max() -> None:
    s = LAPSampler(4)
    s.insert(np.arange(4))
    s.set_active(np.arange(4), True)
    s.update_priority(torch.tensor([1, 1, 2, 1]), torch.tensor([3.0, 9.0, 2.0, -4.0]))
    assert s.priorities()[1].item() == pytest.approx(9.0**0.4)
    assert s.priorities()[2].item() == pytest.approx(2.0**0.4)


def test_lap_rejects_bad_updates_and_generators() -> None:
    s = LAPSampler(4)
    s.insert(np.arange(4))
    s.set_active(np.arange(4), True)
    with pytest.raises(ValueError, match=r"td_error contains NaN"):
        s.update_priority(torch.tensor([0]), torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 4\)"):
        s.update_priority(torch.tensor([4]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"expected indices \(B,\) and td_error \(B,\)"):
        s.update_priority(torch.tensor([0, 1]), torch.tensor([1.0]))
    with pytest.raises(TypeError, match="indices must be int64"):
        s.update_priority(torch.tensor([0], dtype=torch.int32), torch.tensor([1.0]))
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        s.sample(2, None)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        s.sample(0, torch.Generator())
    with pytest.raises(ValueError, match="backend='tree' runs on the CPU"):
        LAPSampler(4, device="meta")
    empty = LAPSampler(4)
    with pytest.raises(ValueError, match="no sampleable item"):
        empty.sample(1, torch.Generator())


# ---------------------------------------------------------------- faded


def test_young_max_age() -> None:
    a = young_max_age(0.9999, 0.1)
    assert a == 23024  # ln(0.1) / ln(0.9999) = 23024.70...
    assert 0.9999**a > 0.1 >= 0.9999 ** (a + 1)
    assert young_max_age(0.5, 0.1) == 3
    assert young_max_age(0.5, 1.0) == -1


class BruteFaded:
    """Reference: DR.Q's definition evaluated directly, O(n) per query."""

    def __init__(
        self, cap: int, fade: float, floor: float, alpha: float = 0.4, minp: float = 1.0
    ) -> None:
        self.fade, self.floor, self.alpha, self.minp = fade, floor, alpha, minp
        self.p = np.full(cap, minp**alpha)  # never-inserted slots: the minimum priority ...
        self.t = np.full(cap, -1, dtype=np.int64)  # ... and inserted "before the first tick"
        self.active = np.zeros(cap, dtype=bool)
        self.max_p = minp**alpha
        self.clock = 0

    def insert(self, idx: np.ndarray) -> None:
        for i in idx:
            self.p[i] = self.max_p
            self.t[i] = self.clock
            self.active[i] = False
            self.clock += 1

    def update(self, idx: np.ndarray, td: np.ndarray) -> None:
        new = np.maximum(np.abs(td), self.minp) ** self.alpha
        for i in np.unique(idx):
            self.p[i] = new[idx == i].max()
        self.max_p = max(self.max_p, float(new.max()))

    def probs(self) -> np.ndarray:
        age = (self.clock - 1) - self.t
        fade = np.clip(self.fade ** age.astype(np.float64), self.floor, 1.0)
        w = self.p * fade * self.active
        return w / w.sum()


def run_faded_against_brute(
    backend: Backend,
    fade: float,
    floor: float,
    cap: int,
    ticks: int,
    seed: int,
    batch_every: int = 7,
) -> None:
    rng = np.random.default_rng(seed)
    s = FadedLAPSampler(cap, fade=fade, floor=floor, backend=backend)
    ref = BruteFaded(cap, fade, floor)
    ring = 0
    t = 0
    checks = 0
    while t < ticks:
        # Insert a run of 1..batch_every consecutive ring slots (as the buffer does), sometimes
        # several in one call (the buffer's extend path).
        c = min(int(rng.integers(1, batch_every + 1)), cap)
        idx = (ring + np.arange(c)) % cap
        ring = (ring + c) % cap
        t += c
        if rng.random() < 0.5:
            s.insert(idx)
        else:
            for i in idx:
                s.insert(np.array([i]))
        ref.insert(idx)
        act = rng.choice(cap, size=int(rng.integers(0, 4)), replace=False)
        s.set_active(act, True)
        ref.active[act] = True
        if rng.random() < 0.1:
            off = rng.choice(cap, size=2, replace=False)
            s.set_active(off, False)
            ref.active[off] = False
        if rng.random() < 0.5 and ref.active.any():
            upd = rng.choice(np.flatnonzero(ref.active), size=3)
            td = rng.normal(0, 5, size=3)
            s.update_priority(torch.from_numpy(upd), torch.from_numpy(td))
            ref.update(upd, td)
        if ref.active.any() and rng.random() < 0.2:
            got = s.probabilities().numpy()
            np.testing.assert_allclose(got, ref.probs(), rtol=1e-9, atol=1e-14)
            checks += 1
    assert checks > 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_faded_matches_brute_force_small_window(backend: Backend) -> None:
    # fade 0.9, floor 0.1: items stay young for 21 ticks; thousands of renormalisations.
    run_faded_against_brute(backend, 0.9, 0.1, cap=40, ticks=6000, seed=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_faded_matches_brute_force_capacity_beyond_young_window(backend: Backend) -> None:
    run_faded_against_brute(backend, 0.8, 0.3, cap=200, ticks=3000, seed=1, batch_every=40)


def test_faded_matches_brute_force_dr_q_defaults() -> None:
    # DR.Q defaults: young for 23025 ticks. 60k ticks cross the floor and renormalise twice.
    run_faded_against_brute("tree", 0.9999, 0.1, cap=64, ticks=60_000, seed=2, batch_every=200)


def test_faded_floor_one_is_plain_lap() -> None:
    faded = FadedLAPSampler(6, fade=0.5, floor=1.0)
    lap = LAPSampler(6)
    for s in (faded, lap):
        s.insert(np.arange(6))
        s.set_active(np.arange(6), True)
        s.update_priority(torch.arange(6), torch.arange(6.0) * 3)
    assert np.allclose(faded.probabilities().numpy(), lap.probabilities().numpy(), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_faded_frequencies_match_weights(backend: Backend) -> None:
    s = FadedLAPSampler(10, fade=0.7, floor=0.1, backend=backend)
    for i in range(10):
        s.insert(np.array([i]))
    s.set_active(np.arange(10), True)
    s.update_priority(torch.arange(10), torch.linspace(0, 9, 10))
    ages = 9 - np.arange(10)
    p = np.maximum(np.linspace(0, 9, 10), 1.0) ** 0.4
    w = p * np.clip(0.7**ages, 0.1, 1.0)
    expect = w / w.sum()
    assert young_max_age(0.7, 0.1) == 6  # slots 0..2 are old, 3..9 young: both stores are used
    assert np.allclose(s.probabilities().numpy(), expect, rtol=1e-12)
    counts = draw_counts(s, 40, 5000)
    assert chi_square(counts, expect) < CHI2_CRIT[9]
    unfaded = p / p.sum()
    assert chi_square(counts, unfaded) > 10 * CHI2_CRIT[9]


@pytest.mark.slow
def test_faded_weights_stay_bounded_over_ten_million_ticks() -> None:
    # Ten million inserts in 1000-tick calls (the extend path): the young leaves are recomputed
    # from (p, t_insert) at every renormalisation, so nothing drifts or overflows.
    cap = 1000
    s = FadedLAPSampler(cap)
    ref = BruteFaded(cap, 0.9999, 0.1)
    g = torch.Generator().manual_seed(0)
    for _ in range(10_000):
        idx = np.arange(cap)
        s.insert(idx)
        s.set_active(idx, True)
    ref.clock = 10_000 * cap
    ref.t[:] = ref.clock - cap + np.arange(cap)
    ref.p[:] = 1.0
    ref.active[:] = True
    upd = torch.arange(0, cap, 7)
    td = torch.linspace(0, 30, upd.numel(), dtype=torch.float64)
    s.update_priority(upd, td)
    ref.update(upd.numpy(), td.numpy())
    assert s.now == 10_000_000 - 1
    np.testing.assert_allclose(s.probabilities().numpy(), ref.probs(), rtol=1e-9)
    assert (s.sample(1000, g) >= 0).all()


# ---------------------------------------------------------------- state


@pytest.mark.parametrize(
    "make",
    [
        lambda: UniformSampler(30),
        lambda: LAPSampler(30, backend="tree"),
        lambda: LAPSampler(30, backend="scan"),
        lambda: FadedLAPSampler(30, fade=0.9, backend="tree"),
        lambda: FadedLAPSampler(30, fade=0.9, backend="scan"),
    ],
)
def test_state_dict_round_trip_gives_the_same_draws(make: object) -> None:
    rng = np.random.default_rng(3)
    s: Sampler = make()  # pyright: ignore[reportCallIssue]
    for t in range(200):
        s.insert(np.array([t % 30]))
        s.set_active(np.array([(t - 2) % 30]), True)
        if t % 5 == 0:
            s.update_priority(
                torch.from_numpy(rng.integers(0, 30, 4)), torch.from_numpy(rng.normal(0, 4, 4))
            )
    state = s.state_dict()
    other = sampler_from_config(state["kind"], s.capacity, s.config())
    other.load_state_dict(state)
    g1 = torch.Generator().manual_seed(5)
    g2 = torch.Generator().manual_seed(5)
    assert torch.equal(s.sample(500, g1), other.sample(500, g2))
    for x in (s, other):
        x.insert(np.array([7]))
        x.set_active(np.array([7]), True)
    assert torch.equal(s.sample(500, g1), other.sample(500, g2))
    assert torch.equal(s.probabilities(), other.probabilities())


def test_load_state_dict_rejects_other_kind_or_settings() -> None:
    with pytest.raises(ValueError, match="state is for a 'uniform' sampler"):
        LAPSampler(4).load_state_dict(UniformSampler(4).state_dict())
    with pytest.raises(ValueError, match=r"fade=0\.9"):
        FadedLAPSampler(4).load_state_dict(FadedLAPSampler(4, fade=0.9).state_dict())
    with pytest.raises(ValueError, match="unknown sampler kind"):
        sampler_from_config("per", 4, {})
    assert math.isclose(
        sampler_from_config("faded", 4, FadedLAPSampler(4, floor=0.2).config()).config()["floor"],
        0.2,
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_scan_backend_on_cuda_matches_cpu() -> None:
    cpu = FadedLAPSampler(50, fade=0.9, backend="scan")
    gpu = FadedLAPSampler(50, fade=0.9, backend="scan", device="cuda")
    for s in (cpu, gpu):
        for t in range(120):
            s.insert(np.array([t % 50]))
            s.set_active(np.array([(t - 1) % 50]), True)
        s.update_priority(torch.arange(10), torch.arange(10.0))
    assert torch.allclose(cpu.probabilities(), gpu.probabilities(), rtol=1e-9)
    counts = draw_counts(gpu, 20, 5000)
    assert chi_square(counts[counts > 0], cpu.probabilities().numpy()[counts > 0]) < 200
