"""ReplayBuffer: ring wrap, frame history, episode-respecting windows, n-step returns, resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rl_buffers import (
    FadedLAPSampler,
    LAPSampler,
    ReplayBuffer,
    Sampler,
    TransitionSpec,
    UniformSampler,
    io,
    one_hot,
)

torch.set_num_threads(1)

STEP = np.array([1.0, 0.0])  # observations are [step, episode]: the next one is one step on


def allclose(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.float(), b.float(), atol=atol, rtol=1e-6))


# ---------------------------------------------------------------- the hand-computed episode


def mrq_example(
    horizon: int = 5, *, truncate: bool = False, sampler: Sampler | None = None
) -> ReplayBuffer:
    """Episode A: rewards 1..6, ends at its 6th step (terminated, or truncated); episode B:
    rewards 100, 0, 0, ... Observations are [step number, episode]."""
    buf = ReplayBuffer(
        spec=TransitionSpec.continuous((2,), 1), capacity=32, horizon=horizon, sampler=sampler
    )
    for t in range(6):
        obs = np.array([t, 0.0])
        end = t == 5
        buf.add(
            obs,
            np.array([t / 10]),
            float(t + 1),
            obs + STEP,
            end and not truncate,
            end and truncate,
        )
    for t in range(8):
        obs = np.array([t, 1.0])
        buf.add(obs, np.array([-t / 10]), 100.0 if t == 0 else 0.0, obs + STEP, False, False)
    return buf


def test_n_step_returns_stop_at_the_terminal_hand_computed() -> None:
    buf = mrq_example()
    w = buf.storage.window(torch.tensor([3, 4, 5]), 3)
    batch_like = buf.storage  # slots 3, 4, 5 are steps 3, 4, 5 of episode A
    assert batch_like.step_of(np.array([3, 4, 5])).tolist() == [3, 4, 5]
    from rl_buffers import n_step_returns

    ret, boot, disc = n_step_returns(w.reward_raw, w.not_done, 0.99)
    # 4 + .99*5 + .99^2*6 = 14.8306 ; 5 + .99*6 = 10.94 ; 6: the terminal reward counts,
    # episode B's 100 never leaks in.
    assert allclose(ret, torch.tensor([14.8306, 10.94, 6.0]))
    assert boot.tolist() == [0.0, 0.0, 0.0]
    assert allclose(disc, torch.tensor([0.99**3, 0.99**2, 0.99]))
    # The same through the sampling path: every drawn start gives its hand-computed return.
    expect = {
        0: 1 + 0.99 * 2 + 0.9801 * 3,
        1: 2 + 0.99 * 3 + 0.9801 * 4,
        2: 3 + 0.99 * 4 + 0.9801 * 5,
        3: 14.8306,
        4: 10.94,
        5: 6.0,
        6: 100.0,
    }
    b = buf.sample_nstep(256, torch.Generator().manual_seed(0), n=3, gamma=0.99)
    for i, r, nd, obs, boot_obs in zip(
        b.indices.tolist(),
        b.returns.tolist(),
        b.bootstrap_not_done.tolist(),
        b.obs,
        b.bootstrap_obs,
        strict=True,
    ):
        assert r == pytest.approx(expect.get(i, 0.0), abs=1e-4)
        assert nd == (0.0 if i in (3, 4, 5) else 1.0)
        assert obs.tolist() == buf.storage.window(torch.tensor([i]), 1).obs[0, 0].tolist()
        if i <= 2 or i >= 6:  # no terminal: the observation 3 steps later, same episode
            assert boot_obs.tolist() == [obs[0].item() + 3, obs[1].item()]
        else:  # terminated: the terminal observation (masked by bootstrap_not_done)
            assert boot_obs.tolist() == [6.0, 0.0]


def test_subtrajectory_padding_after_a_terminal_hand_computed() -> None:
    buf = mrq_example(horizon=5)
    # Terminated episodes: starts near the end ARE sampleable (MR.Q): 0..5 of A. Episode B has
    # 8 steps and no end yet: starts 6..9 (absolute 6 + 0..3) have complete 5-step windows.
    assert np.flatnonzero(buf.storage.valid_mask()).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    w = buf.storage.window(torch.tensor([4]), 5)
    # Steps 4, 5 are real (5 terminates); 3 padding steps follow.
    assert w.mask.tolist() == [[1, 1, 0, 0, 0]]
    assert w.not_done.tolist() == [[1, 0, 0, 0, 0]]
    assert w.reward.tolist() == [[5, 6, 0, 0, 0]]
    assert allclose(w.action[0, :, 0], torch.tensor([0.4, 0.5, 0, 0, 0]))
    # obs[j] for j = 0..5: step 4, step 5, then the terminal observation [6, 0] repeated.
    assert w.obs[0, :, 0].tolist() == [4, 5, 6, 6, 6, 6]
    assert (w.obs[0, :, 1] == 0).all()  # never episode B's data
    b = buf.sample_subtrajectory(64, torch.Generator().manual_seed(1))
    assert b.obs.shape == (64, 6, 2)
    assert b.action.shape == (64, 5, 1)
    assert b.reward.shape == (64, 5)
    # mask is the shifted cumulative not_done
    assert torch.equal(b.mask[:, 1:], b.not_done[:, :-1])
    assert (b.mask[:, 0] == 1).all()
    # MR.Q's encoder loss: done target 1 - not_done where mask is 1
    done_target = (1 - b.not_done) * b.mask
    starts = b.indices
    assert (
        (done_target.sum(1) == 1) == ((starts >= 1) & (starts <= 5))
    ).all()  # terminal in window


def test_truncated_windows_are_never_sampled() -> None:
    buf = mrq_example(horizon=3, truncate=True)
    # Episode A truncated after 6 steps: starts 0..3 have a full 3-step window, 4 and 5 do not.
    # Episode B: 8 steps, no end: starts 6..11 complete.
    assert np.flatnonzero(buf.storage.valid_mask()).tolist() == [0, 1, 2, 3, 6, 7, 8, 9, 10, 11]
    b = buf.sample_nstep(512, torch.Generator().manual_seed(2), n=3, gamma=0.99)
    assert not np.isin(b.indices.numpy(), [4, 5, 12, 13]).any()
    assert (b.bootstrap_not_done == 1).all()  # a truncation is not a terminal
    i3 = b.indices == 3
    assert allclose(b.returns[i3][:1], torch.tensor([4 + 0.99 * 5 + 0.9801 * 6]))
    assert (b.bootstrap_obs[i3][:, 0] == 6).all()  # bootstrap from the real last observation


def test_one_step_batch_fields() -> None:
    buf = mrq_example(horizon=1)
    b = buf.sample(128, torch.Generator().manual_seed(3))
    for i, o, no, r, nd in zip(
        b.indices.tolist(), b.obs, b.next_obs, b.reward, b.not_done, strict=True
    ):
        step, ep = (i, 0) if i < 6 else (i - 6, 1)
        assert o.tolist() == [step, ep]
        assert no.tolist() == [step + 1, ep]
        assert r.item() == (step + 1 if ep == 0 else (100 if step == 0 else 0))
        assert nd.item() == (0.0 if (ep, step) == (0, 5) else 1.0)


def test_sampling_beyond_the_horizon_is_refused() -> None:
    buf = mrq_example(horizon=3)
    with pytest.raises(ValueError, match="exceeds the buffer's horizon 3"):
        buf.sample_subtrajectory(4, torch.Generator(), horizon=5)
    with pytest.raises(ValueError, match="n must be >= 1"):
        buf.sample_nstep(4, torch.Generator(), n=0, gamma=0.9)


def test_reward_scale_is_mean_abs_reward_of_stored_transitions() -> None:
    buf = ReplayBuffer(spec=TransitionSpec.continuous((1,), 1), capacity=4)
    with pytest.raises(ValueError, match="empty"):
        buf.reward_scale()
    obs = np.zeros(1)
    for r in [0.0, 0.0]:
        buf.add(obs, obs, r, obs, False, False)
    assert buf.reward_scale() == 1e-8
    for r in [-3.0, 1.0, 2.0, 10.0]:  # wraps: the stored rewards are -3, 1, 2, 10
        buf.add(obs, obs, r, obs, r == 1.0, False)
    assert buf.reward_scale() == pytest.approx(16 / 4)


def test_discrete_actions_and_one_hot() -> None:
    buf = ReplayBuffer(spec=TransitionSpec.discrete((2,), 5), capacity=8)
    obs = np.zeros(2, np.float32)
    for a in [4, 0, 2]:
        buf.add(obs, a, 0.0, obs, False, False)
    b = buf.sample(16, torch.Generator().manual_seed(0))
    assert b.action.dtype == torch.int64
    assert b.action.shape == (16,)
    assert torch.equal(one_hot(b.action, 5).argmax(-1), b.action)
    assert torch.equal(b.action, torch.tensor([4, 0, 2])[b.indices])


# ---------------------------------------------------------------- oracle property test


@dataclass
class Oracle:
    """Brute-force model: every transition ever added, in order."""

    history: int
    obs: list[np.ndarray] = field(default_factory=list)
    next_obs: list[np.ndarray] = field(default_factory=list)
    action: list[float] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    terminated: list[bool] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)

    def valid(self, start: int, horizon: int) -> bool:
        total = len(self.reward)
        for e in range(start, total):
            if self.terminated[e]:
                return True
            if self.truncated[e]:
                return start + horizon - 1 <= e
        return start + horizon - 1 <= total - 1

    def window(
        self, start: int, length: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        obs, reward, not_done, mask = [], [], [], []
        alive = True
        last_obs = self.obs[start]
        for j in range(length):
            t = start + j
            mask.append(1.0 if alive else 0.0)
            if alive:
                obs.append(self.obs[t])
                reward.append(self.reward[t])
                last_obs = self.next_obs[t]
                alive = not self.terminated[t]
            else:
                obs.append(last_obs)
                reward.append(0.0)
            not_done.append(1.0 if alive else 0.0)
        obs.append(last_obs)
        return np.stack(obs), np.array(reward), np.array(not_done), np.array(mask)


class EnvStream:
    """Generates observations with globally unique frames: frame = [frame id, episode id]."""

    def __init__(self, history: int) -> None:
        self.k = history
        self.next_id = 0
        self.episode = -1
        self.stack: np.ndarray | None = None

    def frame(self) -> np.ndarray:
        self.next_id += 1
        return np.array([self.next_id, self.episode], dtype=np.float32)

    def reset(self) -> np.ndarray:
        self.episode += 1
        frames = np.stack([self.frame() for _ in range(self.k)])  # distinct reset frames
        self.stack = frames
        return frames if self.k > 1 else frames[0]

    def step(self) -> np.ndarray:
        assert self.stack is not None
        self.stack = np.concatenate([self.stack[1:], self.frame()[None]])
        return self.stack if self.k > 1 else self.stack[0]


def play(episodes: list[tuple[int, str]], history: int, rng: np.random.Generator) -> list[tuple]:
    """Transitions (obs, action, reward, next_obs, terminated, truncated) of whole episodes."""
    env = EnvStream(history)
    out = []
    for length, end in episodes:
        obs = env.reset()
        for t in range(length):
            nxt = env.step()
            last = t == length - 1
            out.append(
                (
                    obs,
                    np.array([rng.normal()], np.float32),
                    float(rng.integers(-5, 6)),
                    nxt,
                    last and end == "term",
                    last and end == "trunc",
                )
            )
            obs = nxt
    return out


def check_against_oracle(buf: ReplayBuffer, oracle: Oracle) -> None:
    total, cap, h = len(oracle.reward), buf.capacity, buf.horizon
    assert len(buf) == min(total, cap)
    assert buf.num_added == total
    live = list(range(max(0, total - cap), total))
    valid = np.zeros(cap, dtype=bool)
    for t in live:
        valid[t % cap] = oracle.valid(t, h)
    assert np.array_equal(buf.storage.valid_mask(), valid)
    assert np.array_equal(buf.sampler.active_mask(), valid)
    # The ring keeps exactly the last `capacity` transitions, frames included.
    slots = torch.tensor([t % cap for t in live])
    one = buf.storage.window(slots, 1)
    for i, t in enumerate(live):
        assert np.array_equal(one.obs[i, 0].numpy(), oracle.obs[t])
        assert np.array_equal(one.obs[i, 1].numpy(), oracle.next_obs[t])
        assert one.reward_raw[i, 0].item() == oracle.reward[t]
        assert one.action[i, 0, 0].item() == pytest.approx(oracle.action[t])
    # Every valid start's window equals the brute-force window: never crosses an episode,
    # a truncation or the write head.
    starts = [t for t in live if valid[t % cap]]
    if starts:
        w = buf.storage.window(torch.tensor([t % cap for t in starts]), h)
        for i, t in enumerate(starts):
            o, r, nd, m = oracle.window(t, h)
            assert np.array_equal(w.obs[i].numpy(), o)
            assert np.allclose(w.reward[i].numpy(), r)
            assert np.array_equal(w.not_done[i].numpy(), nd)
            assert np.array_equal(w.mask[i].numpy(), m)
            episode_ids = w.obs[i, ..., 1].numpy()
            assert (episode_ids == episode_ids.reshape(-1)[0]).all()
        # The torch gather (used on accelerators) agrees with the numpy one used on the CPU.
        slots_t = torch.tensor([t % cap for t in starts])
        wt = buf.storage._window_torch(slots_t, h, tuple(range(h + 1)))  # pyright: ignore[reportPrivateUsage]
        for x, y in zip(w, wt, strict=True):
            assert torch.equal(x, y)
        drawn = buf.sample_subtrajectory(32, torch.Generator().manual_seed(0)).indices
        assert valid[drawn.numpy()].all()
    else:
        assert buf.num_sampleable == 0


episode_lists = st.lists(
    st.tuples(st.integers(1, 7), st.sampled_from(["term", "trunc"])), min_size=1, max_size=9
)


@settings(deadline=None, max_examples=50)
@given(
    episodes=episode_lists,
    open_tail=st.integers(0, 6),
    capacity=st.integers(1, 13),
    horizon=st.integers(1, 4),
    history=st.integers(1, 3),
    tight_frames=st.booleans(),
    chunks=st.lists(st.integers(1, 9), min_size=1, max_size=5),
    kind=st.sampled_from(["uniform", "lap", "faded"]),
)
def test_ring_and_windows_match_brute_force(
    episodes: list[tuple[int, str]],
    open_tail: int,
    capacity: int,
    horizon: int,
    history: int,
    tight_frames: bool,
    chunks: list[int],
    kind: str,
) -> None:
    horizon = min(horizon, capacity)
    rng = np.random.default_rng(0)
    steps = play([*episodes, (open_tail, "none")] if open_tail else episodes, history, rng)
    sampler = {
        "uniform": lambda: UniformSampler(capacity),
        "lap": lambda: LAPSampler(capacity),
        "faded": lambda: FadedLAPSampler(capacity, fade=0.9),
    }[kind]()
    buf = ReplayBuffer(
        spec=TransitionSpec.continuous((2,), 1, history=history),
        capacity=capacity,
        horizon=horizon,
        sampler=sampler,
        # The smallest frame ring forces it to grow; growth must never lose a needed frame.
        frame_capacity=history + 1 if tight_frames else None,
    )
    oracle = Oracle(history)
    i, c = 0, 0
    while i < len(steps):
        n = chunks[c % len(chunks)]
        c += 1
        block = steps[i : i + n]
        if n == 1:
            buf.add(*block[0])
        else:
            buf.extend(*(np.stack([s[f] for s in block]) for f in range(6)))
        for s in block:
            oracle.obs.append(s[0])
            oracle.action.append(float(s[1][0]))
            oracle.reward.append(s[2])
            oracle.next_obs.append(s[3])
            oracle.terminated.append(s[4])
            oracle.truncated.append(s[5])
        i += n
        check_against_oracle(buf, oracle)


@settings(deadline=None, max_examples=25)
@given(
    episodes=episode_lists,
    capacity=st.integers(2, 20),
    kind=st.sampled_from(["uniform", "lap", "faded"]),
)
def test_extend_stores_what_repeated_add_stores(
    episodes: list[tuple[int, str]], capacity: int, kind: str
) -> None:
    steps = play(episodes, 2, np.random.default_rng(1))

    def make() -> ReplayBuffer:
        sampler = {
            "uniform": lambda: UniformSampler(capacity),
            "lap": lambda: LAPSampler(capacity),
            "faded": lambda: FadedLAPSampler(capacity, fade=0.9),
        }[kind]()
        return ReplayBuffer(
            spec=TransitionSpec.continuous((2,), 1, history=2),
            capacity=capacity,
            horizon=2,
            sampler=sampler,
        )

    one, bulk = make(), make()
    for s in steps:
        one.add(*s)
    bulk.extend(*(np.stack([s[f] for s in steps]) for f in range(6)))
    assert len(one) == len(bulk)
    assert one.num_added == bulk.num_added
    assert np.array_equal(one.storage.valid_mask(), bulk.storage.valid_mask())
    slots = torch.arange(len(one))
    a, b = one.storage.window(slots, 1), bulk.storage.window(slots, 1)
    assert torch.equal(a.obs, b.obs)
    assert torch.equal(a.action, b.action)
    assert torch.equal(a.reward_raw, b.reward_raw)
    if one.num_sampleable:
        assert np.allclose(
            one.sampler.probabilities().numpy(), bulk.sampler.probabilities().numpy(), rtol=1e-10
        )


# ---------------------------------------------------------------- pixels


def test_pixel_frames_are_stored_once_and_stacks_rebuilt() -> None:
    k, cap = 3, 200
    spec = TransitionSpec.discrete((1, 6, 6), 4, obs_dtype=torch.uint8, history=k)
    buf = ReplayBuffer(spec=spec, capacity=cap, horizon=4)
    rng = np.random.default_rng(0)
    frames_seen: list[np.ndarray] = []
    stacks: list[np.ndarray] = []
    for ep in range(5):
        stack = rng.integers(0, 256, (k, 1, 6, 6), dtype=np.uint8)
        for t in range(60):
            new = rng.integers(0, 256, (1, 1, 6, 6), dtype=np.uint8)
            nxt = np.concatenate([stack[1:], new])
            buf.add(
                stack,
                int(rng.integers(4)),
                1.0,
                nxt,
                t == 59 and ep % 2 == 0,
                t == 59 and ep % 2 == 1,
            )
            stacks.append(stack)
            frames_seen.append(new[0])
            stack = nxt
    assert buf.storage.frame_capacity < 2 * cap  # frames are not duplicated into next_obs
    b = buf.sample_subtrajectory(64, torch.Generator().manual_seed(0))
    assert b.obs.dtype == torch.uint8
    assert b.obs.shape == (64, 5, k, 1, 6, 6)
    first = 300 - cap
    for i, slot in enumerate(b.indices.tolist()):
        t = int(buf.storage.step_of(np.array([slot]))[0])
        assert t >= first
        assert np.array_equal(b.obs[i, 0].numpy(), stacks[t])
        assert np.array_equal(b.obs[i, 1, -1].numpy(), frames_seen[t])
    # MR.Q's channel-stacked layout is a reshape away.
    assert b.obs.flatten(2, 3).shape == (64, 5, k * 1, 6, 6)


# ---------------------------------------------------------------- save / resume


def filled(sampler: Sampler, seed: int = 0) -> ReplayBuffer:
    buf = ReplayBuffer(
        spec=TransitionSpec.continuous((2,), 1), capacity=40, horizon=3, sampler=sampler
    )
    feed(buf, 0, 90, seed)
    return buf


def feed(buf: ReplayBuffer, start: int, stop: int, seed: int) -> None:
    rng = np.random.default_rng(seed + start)
    for t in range(start, stop):
        obs = np.array([t, 0.0], np.float32)
        buf.add(obs, rng.normal(size=1), float(t % 7), obs + STEP, t % 13 == 12, t % 17 == 16)
        if t % 5 == 0 and buf.num_sampleable:
            b = buf.sample(8, torch.Generator().manual_seed(t))
            buf.update_priority(b.indices, torch.from_numpy(rng.normal(0, 4, 8)))


SAMPLERS = {
    "uniform": lambda: UniformSampler(40),
    "lap": lambda: LAPSampler(40),
    "faded": lambda: FadedLAPSampler(40, fade=0.95),
    "faded-scan": lambda: FadedLAPSampler(40, fade=0.95, backend="scan"),
}


@pytest.mark.parametrize("kind", SAMPLERS)
def test_save_load_resumes_exactly(kind: str, tmp_path: Path) -> None:
    buf = filled(SAMPLERS[kind]())
    path = tmp_path / "buffer.rlwk"
    buf.save(path)
    back = ReplayBuffer.load(path)
    assert len(back) == len(buf)
    assert back.num_added == buf.num_added
    assert back.horizon == 3
    assert type(back.sampler) is type(buf.sampler)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for _ in range(2):
        x, y = buf.sample_subtrajectory(32, g1), back.sample_subtrajectory(32, g2)
        for a, b in zip(x, y, strict=True):
            assert torch.equal(a, b)
    # Keep going on both: same adds, same priority updates, same draws.
    feed(buf, 90, 130, 0)
    feed(back, 90, 130, 0)
    x, y = buf.sample_nstep(32, g1, n=3, gamma=0.9), back.sample_nstep(32, g2, n=3, gamma=0.9)
    for a, b in zip(x, y, strict=True):
        assert torch.equal(a, b)
    # Also through state_dict into a fresh, identically built buffer.
    fresh = ReplayBuffer(spec=buf.spec, capacity=40, horizon=3, sampler=SAMPLERS[kind]())
    fresh.load_state_dict(buf.state_dict())
    assert torch.equal(
        buf.sample(16, torch.Generator().manual_seed(1)).indices,
        fresh.sample(16, torch.Generator().manual_seed(1)).indices,
    )


def test_truncated_file_raises_corrupt_file_error(tmp_path: Path) -> None:
    buf = filled(LAPSampler(40))
    path = tmp_path / "buffer.rlwk"
    buf.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(io.CorruptFileError, match="truncated"):
        ReplayBuffer.load(path)
    io.save({"something": "else"}, path)
    with pytest.raises(io.CorruptFileError, match="not a saved ReplayBuffer"):
        ReplayBuffer.load(path)


def test_load_state_dict_into_a_different_buffer_is_refused() -> None:
    state = filled(LAPSampler(40)).state_dict()
    other = ReplayBuffer(
        spec=TransitionSpec.continuous((3,), 1), capacity=40, horizon=3, sampler=LAPSampler(40)
    )
    with pytest.raises(ValueError, match="saved spec"):
        other.load_state_dict(state)
    uniform = ReplayBuffer(spec=TransitionSpec.continuous((2,), 1), capacity=40, horizon=3)
    with pytest.raises(ValueError, match="state has a 'lap' sampler"):
        uniform.load_state_dict(state)
    with pytest.raises(ValueError, match="sampler capacity 10 != buffer capacity 40"):
        ReplayBuffer(
            spec=TransitionSpec.continuous((2,), 1), capacity=40, sampler=UniformSampler(10)
        )


def test_lap_priorities_flow_through_returned_indices() -> None:
    buf = mrq_example(horizon=3, sampler=LAPSampler(32))
    g = torch.Generator().manual_seed(0)
    b = buf.sample_nstep(4, g, n=3, gamma=0.99)
    buf.update_priority(b.indices, torch.full((4,), 50.0))
    p = buf.sampler.probabilities()
    assert p[b.indices].min() > p.max() * 0.99  # the updated starts are now the likeliest
    # new items get the running max priority
    buf.add(np.array([8.0, 1.0]), np.zeros(1), 0.0, np.array([9.0, 1.0]), False, False)
    assert isinstance(buf.sampler, LAPSampler)
    assert buf.sampler.priorities()[14].item() == pytest.approx(50.0**0.4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_cuda_storage_matches_cpu() -> None:
    cpu = mrq_example(horizon=5, sampler=FadedLAPSampler(32, backend="tree"))
    gpu = ReplayBuffer(
        spec=cpu.spec,
        capacity=32,
        horizon=5,
        device="cuda",
        sampler=FadedLAPSampler(32, backend="scan", device="cuda"),
    )
    for t in range(6):
        obs = np.array([t, 0.0])
        gpu.add(obs, np.array([t / 10]), float(t + 1), obs + STEP, t == 5, False)
    for t in range(8):
        obs = np.array([t, 1.0])
        gpu.add(obs, np.array([-t / 10]), 100.0 if t == 0 else 0.0, obs + STEP, False, False)
    assert np.array_equal(cpu.storage.valid_mask(), gpu.storage.valid_mask())
    slots = torch.arange(10)
    a, b = cpu.storage.window(slots, 5), gpu.storage.window(slots.cuda(), 5)
    for x, y in zip(a, b, strict=True):
        assert y.device.type == "cuda"
        assert torch.equal(x, y.cpu())
    batch = gpu.sample_nstep(64, torch.Generator(device="cuda").manual_seed(0), n=3, gamma=0.99)
    assert batch.returns.device.type == "cuda"
    gpu.update_priority(batch.indices, batch.returns)
    cpu.update_priority(batch.indices.cpu(), batch.returns.cpu())
    assert torch.allclose(gpu.sampler.probabilities(), cpu.sampler.probabilities(), rtol=1e-9)
