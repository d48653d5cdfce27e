"""The losses against hand-computed values, a loop reference of the drift field, invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from driftql import losses
from driftql.losses import drift_field, drift_loss
from hypothesis import given, settings
from hypothesis import strategies as st

# ------------------------------------------------------------------------------- drift field


def _t(values: list[float]) -> torch.Tensor:
    """1-D points of one state as a (1, N, 1) tensor."""
    return torch.tensor(values, dtype=torch.float64).reshape(1, -1, 1)


def test_attraction_points_at_the_data_action() -> None:
    gen = torch.tensor([[[0.2, -0.4], [-0.6, 0.1], [0.9, 0.9]]])
    pos = torch.tensor([[[0.1, 0.3]]])
    field = drift_field(gen, pos, temperature=0.2)
    # One positive: its softmax weight is 1, so V+ is exactly the displacement to it.
    torch.testing.assert_close(field.attract, pos - gen, rtol=0, atol=1e-7)


def test_attraction_with_two_positives_is_kernel_weighted() -> None:
    # 1-D, one candidate at 0, positives at 0.2 and -0.6, Laplace tau 0.5 (A = 1: no dim scale).
    gen = _t([0.0, 0.5])
    pos = _t([0.2, -0.6])
    field = drift_field(gen, pos, temperature=0.5)
    w1, w2 = math.exp(-0.2 / 0.5), math.exp(-0.6 / 0.5)
    expected = (w1 * 0.2 + w2 * -0.6) / (w1 + w2)
    assert field.attract[0, 0, 0].item() == pytest.approx(expected, abs=1e-9)


def test_two_candidates_by_hand() -> None:
    # Data action 0, candidates -0.5 and 0.5. With N = 2 each repels only the other (weight 1):
    # V_1 = (0 - (-0.5)) - (0.5 - (-0.5)) = -0.5: it moves away from its neighbour.
    field = drift_field(_t([-0.5, 0.5]), _t([0.0]), temperature=0.2)
    assert field.attract.flatten().tolist() == pytest.approx([0.5, -0.5])
    assert field.repel.flatten().tolist() == pytest.approx([1.0, -1.0])
    assert field.total.flatten().tolist() == pytest.approx([-0.5, 0.5])
    loss, metrics = drift_loss(_t([-0.5, 0.5]), _t([0.0]), temperature=0.2)
    # Targets -1 and 1, so each element is off by 0.5: mean 0.25.
    assert loss.item() == pytest.approx(0.25)
    assert metrics["drift_norm"].item() == pytest.approx(0.5, abs=1e-6)
    assert metrics["data_mse"].item() == pytest.approx(0.25)


def test_target_is_clipped_to_the_action_box() -> None:
    # V = -0.8 / +0.8, so the unclipped targets -1.6 / 1.6 become -1 / 1: loss 0.2^2.
    loss, _ = drift_loss(_t([-0.8, 0.8]), _t([0.0]), temperature=0.2)
    assert loss.item() == pytest.approx(0.04)
    # eta scales the step: with eta = 0.5 the targets are -1.2 / 1.2, still clipped.
    loss, _ = drift_loss(_t([-0.8, 0.8]), _t([0.0]), temperature=0.2, eta=0.5)
    assert loss.item() == pytest.approx(0.04)
    loss, _ = drift_loss(_t([-0.2, 0.2]), _t([0.0]), temperature=0.2, eta=0.5)
    assert loss.item() == pytest.approx(0.01)  # steps of 0.1


@pytest.mark.parametrize("kernel", ["laplace", "gaussian"])
def test_three_candidates_repulsion_weights_by_hand(kernel: str) -> None:
    pts = [0.0, 0.3, 1.0]
    tau = 0.5
    field = drift_field(_t(pts), _t([0.4]), temperature=tau, kernel=kernel)  # type: ignore[arg-type]

    def logit(d: float) -> float:
        return -d / tau if kernel == "laplace" else -(d * d) / (2 * tau * tau)

    for i, x in enumerate(pts):
        others = [y for k, y in enumerate(pts) if k != i]
        w = [math.exp(logit(abs(y - x))) for y in others]
        repel = sum(wk * (y - x) for wk, y in zip(w, others, strict=True)) / sum(w)
        assert field.repel[0, i, 0].item() == pytest.approx(repel, abs=1e-9)
        assert field.total[0, i, 0].item() == pytest.approx((0.4 - x) - repel, abs=1e-9)


def test_dim_scale_makes_the_field_independent_of_action_size() -> None:
    # Points c_i * (1, 1, 1, 1): distance 2 |c_i - c_k|, scaled by sqrt(4) -> |c_i - c_k|,
    # so the 4-D field is the 1-D field on every coordinate.
    c = [-0.3, 0.1, 0.6]
    one = drift_field(_t(c), _t([0.2]), temperature=0.3)
    four = drift_field(_t(c).expand(1, 3, 4), _t([0.2]).expand(1, 1, 4), temperature=0.3)
    torch.testing.assert_close(four.total, one.total.expand(1, 3, 4))
    unscaled = drift_field(
        _t(c).expand(1, 3, 4), _t([0.2]).expand(1, 1, 4), temperature=0.3, dim_scale=False
    )
    assert not torch.allclose(unscaled.total, four.total)


def _reference_field(
    gen: np.ndarray, pos: np.ndarray, tau: float, kernel: str, normalize: bool
) -> np.ndarray:
    """The formula written as loops, with the official 1e6 self-distance instead of a mask."""
    out = np.zeros_like(gen)
    batch, num, dim = gen.shape
    eps = 1e-12
    for b in range(batch):
        v = np.zeros((num, dim))
        for i in range(num):

            def logits(points: np.ndarray, skip: int | None, i: int = i, b: int = b) -> np.ndarray:
                d = np.sqrt(((points - gen[b, i]) ** 2).sum(-1) + eps) / math.sqrt(dim)
                if skip is not None:
                    d[skip] = 1e6
                return -d / tau if kernel == "laplace" else -(d**2) / (2 * tau * tau)

            lp = logits(pos[b], None)
            wp = np.exp(lp - lp.max())
            wp /= wp.sum()
            ln = logits(gen[b], i)
            wn = np.exp(ln - ln.max())
            wn /= wn.sum()
            attract = (wp[:, None] * (pos[b] - gen[b, i])).sum(0)
            repel = (wn[:, None] * (gen[b] - gen[b, i])).sum(0)
            v[i] = attract - repel
        if normalize:
            v /= math.sqrt((v**2).sum(-1).mean() / dim + eps)
        out[b] = v
    return out


@pytest.mark.parametrize("kernel", ["laplace", "gaussian"])
@pytest.mark.parametrize("normalize", [False, True])
def test_drift_field_matches_a_loop_reference(kernel: str, normalize: bool) -> None:
    rng = np.random.default_rng(0)
    gen = rng.uniform(-1, 1, size=(3, 5, 3))
    pos = rng.uniform(-1, 1, size=(3, 2, 3))
    got = drift_field(
        torch.from_numpy(gen),
        torch.from_numpy(pos),
        temperature=0.4,
        kernel=kernel,  # type: ignore[arg-type]
        normalize=normalize,
    ).total.numpy()
    np.testing.assert_allclose(got, _reference_field(gen, pos, 0.4, kernel, normalize), atol=1e-10)


def test_candidates_at_the_data_action_are_a_fixed_point() -> None:
    gen = torch.full((2, 4, 3), 0.25, dtype=torch.float64, requires_grad=True)
    pos = torch.full((2, 1, 3), 0.25, dtype=torch.float64)
    field = drift_field(gen.detach(), pos, temperature=0.2)
    assert field.total.abs().max().item() == 0.0
    loss, _ = drift_loss(gen, pos, temperature=0.2)
    loss.backward()
    assert loss.item() == 0.0
    assert gen.grad is not None
    assert gen.grad.abs().max().item() == 0.0


def test_repulsion_balances_attraction_at_a_spread_fixed_point() -> None:
    # Follow the field itself (g <- g + 0.1 V) to its equilibrium: the candidates settle apart
    # from each other (repulsion is active) while the total field, and so the gradient, is zero.
    pos = torch.tensor([[[0.1, -0.05]]], dtype=torch.float64)
    gen = torch.tensor(
        [[[0.3, 0.1], [-0.2, 0.25], [0.05, -0.3], [-0.1, -0.05], [0.2, -0.15], [-0.25, -0.2]]],
        dtype=torch.float64,
    )
    start = drift_field(gen, pos, temperature=0.2).total
    assert start.abs().max().item() > 0.1  # far from equilibrium where it starts
    for _ in range(1500):
        gen = gen + 0.1 * drift_field(gen, pos, temperature=0.2).total
    field = drift_field(gen, pos, temperature=0.2)
    assert field.total.abs().max().item() < 1e-6
    assert field.repel.norm(dim=-1).min().item() > 0.05  # repulsion is not zero ...
    pair = torch.cdist(gen[0], gen[0]) + torch.eye(6, dtype=torch.float64)
    assert pair.min().item() > 0.1  # ... and keeps every pair apart
    assert gen.abs().max().item() < 1.0  # inside the box, so clipping plays no part
    g = gen.clone().requires_grad_(True)
    loss, _ = drift_loss(g, pos, temperature=0.2)
    loss.backward()
    assert g.grad is not None
    assert g.grad.abs().max().item() < 1e-7


def test_drift_loss_gradient_moves_candidates_along_the_field() -> None:
    gen = torch.tensor([[[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6]]], requires_grad=True)
    pos = torch.tensor([[[0.0, 0.1]]])
    loss, _ = drift_loss(gen, pos, temperature=0.3)
    loss.backward()
    field = drift_field(gen.detach(), pos, temperature=0.3).total
    # Unclipped: d loss / d g = -2 V / (B N A).
    assert gen.grad is not None
    torch.testing.assert_close(gen.grad, -2 * field / gen.numel())


def test_clipped_candidates_at_the_boundary_get_no_outward_push() -> None:
    # Candidate at the upper bound pushed further out: its target is clipped back to 1.
    gen = _t([1.0, 0.0]).float().requires_grad_(True)
    loss, _ = drift_loss(gen, _t([0.0]).float(), temperature=0.2)
    loss.backward()
    assert gen.grad is not None
    assert gen.grad[0, 0, 0].item() == 0.0


def test_drift_field_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="N >= 2"):
        drift_field(torch.zeros(2, 1, 3), torch.zeros(2, 1, 3), temperature=0.2)
    with pytest.raises(ValueError, match="pos must be"):
        drift_field(torch.zeros(2, 4, 3), torch.zeros(2, 1, 2), temperature=0.2)
    with pytest.raises(ValueError, match=r"\(B, N, A\)"):
        drift_field(torch.zeros(4, 3), torch.zeros(1, 3), temperature=0.2)
    with pytest.raises(ValueError, match="temperature"):
        drift_field(torch.zeros(2, 4, 3), torch.zeros(2, 1, 3), temperature=0.0)
    with pytest.raises(ValueError, match="kernel"):
        drift_field(torch.zeros(2, 4, 3), torch.zeros(2, 1, 3), temperature=0.2, kernel="rbf")  # type: ignore[arg-type]


_points = st.lists(st.floats(-1.0, 1.0, allow_nan=False, width=32), min_size=12, max_size=12).map(
    lambda xs: torch.tensor(xs, dtype=torch.float64).reshape(1, 4, 3)
)


@settings(max_examples=40, deadline=None)
@given(
    gen=_points,
    shift=st.lists(st.floats(-2.0, 2.0, width=32), min_size=3, max_size=3),
    kernel=st.sampled_from(["laplace", "gaussian"]),
    tau=st.floats(0.05, 2.0),
)
def test_field_is_translation_and_permutation_equivariant(
    gen: torch.Tensor, shift: list[float], kernel: str, tau: float
) -> None:
    pos = gen[:, :1] * 0.5
    base = drift_field(gen, pos, temperature=tau, kernel=kernel).total  # type: ignore[arg-type]
    c = torch.tensor(shift, dtype=torch.float64)
    moved = drift_field(gen + c, pos + c, temperature=tau, kernel=kernel).total  # type: ignore[arg-type]
    torch.testing.assert_close(moved, base, atol=1e-9, rtol=1e-7)
    perm = torch.tensor([2, 0, 3, 1])
    permuted = drift_field(gen[:, perm], pos, temperature=tau, kernel=kernel).total  # type: ignore[arg-type]
    torch.testing.assert_close(permuted, base[:, perm], atol=1e-12, rtol=1e-9)


# ------------------------------------------------------------------------------- critic / actor


def test_td_target_by_hand() -> None:
    reward = torch.tensor([1.0, 2.0])
    not_done = torch.tensor([1.0, 0.0])
    next_q = torch.tensor([[3.0, 5.0], [4.0, 1.0]])  # (E=2, B=2)
    got_min = losses.td_target(reward, not_done, next_q, discount=0.9, q_agg="min")
    got_mean = losses.td_target(reward, not_done, next_q, discount=0.9, q_agg="mean")
    assert got_min.tolist() == pytest.approx([1 + 0.9 * 3.0, 2.0])  # the terminal row ignores Q
    assert got_mean.tolist() == pytest.approx([1 + 0.9 * 3.5, 2.0])
    with pytest.raises(ValueError, match="q_agg"):
        losses.aggregate_q(next_q, "max")  # type: ignore[arg-type]


def test_critic_loss_by_hand() -> None:
    q = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    target = torch.tensor([1.0, 1.0], requires_grad=True)
    loss, metrics = losses.critic_loss(q, target)
    assert loss.item() == pytest.approx((0 + 1 + 4 + 9) / 4)
    assert metrics["q_max"].item() == 4.0
    assert metrics["q_min"].item() == 1.0
    assert metrics["q_mean"].item() == 2.5
    loss.backward()
    assert target.grad is None  # the target is a constant of the critic loss


def test_q_loss_by_hand() -> None:
    q = torch.tensor([[1.0, 3.0], [2.0, -1.0]])
    mean_loss, metrics = losses.q_loss(q, q_agg="mean", normalize=False)
    assert mean_loss.item() == pytest.approx(-1.25)  # per-state means 1.5 and 1.0
    assert metrics["actor_q"].item() == pytest.approx(1.25)
    min_loss, _ = losses.q_loss(q, q_agg="min", normalize=False)
    assert min_loss.item() == pytest.approx(0.0)  # per-state minima 1 and -1
    norm_loss, _ = losses.q_loss(q, q_agg="mean", normalize=True)
    assert norm_loss.item() == pytest.approx(-1.25 / (1.25 + 1e-6))


def test_flow_distillation_and_bc_losses_by_hand() -> None:
    x0 = torch.tensor([[0.0, 1.0]])
    x1 = torch.tensor([[0.5, -0.5]])
    exact, _ = losses.flow_matching_loss(x1 - x0, x0, x1)
    assert exact.item() == 0.0
    off, _ = losses.flow_matching_loss(torch.zeros(1, 2), x0, x1)
    assert off.item() == pytest.approx((0.25 + 2.25) / 2)
    teacher = torch.tensor([[0.2, 0.2]], requires_grad=True)
    student = torch.tensor([[0.0, 0.6]], requires_grad=True)
    distill, _ = losses.distillation_loss(student, teacher)
    assert distill.item() == pytest.approx((0.04 + 0.16) / 2)
    distill.backward()
    assert teacher.grad is None  # the teacher is a target, never trained by distillation
    bc, _ = losses.bc_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]))
    assert bc.item() == pytest.approx(0.5)


def test_euler_flow_by_hand() -> None:
    noise = torch.tensor([[0.5, -0.8]])
    # dx/dt = -x: ten Euler steps multiply by (1 - 1/10)^10.
    out = losses.euler_flow(lambda x, t: -x, noise, 10)
    torch.testing.assert_close(out, noise * 0.9**10)
    # dx/dt = t: Euler sums i/10 * 1/10 for i = 0..9 = 0.45 (not the exact 0.5).
    out = losses.euler_flow(lambda x, t: t.expand_as(x), torch.zeros(1, 2), 10)
    torch.testing.assert_close(out, torch.full((1, 2), 0.45))
    # The endpoint is clipped to the action box.
    out = losses.euler_flow(lambda x, t: torch.full_like(x, 3.0), torch.zeros(1, 2), 4)
    assert out.tolist() == [[1.0, 1.0]]
    with pytest.raises(ValueError, match="steps"):
        losses.euler_flow(lambda x, t: x, noise, 0)
