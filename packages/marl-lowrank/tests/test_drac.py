"""Exact CCE gaps by hand, the closed form against enumeration, mirror descent, and DR-AC
reaching a CCE of a small game from offline data."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from marl_lowrank.config import CriticConfig, DRACConfig, GameConfig
from marl_lowrank.data import MultiAgentBatches
from marl_lowrank.drac import (
    DRACAgent,
    behaviour_estimate,
    mirror_descent_step,
    tabular_cce_gap,
)
from marl_lowrank.game import action_values, make_game_dataset, mixture_cce_gap
from marl_lowrank.networks import make_critic

PURE = torch.eye(2)  # PURE[k]: play action k


def _profile(*actions: int) -> torch.Tensor:
    """One iterate of pure actions: ``(1, N, A)``."""
    return torch.stack([PURE[a] for a in actions])[None]


def test_cce_gap_by_hand_on_a_2x2_coordination_game() -> None:
    # Both get 1 when they match, 0 otherwise.
    payoffs = torch.stack([torch.eye(2), torch.eye(2)])  # (N=2, A, A)
    assert tabular_cce_gap(payoffs, _profile(0, 0)) == 0.0  # a pure equilibrium
    assert tabular_cce_gap(payoffs, _profile(0, 1)) == 1.0  # either gains 1 by matching
    # The mixture of (0, 0) and (1, 1) is a correlated, not a product, distribution: a CCE
    # (value 1; a fixed action earns 1/2 against it).
    assert tabular_cce_gap(payoffs, torch.cat([_profile(0, 0), _profile(1, 1)])) == 0.0
    # The mixture of (0, 1) and (1, 0): value 0, deviating to a fixed action earns 1/2.
    assert tabular_cce_gap(payoffs, torch.cat([_profile(0, 1), _profile(1, 0)])) == 0.5


def test_cce_gap_by_hand_on_the_prisoners_dilemma() -> None:
    # Actions (cooperate, defect); row payoffs R=3, S=0, T=5, P=1; symmetric.
    row = torch.tensor([[3.0, 0.0], [5.0, 1.0]])
    payoffs = torch.stack([row, row.T])
    assert tabular_cce_gap(payoffs, _profile(1, 1)) == 0.0  # mutual defection
    assert tabular_cce_gap(payoffs, _profile(0, 0)) == 2.0  # T - R
    # Player 1 mixes (1/2, 1/2), player 2 cooperates: player 2 gains (5+1)/2 - (3+0)/2 = 1.5;
    # player 1's best deviation (defect, 5) against its value (3+5)/2 = 4 gains 1.
    mixed = torch.tensor([[[0.5, 0.5], [1.0, 0.0]]])
    assert abs(tabular_cce_gap(payoffs, mixed) - 1.5) < 1e-12


def _game_payoffs(n: int, values: torch.Tensor) -> torch.Tensor:
    """The N-agent game as a payoff tensor ``(N, A, ..., A)``: ``v_i * sum_j v_j / N``."""
    a = values.numel()
    grids = torch.meshgrid(*[values] * n, indexing="ij")
    joint = torch.stack(grids)  # (N, A, ..., A): agent i's value at each joint action
    del a
    return joint * joint.sum(dim=0, keepdim=True) / n


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(2, 4),
    a=st.integers(2, 3),
    t=st.integers(1, 4),
    c=st.integers(1, 2),
    seed=st.integers(0, 10_000),
)
def test_closed_form_game_gap_equals_enumeration(n: int, a: int, t: int, c: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    iterates = torch.softmax(3 * torch.randn(t, c, n, a, generator=gen, dtype=torch.float64), -1)
    values = action_values(a).double()
    payoffs = _game_payoffs(n, values)
    # Contexts are uniform and the reward ignores them: the gap averages per-context gains.
    per_context = []
    for ctx in range(c):
        from marl_lowrank.drac import tabular_mixture_values

        value, dev = tabular_mixture_values(payoffs, iterates[:, ctx])
        per_context.append(dev.amax(dim=-1) - value)
    expected = max(0.0, float(torch.stack(per_context).mean(dim=0).amax()))
    assert abs(mixture_cce_gap(iterates, values) - expected) < 1e-9


def test_mixture_of_multiplicative_weights_iterates_approaches_equilibrium_in_rps() -> None:
    # Rock-paper-scissors, zero-sum: the last iterate of multiplicative weights cycles, the
    # uniform mixture of the iterates converges to the (coarse correlated) equilibrium.
    win = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], dtype=torch.float64)
    payoffs = torch.stack([win, -win])  # (2, 3, 3): zero-sum
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], dtype=torch.float64))
    mu = torch.full((2, 3), 1 / 3, dtype=torch.float64)
    history = []
    for _ in range(2000):
        pi = logits.softmax(-1)
        history.append(pi)
        q = torch.stack([win @ pi[1], -win.T @ pi[0]])  # each agent's local Q
        logits = mirror_descent_step(logits, q, mu, eta=0.1, reg="chi2", coef=0.0)
    iterates = torch.stack(history)
    assert tabular_cce_gap(payoffs, iterates[:1]) > 0.3
    assert tabular_cce_gap(payoffs, iterates) < 0.05  # O(sqrt(log A / T)) regret
    assert tabular_cce_gap(payoffs, iterates[-1:]) > 5 * tabular_cce_gap(payoffs, iterates)


def test_regularised_mirror_descent_converges_to_the_hand_computed_stationary_point() -> None:
    # Stationary point of max_pi <q, pi> - coef chi2(pi || mu) on the simplex:
    # q_k - 2 coef pi_k / mu_k = c, so pi_k = mu_k (q_k - c) / (2 coef). With q = (0, 0, 1),
    # mu = (0.7, 0.2, 0.1), coef = 2: sum_k pi_k = 1 gives -c = 3.9, pi = (0.6825, 0.195, 0.1225).
    mu = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    q = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    logits = mu.log()
    for _ in range(2000):
        logits = mirror_descent_step(logits, q, mu, eta=0.05, reg="chi2", coef=2.0)
    expected = torch.tensor([0.6825, 0.195, 0.1225], dtype=torch.float64)
    torch.testing.assert_close(logits.softmax(-1), expected, atol=1e-6, rtol=0)
    free = mu.log()
    for _ in range(200):  # without the regulariser the best action takes over
        free = mirror_descent_step(free, q, mu, eta=0.05, reg="chi2", coef=0.0)
    assert float(free.softmax(-1)[2]) > 0.99


def test_ir2_local_values_equal_enumeration_over_the_others() -> None:
    torch.manual_seed(0)
    n, a = 3, 2
    critic = make_critic(CriticConfig(kind="ir2", hidden_sizes=(8,)), n, 1, a)
    obs = torch.ones(1, n, 1)
    probs = torch.tensor([[[0.3, 0.7], [0.6, 0.4], [0.9, 0.1]]])
    exact = critic.local_values(obs, probs, samples=1, generator=torch.Generator())
    eye = torch.eye(a)
    expected = torch.zeros(1, n, a)
    for joint in torch.cartesian_prod(*[torch.arange(a)] * n):  # every joint action
        action = eye[joint][None]  # (1, N, A)
        weight = torch.prod(probs[0, torch.arange(n), joint])
        for i in range(n):
            p_i = probs[0, i, joint[i]]
            for k in range(a):
                own = action.clone()
                own[0, i] = eye[k]
                q = critic(obs, action, own=own)[0, i]
                expected[0, i, k] += weight / p_i * q  # the others' probability only
    expected /= 2  # each a_-i was visited once per own action a_i in {0, 1}
    torch.testing.assert_close(exact, expected.detach(), atol=1e-5, rtol=1e-5)


def test_drac_reaches_a_cce_of_the_game_from_biased_data() -> None:
    game = GameConfig(num_agents=4, num_actions=2, behaviour="biased", dataset_size=4000, sigma=0.1)
    data = make_game_dataset(game, seed=3)
    cfg = DRACConfig(
        critic=CriticConfig(kind="ir2", hidden_sizes=(32,)),
        critic_steps=400,
        iterations=400,
        eta=1.0,
        reg_coef=0.0,
        critic_lr=3e-3,
    )
    mu = behaviour_estimate(data, 1, 2, cfg.behaviour_smoothing)
    agent = DRACAgent(cfg, 4, 1, 2, mu, seed=0)
    batches = MultiAgentBatches(data, batch_size=256, seed=0, device="cpu")
    values = action_values(2)
    start = mixture_cce_gap(mu[None], values)
    for _ in range(agent.total_updates):
        agent.update(batches.sample())
    assert agent.done
    gap = mixture_cce_gap(agent.iterates(), values)
    assert start > 0.05, start
    assert gap < 0.02, (start, gap)
