"""Small configs, specs and filled buffers shared by the tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from mrq_drq.agent import MRQAgent
from mrq_drq.config import MRQConfig, drq, tiny
from mrq_drq.envs import EnvSpec
from mrq_drq.replay import make_buffer
from mrq_drq.schedule import training_step
from rl_buffers import ReplayBuffer


def micro(*, algorithm: str = "mrq", batch_size: int = 8) -> MRQConfig:
    """An even smaller config than ``tiny``: width 16, 9 bins, sync + 5 encoder updates every 5."""
    base = tiny()
    cfg = dataclasses.replace(
        base,
        encoder=dataclasses.replace(
            base.encoder, zs_dim=16, za_dim=8, zsa_dim=16, hidden_dim=16, num_bins=9
        ),
        value=dataclasses.replace(base.value, hidden_dim=16),
        policy=dataclasses.replace(base.policy, hidden_dim=16),
        replay=dataclasses.replace(base.replay, capacity=500, batch_size=batch_size),
        schedule=dataclasses.replace(
            base.schedule, target_update_interval=5, encoder_updates_per_sync=5
        ),
    )
    return drq(cfg) if algorithm == "drq" else cfg


VECTOR_SPEC = EnvSpec(
    obs_shape=(5,), pixels=False, discrete=False, action_dim=2,
    action_low=(-2.0, -1.0), action_high=(2.0, 3.0),
)  # fmt: skip
DISCRETE_SPEC = EnvSpec(obs_shape=(5,), pixels=False, discrete=True, action_dim=3)
PIXEL_SPEC = EnvSpec(
    obs_shape=(6, 32, 32), pixels=True, discrete=True, action_dim=4, history=2
)  # (2 frames, 3 channels, 32, 32)


def random_obs(spec: EnvSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.pixels:
        return rng.integers(0, 256, size=spec.env_obs_shape, dtype=np.uint8)
    return rng.standard_normal(spec.env_obs_shape).astype(np.float32)


def random_action(spec: EnvSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.discrete:
        return np.asarray(rng.integers(spec.action_dim), dtype=np.int64)
    assert spec.action_low is not None
    assert spec.action_high is not None
    return rng.uniform(spec.action_low, spec.action_high).astype(np.float32)


def filled_buffer(cfg: MRQConfig, spec: EnvSpec, n: int = 200, seed: int = 0) -> ReplayBuffer:
    """A buffer of ``n`` random transitions in episodes that terminate or truncate now and then."""
    rng = np.random.default_rng(seed)
    buf = make_buffer(cfg, spec)
    obs = random_obs(spec, rng)
    length = 0
    for _ in range(n):
        nxt = random_obs(spec, rng)
        if spec.pixels and spec.history > 1:
            # Consecutive stacked observations share frames: shift by one.
            nxt[:-1] = obs[1:]
        length += 1
        terminated = bool(rng.random() < 0.05)
        truncated = not terminated and length >= 30
        buf.add(
            obs, random_action(spec, rng), float(rng.standard_normal()), nxt, terminated, truncated
        )
        if terminated or truncated:
            obs, length = random_obs(spec, rng), 0
        else:
            obs = nxt
    return buf


def encoder_batch(cfg: MRQConfig, buf: ReplayBuffer, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return buf.sample_subtrajectory(cfg.replay.batch_size, gen, horizon=cfg.encoder.horizon)


def rl_batch(cfg: MRQConfig, buf: ReplayBuffer, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return buf.sample_nstep(
        cfg.replay.batch_size, gen, n=cfg.value.n_step, gamma=cfg.value.discount
    )


def train_steps(agent: MRQAgent, buf: ReplayBuffer, steps: int, seed: int = 0) -> None:
    """Run ``steps`` training steps of the full schedule on a fixed buffer."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        training_step(agent, buf, gen)


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
