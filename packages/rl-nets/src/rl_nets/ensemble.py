"""Vectorised ensembles: N independent MLPs evaluated with one batched matmul per layer."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rl_nets._checks import check_floating, check_last_dim, check_positive_int
from rl_nets.activations import ActivationName, make_activation
from rl_nets.gemm import ensemble_linear
from rl_nets.mlp import MLP, LayerNormPlacement, check_layer_norm_placement

__all__ = [
    "EnsembleLayerNorm",
    "EnsembleLinear",
    "EnsembleMLP",
    "EnsembleReduction",
    "random_members",
    "reduce_ensemble",
]

EnsembleReduction = Literal["min", "mean", "max"]
"""How :func:`reduce_ensemble` combines the members."""


class EnsembleLinear(nn.Module):
    """``num_members`` independent linear layers applied in one batched matmul.

    Member ``n`` computes ``x_n @ weight[n].T + bias[n]``, exactly like an ``nn.Linear`` whose
    weight is ``weight[n]`` (same ``(out, in)`` layout). Each member is initialised
    independently with torch's ``nn.Linear`` default; :func:`rl_nets.init_weights` re-initialises
    each member separately with the correct fan-in and fan-out.

    Args:
        num_members: Ensemble size N.
        in_features: Input features per member.
        out_features: Output features per member.
        bias: Whether to add a learnable bias.

    Shapes:
        ``weight``: ``(N, out, in)``; ``bias``: ``(N, out)``.
        ``forward``: ``(N, M, in)`` per-member input, or ``(M, in)`` shared by all members, →
        ``(N, M, out)``.
    """

    def __init__(
        self, num_members: int, in_features: int, out_features: int, *, bias: bool = True
    ) -> None:
        super().__init__()
        check_positive_int("num_members", num_members)
        check_positive_int("in_features", in_features)
        check_positive_int("out_features", out_features)
        self.num_members = num_members
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(num_members, out_features, in_features))
        self.bias: nn.Parameter | None = (
            nn.Parameter(torch.empty(num_members, out_features)) if bias else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise each member as a fresh ``nn.Linear`` would be (independent draws)."""
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            for n in range(self.num_members):
                # nn.Linear's default: kaiming_uniform(a=√5) on the (out, in) weight.
                nn.init.kaiming_uniform_(self.weight[n], a=math.sqrt(5))
                if self.bias is not None:
                    nn.init.uniform_(self.bias[n], -bound, bound)

    def extra_repr(self) -> str:
        return (
            f"num_members={self.num_members}, in_features={self.in_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )

    def forward(self, x: Tensor) -> Tensor:
        """Apply every member.

        Args:
            x: ``(N, M, in)`` (member ``n`` reads ``x[n]``) or ``(M, in)`` (all members read it).

        Returns:
            ``(N, M, out)`` tensor.
        """
        check_floating("x", x)
        check_last_dim("x", x, self.in_features)
        if x.dim() not in (2, 3) or (x.dim() == 3 and x.shape[0] != self.num_members):
            raise ValueError(
                f"x must have shape ({self.num_members}, M, {self.in_features}) or "
                f"(M, {self.in_features}), got {tuple(x.shape)}"
            )
        fast = ensemble_linear(x, self.weight, self.bias)  # None: the batched matmul is faster
        if fast is not None:
            return fast
        if x.dim() == 2:
            # (M, in) @ (N, in, out) broadcasts to (N, M, out).
            y = torch.matmul(x, self.weight.transpose(1, 2))
            return y if self.bias is None else y + self.bias.unsqueeze(1)
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        # bias (N, out) -> (N, 1, out), broadcast over the M rows by baddbmm.
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last dimension with a separate optional scale and shift per member.

    Args:
        num_members: Ensemble size N.
        dim: Normalised features.
        eps: Added to the variance.
        affine: Learnable per-member ``weight`` and ``bias`` of shape ``(N, dim)`` (ones, zeros).

    Shapes:
        ``forward``: ``(N, M, dim)`` → ``(N, M, dim)``.
    """

    def __init__(
        self, num_members: int, dim: int, *, eps: float = 1e-5, affine: bool = False
    ) -> None:
        super().__init__()
        check_positive_int("num_members", num_members)
        check_positive_int("dim", dim)
        self.num_members = num_members
        self.dim = dim
        self.eps = eps
        self.weight: nn.Parameter | None = (
            nn.Parameter(torch.ones(num_members, dim)) if affine else None
        )
        self.bias: nn.Parameter | None = (
            nn.Parameter(torch.zeros(num_members, dim)) if affine else None
        )

    def extra_repr(self) -> str:
        return (
            f"num_members={self.num_members}, dim={self.dim}, eps={self.eps}, "
            f"affine={self.weight is not None}"
        )

    def forward(self, x: Tensor) -> Tensor:
        """Normalise the last dimension of a ``(N, M, dim)`` tensor."""
        y = F.layer_norm(x, (self.dim,), eps=self.eps)
        if self.weight is not None and self.bias is not None:
            # (N, dim) -> (N, 1, dim), broadcast over the M rows.
            y = torch.addcmul(self.bias.unsqueeze(1), y, self.weight.unsqueeze(1))
        return y


class EnsembleMLP(nn.Module):
    """``num_members`` independent :class:`~rl_nets.MLP` s evaluated as one batched network.

    Every argument after ``num_members`` means what it means for :class:`~rl_nets.MLP`, and member
    ``n`` computes exactly what an ``MLP`` with its weights would (:meth:`member` extracts it,
    :meth:`from_mlps` builds the ensemble from separate networks). A Q-ensemble for TD3/MR.Q-style
    critics is ``EnsembleMLP(N, obs_dim + act_dim, 1, ...)`` followed by
    :func:`reduce_ensemble`.

    Args:
        num_members: Ensemble size N.
        in_dim: Input features.
        out_dim: Output features per member.
        hidden_sizes: Width of each hidden layer.
        activation: Hidden-layer activation.
        layer_norm: Where the hidden layers' LayerNorm goes, or ``"none"``.
        norm_affine: Learnable per-member scale and shift in every LayerNorm.
        output_layer_norm: LayerNorm on the output (before ``output_activation``).
        output_activation: Activation on the output; ``None`` keeps it linear.
        norm_eps: LayerNorm epsilon.

    Shapes:
        ``forward``: ``(..., in_dim)`` shared by all members, or ``(N, ..., in_dim)`` with
        ``per_member=True``, → ``(N, ..., out_dim)``.
    """

    def __init__(
        self,
        num_members: int,
        in_dim: int,
        out_dim: int,
        hidden_sizes: Sequence[int] = (256, 256),
        *,
        activation: ActivationName = "relu",
        layer_norm: LayerNormPlacement = "none",
        norm_affine: bool = False,
        output_layer_norm: bool = False,
        output_activation: ActivationName | None = None,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_positive_int("num_members", num_members)
        check_positive_int("in_dim", in_dim)
        check_positive_int("out_dim", out_dim)
        for i, h in enumerate(hidden_sizes):
            check_positive_int(f"hidden_sizes[{i}]", h)
        check_layer_norm_placement(layer_norm)
        self.num_members = num_members
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.hidden_sizes: tuple[int, ...] = tuple(hidden_sizes)
        self.activation_name: ActivationName = activation
        self.layer_norm: LayerNormPlacement = layer_norm
        self.norm_affine = norm_affine
        self.output_layer_norm = output_layer_norm
        self.output_activation_name: ActivationName | None = output_activation
        self.norm_eps = norm_eps

        dims = (in_dim, *self.hidden_sizes)
        self.hidden = nn.ModuleList(
            EnsembleLinear(num_members, d_in, d_out) for d_in, d_out in itertools.pairwise(dims)
        )
        self.norms = nn.ModuleList(
            EnsembleLayerNorm(num_members, h, eps=norm_eps, affine=norm_affine)
            for h in (self.hidden_sizes if layer_norm != "none" else ())
        )
        self.act = make_activation(activation)
        self.out = EnsembleLinear(num_members, dims[-1], out_dim)
        self.out_norm = (
            EnsembleLayerNorm(num_members, out_dim, eps=norm_eps, affine=norm_affine)
            if output_layer_norm
            else nn.Identity()
        )
        self.out_act = make_activation(output_activation or "identity")

    @property
    def output_layer(self) -> EnsembleLinear:
        """The final :class:`EnsembleLinear`."""
        return self.out

    def forward(self, x: Tensor, *, per_member: bool = False) -> Tensor:
        """Evaluate all members in one pass.

        Args:
            x: ``(..., in_dim)`` input given to every member, or, with ``per_member=True``,
                ``(N, ..., in_dim)`` where member ``n`` reads ``x[n]``.
            per_member: Whether the leading dimension of ``x`` indexes members.

        Returns:
            ``(N, ..., out_dim)`` tensor: member ``n``'s output is ``[n]``.
        """
        check_floating("x", x)
        check_last_dim("x", x, self.in_dim)
        if per_member:
            if x.dim() < 2 or x.shape[0] != self.num_members:
                raise ValueError(
                    f"with per_member=True, x must have shape ({self.num_members}, ..., "
                    f"{self.in_dim}), got {tuple(x.shape)}"
                )
            batch_shape = x.shape[1:-1]
            h = x.reshape(self.num_members, -1, self.in_dim)  # (N, M, in)
        else:
            batch_shape = x.shape[:-1]
            h = x.reshape(-1, self.in_dim)  # (M, in), shared by every member
        for i, layer in enumerate(self.hidden):
            h = layer(h)  # (N, M, h_i)
            if self.layer_norm == "pre_activation":
                h = self.act(self.norms[i](h))
            elif self.layer_norm == "post_activation":
                h = self.norms[i](self.act(h))
            else:
                h = self.act(h)
        y = self.out_act(self.out_norm(self.out(h)))  # (N, M, out)
        return y.reshape(self.num_members, *batch_shape, self.out_dim)

    def _new_mlp(self) -> MLP:
        """A fresh MLP with this ensemble's architecture."""
        return MLP(
            self.in_dim,
            self.out_dim,
            self.hidden_sizes,
            activation=self.activation_name,
            layer_norm=self.layer_norm,
            norm_affine=self.norm_affine,
            output_layer_norm=self.output_layer_norm,
            output_activation=self.output_activation_name,
            norm_eps=self.norm_eps,
        )

    def _linear_pairs(self) -> list[tuple[EnsembleLinear, str]]:
        """Each ensemble linear layer with the name of its counterpart in an ``MLP``."""
        pairs: list[tuple[EnsembleLinear, str]] = []
        for i, layer in enumerate(self.hidden):
            assert isinstance(layer, EnsembleLinear)
            pairs.append((layer, f"hidden.{i}"))
        pairs.append((self.out, "out"))
        return pairs

    def _norm_pairs(self) -> list[tuple[EnsembleLayerNorm, str]]:
        pairs: list[tuple[EnsembleLayerNorm, str]] = []
        for i, norm in enumerate(self.norms):
            assert isinstance(norm, EnsembleLayerNorm)
            pairs.append((norm, f"norms.{i}"))
        if isinstance(self.out_norm, EnsembleLayerNorm):
            pairs.append((self.out_norm, "out_norm"))
        return pairs

    def _member_state(self, n: int) -> dict[str, Tensor]:
        """Member ``n``'s parameters under the names an ``MLP`` uses."""
        state: dict[str, Tensor] = {}
        for layer, name in self._linear_pairs():
            state[f"{name}.weight"] = layer.weight[n]
            if layer.bias is not None:
                state[f"{name}.bias"] = layer.bias[n]
        for norm, name in self._norm_pairs():
            if norm.weight is not None and norm.bias is not None:
                state[f"{name}.weight"] = norm.weight[n]
                state[f"{name}.bias"] = norm.bias[n]
        return state

    def member(self, n: int) -> MLP:
        """A standalone :class:`~rl_nets.MLP` holding a copy of member ``n``'s weights.

        Args:
            n: Member index in ``[0, N)``.

        Returns:
            An ``MLP`` on the ensemble's device and dtype computing ``self(x)[n]``.
        """
        if not 0 <= n < self.num_members:
            raise IndexError(f"member index must be in [0, {self.num_members}), got {n}")
        mlp = self._new_mlp().to(device=self.out.weight.device, dtype=self.out.weight.dtype)
        with torch.no_grad():
            mlp.load_state_dict({k: v.clone() for k, v in self._member_state(n).items()})
        return mlp

    def load_mlps(self, mlps: Sequence[MLP]) -> None:
        """Copy the weights of ``N`` separate MLPs into the members, in order.

        Args:
            mlps: ``N`` MLPs built with this ensemble's arguments.

        Raises:
            ValueError: Wrong number of MLPs, or one whose architecture differs (naming it).
        """
        if len(mlps) != self.num_members:
            raise ValueError(f"expected {self.num_members} MLPs, got {len(mlps)}")
        expected = _architecture(self)
        for n, mlp in enumerate(mlps):
            got = _architecture(mlp)
            diff = {k: (expected[k], got[k]) for k in expected if expected[k] != got[k]}
            if diff:
                raise ValueError(f"mlps[{n}] differs from the ensemble (ensemble, mlp): {diff}")
        with torch.no_grad():
            for n, mlp in enumerate(mlps):
                source = dict(mlp.named_parameters())
                for name, dest in self._member_state(n).items():
                    dest.copy_(source[name])

    @classmethod
    def from_mlps(cls, mlps: Sequence[MLP]) -> EnsembleMLP:
        """Build an ensemble whose member ``n`` equals ``mlps[n]``.

        Args:
            mlps: One or more MLPs with identical architecture.

        Returns:
            An ``EnsembleMLP`` on the first MLP's device and dtype.
        """
        if len(mlps) == 0:
            raise ValueError("from_mlps needs at least one MLP")
        first = mlps[0]
        ensemble = cls(
            len(mlps),
            first.in_dim,
            first.out_dim,
            first.hidden_sizes,
            activation=first.activation_name,
            layer_norm=first.layer_norm,
            norm_affine=first.norm_affine,
            output_layer_norm=first.output_layer_norm,
            output_activation=first.output_activation_name,
            norm_eps=first.norm_eps,
        )
        ensemble = ensemble.to(device=first.out.weight.device, dtype=first.out.weight.dtype)
        ensemble.load_mlps(mlps)
        return ensemble


def _architecture(net: MLP | EnsembleMLP) -> dict[str, object]:
    """The constructor arguments an MLP and an ensemble member must share."""
    return {
        "in_dim": net.in_dim,
        "out_dim": net.out_dim,
        "hidden_sizes": net.hidden_sizes,
        "activation": net.activation_name,
        "layer_norm": net.layer_norm,
        "norm_affine": net.norm_affine,
        "output_layer_norm": net.output_layer_norm,
        "output_activation": net.output_activation_name,
        "norm_eps": net.norm_eps,
    }


def reduce_ensemble(values: Tensor, reduction: EnsembleReduction, dim: int = 0) -> Tensor:
    """Combine ensemble outputs along the member dimension.

    Args:
        values: ``(N, ...)`` float tensor (the member dimension at ``dim``).
        reduction: ``"min"`` (clipped double-Q, MR.Q's target), ``"mean"`` or ``"max"``.
        dim: The member dimension.

    Returns:
        ``values`` with ``dim`` removed.
    """
    check_floating("values", values)
    if values.dim() == 0:
        raise ValueError("values must have a member dimension, got a 0-dim tensor")
    if reduction == "min":
        return values.amin(dim=dim)
    if reduction == "mean":
        return values.mean(dim=dim)
    if reduction == "max":
        return values.amax(dim=dim)
    raise ValueError(f"reduction must be 'min', 'mean' or 'max', got {reduction!r}")


def random_members(values: Tensor, num: int, *, generator: torch.Generator, dim: int = 0) -> Tensor:
    """Pick ``num`` distinct members uniformly at random (one draw for the whole batch, as REDQ).

    Args:
        values: ``(N, ...)`` tensor (the member dimension at ``dim``).
        num: How many members to keep, ``1 <= num <= N``.
        generator: Source of randomness; its device must be where the permutation is drawn
            (a CPU generator works for any ``values`` device).
        dim: The member dimension.

    Returns:
        ``values`` with ``num`` entries along ``dim`` (in random order).
    """
    check_positive_int("num", num)
    if values.dim() == 0:
        raise ValueError("values must have a member dimension, got a 0-dim tensor")
    size = values.shape[dim]
    if num > size:
        raise ValueError(f"num must be <= the ensemble size {size}, got {num}")
    chosen = torch.randperm(size, generator=generator, device=generator.device)[:num]
    return values.index_select(dim, chosen.to(values.device))
