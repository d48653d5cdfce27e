"""MPPI against known optima, reproducibility, warm starts, and the latent scorer by hand."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from mbsearch.config import PlannerConfig
from mbsearch.planner import latent_returns, mppi, policy_prior, reduce_critics, shift_plan
from torch import Tensor

DEFAULTS = PlannerConfig()  # TD-MPC2's: H 3, 6 iterations, 512 samples, 64 elites, T 0.5


def quadratic(target: Tensor, weight: Tensor | None = None):
    """score(actions (H, P, A)) = -sum_t,j w_tj (a_tj - c_tj)^2: maximised at ``target``."""
    w = torch.ones_like(target) if weight is None else weight

    def score(actions: Tensor) -> Tensor:
        return -(w.unsqueeze(1) * (actions - target.unsqueeze(1)).square()).sum(dim=(0, 2))

    return score


def test_one_dimensional_quadratic_optimum_is_found() -> None:
    target = torch.full((3, 1), 0.3)
    plan = mppi(
        quadratic(target), action_dim=1, cfg=DEFAULTS, generator=torch.Generator().manual_seed(0)
    )
    assert abs(float(plan.action[0]) - 0.3) < 0.05
    torch.testing.assert_close(plan.mean, target, atol=0.05, rtol=0)
    assert plan.value <= 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multi_dimensional_quadratic_optimum_is_found(seed: int) -> None:
    gen = torch.Generator().manual_seed(100 + seed)
    target = torch.rand(3, 4, generator=gen) * 1.6 - 0.8  # (H, A) in [-0.8, 0.8]
    weight = torch.rand(3, 4, generator=gen) * 4 + 1
    plan = mppi(
        quadratic(target, weight),
        action_dim=4,
        cfg=DEFAULTS,
        generator=torch.Generator().manual_seed(seed),
    )
    torch.testing.assert_close(plan.action, target[0], atol=0.1, rtol=0)
    torch.testing.assert_close(plan.mean, target, atol=0.1, rtol=0)
    # Far better than the zero plan it starts from.
    zero = quadratic(target, weight)(torch.zeros(3, 1, 4))[0]
    assert plan.value > 0.05 * zero


def test_an_optimum_at_the_bound_is_reached() -> None:
    target = torch.tensor([[1.0, -1.0]] * 3)
    plan = mppi(
        quadratic(target), action_dim=2, cfg=DEFAULTS, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(plan.action, target[0], atol=0.05, rtol=0)
    assert bool((plan.action.abs() <= 1).all())
    assert bool((plan.std >= DEFAULTS.min_std).all() and (plan.std <= DEFAULTS.max_std).all())


def test_plans_are_reproducible_with_a_generator() -> None:
    target = torch.tensor([[0.2, -0.4]] * 3)

    def run(seed: int):
        return mppi(
            quadratic(target),
            action_dim=2,
            cfg=DEFAULTS,
            generator=torch.Generator().manual_seed(seed),
        )

    a, b, c = run(7), run(7), run(8)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a.mean, c.mean)
    # The global RNG is never used.
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    run(7)
    assert torch.equal(torch.rand(1), before)


def test_a_perfect_prior_is_kept_among_the_elites() -> None:
    # A sharp optimum that Gaussian samples around 0 with std 2 essentially never hit: the
    # policy-prior sequence sits on it, is re-scored every iteration and pulls the plan there.
    target = torch.tensor([[0.9, -0.9, 0.9]] * 3)
    prior = target.unsqueeze(1).expand(3, 4, 3).clone()
    cfg = dataclasses.replace(DEFAULTS, num_pi_trajs=4, iterations=1)

    def sharp(actions: Tensor) -> Tensor:
        return -1e4 * (actions - target.unsqueeze(1)).square().sum(dim=(0, 2))

    plan = mppi(
        sharp, action_dim=3, cfg=cfg, generator=torch.Generator().manual_seed(0), prior=prior
    )
    torch.testing.assert_close(plan.action, target[0])


def test_warm_start_is_the_previous_plan_shifted_by_one() -> None:
    mean = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert torch.equal(shift_plan(mean), torch.tensor([[3.0, 4.0], [5.0, 6.0], [0.0, 0.0]]))
    # A warm start at the optimum stays there.
    target = torch.tensor([[0.5], [0.5], [0.5]])
    cfg = dataclasses.replace(DEFAULTS, iterations=1, max_std=0.05)
    plan = mppi(
        quadratic(target),
        action_dim=1,
        cfg=cfg,
        generator=torch.Generator().manual_seed(0),
        init_mean=target,
    )
    torch.testing.assert_close(plan.mean, target, atol=0.02, rtol=0)


def test_bad_shapes_are_rejected() -> None:
    gen = torch.Generator().manual_seed(0)
    score = quadratic(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"init_mean: expected shape \(3, 2\)"):
        mppi(score, action_dim=2, cfg=DEFAULTS, generator=gen, init_mean=torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"prior: expected shape \(3, K, 2\)"):
        mppi(score, action_dim=2, cfg=DEFAULTS, generator=gen, prior=torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match=r"score must return shape \(512,\)"):
        mppi(lambda a: a.sum(0), action_dim=2, cfg=DEFAULTS, generator=gen)
    with pytest.raises(ValueError, match=r"planner\.num_elites"):
        PlannerConfig(num_samples=32, num_pi_trajs=4, num_elites=64)
    with pytest.raises(ValueError, match=r"planner\.value_reduction"):
        PlannerConfig(value_reduction="max")  # type: ignore[arg-type]


class ToyModel:
    """z' = z + a (1-D), reward = z' , continuation 0 once z' > 2.5, critics [z, 2z, -z]."""

    def step(self, z: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        nz = z + action
        return nz, nz[:, 0], (nz[:, 0] <= 2.5).float()

    def policy(self, z: Tensor) -> Tensor:
        return torch.full_like(z, 0.5)

    def critics(self, z: Tensor, action: Tensor) -> Tensor:
        v = z[:, 0] + action[:, 0]
        return torch.stack([v, 2 * v, -v])  # (N=3, P)


def test_latent_returns_by_hand() -> None:
    actions = torch.tensor([[[1.0], [1.0]], [[1.0], [0.0]], [[1.0], [1.0]]])  # (H=3, P=2, 1)
    z0 = torch.tensor([0.0])
    g = 0.9
    # Sequence 0: z 1, 2, 3 (r 1, 2, 3); the third step terminates (3 > 2.5): no terminal value.
    v0 = 1 + g * 2 + g**2 * 3 + g**3 * 0.0 * (-(3 + 0.5))
    # Sequence 1: z 1, 1, 2 (r 1, 1, 2); terminal critics at z=2, a=0.5: [2.5, 5, -2.5].
    v1_min = 1 + g * 1 + g**2 * 2 + g**3 * (-2.5)
    v1_mean = 1 + g * 1 + g**2 * 2 + g**3 * (5 / 3)
    got = latent_returns(ToyModel(), z0, actions, discount=g, reduction="min")
    torch.testing.assert_close(got, torch.tensor([v0, v1_min]))
    got = latent_returns(ToyModel(), z0, actions, discount=g, reduction="mean")
    torch.testing.assert_close(got, torch.tensor([v0, v1_mean]))


def test_ensemble_reductions_by_hand() -> None:
    values = torch.tensor([[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0]])  # (N=3, P=2)
    assert torch.equal(reduce_critics(values, "min"), torch.tensor([-1.0, -2.0]))
    torch.testing.assert_close(reduce_critics(values, "mean"), torch.tensor([1.0, 2.5 / 3]))


def test_policy_prior_rolls_the_policy_through_the_model() -> None:
    gen = torch.Generator().manual_seed(0)
    prior = policy_prior(
        ToyModel(), torch.tensor([0.0]), horizon=3, count=5, noise=0.3, generator=gen
    )
    assert prior.shape == (3, 5, 1)
    assert torch.equal(prior[:, 0], torch.full((3, 1), 0.5))  # the first is the policy itself
    assert not torch.equal(prior[:, 1], prior[:, 0])
    assert bool((prior.abs() <= 1).all())
