"""The MRS.Q agent: MR.Q's agent (networks, losses, updates) plus MPPI action selection.

:class:`MRSQAgent` holds an :class:`mrq_drq.MRQAgent` built with the hooks this method needs
(``AgentExtensions``: number of critics and their batched layout, the TD target's minimum over a
random subset for the ablation, SimNorm latents); its updates are MR.Q's, unchanged. Acting is
:func:`mbsearch.planner.mppi` in MR.Q's latent space (:class:`MRQLatentModel`), or MR.Q's
policy for the ``mrq`` arm. The planner's state (warm starts, generator) is the agent's and is
checkpointed, so a resumed run plans exactly as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from mrq_drq.agent import AgentExtensions, MRQAgent
from mrq_drq.envs import EnvSpec
from numpy.typing import NDArray
from rl_nets import TwoHot
from torch import Tensor

from mbsearch.config import Continuation, MRSQConfig, RewardDecode
from mbsearch.planner import Plan, latent_returns, mppi, policy_prior, shift_plan

__all__ = ["MRQLatentModel", "MRSQAgent", "decode_reward", "extensions"]


def extensions(cfg: MRSQConfig) -> AgentExtensions:
    """The MR.Q hooks a config asks for."""
    return AgentExtensions(
        num_critics=cfg.critics.num_critics,
        batched_critics=cfg.critics.batched,
        target_critics=cfg.critics.target_critics,
        latent_simnorm=cfg.latent_simnorm,
    )


def decode_reward(two_hot: TwoHot, logits: Tensor, mode: RewardDecode) -> Tensor:
    """Rewards from two-hot logits ``(..., K)``: the expectation over all bins, or (``local``)
    over the most likely bin and its neighbours, renormalised."""
    probs = logits.softmax(dim=-1)
    if mode == "local":
        bins = torch.arange(probs.shape[-1], device=probs.device)
        near = (bins - probs.argmax(dim=-1, keepdim=True)).abs() <= 1  # (..., K)
        probs = probs * near
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return two_hot.decode_probs(probs)


class MRQLatentModel:
    """MR.Q's encoder, MDP head, policy and critics as the planner's :class:`LatentModel`.

    Rewards are decoded from the two-hot logits (:func:`decode_reward`); critics are in MR.Q's
    scaled units, so they are multiplied by the reward scale in force to be added to them.
    Continuation comes from the terminal head once the agent has seen a termination (the head is
    untrained before: MR.Q switches its loss on then), else 1: ``done <= 0.5`` (``threshold``,
    TD-MPC2's rule) or ``clamp(1 - done, 0, 1)`` (``soft``).
    """

    def __init__(
        self,
        agent: MRQAgent,
        reward_decode: RewardDecode = "local",
        continuation: Continuation = "threshold",
    ) -> None:
        self.agent = agent
        self.reward_decode: RewardDecode = reward_decode
        self.continuation: Continuation = continuation

    def step(self, z: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """See :class:`mbsearch.planner.LatentModel`."""
        a = self.agent
        pred = a.encoder.model(a.encoder.zsa(z, action))
        reward = decode_reward(a.two_hot, pred.reward_logits, self.reward_decode)
        if self.continuation == "threshold":
            cont = (pred.done <= 0.5).float()
        else:
            cont = (1.0 - pred.done).clamp(0.0, 1.0)
        cont = torch.where(a.env_terminates, cont, torch.ones_like(cont))
        return pred.next_zs, reward, cont

    def policy(self, z: Tensor) -> Tensor:
        """See :class:`mbsearch.planner.LatentModel`."""
        return self.agent.policy(z)[0]

    def critics(self, z: Tensor, action: Tensor) -> Tensor:
        """See :class:`mbsearch.planner.LatentModel`."""
        a = self.agent
        return a.value(a.encoder.zsa(z, action)) * a.reward_scale


class MRSQAgent:
    """MR.Q, MR.Q+MPC or MRS.Q, as ``cfg`` says.

    Args:
        cfg: Full config (:func:`mbsearch.config.arm` builds the three arms).
        spec: The environment's spaces (:func:`mrq_drq.envs.check_spaces`); continuous actions
            when planning.
        device: Where networks live and plans run.
        seed: Seeds MR.Q's agent (``seed``) and the planner's generator (``seed + 3``).
        compile: ``torch.compile`` MR.Q's losses.

    Attributes:
        cfg: The config.
        mrq: The MR.Q agent (updates, targets, optimisers) built with :func:`extensions`.
        model: Its networks as the planner's latent model.
    """

    def __init__(
        self,
        cfg: MRSQConfig,
        spec: EnvSpec,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
        compile: bool = False,
    ) -> None:
        if cfg.planner.enabled and spec.discrete:
            raise ValueError(
                "MPPI plans over continuous actions; this environment's actions are discrete "
                "(use --arm mrq, or an environment with a Box action space)"
            )
        self.cfg = cfg
        self.spec = spec
        self.mrq = MRQAgent(
            cfg.mrq, spec, device=device, seed=seed, compile=compile, extensions=extensions(cfg)
        )
        self.device = self.mrq.device
        self.model = MRQLatentModel(self.mrq, cfg.planner.reward_decode, cfg.planner.continuation)
        self._plan_gen = torch.Generator(device=self.device).manual_seed(seed + 3)
        shape = (cfg.planner.horizon, spec.action_dim)
        # Separate warm starts for training and evaluation episodes, which interleave.
        self._warm = {
            True: torch.zeros(shape, device=self.device),
            False: torch.zeros(shape, device=self.device),
        }

    # ------------------------------------------------------------------ planning

    @torch.no_grad()
    def plan(self, obs: NDArray[Any] | Tensor, *, explore: bool) -> Plan:
        """One MPPI plan from one observation (in the network's [-1, 1] action units).

        Reads and advances the warm start of ``explore``'s kind; never touches parameters or
        gradients.
        """
        cfg, p = self.cfg, self.cfg.planner
        x = self.mrq.obs_batch(torch.as_tensor(obs).unsqueeze(0), 1, "obs")  # (1, *obs)
        z0 = self.mrq.encoder.zs(x)  # (1, D)
        prior = None
        if p.num_pi_trajs > 0:
            prior = policy_prior(
                self.model,
                z0,
                horizon=p.horizon,
                count=p.num_pi_trajs,
                noise=p.prior_noise,
                generator=self._plan_gen,
            )
        discount = cfg.mrq.value.discount

        def score(actions: Tensor) -> Tensor:
            return latent_returns(
                self.model, z0, actions, discount=discount, reduction=p.value_reduction
            )

        result = mppi(
            score,
            action_dim=self.spec.action_dim,
            cfg=p,
            generator=self._plan_gen,
            prior=prior,
            init_mean=self._warm[explore] if p.warm_start else None,
        )
        self._warm[explore] = shift_plan(result.mean)
        return result

    @torch.no_grad()
    def act(self, obs: NDArray[Any] | Tensor, *, explore: bool) -> Tensor:
        """The action for one observation, in the environment's units.

        Planning arms: the MPPI action, plus (exploring) TD-MPC2's ``std_0 * N(0, 1)`` when
        ``planner.plan_noise`` and MR.Q's ``N(0, exploration_noise)`` when that is > 0, clamped
        to [-1, 1] and mapped onto the action bounds. The ``mrq`` arm: MR.Q's ``act``.

        Args:
            obs: One observation (``env_obs_shape``).
            explore: Training (noise, the training warm start) or evaluation.

        Returns:
            ``(A,)`` float32 on the agent's device.
        """
        if not self.cfg.planner.enabled:
            return self.mrq.act(obs, explore=explore)
        x = torch.as_tensor(obs)
        if x.dim() != len(self.spec.env_obs_shape):
            raise ValueError(
                f"obs: the planner takes one observation of shape {self.spec.env_obs_shape}, "
                f"got {tuple(x.shape)}"
            )
        plan = self.plan(x, explore=explore)
        action = plan.action
        if explore:
            gen = self._plan_gen
            if self.cfg.planner.plan_noise:
                eps = torch.randn(action.shape, generator=gen, device=self.device)
                action = action + plan.std[0] * eps
            if self.mrq.exploration_noise > 0:
                eps = torch.randn(action.shape, generator=gen, device=self.device)
                action = action + self.mrq.exploration_noise * eps
        action = action.clamp(-1.0, 1.0)
        # MR.Q's affine map of [-1, 1] onto the action bounds (None: they are [-1, 1]).
        mid, half = self.mrq.action_mid, self.mrq.action_half
        if mid is not None and half is not None:
            action = mid + action * half
        return action.float()

    # ------------------------------------------------------------------ the critic ensemble

    @torch.no_grad()
    def critic_values(self, obs: Tensor, action: Tensor) -> Tensor:
        """Every critic's value of stored ``(s, a)`` pairs, in raw reward units.

        Args:
            obs: ``(B, *env_obs_shape)``.
            action: ``(B, A)`` in the environment's units (or ``(B,)`` indices if discrete).

        Returns:
            ``(N, B)``: ``Q_i(s, a) * reward_scale``.
        """
        a = self.mrq
        x = a.obs_batch(obs, 1, "obs")
        act = a.action_input(action, 1, "action")
        return a.value(a.encoder.zsa(a.encoder.zs(x), act)) * a.reward_scale

    # ------------------------------------------------------------------ checkpointing

    def state_dict(self) -> dict[str, Any]:
        """MR.Q's state, the planner's generator and warm starts, and the config."""
        return {
            "mrq": self.mrq.state_dict(),
            "planner_generator": self._plan_gen.get_state(),
            "warm_start_train": self._warm[True].clone(),
            "warm_start_eval": self._warm[False].clone(),
            "config": self.cfg.to_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (strict: the same keys and config)."""
        expected = {"mrq", "planner_generator", "warm_start_train", "warm_start_eval", "config"}
        if set(state) != expected:
            raise KeyError(
                f"MRSQAgent.load_state_dict: expected keys {sorted(expected)}, got {sorted(state)}"
            )
        if state["config"] != self.cfg.to_dict():
            raise ValueError(
                "MRSQAgent.load_state_dict: the checkpoint was made with a different config"
            )
        self.mrq.load_state_dict(state["mrq"])
        self._plan_gen.set_state(state["planner_generator"])
        self._warm[True] = state["warm_start_train"].to(self.device).clone()
        self._warm[False] = state["warm_start_eval"].to(self.device).clone()
