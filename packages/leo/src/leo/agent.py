"""LEO and its baselines as agents of the goal-conditioned loop (:mod:`leo.loop`).

Learners (networks, optimisers, the update):

* :class:`LEOLearner`: LEO's network and all-goals loss, PQN-style (no replay, no target
  network): one rollout's targets from the values cached while acting, then ``num_epochs``
  passes of minibatch updates, RAdam with a linearly annealed learning rate and a gradient clip.
* :class:`UVFALearner`: the goal-conditioned PQN (UVFA), optionally with hindsight relabelling
  (``random``, ``positive``, ``mixed`` or ``all`` goals per transition).
* :class:`PPOLearner`: goal-conditioned PPO with an optional behaviour-cloning term.

Agents (acting + learning, one per ``--algo``): :class:`LEOAgent`, :class:`PQNAgent`
(``pqn`` and ``pqn-her``), :class:`PPOAgent`, :class:`DualLEOPPOAgent` (PPO acts, a LEO
teacher learns on the same data, BC towards the teacher's greedy action) and
:class:`DualLEOPQNAgent` (LEO and a UVFA learn on the same data, acting on
``(1 - w) Q_uvfa + w Q_leo``).

Every agent has ``num_steps`` (its rollout length), ``policy_step(obs, goal)`` (exploring actions
and what its update needs later, the ``extras``), ``act(obs, goal, epsilon=...)`` (test policy),
``learn(rollout) -> metrics`` (detached 0-dim tensors, no ``.item()``) and
``state_dict()`` / ``load_state_dict()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, Protocol

import torch
from rl_buffers.rollout import gae
from rl_runtime.losses import ppo_loss
from torch import Tensor, nn

from leo.config import Algo, HerMode, NetworkConfig, PPOConfig, QConfig
from leo.goals import GoalSet, ObsLayout
from leo.losses import (
    bc_loss,
    eps_greedy,
    epsilon,
    leo_loss,
    leo_targets,
    linear_anneal,
    one_goal_targets,
    uvfa_loss,
)
from leo.networks import ActorCritic, LEONetwork, UVFANetwork

__all__ = [
    "DualLEOPPOAgent",
    "DualLEOPQNAgent",
    "GoalAgent",
    "LEOAgent",
    "LEOLearner",
    "PPOAgent",
    "PPOLearner",
    "PQNAgent",
    "PolicyOut",
    "Rollout",
    "UVFALearner",
    "make_agent",
]

_CHUNK = 8192  # rows per no-grad forward when relabelling (bounds memory)


class Rollout(NamedTuple):
    """``T`` steps of ``N`` envs, as the loop hands them to ``learn``.

    Attributes:
        obs: ``(T, N, D)`` float32 observations acted on.
        actions: ``(T, N)`` int64.
        goals: ``(T, N)`` int64 acting goal at each step.
        achieved: ``(T, N, G)`` bool: goals achieved by each step's next observation.
        done: ``(T, N)`` bool: the episode ended at the step.
        last_obs: ``(N, D)`` the observation after the rollout (to bootstrap from).
        last_goals: ``(N,)`` int64 the acting goal at ``last_obs``.
        seen: ``(G,)`` bool goals achieved so far in the run (relabelling draws from them).
        extras: ``(T, N, ...)`` tensors the agent's ``policy_step`` returned.
    """

    obs: Tensor
    actions: Tensor
    goals: Tensor
    achieved: Tensor
    done: Tensor
    last_obs: Tensor
    last_goals: Tensor
    seen: Tensor
    extras: dict[str, Tensor]


class PolicyOut(NamedTuple):
    """``actions`` ``(N,)`` int64 and the ``extras`` (``(N, ...)`` tensors) to store."""

    actions: Tensor
    extras: dict[str, Tensor]


class GoalAgent(Protocol):
    """The agent contract of :func:`leo.loop.train_goals`."""

    @property
    def num_steps(self) -> int:
        """Rollout length T."""
        ...

    def policy_step(self, obs: Tensor, goal: Tensor) -> PolicyOut:
        """Exploring actions for ``(N, D)`` observations and ``(N,)`` acting goals."""
        ...

    def act(
        self, obs: Tensor, goal: Tensor, *, epsilon: float, generator: torch.Generator
    ) -> Tensor:
        """Test actions (Q agents: epsilon-greedy with ``epsilon``; PPO: sampled), drawing on
        ``generator`` (not the agent's own: a test never changes the training stream)."""
        ...

    def learn(self, rollout: Rollout) -> dict[str, Tensor]:
        """Update on one rollout; detached 0-dim metrics."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


def _minibatches(n: int, size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """A random permutation of ``range(n)`` in chunks of ``size`` (the last may be smaller)."""
    perm = torch.randperm(n, generator=generator, device=generator.device)
    yield from perm.split(size)


class _Optimizer:
    """An optimiser with a global gradient-norm clip and a linearly annealed learning rate."""

    def __init__(
        self,
        params: Any,
        *,
        kind: str,
        lr: float,
        anneal: bool,
        total_steps: int,
        max_grad_norm: float,
    ) -> None:
        params = list(params)
        self.params = params
        self.lr, self.anneal, self.total, self.clip = lr, anneal, total_steps, max_grad_norm
        opt = torch.optim.RAdam if kind == "radam" else torch.optim.Adam
        self.opt = opt(params, lr=lr, eps=1e-8 if kind == "radam" else 1e-5)
        self.count = 0

    def step(self, loss: Tensor) -> Tensor:
        lr = linear_anneal(self.lr, self.count, self.total) if self.anneal else self.lr
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        self.count += 1
        return norm.detach()

    def state_dict(self) -> dict[str, Any]:
        return {"opt": self.opt.state_dict(), "count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.opt.load_state_dict(state["opt"])
        self.count = int(state["count"])


class _Learner:
    """A network and its optimiser, checkpointed together."""

    net: nn.Module
    optimizer: _Optimizer

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


def _mean_metrics(items: list[dict[str, Tensor]], prefix: str = "") -> dict[str, Tensor]:
    if not items:
        return {}
    return {prefix + k: torch.stack([m[k] for m in items]).mean() for k in items[0]}


class LEOLearner(_Learner):
    """LEO's network, optimiser and all-goals update.

    Args:
        layout, goals, num_actions: The env's observation layout, goal set and action count.
        net: Network sizes.
        cfg: Q-learning settings.
        total_rollouts: Rollouts in the run (learning-rate annealing).
        batch: Transitions per rollout (T * N).
        gamma: Discount (None: ``cfg.gamma``; Dual LEO (PPO) uses PPO's).
        device: Where the network lives.
        generator: Minibatch permutations.
    """

    def __init__(
        self,
        layout: ObsLayout,
        goals: GoalSet,
        num_actions: int,
        net: NetworkConfig,
        cfg: QConfig,
        *,
        total_rollouts: int,
        batch: int,
        generator: torch.Generator,
        device: torch.device,
        gamma: float | None = None,
    ) -> None:
        self.cfg = cfg
        self.gamma = cfg.gamma if gamma is None else gamma
        self.generator = generator
        self.net = LEONetwork(layout, len(goals), num_actions, net).to(device)
        steps = total_rollouts * cfg.num_epochs * math.ceil(batch / cfg.minibatch_size)
        self.optimizer = _Optimizer(self.net.parameters(), kind="radam", lr=cfg.lr,
                                    anneal=cfg.anneal_lr, total_steps=steps,
                                    max_grad_norm=cfg.max_grad_norm)  # fmt: skip

    @torch.no_grad()
    def q_all(self, obs: Tensor) -> Tensor:
        """``(N, G, A)`` values for acting (running input statistics)."""
        self.net.eval()
        return self.net(obs)

    def targets(self, r: Rollout, key: str = "leo_max_q") -> Tensor:
        """``(T, N, G)`` all-goals targets; ``r.extras[key]`` holds ``max_a Q(obs_t, g, a)``
        cached while acting, so ``max_a Q(s_{t+1}, g, a)`` is its next row, and one extra
        forward pass bootstraps the last step."""
        last = self.q_all(r.last_obs).amax(dim=-1)  # (N, G)
        next_max = torch.cat([r.extras[key][1:], last[None]])  # (T, N, G)
        return leo_targets(r.achieved, r.done, next_max, self.gamma)

    def update(self, obs: Tensor, actions: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """One gradient step on ``(B, D)``, ``(B,)``, ``(B, G)``."""
        self.net.train()
        loss, metrics = leo_loss(self.net(obs), actions, targets)
        metrics["grad_norm"] = self.optimizer.step(loss)
        return metrics

    def learn(self, r: Rollout, key: str = "leo_max_q") -> dict[str, Tensor]:
        """Targets once, then epochs of minibatch updates (upstream computes the targets with the
        parameters that collected the rollout, as here)."""
        y = self.targets(r, key)
        t, n = r.actions.shape
        obs = r.obs.reshape(t * n, -1)  # (T, N, D) -> (T*N, D)
        actions = r.actions.reshape(t * n)
        y = y.reshape(t * n, -1)
        out = []
        for _ in range(self.cfg.num_epochs):
            for idx in _minibatches(t * n, self.cfg.minibatch_size, self.generator):
                idx = idx.to(obs.device)
                out.append(self.update(obs[idx], actions[idx], y[idx]))
        return _mean_metrics(out)


class UVFALearner(_Learner):
    """Goal-conditioned PQN (the goal as an input) with optional hindsight relabelling.

    Each transition is trained on its acting goal and, with ``her``, on ``her_num_goals`` more
    goals (``all``: every goal): drawn uniformly from the goals seen (``random``), from the goals
    the transition's observation achieves (``positive``, upstream's choice; uniform if none), or
    both (``mixed``: ``round(k * her_random_fraction)`` random, the rest positive). A relabelled
    pair's reward and termination are judged on the transition's next observation and its
    bootstrap is ``max_a Q(s', g, a)`` for the same goal ``g``.

    Args: as :class:`LEOLearner`, plus ``her`` (None: no relabelling) and ``only_seen``
        (random relabelling draws from the goals seen, else from all).
    """

    def __init__(
        self,
        layout: ObsLayout,
        goals: GoalSet,
        num_actions: int,
        net: NetworkConfig,
        cfg: QConfig,
        *,
        total_rollouts: int,
        batch: int,
        generator: torch.Generator,
        device: torch.device,
        her: HerMode | None = None,
        only_seen: bool = True,
    ) -> None:
        self.cfg, self.goals, self.her, self.only_seen = cfg, goals, her, only_seen
        self.generator = generator
        self.net = UVFANetwork(layout, goals.goal_dim, num_actions, net).to(device)
        steps = (
            total_rollouts * cfg.num_epochs * math.ceil(batch * self.pairs_per / cfg.minibatch_size)
        )
        self.optimizer = _Optimizer(self.net.parameters(), kind="radam", lr=cfg.lr,
                                    anneal=cfg.anneal_lr, total_steps=steps,
                                    max_grad_norm=cfg.max_grad_norm)  # fmt: skip

    @property
    def pairs_per(self) -> int:
        """(transition, goal) pairs trained per transition."""
        if self.her is None:
            return 1
        return 1 + (len(self.goals) if self.her == "all" else self.cfg.her_num_goals)

    @torch.no_grad()
    def q(self, obs: Tensor, goal: Tensor) -> Tensor:
        """``(N, A)`` values of ``(N,)`` goal indices (running input statistics)."""
        self.net.eval()
        return self.net(obs, self.goals.inputs(goal))

    def relabel(self, r: Rollout) -> Tensor:
        """``(T, N, k)`` int64 hindsight goals (see the class doc)."""
        t, n = r.actions.shape
        g = len(self.goals)
        gen, dev = self.generator, r.obs.device
        if self.her == "all":
            return torch.arange(g, device=dev).expand(t, n, g)
        k = self.cfg.her_num_goals
        k_random = k if self.her == "random" else 0
        if self.her == "mixed":
            k_random = round(k * self.cfg.her_random_fraction)
        parts = []
        if k_random:
            p = r.seen.float() if self.only_seen and bool(r.seen.any()) else torch.ones(g)
            draws = torch.multinomial(p.to(gen.device), t * n * k_random, replacement=True,
                                      generator=gen)  # fmt: skip
            parts.append(draws.to(dev).view(t, n, k_random))
        if k - k_random:
            positive = self.goals.achieved(r.obs.reshape(t * n, -1)).float()  # (T*N, G)
            none = positive.sum(dim=-1, keepdim=True) == 0
            p = torch.where(none, torch.ones_like(positive), positive)  # uniform if none
            draws = torch.multinomial(p.to(gen.device), k - k_random, replacement=True,
                                      generator=gen)  # fmt: skip
            parts.append(draws.to(dev).view(t, n, k - k_random))
        return torch.cat(parts, dim=-1)

    def targets(self, r: Rollout, key: str = "uvfa_max_q") -> tuple[Tensor, Tensor, Tensor]:
        """``(goals (P,), transition index (P,), targets (P,))`` of every trained pair, acting
        goal first (its bootstrap from the values cached while acting)."""
        t, n = r.actions.shape
        reward = r.achieved.gather(-1, r.goals[..., None]).squeeze(-1)  # (T, N)
        last = self.q(r.last_obs, r.last_goals).amax(dim=-1)  # (N,)
        # the acting goal changes only where done_g holds, which masks the bootstrap
        next_max = torch.cat([r.extras[key][1:], last[None]])  # (T, N)
        y = one_goal_targets(reward, r.done, next_max, self.cfg.gamma)
        index = torch.arange(t * n, device=r.obs.device)
        goals, rows, ys = [r.goals.reshape(-1)], [index], [y.reshape(-1)]
        if self.her is not None:
            hg = self.relabel(r)  # (T, N, k)
            k = hg.shape[-1]
            h_reward = r.achieved.gather(-1, hg)  # (T, N, k)
            next_obs = torch.cat([r.obs[1:], r.last_obs[None]])  # (T, N, D); masked where done
            obs_rows = next_obs.reshape(t * n, -1)
            flat_goals = hg.reshape(-1)
            flat_rows = index.repeat_interleave(k)  # pair p of transition p // k
            h_next = torch.cat([
                self.q(obs_rows[flat_rows[i : i + _CHUNK]], flat_goals[i : i + _CHUNK]).amax(-1)
                for i in range(0, flat_goals.numel(), _CHUNK)
            ])  # fmt: skip
            done = r.done[..., None].expand(t, n, k).reshape(-1)
            goals.append(flat_goals)
            rows.append(flat_rows)
            ys.append(one_goal_targets(h_reward.reshape(-1), done, h_next, self.cfg.gamma))
        return torch.cat(goals), torch.cat(rows), torch.cat(ys)

    def update(
        self, obs: Tensor, goal: Tensor, actions: Tensor, targets: Tensor
    ) -> dict[str, Tensor]:
        """One gradient step on ``(B, D)`` observations, ``(B,)`` goals, actions, targets."""
        self.net.train()
        loss, metrics = uvfa_loss(self.net(obs, self.goals.inputs(goal)), actions, targets)
        metrics["grad_norm"] = self.optimizer.step(loss)
        return metrics

    def learn(self, r: Rollout, key: str = "uvfa_max_q") -> dict[str, Tensor]:
        goals, rows, y = self.targets(r, key)
        t, n = r.actions.shape
        obs = r.obs.reshape(t * n, -1)
        actions = r.actions.reshape(t * n)
        out = []
        for _ in range(self.cfg.num_epochs):
            for idx in _minibatches(y.numel(), self.cfg.minibatch_size, self.generator):
                idx = idx.to(obs.device)
                row = rows[idx]
                out.append(self.update(obs[row], goals[idx], actions[row], y[idx]))
        return _mean_metrics(out)


class PPOLearner(_Learner):
    """Goal-conditioned PPO: reward 1 when the acting goal is reached, which ends the goal's
    episode (``done = reached or episode end``), GAE, clipped PPO (``rl_runtime.losses.ppo_loss``),
    Adam with annealed learning rate; with a teacher, ``+ bc_coef * bc_loss``."""

    def __init__(
        self,
        layout: ObsLayout,
        goals: GoalSet,
        num_actions: int,
        net: NetworkConfig,
        cfg: PPOConfig,
        *,
        total_rollouts: int,
        batch: int,
        generator: torch.Generator,
        device: torch.device,
    ) -> None:
        self.cfg, self.goals, self.generator = cfg, goals, generator
        self.net = ActorCritic(layout, goals.goal_dim, num_actions, net, cfg).to(device)
        self.total_rollouts = total_rollouts
        steps = total_rollouts * cfg.num_epochs * math.ceil(batch / cfg.minibatch_size)
        self.optimizer = _Optimizer(self.net.parameters(), kind="adam", lr=cfg.lr,
                                    anneal=cfg.anneal_lr, total_steps=steps,
                                    max_grad_norm=cfg.max_grad_norm)  # fmt: skip

    @torch.no_grad()
    def policy(self, obs: Tensor, goal: Tensor) -> tuple[Tensor, Tensor]:
        return self.net(obs, self.goals.inputs(goal))

    def sample(
        self, logits: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Actions drawn from ``softmax(logits)`` (on ``generator``, default the learner's), and
        their log-probs."""
        probs = torch.softmax(logits, dim=-1)
        gen = self.generator if generator is None else generator
        actions = torch.multinomial(probs.to(gen.device), 1, generator=gen).squeeze(-1)
        actions = actions.to(logits.device)
        log_probs = torch.log_softmax(logits, -1).gather(-1, actions[:, None]).squeeze(-1)
        return actions, log_probs

    def learn(self, r: Rollout, bc_coef: float = 0.0) -> dict[str, Tensor]:
        cfg = self.cfg
        t, n = r.actions.shape
        reward = r.achieved.gather(-1, r.goals[..., None]).squeeze(-1).float()  # (T, N)
        done = r.done | (reward > 0)  # reaching the goal ends it
        values = r.extras["value"]
        _, last_value = self.policy(r.last_obs, r.last_goals)
        next_values = torch.cat([values[1:], last_value[None]])
        with torch.no_grad():
            adv, returns = gae(reward, values, next_values, done, done, cfg.gamma, cfg.gae_lambda)
        flat = {
            "obs": r.obs.reshape(t * n, -1),
            "goal": r.goals.reshape(-1),
            "action": r.actions.reshape(-1),
            "log_prob": r.extras["log_prob"].reshape(-1),
            "value": values.reshape(-1),
            "adv": adv.reshape(-1),
            "ret": returns.reshape(-1),
        }
        teacher = r.extras.get("teacher_q")
        if teacher is not None:
            flat["teacher"] = teacher.reshape(t * n, -1)
        out = []
        for _ in range(cfg.num_epochs):
            for idx in _minibatches(t * n, cfg.minibatch_size, self.generator):
                mb = {k: v[idx.to(v.device)] for k, v in flat.items()}
                out.append(self.update(mb, bc_coef))
        return _mean_metrics(out)

    def update(self, mb: dict[str, Tensor], bc_coef: float) -> dict[str, Tensor]:
        cfg = self.cfg
        self.net.train()
        logits, value = self.net(mb["obs"], self.goals.inputs(mb["goal"]))
        logp_all = torch.log_softmax(logits, dim=-1)
        logp = logp_all.gather(-1, mb["action"][:, None]).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        loss, metrics = ppo_loss(logp, mb["log_prob"], mb["adv"], value, mb["value"], mb["ret"],
                                 entropy, clip_coef=cfg.clip_eps, vf_coef=cfg.vf_coef,
                                 ent_coef=cfg.ent_coef)  # fmt: skip
        if "teacher" in mb:
            bc = bc_loss(logits, mb["teacher"])
            metrics["bc_loss"] = bc.detach()
            if bc_coef > 0:
                loss = loss + bc_coef * bc
        metrics["grad_norm"] = self.optimizer.step(loss)
        return metrics


def _acting(q_all: Tensor, goal: Tensor) -> Tensor:
    """``(N, A)`` values of each env's acting goal from ``(N, G, A)``."""
    return q_all[torch.arange(q_all.shape[0], device=q_all.device), goal]


class _Agent:
    """Rollout counter, generator and the epsilon schedule shared by the agents."""

    num_steps: int

    def __init__(
        self,
        q: QConfig,
        total_rollouts: int,
        generator: torch.Generator,
        learners: Mapping[str, _Learner | None],
    ) -> None:
        self.q_cfg = q
        self.total_rollouts = total_rollouts
        self.generator = generator
        self.rollouts = 0
        self.learners = {k: v for k, v in learners.items() if v is not None}

    @property
    def epsilon(self) -> float:
        c = self.q_cfg
        return epsilon(self.rollouts, self.total_rollouts, c.eps_start, c.eps_finish, c.eps_decay)

    def state_dict(self) -> dict[str, Any]:
        """Every learner's state, the rollout count and the acting generator."""
        state = {k: v.state_dict() for k, v in self.learners.items()}
        return {**state, "rollouts": self.rollouts, "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k, v in self.learners.items():
            v.load_state_dict(state[k])
        self.rollouts = int(state["rollouts"])
        self.generator.set_state(state["generator"])


class LEOAgent(_Agent):
    """LEO: acts epsilon-greedily on its acting goal's row of the all-goals table."""

    def __init__(self, leo: LEOLearner, total_rollouts: int, generator: torch.Generator) -> None:
        super().__init__(leo.cfg, total_rollouts, generator, {"leo": leo})
        self.leo = leo
        self.num_steps = leo.cfg.num_steps

    def policy_step(self, obs: Tensor, goal: Tensor) -> PolicyOut:
        q_all = self.leo.q_all(obs)  # (N, G, A)
        actions = eps_greedy(_acting(q_all, goal), self.epsilon, self.generator)
        return PolicyOut(actions, {"leo_max_q": q_all.amax(dim=-1)})

    def act(
        self, obs: Tensor, goal: Tensor, *, epsilon: float, generator: torch.Generator
    ) -> Tensor:
        return eps_greedy(_acting(self.leo.q_all(obs), goal), epsilon, generator)

    def learn(self, rollout: Rollout) -> dict[str, Tensor]:
        metrics = self.leo.learn(rollout)
        metrics["epsilon"] = torch.tensor(self.epsilon)
        self.rollouts += 1
        return metrics


class PQNAgent(_Agent):
    """Goal-conditioned PQN (``pqn``) and PQN+HER (``pqn-her``)."""

    def __init__(self, uvfa: UVFALearner, total_rollouts: int, generator: torch.Generator) -> None:
        super().__init__(uvfa.cfg, total_rollouts, generator, {"uvfa": uvfa})
        self.uvfa = uvfa
        self.num_steps = uvfa.cfg.num_steps

    def policy_step(self, obs: Tensor, goal: Tensor) -> PolicyOut:
        q = self.uvfa.q(obs, goal)
        actions = eps_greedy(q, self.epsilon, self.generator)
        return PolicyOut(actions, {"uvfa_max_q": q.amax(dim=-1)})

    def act(
        self, obs: Tensor, goal: Tensor, *, epsilon: float, generator: torch.Generator
    ) -> Tensor:
        return eps_greedy(self.uvfa.q(obs, goal), epsilon, generator)

    def learn(self, rollout: Rollout) -> dict[str, Tensor]:
        metrics = self.uvfa.learn(rollout)
        metrics["epsilon"] = torch.tensor(self.epsilon)
        self.rollouts += 1
        return metrics


class DualLEOPQNAgent(_Agent):
    """Dual LEO (PQN): LEO and a UVFA (acting goal only) learn on the same rollouts; actions are
    epsilon-greedy on ``(1 - w) * Q_uvfa(s, g) + w * Q_leo(s, g)``."""

    def __init__(
        self, leo: LEOLearner, uvfa: UVFALearner, total_rollouts: int, generator: torch.Generator
    ) -> None:
        super().__init__(leo.cfg, total_rollouts, generator, {"leo": leo, "uvfa": uvfa})
        self.leo, self.uvfa = leo, uvfa
        self.num_steps = leo.cfg.num_steps

    def _values(self, obs: Tensor, goal: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q_all = self.leo.q_all(obs)
        q_uvfa = self.uvfa.q(obs, goal)
        w = self.q_cfg.leo_weight
        return (1.0 - w) * q_uvfa + w * _acting(q_all, goal), q_all, q_uvfa

    def policy_step(self, obs: Tensor, goal: Tensor) -> PolicyOut:
        q, q_all, q_uvfa = self._values(obs, goal)
        actions = eps_greedy(q, self.epsilon, self.generator)
        return PolicyOut(actions, {"leo_max_q": q_all.amax(-1), "uvfa_max_q": q_uvfa.amax(-1)})

    def act(
        self, obs: Tensor, goal: Tensor, *, epsilon: float, generator: torch.Generator
    ) -> Tensor:
        return eps_greedy(self._values(obs, goal)[0], epsilon, generator)

    def learn(self, rollout: Rollout) -> dict[str, Tensor]:
        metrics = {f"leo_{k}": v for k, v in self.leo.learn(rollout).items()}
        metrics |= {f"uvfa_{k}": v for k, v in self.uvfa.learn(rollout).items()}
        metrics["critic_loss"] = metrics["leo_critic_loss"]
        metrics["epsilon"] = torch.tensor(self.epsilon)
        self.rollouts += 1
        return metrics


class PPOAgent(_Agent):
    """Goal-conditioned PPO; with a LEO ``teacher``, Dual LEO (PPO)."""

    def __init__(
        self,
        ppo: PPOLearner,
        q: QConfig,
        total_rollouts: int,
        generator: torch.Generator,
        teacher: LEOLearner | None = None,
    ) -> None:
        super().__init__(q, total_rollouts, generator, {"ppo": ppo, "teacher": teacher})
        self.ppo, self.teacher = ppo, teacher
        self.num_steps = ppo.cfg.num_steps

    @property
    def bc_coef(self) -> float:
        """The BC weight now (annealed linearly to 0 over the run when ``anneal_bc``)."""
        c = self.ppo.cfg
        if self.teacher is None:
            return 0.0
        if c.anneal_bc:
            return linear_anneal(c.bc_coef, self.rollouts, self.total_rollouts)
        return c.bc_coef

    def policy_step(self, obs: Tensor, goal: Tensor) -> PolicyOut:
        logits, value = self.ppo.policy(obs, goal)
        actions, log_probs = self.ppo.sample(logits)
        extras = {"log_prob": log_probs, "value": value}
        if self.teacher is not None:
            q_all = self.teacher.q_all(obs)
            extras["leo_max_q"] = q_all.amax(-1)
            extras["teacher_q"] = _acting(q_all, goal)
        return PolicyOut(actions, extras)

    def act(
        self, obs: Tensor, goal: Tensor, *, epsilon: float, generator: torch.Generator
    ) -> Tensor:
        del epsilon  # the test policy is the stochastic policy
        return self.ppo.sample(self.ppo.policy(obs, goal)[0], generator)[0]

    def learn(self, rollout: Rollout) -> dict[str, Tensor]:
        coef = self.bc_coef
        metrics = self.ppo.learn(rollout, coef)
        if self.teacher is not None:
            metrics |= {f"leo_{k}": v for k, v in self.teacher.learn(rollout).items()}
            metrics["bc_coef"] = torch.tensor(coef)
        self.rollouts += 1
        return metrics


DualLEOPPOAgent = PPOAgent  # with a teacher
"""Dual LEO (PPO) is :class:`PPOAgent` with a LEO ``teacher``."""


def make_agent(
    algo: Algo,
    *,
    layout: ObsLayout,
    goals: GoalSet,
    num_actions: int,
    num_envs: int,
    total_steps: int,
    network: NetworkConfig,
    q: QConfig,
    ppo: PPOConfig,
    only_seen: bool,
    seed: int,
    device: torch.device,
) -> GoalAgent:
    """The agent of ``algo`` for an env (networks initialised from ``seed``)."""
    for c in (network, q, ppo):
        c.validate()
    torch.manual_seed(seed)
    generator = torch.Generator(device).manual_seed(seed)
    steps = ppo.num_steps if algo in ("ppo", "dual-leo-ppo") else q.num_steps
    batch = steps * num_envs
    total_rollouts = max(1, -(-total_steps // batch))
    common = {"total_rollouts": total_rollouts, "batch": batch, "generator": generator,
              "device": device}  # fmt: skip
    spec = (layout, goals, num_actions, network)
    if algo == "leo":
        return LEOAgent(LEOLearner(*spec, q, **common), total_rollouts, generator)
    if algo in ("pqn", "pqn-her"):
        her = q.her_mode if algo == "pqn-her" else None
        uvfa = UVFALearner(*spec, q, her=her, only_seen=only_seen, **common)
        return PQNAgent(uvfa, total_rollouts, generator)
    if algo == "dual-leo-pqn":
        leo = LEOLearner(*spec, q, **common)
        uvfa = UVFALearner(*spec, q, only_seen=only_seen, **common)
        return DualLEOPQNAgent(leo, uvfa, total_rollouts, generator)
    learner = PPOLearner(*spec, ppo, **common)
    teacher = None
    if algo == "dual-leo-ppo":
        teacher = LEOLearner(*spec, q, gamma=ppo.gamma, **common)
    return PPOAgent(learner, q, total_rollouts, generator, teacher)
