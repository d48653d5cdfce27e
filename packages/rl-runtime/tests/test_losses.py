"""PPO's loss against hand-computed numbers, its gradients, and its invariants."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from rl_runtime.losses import ppo_loss

torch.set_num_threads(1)

F64 = torch.float64


def t(*xs: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(xs, dtype=F64, requires_grad=grad)


def close(a: torch.Tensor, b: float | torch.Tensor, atol: float = 1e-9) -> bool:
    b = torch.as_tensor(b, dtype=a.dtype)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=0, atol=atol))


# The hand-computed case: B = 4, clip_coef c = 0.2, no advantage normalisation.
RATIOS = (1.5, 0.9, 0.5, 0.5)
OLD_LOG_PROBS = (-1.0, -2.0, -0.5, -3.0)
ADVANTAGES = (2.0, -1.0, -1.0, 1.0)
OLD_VALUES = (1.0, 1.0, 0.0, 2.0)
NEW_VALUES = (1.5, 0.9, -0.5, 2.1)
RETURNS = (2.0, 0.0, 1.0, 2.0)
ENTROPY = (1.0, 2.0, 0.5, 0.5)


def hand_case(
    **kw: float | bool,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    new_lp = t(*(o + math.log(r) for o, r in zip(OLD_LOG_PROBS, RATIOS, strict=True)), grad=True)
    new_v = t(*NEW_VALUES, grad=True)
    args: dict[str, float | bool] = {
        "clip_coef": 0.2,
        "vf_coef": 0.5,
        "ent_coef": 0.01,
        "norm_adv": False,
    }
    args.update(kw)
    loss, metrics = ppo_loss(
        new_lp,
        t(*OLD_LOG_PROBS),
        t(*ADVANTAGES),
        new_v,
        t(*OLD_VALUES),
        t(*RETURNS),
        t(*ENTROPY),
        **args,  # pyright: ignore[reportArgumentType]
    )
    return loss, metrics, new_lp, new_v


def test_hand_computed_loss_and_metrics() -> None:
    loss, m, _, _ = hand_case()
    # Policy, per sample max(-A * r, -A * clip(r, 0.8, 1.2)):
    #   A = 2,  r = 1.5: max(-3.0, -2.4) = -2.4   (clipped: no more credit beyond 1.2)
    #   A = -1, r = 0.9: max(0.9, 0.9)   = 0.9    (inside the range)
    #   A = -1, r = 0.5: max(0.5, 0.8)   = 0.8    (clipped: the pessimistic bound)
    #   A = 1,  r = 0.5: max(-0.5, -0.8) = -0.5   (unclipped: the pessimistic bound)
    actor = (-2.4 + 0.9 + 0.8 - 0.5) / 4  # -0.3
    # Value, per sample max((V - R)^2, (V_old + clip(V - V_old, -0.2, 0.2) - R)^2):
    #   V = 1.5, V_old = 1, R = 2:  max(0.25, (1.2 - 2)^2 = 0.64)  = 0.64
    #   V = 0.9, V_old = 1, R = 0:  max(0.81, 0.81)                = 0.81
    #   V = -0.5, V_old = 0, R = 1: max(2.25, (-0.2 - 1)^2 = 1.44) = 2.25
    #   V = 2.1, V_old = 2, R = 2:  max(0.01, 0.01)                = 0.01
    critic = 0.5 * (0.64 + 0.81 + 2.25 + 0.01) / 4  # 0.46375
    entropy = (1.0 + 2.0 + 0.5 + 0.5) / 4  # 1.0
    assert close(m["actor_loss"], actor)
    assert close(m["actor_loss"], -0.3)
    assert close(m["critic_loss"], critic)
    assert close(m["critic_loss"], 0.46375)
    assert close(m["entropy"], entropy)
    assert close(loss, actor - 0.01 * entropy + 0.5 * critic)
    assert close(loss, -0.078125)
    kl = ((0.5 - math.log(1.5)) + (-0.1 - math.log(0.9)) + 2 * (-0.5 - math.log(0.5))) / 4
    assert close(m["approx_kl"], kl)
    assert close(m["approx_kl"], 0.121547, atol=1e-6)
    assert close(m["clip_fraction"], 3 / 4)  # |r - 1| = 0.5, 0.1, 0.5, 0.5 against 0.2


def test_hand_computed_gradients() -> None:
    loss, _, new_lp, new_v = hand_case()
    loss.backward()
    # d actor / d log p_i = -A_i * r_i / B on the unclipped branch, 0 where the clip is active.
    assert new_lp.grad is not None
    assert close(new_lp.grad, t(0.0, 1.0 * 0.9 / 4, 0.0, -1.0 * 0.5 / 4))
    # d (0.5 * critic) / d V_i = vf_coef * (V_i - R_i) / B, 0 where the clipped value is the max
    # (sample 0: V moved 0.5 > 0.2 from V_old, so the clipped prediction is constant).
    assert new_v.grad is not None
    assert close(new_v.grad, t(0.0, 0.5 * 0.9 / 4, 0.5 * -1.5 / 4, 0.5 * 0.1 / 4))


def test_unclipped_value_loss() -> None:
    _, m, _, _ = hand_case(clip_vloss=False)
    assert close(m["critic_loss"], 0.5 * (0.25 + 0.81 + 2.25 + 0.01) / 4)  # 0.415


def test_ratio_one_gives_minus_mean_normalised_advantage() -> None:
    lp = t(-1.0, -0.5, -2.0, -0.1, grad=True)
    a = t(1.0, 2.0, 3.0, 6.0)
    zeros = torch.zeros(4, dtype=F64)
    loss, m = ppo_loss(
        lp,
        lp.detach().clone(),
        a,
        zeros,
        zeros,
        zeros,
        zeros,
        clip_coef=0.2,
        vf_coef=0.5,
        ent_coef=0.0,
    )
    # mean 3, deviations (-2, -1, 0, 3), unbiased std sqrt((4 + 1 + 0 + 9) / 3) = sqrt(14 / 3)
    std = math.sqrt(14 / 3)
    norm = t(-2 / (std + 1e-8), -1 / (std + 1e-8), 0.0, 3 / (std + 1e-8))
    assert close(m["actor_loss"], -norm.mean())
    assert close(m["approx_kl"], 0.0)
    assert close(m["clip_fraction"], 0.0)
    loss.backward()
    assert lp.grad is not None
    assert close(lp.grad, -norm / 4)  # d(-A r)/d log p = -A r = -A at r = 1
    # Without normalisation: -mean(A).
    _, m2 = ppo_loss(
        lp,
        lp.detach(),
        a,
        zeros,
        zeros,
        zeros,
        zeros,
        clip_coef=0.2,
        vf_coef=0.5,
        ent_coef=0.0,
        norm_adv=False,
    )
    assert close(m2["actor_loss"], -3.0)


@pytest.mark.parametrize(
    ("advantage", "ratio", "clipped"),
    [
        (1.0, 1.5, True),  # A > 0 beyond 1 + c: no incentive to move further
        (1.0, 0.5, False),  # A > 0 below 1 - c: the unclipped (pessimistic) branch still pulls up
        (-1.0, 0.5, True),  # A < 0 below 1 - c: no incentive to move further
        (-1.0, 1.5, False),  # A < 0 beyond 1 + c: the unclipped branch still pulls down
        (1.0, 1.1, False),  # inside the range
    ],
)
def test_clipping_zeroes_the_gradient_only_on_the_rewarded_side(
    advantage: float, ratio: float, clipped: bool
) -> None:
    lp = t(math.log(ratio), grad=True)
    z = torch.zeros(1, dtype=F64)
    loss, m = ppo_loss(
        lp, z, t(advantage), z, z, z, z, clip_coef=0.2, vf_coef=0.0, ent_coef=0.0, norm_adv=False
    )
    loss.backward()
    assert lp.grad is not None
    expected = 0.0 if clipped else -advantage * ratio
    assert close(lp.grad, t(expected))
    clip_bound = 1.2 if ratio > 1 else 0.8
    assert close(m["actor_loss"], -advantage * (clip_bound if clipped else ratio))
    assert close(m["clip_fraction"], 1.0 if abs(ratio - 1) > 0.2 else 0.0)


def _modules() -> tuple[torch.nn.Linear, torch.nn.Linear, torch.Tensor]:
    torch.manual_seed(0)
    actor, critic = torch.nn.Linear(3, 1).double(), torch.nn.Linear(3, 1).double()
    x = torch.randn(5, 3, dtype=F64)
    return actor, critic, x


def test_gradient_isolation_between_actor_and_critic() -> None:
    actor, critic, x = _modules()
    g = torch.Generator().manual_seed(1)
    old_lp = torch.randn(5, generator=g, dtype=F64).requires_grad_()
    adv = torch.randn(5, generator=g, dtype=F64).requires_grad_()
    old_v = torch.randn(5, generator=g, dtype=F64).requires_grad_()
    ret = torch.randn(5, generator=g, dtype=F64).requires_grad_()
    entropy = torch.rand(5, generator=g, dtype=F64).requires_grad_()
    inputs = (adv.clone(), old_lp.clone(), old_v.clone(), ret.clone())
    # vf_coef = 0: the critic gets no gradient at all.
    loss, m = ppo_loss(
        actor(x).squeeze(1),
        old_lp,
        adv,
        critic(x).squeeze(1),
        old_v,
        ret,
        entropy,
        clip_coef=0.2,
        vf_coef=0.0,
        ent_coef=0.01,
    )
    loss.backward()
    assert all(p.grad is None for p in critic.parameters())
    assert all(p.grad is not None for p in actor.parameters())
    assert entropy.grad is not None
    # The constants of the update never receive a gradient, and are not modified.
    for x_const in (old_lp, adv, old_v, ret):
        assert x_const.grad is None
    for before, after in zip(inputs, (adv, old_lp, old_v, ret), strict=True):
        assert torch.equal(before, after)
    # Metrics are detached 0-dim tensors.
    assert set(m) == {"actor_loss", "critic_loss", "entropy", "approx_kl", "clip_fraction"}
    for v in m.values():
        assert v.ndim == 0
        assert not v.requires_grad


def test_gradient_isolation_critic_only_and_no_entropy() -> None:
    actor, critic, x = _modules()
    g = torch.Generator().manual_seed(2)
    lp = actor(x).squeeze(1)
    entropy = torch.rand(5, generator=g, dtype=F64).requires_grad_()
    args = [torch.randn(5, generator=g, dtype=F64) for _ in range(4)]
    # ent_coef = 0: no gradient reaches the entropy.
    loss, _ = ppo_loss(
        lp,
        args[0],
        args[1],
        critic(x).squeeze(1),
        args[2],
        args[3],
        entropy,
        clip_coef=0.2,
        vf_coef=0.5,
        ent_coef=0.0,
    )
    loss.backward()
    assert entropy.grad is None
    # The critic's gradient is vf_coef times that of the value loss alone: the policy terms add
    # nothing to it.
    grads = [p.grad.clone() for p in critic.parameters() if p.grad is not None]
    assert len(grads) == 2  # weight and bias
    critic.zero_grad()
    _, m = ppo_loss(
        lp.detach(),
        args[0],
        args[1],
        critic(x).squeeze(1),
        args[2],
        args[3],
        entropy,
        clip_coef=0.2,
        vf_coef=0.5,
        ent_coef=0.0,
    )
    v = critic(x).squeeze(1)
    value_only = (
        0.5
        * torch.maximum(
            (v - args[3]).square(),
            (args[2] + (v - args[2]).clamp(-0.2, 0.2) - args[3]).square(),
        ).mean()
    )
    assert close(m["critic_loss"], value_only.detach())
    critic.zero_grad()
    (0.5 * value_only).backward()
    for a, p in zip(grads, critic.parameters(), strict=True):
        assert p.grad is not None
        assert torch.allclose(a, p.grad)


floats = st.floats(-5, 5, allow_nan=False, allow_infinity=False)


@given(
    st.integers(2, 6).flatmap(lambda b: st.lists(st.tuples(*[floats] * 6), min_size=b, max_size=b)),
    st.floats(0.01, 0.5),
    st.booleans(),
)
def test_invariants(rows: list[tuple[float, ...]], clip: float, norm_adv: bool) -> None:
    cols = [torch.tensor(c, dtype=F64) for c in zip(*rows, strict=True)]
    new_lp, old_lp, adv, new_v, old_v, ret = cols
    new_lp = old_lp + new_lp / 5  # |log ratio| <= 1
    entropy = adv.abs()
    loss, m = ppo_loss(
        new_lp,
        old_lp,
        adv,
        new_v,
        old_v,
        ret,
        entropy,
        clip_coef=clip,
        vf_coef=0.5,
        ent_coef=0.01,
        norm_adv=norm_adv,
    )
    ratio = (new_lp - old_lp).exp()
    a = (adv - adv.mean()) / (adv.std() + 1e-8) if norm_adv else adv
    # The clipped objectives are pessimistic: never below the unclipped losses.
    assert m["actor_loss"] >= -(a * ratio).mean() - 1e-12
    assert m["critic_loss"] >= 0.5 * (new_v - ret).square().mean() - 1e-12
    assert m["approx_kl"] >= 0  # x - 1 - log x >= 0
    assert 0 <= m["clip_fraction"] <= 1
    assert close(loss, m["actor_loss"] - 0.01 * m["entropy"] + 0.5 * m["critic_loss"])


FIELDS = (
    "new_log_probs",
    "old_log_probs",
    "advantages",
    "new_values",
    "old_values",
    "returns",
    "entropy",
)


def _good(b: int = 3) -> list[torch.Tensor]:
    """Valid positional tensors, in the order of ``FIELDS``."""
    return [torch.zeros(b) for _ in FIELDS]


def _call(args: list[torch.Tensor], **kw: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    coefs = {"clip_coef": 0.2, "vf_coef": 0.5, "ent_coef": 0.0} | kw
    return ppo_loss(*args, **coefs)


@pytest.mark.parametrize("field", FIELDS)
def test_bad_shapes_name_the_field(field: str) -> None:
    args = _good()
    i = FIELDS.index(field)
    args[i] = torch.zeros(3, 1)
    with pytest.raises(ValueError, match=rf"{field} must (be|have shape) \(B,\)"):
        _call(args)
    args[i] = torch.zeros(2)
    with pytest.raises(ValueError, match=field):
        _call(args)
    args[i] = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(ValueError, match=f"{field} must be a float"):
        _call(args)


def test_bad_coefficients_and_batch() -> None:
    with pytest.raises(ValueError, match="clip_coef"):
        _call(_good(), clip_coef=0.0)
    with pytest.raises(ValueError, match="vf_coef"):
        _call(_good(), vf_coef=-1.0)
    with pytest.raises(ValueError, match="ent_coef"):
        _call(_good(), ent_coef=math.nan)
    with pytest.raises(ValueError, match="norm_adv"):
        ppo_loss(*_good(1), clip_coef=0.2, vf_coef=0.5, ent_coef=0.0)
    _, m = ppo_loss(*_good(1), clip_coef=0.2, vf_coef=0.5, ent_coef=0.0, norm_adv=False)
    assert m["actor_loss"] == 0
