"""Learning on a short NetHack budget: flat PPO on one dungeon beats the untrained policy on the
in-game score."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hbs.agent import HBSAgent
from hbs.config import EnvConfig, HBSConfig, NetworkConfig, PPOConfig
from hbs.envs import NLEVecEnv, ObsLayout
from hbs.loop import evaluate_hbs, train_hbs
from rl_runtime.config import RunConfig
from rl_runtime.run import open_run


@dataclasses.dataclass(frozen=True)
class _Cfg:
    env: str = "NetHackScore-v0"
    agent: HBSConfig = dataclasses.field(default_factory=HBSConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)


@pytest.mark.slow
def test_flat_ppo_beats_the_untrained_policy_on_the_score(tmp_path: Path) -> None:
    # One dungeon (seed 97: gold six squares from the start), 100-step episodes, ~50k steps.
    agent_cfg = HBSConfig(
        algo="flat",
        env=EnvConfig(max_episode_steps=100, fixed_seed=97),
        network=NetworkConfig(
            glyph_embed=8,
            crop=9,
            conv_channels=0,
            message_buckets=256,
            message_embed=8,
            blstats_hidden=32,
            hidden=(128,),
        ),
        ppo=PPOConfig(num_envs=16, num_steps=64, num_minibatches=2, update_epochs=4, lr=1e-3),
    )
    run_cfg = RunConfig(total_steps=49_152, eval_episodes=0, log_every=8192,
                        checkpoint_every=10**6, checkpoint_minutes=0.0, root=tmp_path,
                        quiet=True, tensorboard=False, torch_threads=1)  # fmt: skip
    layout = ObsLayout(agent_cfg.env.observation_keys)
    eval_envs = NLEVecEnv(agent_cfg.env, 16)
    untrained = HBSAgent(agent_cfg, layout, 23, seed=0)
    before, explore_before = evaluate_hbs(
        untrained, eval_envs, agent_cfg, layout, episodes=32, seed=7
    )
    with open_run("hbs", _Cfg(agent=agent_cfg, run=run_cfg)) as run:
        envs = NLEVecEnv(agent_cfg.env, 16)
        agent = HBSAgent(agent_cfg, layout, 23, seed=0)
        train_hbs(run, envs=envs, agent=agent, cfg=agent_cfg, layout=layout)
        envs.close()
    after, explore = evaluate_hbs(agent, eval_envs, agent_cfg, layout, episodes=32, seed=7)
    eval_envs.close()
    # Measured: in-game score 21.3 against about 3 untrained (return 20.8 against 2.6).
    score_before, score_after = explore_before["eval/score"], explore["eval/score"]
    assert score_after >= 3.0 * max(score_before, 1.0), (score_before, score_after)
    assert after.mean_return >= before.mean_return + 5.0, (before.returns, after.returns)
