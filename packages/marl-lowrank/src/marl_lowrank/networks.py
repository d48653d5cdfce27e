"""Critic classes of interaction rank K and the shared decentralised actor.

Every critic evaluates all N agents' critics at once: ``critic(obs, action, own) -> (B, N)``,
where entry ``[b, i]`` is agent i's value Q^i at the joint action ``action[b]`` with agent i's
own action replaced by ``own[b, i]`` (a unilateral deviation; ``own=None`` keeps the joint
action). The actor loss passes the actors' live actions as ``own`` and detached actions as
``action``, so agent i's loss moves agent i's action only; DR-AC evaluates deviations the same
way. Nothing loops over agents, pairs or subsets in Python: pairs are a broadcast ``(B, N, N,
H)`` tensor, subsets an index gather.

Terms share one network across agents, fed one-hot agent ids (``agent_id``), like the paper's
actors. The first layer of a term network is split into the part that sees agent i and the
part that sees agent j (:class:`SplitMLP`), which equals one linear layer on their concatenation
but costs O(N H) instead of O(N^2 H) before the first activation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from rl_nets import MLP
from torch import Tensor, nn

from marl_lowrank.config import CriticConfig, CriticKind

__all__ = [
    "Actor",
    "Critic",
    "IR1Critic",
    "IR2Critic",
    "IRKCritic",
    "IndependentCritic",
    "JointCritic",
    "SplitMLP",
    "deviation_actions",
    "make_critic",
]


def _check_inputs(obs: Tensor, action: Tensor, own: Tensor | None, n: int, a_dim: int) -> None:
    if obs.ndim != 3 or obs.shape[1] != n:
        raise ValueError(f"obs must be (B, N={n}, obs_dim), got {tuple(obs.shape)}")
    if action.shape != (obs.shape[0], n, a_dim):
        raise ValueError(
            f"action must be (B, N, action_dim) = {(obs.shape[0], n, a_dim)}, got "
            f"{tuple(action.shape)}"
        )
    if own is not None and own.shape != action.shape:
        raise ValueError(f"own must have the action's shape {tuple(action.shape)}, got {own.shape}")


def deviation_actions(action: Tensor, own: Tensor) -> Tensor:
    """Joint actions seen by each agent's critic: row i is ``action`` with agent i's entry
    replaced by ``own[:, i]``.

    Args:
        action: ``(B, N, A)`` joint action.
        own: ``(B, N, A)`` each agent's own (deviating) action.

    Returns:
        ``(B, N, N, A)``: ``[b, i, j] = own[b, i] if i == j else action[b, j]``.
    """
    n = action.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=action.device)[None, :, :, None]  # (1, N, N, 1)
    return torch.where(eye, own[:, :, None, :], action[:, None, :, :])


class SplitMLP(nn.Module):
    """An MLP over ``concat(x_i, y_j)`` for every pair ``(i, j)``, its first layer split so that
    ``x`` and ``y`` are projected once: ``h_ij = act(W_x x_i + W_y y_j + b)``.

    Shapes:
        ``pairs(x, y)``: ``(B, N, Dx)``, ``(B, M, Dy)`` → ``(B, N, M)``;
        ``diag(x, y)``: ``(..., Dx)``, ``(..., Dy)`` → ``(...)`` (matched rows).
    """

    def __init__(self, x_dim: int, y_dim: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        width = hidden_sizes[0]
        self.x_in = nn.Linear(x_dim, width)
        self.y_in = nn.Linear(y_dim, width, bias=False)
        self.rest = MLP(width, 1, tuple(hidden_sizes[1:]))

    def pairs(self, x: Tensor, y: Tensor) -> Tensor:
        """Every pair: ``(B, N, Dx)``, ``(B, M, Dy)`` → ``(B, N, M)``."""
        h = self.x_in(x)[:, :, None, :] + self.y_in(y)[:, None, :, :]  # (B, N, M, H)
        return self.rest(torch.relu(h)).squeeze(-1)

    def pairs_sum(self, x: Tensor, y: Tensor) -> Tensor:
        """``pairs(x, y).sum(-1)``: ``(B, N, Dx)``, ``(B, M, Dy)`` → ``(B, N)``.

        With one hidden layer (the rest is the linear output layer) the sum over j moves inside
        it exactly, ``sum_j (w . h_ij + b) = M (w . mean_j h_ij + b)``, so the output layer runs
        on ``(B, N, H)`` instead of ``(B, N, M, H)``.
        """
        if len(self.rest.hidden) > 0:
            return self.pairs(x, y).sum(dim=-1)
        h = torch.relu(self.x_in(x)[:, :, None, :] + self.y_in(y)[:, None, :, :])  # (B, N, M, H)
        return y.shape[1] * self.rest(h.mean(dim=2)).squeeze(-1)

    def diag(self, x: Tensor, y: Tensor) -> Tensor:
        """Matched rows: ``(..., Dx)``, ``(..., Dy)`` → ``(...)``."""
        return self.rest(torch.relu(self.x_in(x) + self.y_in(y))).squeeze(-1)


class Critic(nn.Module):
    """Base of the critic classes: ids, shapes and the deviation contract (module doc)."""

    kind: CriticKind

    def __init__(self, num_agents: int, obs_dim: int, action_dim: int, agent_id: bool) -> None:
        super().__init__()
        self.num_agents = num_agents
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.id_dim = num_agents if agent_id else 0
        ids = torch.eye(num_agents) if agent_id else torch.zeros(num_agents, 0)
        self.register_buffer("ids", ids, persistent=False)

    def _with_id(self, obs: Tensor) -> Tensor:
        """``(B, N, D)`` → ``(B, N, D + id_dim)``."""
        ids: Tensor = self.ids  # pyright: ignore[reportAssignmentType]
        return torch.cat([obs, ids.expand(obs.shape[0], -1, -1)], dim=-1)

    def forward(self, obs: Tensor, action: Tensor, own: Tensor | None = None) -> Tensor:
        """``(B, N, D)``, ``(B, N, A)``, ``(B, N, A) | None`` → ``(B, N)`` (module doc)."""
        _check_inputs(obs, action, own, self.num_agents, self.action_dim)
        return self._values(obs, action, own)

    def _values(self, obs: Tensor, action: Tensor, own: Tensor | None) -> Tensor:
        raise NotImplementedError

    def local_values(
        self, obs: Tensor, probs: Tensor, *, samples: int, generator: torch.Generator
    ) -> Tensor:
        """Agent i's local Q over its discrete actions against the others' product policy:
        ``E_{a_-i ~ probs_-i} Q^i(s, k, a_-i)`` (actions one-hot).

        This base version averages ``samples`` joint draws of the others' actions (the joint
        and irk critics); the ir1, ir2 and independent critics marginalise exactly.

        Args:
            obs: ``(C, N, obs_dim)``, one row per context.
            probs: ``(C, N, A)`` every agent's action probabilities.
            samples: Monte Carlo draws of the others' actions.
            generator: Random source (CPU) of the draws.

        Returns:
            ``(C, N, A)``.
        """
        c, n, a = probs.shape
        draws = torch.multinomial(probs.reshape(c * n, a).cpu(), samples, True, generator=generator)
        joint = draws.reshape(c, n, samples).permute(2, 0, 1).to(obs.device)  # (S, C, N)
        action = torch.nn.functional.one_hot(joint, a).float()  # (S, C, N, A)
        eye = torch.eye(a, device=obs.device)
        own = eye[:, None, None, None, :].expand(a, samples, c, n, a)  # (K, S, C, N, A)
        rows = a * samples * c
        values = self(
            obs[None, None].expand(a, samples, c, n, -1).reshape(rows, n, -1),
            action[None].expand(a, samples, c, n, a).reshape(rows, n, a),
            own.reshape(rows, n, a),
        ).reshape(a, samples, c, n)
        return values.mean(dim=1).permute(1, 2, 0)  # (C, N, K)

    def _own_action_values(self, obs: Tensor, probs: Tensor) -> Tensor:
        """``Q^i(s, k, a_-i)`` for every own action k at one fixed ``a_-i`` (the others' most
        likely actions): ``(C, N, A)``. Exact local values up to a constant per (context,
        agent) for critics whose other-agent terms do not involve agent i's action."""
        c, n, a = probs.shape
        fixed = torch.nn.functional.one_hot(probs.argmax(dim=-1), a).float()  # (C, N, A)
        eye = torch.eye(a, device=obs.device)
        own = eye[:, None, None, :].expand(a, c, n, a).reshape(a * c, n, a)
        values = self(
            obs[None].expand(a, c, n, -1).reshape(a * c, n, -1),
            fixed[None].expand(a, c, n, a).reshape(a * c, n, a),
            own,
        )
        return values.reshape(a, c, n).permute(1, 2, 0)


