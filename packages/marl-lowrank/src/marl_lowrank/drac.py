"""DR-AC for discrete actions, and exact coarse-correlated-equilibrium gaps.

DR-AC (the paper's Algorithm 1, decentralised regularised actor-critic), in its
contextual-game form:

1. Fit agent i's critic Q^i in a K-IR class by least squares on the offline data (Algorithm 2;
   the game's Q is its reward, which does not depend on the policies, so one fit serves every
   iterate).
2. For t = 1..T, every agent i independently (nothing but the others' current policies is
   shared) forms its local Q, ``Q_t^i(s, k) = E_{a_-i ~ pi_-i,t} Q^i(s, k, a_-i)`` (exact for
   the ir1, ir2 and independent classes: under K-IR it needs only (K-1)-agent marginals), and
   takes one mirror-descent (multiplicative-weights) step on it minus the gradient of a
   behaviour regulariser ``lambda R(pi_i || mu_i)``::

       pi_{t+1}^i(k | s) ∝ pi_t^i(k | s) exp(eta (Q_t^i(s, k) - lambda dR/dpi(k)))

   with ``R = chi^2`` (``dR/dpi = 2 pi / mu``) or ``KL`` (``log(pi / mu) + 1``), and ``mu_i``
   agent i's behaviour policy estimated from the data.
3. Output the uniform mixture of the iterates ``(1/T) sum_t prod_i pi_t^i``: the approximate
   CCE (no-regret dynamics' time average); playing it means drawing t uniformly, shared by all
   agents, then each agent's own ``pi_t^i``.

:func:`tabular_cce_gap` computes the exact CCE gap of such a mixture in any small normal-form
game by enumerating every joint action and every unilateral deviation;
``marl_lowrank.game.mixture_cce_gap`` is the same quantity in closed form for the N-agent game.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from marl_lowrank.config import DRACConfig, Regularizer
from marl_lowrank.data import MultiAgentData
from marl_lowrank.networks import make_critic

__all__ = [
    "DRACAgent",
    "behaviour_estimate",
    "mirror_descent_step",
    "regularizer_grad",
    "tabular_cce_gap",
    "tabular_mixture_values",
]


def behaviour_estimate(
    data: MultiAgentData, num_contexts: int, num_actions: int, smoothing: float
) -> Tensor:
    """Every agent's behaviour policy per context from counts, add-``smoothing``.

    Args:
        data: Discrete data whose observations are one-hot contexts ``(M, N, C)``.
        num_contexts: ``C``.
        num_actions: ``A``.
        smoothing: Count added to every (context, agent, action).

    Returns:
        ``(C, N, A)`` probabilities.
    """
    ctx = data.obs[:, 0].argmax(dim=-1)  # (M,): the context every agent sees
    n = data.num_agents
    flat = (ctx[:, None] * n + torch.arange(n)[None, :]) * num_actions + data.action  # (M, N)
    counts = torch.bincount(flat.reshape(-1), minlength=num_contexts * n * num_actions).float()
    counts = counts.reshape(num_contexts, n, num_actions) + smoothing
    return counts / counts.sum(dim=-1, keepdim=True)


def regularizer_grad(kind: Regularizer, pi: Tensor, mu: Tensor) -> Tensor:
    """``dR(pi || mu) / dpi`` elementwise: chi^2 ``2 pi / mu`` or KL ``log(pi / mu) + 1``."""
    if kind == "chi2":
        return 2.0 * pi / mu
    return torch.log(pi.clamp_min(1e-30) / mu) + 1.0


def mirror_descent_step(
    logits: Tensor, q: Tensor, mu: Tensor, *, eta: float, reg: Regularizer, coef: float
) -> Tensor:
    """One multiplicative-weights step: new logits ``log pi + eta (q - coef dR/dpi)``,
    normalised (log-probabilities).

    Args:
        logits: ``(..., A)`` log-probabilities of the current policy.
        q: ``(..., A)`` local Q.
        mu: ``(..., A)`` behaviour probabilities (> 0).
        eta: Step size.
        reg: Regulariser.
        coef: Its weight.
    """
    pi = logits.softmax(dim=-1)
    step = logits + eta * (q - coef * regularizer_grad(reg, pi, mu))
    return step - step.logsumexp(dim=-1, keepdim=True)


def tabular_mixture_values(payoffs: Tensor, iterates: Tensor) -> tuple[Tensor, Tensor]:
    """Values of the uniform mixture of product policies in a normal-form game, exactly.

    Args:
        payoffs: ``(N, A, ..., A)`` expected payoff of each agent at each joint action (N
            action axes).
        iterates: ``(T, N, A)`` each iterate's per-agent action probabilities.

    Returns:
        ``(value (N,), deviation (N, A))``: each agent's expected payoff under the mixture, and
        its expected payoff when it alone always plays action k while the others keep the
        mixture's correlated play.
    """
    t, n, a = iterates.shape
    joint = iterates[:, 0]  # (T, A)
    for i in range(1, n):  # build the T product distributions over joint actions (small games)
        joint = (joint[..., None] * iterates[:, i].reshape(t, *([1] * i), a)).reshape(
            t, *([a] * (i + 1))
        )
    sigma = joint.mean(dim=0)  # (A,)*N: the correlated mixture
    value = (payoffs * sigma).reshape(n, -1).sum(dim=-1)
    deviation = torch.empty(n, a, dtype=payoffs.dtype)
    for i in range(n):
        others = sigma.sum(dim=i)  # marginal of the others, (A,)*(N-1)
        mine = payoffs[i].movedim(i, 0)  # (A, (A,)*(N-1)): own action first
        deviation[i] = (mine * others).reshape(a, -1).sum(dim=-1)
    return value, deviation


def tabular_cce_gap(payoffs: Tensor, iterates: Tensor) -> float:
    """Exact CCE gap ``max(0, max_i (max_k deviation_i(k) - value_i))`` of the uniform mixture
    of the product policies ``iterates (T, N, A)`` in the normal-form game ``payoffs (N, A, ...,
    A)``: the smallest epsilon for which the mixture is an epsilon-CCE (0 exactly at a CCE; see
    :func:`tabular_mixture_values`)."""
    value, deviation = tabular_mixture_values(payoffs.double(), iterates.double())
    return max(0.0, float((deviation.amax(dim=-1) - value).amax()))


class DRACAgent:
    """DR-AC on a discrete contextual game (module doc): least-squares critic steps first, then
    one no-regret iteration per update.

    Args:
        cfg: The configuration.
        num_agents: ``N``.
        num_contexts: ``C`` (observations are one-hot contexts, ``(B, N, C)``).
        num_actions: ``A``.
        behaviour: ``(C, N, A)`` estimated behaviour policy ``mu`` (:func:`behaviour_estimate`),
            also the first iterate.
        device: Where the networks live.
        seed: Seed of the Monte Carlo generator and the network initialisation.
    """

    def __init__(
        self,
        cfg: DRACConfig,
        num_agents: int,
        num_contexts: int,
        num_actions: int,
        behaviour: Tensor,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        if behaviour.shape != (num_contexts, num_agents, num_actions):
            raise ValueError(
                f"behaviour must be (C, N, A) = {(num_contexts, num_agents, num_actions)}, got "
                f"{tuple(behaviour.shape)}"
            )
        self.cfg = cfg
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.critic = make_critic(cfg.critic, num_agents, num_contexts, num_actions).to(self.device)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.mu = behaviour.to(self.device).clamp_min(1e-6)
        self.logits = self.mu.log()
        self.history = torch.zeros(cfg.iterations, num_contexts, num_agents, num_actions)
        self.contexts = (
            F.one_hot(torch.arange(num_contexts), num_contexts)
            .float()[:, None, :]
            .expand(num_contexts, num_agents, num_contexts)
            .to(self.device)
        )
        self.critic_updates = 0
        self.iteration = 0

    @property
    def num_actions(self) -> int:
        """``A``."""
        return int(self.mu.shape[-1])

    @property
    def done(self) -> bool:
        """Every critic step and iteration has run."""
        return (
            self.critic_updates >= self.cfg.critic_steps and self.iteration >= self.cfg.iterations
        )

    @property
    def total_updates(self) -> int:
        """``critic_steps + iterations``: the updates a run needs."""
        return self.cfg.critic_steps + self.cfg.iterations

    def iterates(self) -> Tensor:
        """``(t, C, N, A)``: the iterates so far (all T once done); the first is ``mu``."""
        if self.iteration == 0:
            return self.mu.cpu()[None]
        return self.history[: self.iteration]

    def update(self, batch: Any) -> dict[str, Tensor]:
        """A least-squares critic step on ``batch`` (``obs (B, N, C)``, int64 ``action (B,
        N)``, ``reward (B, N)``) while critic steps remain, else one no-regret iteration.
        Returns detached 0-dim metrics."""
        if self.critic_updates < self.cfg.critic_steps:
            self.critic_updates += 1
            return self._critic_step(batch)
        if self.iteration < self.cfg.iterations:
            return self._iterate()
        return {}

    def _critic_step(self, batch: Any) -> dict[str, Tensor]:
        action = F.one_hot(batch.action, self.num_actions).float()  # (B, N, A)
        q = self.critic(batch.obs, action)  # (B, N)
        loss = F.mse_loss(q, batch.reward)
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        return {"critic_loss": loss.detach(), "q_mean": q.detach().mean()}

    def _iterate(self) -> dict[str, Tensor]:
        cfg = self.cfg
        pi = self.logits.softmax(dim=-1)  # (C, N, A)
        self.history[self.iteration] = pi.cpu()
        with torch.no_grad():
            q = self.critic.local_values(
                self.contexts, pi, samples=cfg.mc_samples, generator=self.generator
            )
            self.logits = mirror_descent_step(
                self.logits, q, self.mu, eta=cfg.eta, reg=cfg.reg, coef=cfg.reg_coef
            )
        self.iteration += 1
        entropy = -(pi * pi.clamp_min(1e-30).log()).sum(dim=-1).mean()
        chi2 = (pi.pow(2) / self.mu).sum(dim=-1).mean() - 1.0
        return {
            "q_mean": (pi * q).sum(dim=-1).mean(),
            "entropy": entropy,
            "chi2_to_behaviour": chi2,
        }

    def act(self, obs: Tensor, *, explore: bool = False) -> Tensor:
        """Play the mixture: one iterate t drawn uniformly (shared by the agents), then each
        agent's ``pi_t^i`` at its context. ``obs (B, N, C)`` → int64 ``(B, N)``."""
        del explore  # the mixture is the policy
        hist = self.iterates().to(obs.device)  # (T, C, N, A)
        b = obs.shape[0]
        t = torch.randint(hist.shape[0], (b,), generator=self.generator).to(obs.device)
        ctx = obs[:, 0].argmax(dim=-1)  # (B,)
        probs = hist[t, ctx]  # (B, N, A)
        n, a = probs.shape[1:]
        draws = torch.multinomial(probs.reshape(b * n, a).cpu(), 1, generator=self.generator)
        return draws.reshape(b, n).to(obs.device)

    def state_dict(self) -> dict[str, Any]:
        """Critic, optimiser, iterates, counters and generator."""
        return {
            "critic": self.critic.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "logits": self.logits.cpu().clone(),
            "history": self.history.clone(),
            "critic_updates": self.critic_updates,
            "iteration": self.iteration,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.critic.load_state_dict(state["critic"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.logits = state["logits"].to(self.device)
        self.history.copy_(state["history"])
        self.critic_updates = int(state["critic_updates"])
        self.iteration = int(state["iteration"])
        self.generator.set_state(state["generator"])
