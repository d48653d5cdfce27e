"""The learners: PPO and DQN solvers, and :class:`FairLearner`, which runs one of them on the
original MDP (ppo, dqn), on a penalised reward (rppo), with regularised advantages (appo) or on
the Bisimulator's MDP (bisimulator), through the runtime's on-policy loop.

The Bisimulator alternates with the unchanged solver: the solver trains on a rollout of the
current modified MDP (observations through o_psi, rewards r + delta_phi), and after its last
minibatch update of that rollout the Bisimulator fits its metric and reward model and then
updates (phi, psi) on quantile-matched pairs of the rollout's applicants. The next rollout is
collected on the new MDP. :class:`FairVecEnv` is the env side: it applies the reward
modification, keeps the college jury's observation map in step with psi and records every
applicant decided on.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from rl_buffers import RolloutBatch
from rl_nets import MLP
from rl_runtime.onpolicy import PolicyStep
from rl_runtime.schedules import OnPolicyConfig
from rl_runtime.vecenv import ArrayVecEnv, ResetSeed, StepResult
from torch import Tensor, nn

from fairbisim.config import FairBisimConfig
from fairbisim.envs import CollegeArrayEnv, GroupCounts, Individuals, LendingArrayEnv, rates
from fairbisim.envs.college import admit_probability
from fairbisim.fairness import fairness_metrics, quantile_pairs
from fairbisim.losses import (
    alignment_loss,
    appo_advantages,
    metric_td_loss,
    pair_backup,
    q_regression_loss,
)
from fairbisim.networks import DynamicsNet, MetricNet, ObservationMap, RewardNet

__all__ = [
    "DQNSolver",
    "FairLearner",
    "FairVecEnv",
    "PPOSolver",
    "Recorder",
    "make_array_env",
]

ArrayFairEnv = LendingArrayEnv | CollegeArrayEnv


def make_array_env(
    cfg: FairBisimConfig, num_envs: int, device: torch.device | str = "cpu"
) -> ArrayFairEnv:
    """The batched environment of ``cfg.env_name``."""
    if cfg.env_name == "lending":
        return LendingArrayEnv(cfg.lending, num_envs, device=device)
    return CollegeArrayEnv(cfg.college, num_envs, device=device)


def _gap(counts: GroupCounts) -> Tensor:
    """``(N,)`` |TPR_0 - TPR_1| of per-env counts."""
    tpr = rates(counts)[1]
    return (tpr[..., 0] - tpr[..., 1]).abs()


# ---------------------------------------------------------------------------------------------
# Solvers


class PPOSolver(nn.Module):
    """PPO with separate actor and critic MLPs over discrete actions."""

    def __init__(
        self, cfg: FairBisimConfig, obs_dim: int, num_actions: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.ppo
        self.actor = MLP(obs_dim, num_actions, c.hidden_sizes, activation="relu")
        self.critic = MLP(obs_dim, 1, c.hidden_sizes, activation="relu")
        self.optimizer = torch.optim.Adam(self.parameters(), lr=c.lr, eps=1e-5)
        self.generator = generator

    def action_probs(self, obs: Tensor) -> Tensor:
        """``(B, A)`` pi(.|obs), differentiable in obs."""
        return torch.softmax(self.actor(obs), -1)

    def act(self, obs: Tensor, *, explore: bool) -> Tensor:
        logits = self.actor(obs)
        if not explore:
            return logits.argmax(-1)
        probs = torch.softmax(logits, -1).reshape(-1, logits.shape[-1])
        return torch.multinomial(probs, 1, generator=self.generator).reshape(logits.shape[:-1])

    def policy_step(self, obs: Tensor) -> PolicyStep:
        logits = self.actor(obs)
        probs = torch.softmax(logits, -1)
        actions = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
        log_probs = torch.log_softmax(logits, -1).gather(-1, actions[:, None]).squeeze(-1)
        return PolicyStep(actions, log_probs, self.value(obs))

    def value(self, obs: Tensor) -> Tensor:
        return self.critic(obs).squeeze(-1)

    def update(self, batch: RolloutBatch) -> dict[str, Tensor]:
        from rl_runtime.losses import ppo_loss

        c = self.cfg.ppo
        dist = torch.distributions.Categorical(logits=self.actor(batch.obs))
        loss, metrics = ppo_loss(
            dist.log_prob(batch.actions),
            batch.log_probs,
            batch.advantages,
            self.value(batch.obs),
            batch.values,
            batch.returns,
            dist.entropy(),
            clip_coef=c.clip_coef,
            vf_coef=c.vf_coef,
            ent_coef=c.ent_coef,
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters(), c.max_grad_norm)
        self.optimizer.step()
        return metrics


class DQNSolver(nn.Module):
    """DQN on the on-policy loop: epsilon-greedy acting, Q(s, a) regressed on the rollout's
    lambda-returns bootstrapped from max_a Q (PQN's Q(lambda); no replay, no target network)."""

    def __init__(
        self, cfg: FairBisimConfig, obs_dim: int, num_actions: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_actions = num_actions
        self.q = MLP(obs_dim, num_actions, cfg.dqn.hidden_sizes, activation="relu")
        self.optimizer = torch.optim.Adam(self.parameters(), lr=cfg.dqn.lr, eps=1e-5)
        self.generator = generator
        self.env_steps = 0

    @property
    def epsilon(self) -> float:
        """The exploration rate at the current step (linear decay)."""
        c = self.cfg.dqn
        frac = min(1.0, self.env_steps / c.epsilon_decay_steps)
        return c.epsilon_start + frac * (c.epsilon_end - c.epsilon_start)

    def action_probs(self, obs: Tensor) -> Tensor:
        """``(B, A)`` the epsilon-greedy policy (no gradient through the argmax)."""
        q = self.q(obs)
        greedy = F.one_hot(q.argmax(-1), self.num_actions).to(q.dtype)
        eps = self.epsilon
        return eps / self.num_actions + (1.0 - eps) * greedy

    def act(self, obs: Tensor, *, explore: bool) -> Tensor:
        q = self.q(obs)
        greedy = q.argmax(-1)
        if not explore:
            return greedy
        flat = greedy.reshape(-1)
        u = torch.rand(flat.shape, generator=self.generator, device=flat.device)
        rand = torch.randint(
            self.num_actions, flat.shape, generator=self.generator, device=flat.device
        )
        return torch.where(u < self.epsilon, rand, flat).reshape(greedy.shape)

    def policy_step(self, obs: Tensor) -> PolicyStep:
        q = self.q(obs)  # (N, A)
        actions = self.act(obs, explore=True)
        probs = self.action_probs(obs).gather(-1, actions[:, None]).squeeze(-1)
        self.env_steps += obs.shape[0]
        return PolicyStep(actions, probs.log(), q.max(-1).values)

    def value(self, obs: Tensor) -> Tensor:
        return self.q(obs).max(-1).values

    def update(self, batch: RolloutBatch) -> dict[str, Tensor]:
        q_taken = self.q(batch.obs).gather(-1, batch.actions[:, None]).squeeze(-1)
        loss, metrics = q_regression_loss(q_taken, batch.returns)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters(), self.cfg.dqn.max_grad_norm)
        self.optimizer.step()
        metrics["epsilon"] = torch.tensor(self.epsilon)
        return metrics


# ---------------------------------------------------------------------------------------------
# Rollout records


class Recorder:
    """The applicants of the current rollout, as the env saw them (raw observations), for the
    Bisimulator, A-PPO's gap model and the training fairness metrics. Emptied after each
    rollout's updates, so a checkpoint (taken between rollouts) never needs it."""

    def __init__(self) -> None:
        self.obs: list[Tensor] = []
        self.actions: list[Tensor] = []
        self.individuals: list[Individuals] = []
        self.gap_change: list[Tensor] = []
        self.utility: Tensor | None = None
        self.credit: Tensor | None = None

    def add(self, obs: Tensor, actions: Tensor, ind: Individuals, gap_change: Tensor) -> None:
        """One vector step: ``(N, obs_dim)`` observations acted on, ``(N,)`` actions, the
        applicants and the ``(N,)`` change of the TPR gap the step caused."""
        self.obs.append(obs)
        self.actions.append(actions)
        self.individuals.append(ind)
        self.gap_change.append(gap_change)

    def __len__(self) -> int:
        return len(self.obs)

    def clear(self) -> None:
        self.__init__()

    def steps(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(T*N, obs_dim)`` observations, ``(T*N,)`` actions, ``(T*N,)`` gap changes."""
        return torch.cat(self.obs), torch.cat(self.actions), torch.cat(self.gap_change)

    def flat_individuals(self) -> tuple[Individuals, Tensor]:
        """Every applicant, ``(M, ...)`` with M = T*N*I, and ``(M, obs_dim)`` the observation of
        the step each was decided at."""
        ind = Individuals(*(torch.cat(parts) for parts in zip(*self.individuals, strict=True)))
        n, i = ind.group.shape
        obs = torch.cat(self.obs)  # (T*N, obs_dim)
        flat = Individuals(*(t.reshape(n * i, *t.shape[2:]) for t in ind))
        return flat, obs.repeat_interleave(i, 0)

    def counts(self) -> GroupCounts:
        """``(2,)`` per-group counts over the rollout."""
        total = GroupCounts(*(torch.zeros(2, dtype=torch.float64) for _ in range(4)))
        for ind in self.individuals:
            step = GroupCounts.of(ind)
            total = total + GroupCounts(*(c.sum(0).cpu() for c in step))
        return total


# ---------------------------------------------------------------------------------------------
# The env side


RewardMode = Literal["true", "penalty", "bisimulator"]


class FairVecEnv:
    """A batched fairness env for the on-policy loop (:class:`rl_runtime.vecenv.BatchedEnv`):
    :class:`ArrayVecEnv` around the array env, plus the learner's reward (true, R-PPO's penalty
    or the Bisimulator's r + delta_phi), the college jury's observation map o_psi, and the
    recording of every applicant.

    Args:
        env: The array env.
        learner: The learner whose reward correction and observation map apply (None: the
            original MDP).
        reward: Which reward the loop sees.
        recorder: Where to record the applicants (None: not recorded).
    """

    def __init__(
        self,
        env: ArrayFairEnv,
        learner: FairLearner | None = None,
        *,
        reward: RewardMode = "true",
        recorder: Recorder | None = None,
    ) -> None:
        self.base = env
        self.vec = ArrayVecEnv(env)
        self.learner = learner
        self.reward_mode = reward
        self.recorder = recorder
        self._obs: Tensor | None = None

    @property
    def num_envs(self) -> int:
        return self.vec.num_envs

    @property
    def single_observation_space(self) -> Any:
        return self.vec.single_observation_space

    @property
    def single_action_space(self) -> Any:
        return self.vec.single_action_space

    @property
    def device(self) -> torch.device:
        return self.vec.device

    def reset(self, seeds: Sequence[int]) -> Tensor:
        self._obs = self.vec.reset(seeds)
        return self._obs

    def _sync_map(self) -> None:
        if self.learner is not None and isinstance(self.base, CollegeArrayEnv):
            scale, shift = self.learner.score_map()
            self.base.set_score_map(scale, shift)

    def step(self, actions: Tensor, reset_seed: ResetSeed) -> StepResult:
        if self._obs is None:
            raise RuntimeError("step() before reset()")
        self._sync_map()
        before = self.base.counts
        obs_before = self._obs
        result = self.vec.step(actions, reset_seed)
        ind = self.base.last_individuals
        assert ind is not None
        gap_before = _gap(before)
        gap_after = _gap(before + GroupCounts.of(ind))  # the episode's gap after this step
        reward = result.reward
        if self.reward_mode == "penalty" and self.learner is not None:
            c = self.learner.cfg.rppo
            penalty = torch.where(gap_after >= c.omega, gap_after, torch.zeros_like(gap_after))
            reward = c.zeta0 * reward - c.zeta1 * penalty.float()
        elif self.reward_mode == "bisimulator" and self.learner is not None:
            with torch.no_grad():
                delta = self.learner.reward_correction(ind)  # (N, I)
            reward = reward + self.base.reward_scale * delta.sum(1)
        if self.recorder is not None:
            self.recorder.add(obs_before, actions, ind, (gap_after - gap_before).float())
            self.recorder.utility = self.base.utility().detach().cpu()
            if isinstance(self.base, LendingArrayEnv):
                self.recorder.credit = self.base.probs.detach().cpu()
        self._obs = result.obs
        return result._replace(reward=reward.float())

    def env_state(self) -> Any:
        return self.vec.env_state()

    def load_env_state(self, state: Any) -> Tensor:
        self._obs = self.vec.load_env_state(state)
        return self._obs

    def replay(self, seeds: Sequence[int], actions: Sequence[Sequence[Any]]) -> Tensor:
        return self.vec.replay(seeds, actions)

    def close(self) -> None:
        self.vec.close()


# ---------------------------------------------------------------------------------------------
# The learner


class FairLearner:
    """One of the five algorithms as an :class:`rl_runtime.onpolicy.OnPolicyAgent`.

    Args:
        cfg: The method's config (``cfg.algo`` picks the algorithm).
        loop: The loop's schedule (its epochs x minibatches mark the end of a rollout's updates).
        env: The training array env (spaces, feature size, env kind).
        recorder: The rollout records the :class:`FairVecEnv` fills.
        device: Where the networks live.
        seed: Seed of the initialisation and of every random draw of the learner.
    """

    def __init__(
        self,
        cfg: FairBisimConfig,
        loop: OnPolicyConfig,
        env: ArrayFairEnv,
        recorder: Recorder,
        *,
        device: torch.device,
        seed: int,
    ) -> None:
        self.cfg = cfg
        self.loop = loop
        self.recorder = recorder
        self.device = device
        self.is_college = isinstance(env, CollegeArrayEnv)
        self.college_cfg = cfg.college
        obs_dim = int(env.single_observation_space.shape[0])  # type: ignore[index]
        num_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
        self.feature_dim = env.feature_dim
        self.num_actions = num_actions
        self.generator = torch.Generator(device).manual_seed(seed + 1)
        self.pair_generator = torch.Generator().manual_seed(seed + 2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            solver_cls = PPOSolver if cfg.solver == "ppo" else DQNSolver
            self.solver = solver_cls(cfg, obs_dim, num_actions, self.generator).to(device)
            b = cfg.bisim
            self.obs_map = ObservationMap(self.feature_dim).to(device)
            self.delta = RewardNet(self.feature_dim, b.hidden_sizes, zero_init=True).to(device)
            self.reward_model = RewardNet(self.feature_dim, b.hidden_sizes, zero_init=False).to(
                device
            )
            self.metric = MetricNet(self.feature_dim, b.hidden_sizes).to(device)
            self.dynamics = DynamicsNet(self.feature_dim, b.hidden_sizes).to(device)
            self.gap_model = MLP(obs_dim, num_actions, (64, 64), activation="relu").to(device)
        self.metric_target = copy.deepcopy(self.metric).requires_grad_(False)
        b = cfg.bisim
        mdp_params: list[nn.Parameter] = []
        if b.learn_reward:
            mdp_params += list(self.delta.parameters())
        if b.learn_observation:
            mdp_params += list(self.obs_map.parameters())
        self.mdp_optimizer = torch.optim.Adam(mdp_params, lr=b.lr) if mdp_params else None
        self.metric_optimizer = torch.optim.Adam(
            [
                *self.metric.parameters(),
                *self.reward_model.parameters(),
                *self.dynamics.parameters(),
            ],
            lr=b.metric_lr,
        )
        self.gap_optimizer = torch.optim.Adam(self.gap_model.parameters(), lr=cfg.appo.model_lr)
        self.updates = 0
        self.rollouts = 0

    # -- the learner's observation -------------------------------------------------------------

    @property
    def uses_bisimulator(self) -> bool:
        return self.cfg.algo == "bisimulator"

    def learner_obs(self, obs: Tensor) -> Tensor:
        """What the solver sees: lending observations with the applicant's one-hot cluster
        replaced by o_psi of it (Bisimulator only; college's o_psi acts on the jury's rule)."""
        if not self.uses_bisimulator or self.is_college:
            return obs
        d = self.feature_dim
        group = obs[:, d : d + 2].argmax(-1)
        return torch.cat([self.obs_map(obs[:, :d], group), obs[:, d:]], -1)

    def score_map(self) -> tuple[Tensor, Tensor]:
        """College: the jury's per-group score scale and shift (``(2,)`` each; the identity
        unless the Bisimulator learned o_psi). Scales are kept >= 0.05 (a rule must stay
        monotone in the score)."""
        if not self.uses_bisimulator:
            return torch.ones(2), torch.zeros(2)
        return (
            self.obs_map.weight[:, 0, 0].detach().clamp_min(0.05),
            self.obs_map.bias[:, 0].detach(),
        )

    def reward_correction(self, ind: Individuals) -> Tensor:
        """``(N, I)`` delta_phi of each applicant's decision."""
        n, i = ind.group.shape
        out = self.delta(
            ind.feature.reshape(n * i, -1), ind.group.reshape(-1), ind.accepted.reshape(-1)
        )
        return out.reshape(n, i)

    # -- OnPolicyAgent ----------------------------------------------------------------------------

    def act(self, obs: Tensor, *, explore: bool) -> Tensor:
        with torch.no_grad():
            single = obs.ndim == 1
            o = self.learner_obs(obs[None] if single else obs)
            a = self.solver.act(o, explore=explore)
            return a[0] if single else a

    def policy_step(self, obs: Tensor) -> PolicyStep:
        with torch.no_grad():
            return self.solver.policy_step(self.learner_obs(obs))

    def value(self, obs: Tensor) -> Tensor:
        with torch.no_grad():
            return self.solver.value(self.learner_obs(obs))

    def update(self, batch: RolloutBatch) -> Mapping[str, Tensor]:
        with torch.no_grad():
            obs = self.learner_obs(batch.obs)
        advantages = batch.advantages
        if self.cfg.algo == "appo":
            advantages = self._appo_advantages(batch.obs, obs, batch.actions, advantages)
        metrics = self.solver.update(batch._replace(obs=obs, advantages=advantages))
        self.updates += 1
        if self.updates % (self.loop.update_epochs * self.loop.num_minibatches) == 0:
            metrics.update(self._end_of_rollout())
        return metrics

    # -- A-PPO --------------------------------------------------------------------------------------

    def _appo_advantages(
        self, raw_obs: Tensor, obs: Tensor, actions: Tensor, advantages: Tensor
    ) -> Tensor:
        c = self.cfg.appo
        gap = (raw_obs[:, -2] - raw_obs[:, -1]).abs()  # both envs end with (TPR_0, TPR_1)
        with torch.no_grad():
            change = self.gap_model(raw_obs)  # (B, A) predicted gap change per action
            probs = self.solver.action_probs(obs)
            gap_adv = change.gather(-1, actions[:, None]).squeeze(-1) - (probs * change).sum(-1)
        return appo_advantages(
            advantages, gap, gap_adv, beta0=c.beta0, beta1=c.beta1, beta2=c.beta2, omega=c.omega
        )

    def _fit_gap_model(self) -> dict[str, Tensor]:
        obs, actions, change = self.recorder.steps()
        obs, actions, change = obs.to(self.device), actions.to(self.device), change.to(self.device)
        # Changes are O(1 / episode length): regress their scaled value, predict it back.
        loss = torch.zeros(())
        for _ in range(self.cfg.appo.model_steps):
            pred = self.gap_model(obs).gather(-1, actions.long()[:, None]).squeeze(-1)
            loss = (pred - change).square().mean()
            self.gap_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.gap_optimizer.step()
        return {"gap_model_loss": loss.detach()}

    # -- the Bisimulator ----------------------------------------------------------------------------

    def accept_probability(self, obs: Tensor, ind: Individuals) -> Tensor:
        """``(B,)`` pi(accept | s) of each applicant under the current solver and o_psi,
        differentiable in psi (lending: through the policy's input; college: through the jury's
        smoothed rule)."""
        if not self.is_college:
            return self.solver.action_probs(self.learner_obs(obs))[:, 1]
        cfg = self.college_cfg
        probs = self.solver.action_probs(obs)  # (B, A) over the threshold x epsilon grid
        k = cfg.num_thresholds
        grid = torch.arange(self.num_actions, device=obs.device)
        thresholds = torch.linspace(0.0, 1.0, k, device=obs.device)[grid % k]
        eps = torch.tensor(cfg.epsilons, device=obs.device)[grid // k]
        b = len(obs)
        scale = self.obs_map.weight[:, 0, 0].clamp_min(0.05)
        shift = self.obs_map.bias[:, 0]
        admit = admit_probability(
            cfg,
            ind.feature[:, 0],
            ind.group,
            thresholds.expand(b, -1),
            eps.expand(b, -1),
            scale,
            shift,
            temperature=self.cfg.bisim.acceptance_temperature,
        )  # (B, A)
        return (probs * admit.to(probs.dtype)).sum(-1)

    def _action_rewards(self, ind: Individuals, *, with_delta: bool) -> Tensor:
        """``(B, 2)`` the (learned) reward of rejecting / accepting each applicant:
        R-hat(s, a) + delta_phi(s, a)."""
        out = []
        for accept in (False, True):
            a = torch.full_like(ind.accepted, accept)
            r = self.reward_model(ind.feature, ind.group, a)
            if with_delta:
                r = r + self.delta(ind.feature, ind.group, a)
            out.append(r)
        return torch.stack(out, -1)

    def _next_observed(self, ind: Individuals) -> tuple[Tensor, Tensor]:
        """o_psi of the next feature after a reject and after an accept, ``(B, D)`` each: the
        expected one (learned dynamics) or the sampled one, as ``bisim.next_state`` says."""
        if self.cfg.bisim.next_state == "sampled":
            nxt = (ind.next_feature_reject, ind.next_feature_accept)
        else:
            with torch.no_grad():
                nxt = tuple(
                    self.dynamics(ind.feature, ind.group, torch.full_like(ind.accepted, a))
                    for a in (False, True)
                )
        return self.obs_map(nxt[0], ind.group), self.obs_map(nxt[1], ind.group)

    def _pairs(self, ind: Individuals) -> tuple[Tensor, Tensor] | None:
        where0 = torch.nonzero(ind.group == 0).squeeze(-1)
        where1 = torch.nonzero(ind.group == 1).squeeze(-1)
        if len(where0) == 0 or len(where1) == 0:
            return None
        i0, i1 = quantile_pairs(
            ind.score[where0].cpu(),
            ind.score[where1].cpu(),
            self.cfg.bisim.num_quantiles,
            self.pair_generator,
        )
        return where0[i0.to(where0.device)], where1[i1.to(where1.device)]

    def _bisimulator_step(self, ind: Individuals, obs: Tensor) -> dict[str, Tensor]:
        b = self.cfg.bisim
        metrics: dict[str, Tensor] = {}
        pairs = self._pairs(ind)
        if pairs is None:
            return metrics

        def side(idx: Tensor) -> tuple[Individuals, Tensor]:
            return Individuals(*(t[idx] for t in ind)), obs[idx]

        (ind0, obs0), (ind1, obs1) = side(pairs[0]), side(pairs[1])
        not_done = (~(ind0.individual_done | ind1.individual_done)).float()
        with torch.no_grad():  # the policy's weight on each decision, for the pair
            p = 0.5 * (self.accept_probability(obs0, ind0) + self.accept_probability(obs1, ind1))
            weights = torch.stack([1.0 - p, p], -1)  # (K, 2): reject, accept

        def next_distance(metric: nn.Module) -> Tensor:
            (r0, a0), (r1, a1) = self._next_observed(ind0), self._next_observed(ind1)
            return torch.stack([metric(r0, r1), metric(a0, a1)], -1)  # (K, 2)

        # Metric and reward model: TD regression on the matched pairs of the current MDP.
        for _ in range(b.metric_steps):
            with torch.no_grad():
                backup = pair_backup(
                    weights,
                    self._action_rewards(ind0, with_delta=True),
                    self._action_rewards(ind1, with_delta=True),
                    next_distance(self.metric_target),
                    not_done,
                    b.metric_discount,
                )
                u0 = self.obs_map(ind0.feature, ind0.group)
                u1 = self.obs_map(ind1.feature, ind1.group)
            loss, m = metric_td_loss(self.metric(u0, u1), backup)
            pick = torch.randint(
                len(ind.group), (min(len(ind.group), 1024),), generator=self.pair_generator
            ).to(ind.group.device)
            x, g, a = ind.feature[pick], ind.group[pick], ind.accepted[pick]
            model_loss = (self.reward_model(x, g, a) - ind.reward[pick]).square().mean()
            for accept, target in (
                (False, ind.next_feature_reject),
                (True, ind.next_feature_accept),
            ):
                pred = self.dynamics(x, g, torch.full_like(a, accept))
                model_loss = model_loss + (pred - target[pick]).square().sum(-1).mean()
            self.metric_optimizer.zero_grad(set_to_none=True)
            (loss + model_loss).backward()
            self.metric_optimizer.step()
            with torch.no_grad():
                for q, tq in zip(
                    self.metric.parameters(), self.metric_target.parameters(), strict=True
                ):
                    tq.lerp_(q, b.metric_target_tau)
            metrics.update(m)
            metrics["reward_model_loss"] = model_loss.detach()

        # The Bisimulator: r_phi and o_psi make the matched pairs bisimilar, near the original.
        if self.mdp_optimizer is None or self.rollouts < b.warmup_rollouts:
            return metrics
        for _ in range(b.bisim_steps):
            distance = pair_backup(
                weights,
                self._action_rewards(ind0, with_delta=True),
                self._action_rewards(ind1, with_delta=True),
                next_distance(self.metric),
                not_done,
                b.metric_discount,
            )
            u0 = self.obs_map(ind0.feature, ind0.group)
            u1 = self.obs_map(ind1.feature, ind1.group)
            align = alignment_loss(u0, u1, distance)
            yes = torch.ones_like(ind.accepted)
            no = torch.zeros_like(ind.accepted)
            reward_fidelity = 0.5 * (
                self.delta(ind.feature, ind.group, yes).square().mean()
                + self.delta(ind.feature, ind.group, no).square().mean()
            )
            obs_fidelity = self.obs_map.deviation(ind.feature, ind.group).mean()
            loss = (
                b.bisim_weight * distance.mean()
                + b.alignment_weight * align
                + b.reward_fidelity * reward_fidelity
                + b.observation_fidelity * obs_fidelity
            )
            self.mdp_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.mdp_optimizer.step()
            metrics["bisim_distance"] = distance.detach().mean()
            metrics["alignment_loss"] = align.detach()
            metrics["reward_fidelity_loss"] = reward_fidelity.detach()
            metrics["observation_fidelity_loss"] = obs_fidelity.detach()
            metrics["bisimulator_loss"] = loss.detach()
        # The solver's and the metric's parameters took gradients above; they are not stepped
        # (their optimisers zero them first thing).
        return metrics

    def _end_of_rollout(self) -> dict[str, Tensor]:
        if len(self.recorder) == 0:
            return {}
        metrics = {k: v.float() for k, v in fairness_metrics(self.recorder.counts()).items()}
        if self.recorder.utility is not None:
            metrics["utility"] = self.recorder.utility.double().mean().float()
        if self.recorder.credit is not None:
            k = self.recorder.credit.shape[-1]
            dist = self.recorder.credit.double().mean(0)  # (2, K) mean over envs
            clusters = torch.arange(k, dtype=torch.float64)
            for g in range(2):
                metrics[f"credit_mean_g{g}"] = (dist[g] * clusters).sum().float()
                for c in range(k):
                    metrics[f"credit_g{g}_c{c}"] = dist[g, c].float()
        if self.uses_bisimulator:
            ind, obs = self.recorder.flat_individuals()
            ind = Individuals(*(t.to(self.device) for t in ind))
            metrics.update(self._bisimulator_step(ind, obs.to(self.device)))
            with torch.no_grad():
                delta = self.delta(ind.feature, ind.group, ind.accepted)
                metrics["reward_correction_abs"] = delta.abs().mean()
        if self.cfg.algo == "appo":
            metrics.update(self._fit_gap_model())
        self.recorder.clear()
        self.rollouts += 1
        return metrics

    # -- state --------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers, generators, counters."""
        return {
            "solver": self.solver.state_dict(),
            "solver_optimizer": self.solver.optimizer.state_dict(),
            "solver_env_steps": getattr(self.solver, "env_steps", 0),
            "obs_map": self.obs_map.state_dict(),
            "delta": self.delta.state_dict(),
            "reward_model": self.reward_model.state_dict(),
            "dynamics": self.dynamics.state_dict(),
            "metric": self.metric.state_dict(),
            "metric_target": self.metric_target.state_dict(),
            "gap_model": self.gap_model.state_dict(),
            "mdp_optimizer": None
            if self.mdp_optimizer is None
            else self.mdp_optimizer.state_dict(),
            "metric_optimizer": self.metric_optimizer.state_dict(),
            "gap_optimizer": self.gap_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "pair_generator": self.pair_generator.get_state(),
            "updates": self.updates,
            "rollouts": self.rollouts,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.solver.load_state_dict(state["solver"])
        self.solver.optimizer.load_state_dict(state["solver_optimizer"])
        if isinstance(self.solver, DQNSolver):
            self.solver.env_steps = int(state["solver_env_steps"])
        for name in (
            "obs_map",
            "delta",
            "reward_model",
            "dynamics",
            "metric",
            "metric_target",
            "gap_model",
        ):
            getattr(self, name).load_state_dict(state[name])
        if self.mdp_optimizer is not None:
            self.mdp_optimizer.load_state_dict(state["mdp_optimizer"])
        self.metric_optimizer.load_state_dict(state["metric_optimizer"])
        self.gap_optimizer.load_state_dict(state["gap_optimizer"])
        self.generator.set_state(state["generator"])
        self.pair_generator.set_state(state["pair_generator"])
        self.updates = int(state["updates"])
        self.rollouts = int(state["rollouts"])