class IndependentCritic(Critic):
    """Q^i(s, a) = f(o_i, id_i, a_i): agent i ignores the others' actions (independent
    learning)."""

    kind: CriticKind = "independent"

    def __init__(self, n: int, obs_dim: int, action_dim: int, cfg: CriticConfig) -> None:
        super().__init__(n, obs_dim, action_dim, cfg.agent_id)
        self.net = MLP(obs_dim + self.id_dim + action_dim, 1, cfg.hidden_sizes)

    def _values(self, obs: Tensor, action: Tensor, own: Tensor | None) -> Tensor:
        mine = action if own is None else own
        return self.net(torch.cat([self._with_id(obs), mine], dim=-1)).squeeze(-1)

    def local_values(
        self, obs: Tensor, probs: Tensor, *, samples: int, generator: torch.Generator
    ) -> Tensor:
        """Exact: Q^i does not depend on the others (``samples``, ``generator`` unused)."""
        del samples, generator
        return self._own_action_values(obs, probs)


class IR1Critic(Critic):
    """Q^i(s, a) = sum_j f(o_i, id_i, o_j, id_j, a_j): interaction rank 1, one term per agent
    (the single-agent value decomposition of VDN-style critics, here agent i's own sum)."""

    kind: CriticKind = "ir1"

    def __init__(self, n: int, obs_dim: int, action_dim: int, cfg: CriticConfig) -> None:
        super().__init__(n, obs_dim, action_dim, cfg.agent_id)
        d = obs_dim + self.id_dim
        self.term = SplitMLP(d, d + action_dim, cfg.hidden_sizes)

    def _values(self, obs: Tensor, action: Tensor, own: Tensor | None) -> Tensor:
        me = self._with_id(obs)  # (B, N, D')
        theirs = torch.cat([me, action], dim=-1)
        total = self.term.pairs_sum(me, theirs)  # (B, N): sum_j f(i, j at a_j)
        if own is None:
            return total
        # Agent i's own term at its deviating action replaces the j = i term.
        own_term = self.term.diag(me, torch.cat([me, own], dim=-1))  # (B, N)
        return total - self.term.diag(me, theirs) + own_term

    def local_values(
        self, obs: Tensor, probs: Tensor, *, samples: int, generator: torch.Generator
    ) -> Tensor:
        """Exact up to a constant per (context, agent): only agent i's own term depends on its
        action, so the others' terms at any fixed actions shift every action's value equally
        (mirror descent is unchanged by such shifts)."""
        del samples, generator
        return self._own_action_values(obs, probs)


