"""The configs of ``rl-train tiny-q`` (the runtime's test agent, :mod:`rl_runtime.testing`),
importable without torch or gymnasium so that its command line starts fast.

:mod:`rl_runtime.testing` re-exports every name here; the agent, the chain environments (which
it registers under :data:`CHAIN_ID` and :data:`LONG_CHAIN_ID`) and the trainer live there.
"""

from __future__ import annotations

import dataclasses

from rl_runtime.config import RunConfig, RunOptions
from rl_runtime.schedules import OffPolicyConfig

__all__ = ["CHAIN_ID", "LONG_CHAIN_ID", "TINY_Q_PRESETS", "TinyQAgentConfig", "TinyQConfig"]

CHAIN_ID = "rltrain/Chain-v0"
LONG_CHAIN_ID = "rltrain/LongChain-v0"


@dataclasses.dataclass(frozen=True)
class TinyQAgentConfig:
    """Linear Q-learning."""

    lr: float = 0.05
    """Adam learning rate."""
    discount: float = 0.9
    """Discount factor."""
    epsilon: float = 0.2
    """Probability of a uniformly random action when exploring."""
    target_every: int = 50
    """Updates between copies of the online weights into the target network."""


@dataclasses.dataclass(frozen=True)
class TinyQConfig:
    """rl-train tiny-q: the runtime's test agent."""

    env: str = CHAIN_ID
    """Gymnasium id of an environment with a flat Box observation and Discrete actions."""
    agent: TinyQAgentConfig = TinyQAgentConfig()
    loop: OffPolicyConfig = OffPolicyConfig(  # noqa: RUF009 - frozen, hence immutable
        batch_size=32, buffer_capacity=10_000, random_steps=100, learning_starts=100
    )
    run: RunOptions = RunConfig(  # noqa: RUF009 - frozen, hence immutable
        total_steps=3_000, eval_every=500, eval_episodes=10, log_every=250, checkpoint_every=1_000
    )


TINY_Q_PRESETS: dict[str, TinyQConfig] = {
    "chain": TinyQConfig(),
    # Rewards are rare: a long random phase finds the goal a few times, and replay then
    # carries its value back along the chain.
    "long-chain": TinyQConfig(
        env=LONG_CHAIN_ID,
        agent=TinyQAgentConfig(lr=0.01, discount=0.95, epsilon=0.3, target_every=100),
        loop=OffPolicyConfig(
            batch_size=32,
            buffer_capacity=10_000,
            random_steps=2_000,
            learning_starts=2_000,
            update_every=2,
        ),
        run=RunConfig(total_steps=10_000, eval_every=1_000, log_every=500),
    ),
}
"""The tiny-q presets (``rl-train tiny-q --preset NAME``)."""