class IR2Critic(Critic):
    """Q^i(s, a) = sum_j f(o_i, id_i, a_i, o_j, id_j, a_j): interaction rank 2, one shared pair
    network summed over j (j = i included, as in the game's sum_j a_i a_j)."""

    kind: CriticKind = "ir2"

    def __init__(self, n: int, obs_dim: int, action_dim: int, cfg: CriticConfig) -> None:
        super().__init__(n, obs_dim, action_dim, cfg.agent_id)
        d = obs_dim + self.id_dim + action_dim
        self.term = SplitMLP(d, d, cfg.hidden_sizes)

    def _values(self, obs: Tensor, action: Tensor, own: Tensor | None) -> Tensor:
        me = self._with_id(obs)  # (B, N, D')
        others = torch.cat([me, action], dim=-1)  # agent j's side: the joint action
        mine = others if own is None else torch.cat([me, own], dim=-1)
        total = self.term.pairs_sum(mine, others)  # (B, N): sum_j f(i at own, j at action)
        if own is None:
            return total
        # The j = i term sees agent i's deviation on both sides.
        return total - self.term.diag(mine, others) + self.term.diag(mine, mine)

    def local_values(
        self, obs: Tensor, probs: Tensor, *, samples: int, generator: torch.Generator
    ) -> Tensor:
        """Exact: ``sum_{j != i} sum_b probs_j(b) f(i@k, j@b) + f(i@k, i@k)``, from one pair
        tensor over every (agent, action) twice, ``(C, N A, N A)`` (``samples`` and
        ``generator`` unused)."""
        del samples, generator
        c, n, a = probs.shape
        me = self._with_id(obs)  # (C, N, D')
        eye_a = torch.eye(a, device=obs.device)
        rows = torch.cat([me[:, :, None].expand(c, n, a, -1), eye_a.expand(c, n, a, a)], dim=-1)
        rows = rows.reshape(c, n * a, -1)  # (C, N A, D'+A): agent i playing action k
        pairs = self.term.pairs(rows, rows).reshape(c, n, a, n, a)  # [c, i, k, j, b]
        expect = (pairs * probs[:, None, None, :, :]).sum(dim=-1)  # (C, N, A, N): E_b over j
        off_diag = 1.0 - torch.eye(n, device=obs.device)  # the others j != i
        others = (expect * off_diag[None, :, None, :]).sum(dim=-1)  # (C, N, A)
        # f(i@k, i@k): the j = i term at i's own action, [c, i, k, i, k].
        own = pairs.diagonal(dim1=1, dim2=3).diagonal(dim1=1, dim2=2)  # (C, N, A)
        return others + own

    def forward_looped(self, obs: Tensor, action: Tensor) -> Tensor:
        """The same values with a Python loop over agents i (the reference the tests and the
        update-time benchmark compare against): ``(B, N, D)``, ``(B, N, A)`` → ``(B, N)``."""
        _check_inputs(obs, action, None, self.num_agents, self.action_dim)
        rows = torch.cat([self._with_id(obs), action], dim=-1)  # (B, N, D')
        values = []
        for i in range(self.num_agents):
            x = rows[:, i : i + 1].expand_as(rows)  # agent i against every j
            values.append(self.term.diag(x, rows).sum(dim=-1))
        return torch.stack(values, dim=1)


class JointCritic(Critic):
    """Q^i(s, a) = f(o_i, id_i, (o_j, a_j) for every j in order): the full joint-action critic
    (interaction rank N)."""

    kind: CriticKind = "joint"

    def __init__(self, n: int, obs_dim: int, action_dim: int, cfg: CriticConfig) -> None:
        super().__init__(n, obs_dim, action_dim, cfg.agent_id)
        d = obs_dim + self.id_dim
        self.net = MLP(d + n * (obs_dim + action_dim), 1, cfg.hidden_sizes)

    def _values(self, obs: Tensor, action: Tensor, own: Tensor | None) -> Tensor:
        b, n = obs.shape[:2]
        me = self._with_id(obs)  # (B, N, D')
        joint = (
            action[:, None].expand(b, n, n, -1) if own is None else deviation_actions(action, own)
        )
        # Agent j's slot in the flat input says who it is: no id per member.
        seen = torch.cat([obs[:, None].expand(b, n, n, -1), joint], dim=-1)  # (B, N, N, D+A)
        x = torch.cat([me, seen.reshape(b, n, -1)], dim=-1)  # (B, N, D' + N (D+A))
        return self.net(x).squeeze(-1)


class IRKCritic(Critic):
    """Q^i(s, a) = sum over subsets S of at most K agents of f_|S|(o_i, id_i, (o_j, id_j, a_j)
    for j in S): the general K-IR class, one shared network per subset size. Subsets are an
    index tensor of the C(N, k) combinations, so this is for small N and K (N = 6, K = 3: 41
    subsets)."""

    kind: CriticKind = "irk"

    def __init__(self, n: int, obs_dim: int, action_dim: int, cfg: CriticConfig) -> None:
        super().__init__(n, obs_dim, action_dim, cfg.agent_id)
        self.k = min(cfg.k, n)
        d = obs_dim + self.id_dim
        self.nets = nn.ModuleList(
            MLP(d + size * (d + action_dim), 1, cfg.hidden_sizes) for size in range(1, self.k + 1)
        )
        for size in range(1, self.k + 1):
            combos = torch.tensor(list(itertools.combinations(range(n), size)), dtype=torch.long)
            self.register_buffer(f"subsets_{size}", combos, persistent=False)

    def _values(self, obs: Tensor, action: Tensor, own: Tensor | None) -> Tensor:
        b, n = obs.shape[:2]
        me = self._with_id(obs)  # (B, N, D')
        joint = (
            action[:, None].expand(b, n, n, -1) if own is None else deviation_actions(action, own)
        )
        members = torch.cat([me[:, None].expand(b, n, n, -1), joint], dim=-1)  # (B, N, N, F)
        total = obs.new_zeros(b, n)
        for size, net in zip(range(1, self.k + 1), self.nets, strict=True):  # K sizes, not agents
            idx: Tensor = getattr(self, f"subsets_{size}")  # (C, size)
            picked = members[:, :, idx]  # (B, N, C, size, F)
            c = idx.shape[0]
            x = torch.cat([me[:, :, None].expand(b, n, c, -1), picked.flatten(-2)], dim=-1)
            total = total + net(x).squeeze(-1).sum(dim=-1)
        return total


_CRITICS: dict[str, Callable[[int, int, int, CriticConfig], Critic]] = {
    "independent": IndependentCritic,
    "ir1": IR1Critic,
    "ir2": IR2Critic,
    "irk": IRKCritic,
    "joint": JointCritic,
}


def make_critic(cfg: CriticConfig, num_agents: int, obs_dim: int, action_dim: int) -> Critic:
    """The critic class ``cfg.kind`` for ``num_agents`` agents."""
    cls = _CRITICS[cfg.kind]
    return cls(num_agents, obs_dim, action_dim, cfg)


class Actor(nn.Module):
    """One deterministic policy shared by every agent: ``tanh(MLP(o_i, id_i))`` in [-1, 1].

    Shapes:
        ``forward``: ``(B, N, obs_dim)`` → ``(B, N, action_dim)``.
    """

    def __init__(
        self,
        num_agents: int,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
        *,
        agent_id: bool = True,
    ) -> None:
        super().__init__()
        self.num_agents = num_agents
        ids = torch.eye(num_agents) if agent_id else torch.zeros(num_agents, 0)
        self.register_buffer("ids", ids, persistent=False)
        self.net = MLP(obs_dim + ids.shape[1], action_dim, tuple(hidden_sizes))

    def forward(self, obs: Tensor) -> Tensor:
        ids: Tensor = self.ids  # pyright: ignore[reportAssignmentType]
        x = torch.cat([obs, ids.expand(obs.shape[0], -1, -1)], dim=-1)
        return torch.tanh(self.net(x))
