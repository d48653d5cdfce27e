"""Multi-layer perceptron with optional non-affine LayerNorm, as used by MR.Q, TD7 and FQL."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from rl_nets._checks import check_floating, check_last_dim, check_positive_int
from rl_nets.activations import ActivationName, make_activation
from rl_nets.gemm import FastLinear

__all__ = ["MLP", "LayerNormPlacement", "check_layer_norm_placement"]

LayerNormPlacement = Literal["none", "pre_activation", "post_activation"]
"""Where a hidden layer's LayerNorm goes.

* ``"none"``: Linear → act.
* ``"pre_activation"``: Linear → LN → act (MR.Q, TD7's ``ln_activ``).
* ``"post_activation"``: Linear → act → LN (the order in FQL's JAX critic code).
"""

_PLACEMENTS: tuple[LayerNormPlacement, ...] = ("none", "pre_activation", "post_activation")


def check_layer_norm_placement(layer_norm: LayerNormPlacement) -> None:
    """Raise a ValueError unless ``layer_norm`` is a :data:`LayerNormPlacement`."""
    if layer_norm not in _PLACEMENTS:
        raise ValueError(f"layer_norm must be one of {list(_PLACEMENTS)}, got {layer_norm!r}")


class MLP(nn.Module):
    """Fully connected network: hidden layers with optional LayerNorm, then a linear output layer.

    Hidden layer ``i``: ``Linear(d_i → h_i)``, then the activation, with a LayerNorm before or after
    it as ``layer_norm`` says. The output layer is ``Linear(h_last → out_dim)``, optionally followed
    by a LayerNorm (``output_layer_norm``) and then an activation (``output_activation``).

    The LayerNorms have no learnable scale or shift unless ``norm_affine=True`` (MR.Q uses
    ``F.layer_norm`` without affine parameters). Weights keep torch's default initialisation; call
    :func:`rl_nets.init_weights` to get MR.Q's (xavier-uniform, gain √2, zero biases).

    The linear layers are :class:`rl_nets.FastLinear` (``nn.Linear`` s whose products take the
    fastest correct CPU matrix-multiply path, see :mod:`rl_nets.gemm`).

    MR.Q's ``BaseMLP(in, out, h)`` is ``MLP(in, out, (h, h), activation="elu",
    layer_norm="pre_activation")``; its state encoder adds ``output_layer_norm=True,
    output_activation="elu"``; one of its Q heads is ``MLP(zsa, 1, (h, h, h), activation="elu",
    layer_norm="pre_activation")``.

    Args:
        in_dim: Input features.
        out_dim: Output features.
        hidden_sizes: Width of each hidden layer; empty for a single linear layer.
        activation: Hidden-layer activation.
        layer_norm: Where the hidden layers' LayerNorm goes, or ``"none"``.
        norm_affine: Give every LayerNorm a learnable per-feature scale and shift.
        output_layer_norm: LayerNorm on the output (before ``output_activation``).
        output_activation: Activation on the output; ``None`` keeps it linear.
        norm_eps: LayerNorm epsilon.

    Shapes:
        ``forward``: ``(..., in_dim)`` float → ``(..., out_dim)``.
    """

    def __init__(
        self,
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
        check_positive_int("in_dim", in_dim)
        check_positive_int("out_dim", out_dim)
        for i, h in enumerate(hidden_sizes):
            check_positive_int(f"hidden_sizes[{i}]", h)
        check_layer_norm_placement(layer_norm)
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
            FastLinear(d_in, d_out) for d_in, d_out in itertools.pairwise(dims)
        )
        self.norms = nn.ModuleList(
            nn.LayerNorm(h, eps=norm_eps, elementwise_affine=norm_affine)
            for h in (self.hidden_sizes if layer_norm != "none" else ())
        )
        self.act = make_activation(activation)
        self.out = FastLinear(dims[-1], out_dim)
        self.out_norm = (
            nn.LayerNorm(out_dim, eps=norm_eps, elementwise_affine=norm_affine)
            if output_layer_norm
            else nn.Identity()
        )
        self.out_act = make_activation(output_activation or "identity")

    @property
    def output_layer(self) -> nn.Linear:
        """The final ``Linear`` (for giving it its own initialisation, e.g. a small gain)."""
        return self.out

    def forward(self, x: Tensor) -> Tensor:
        """Apply the network to the last dimension.

        Args:
            x: ``(..., in_dim)`` float tensor.

        Returns:
            ``(..., out_dim)`` tensor.
        """
        check_floating("x", x)
        check_last_dim("x", x, self.in_dim)
        for i, layer in enumerate(self.hidden):
            x = layer(x)
            if self.layer_norm == "pre_activation":
                x = self.act(self.norms[i](x))
            elif self.layer_norm == "post_activation":
                x = self.norms[i](self.act(x))
            else:
                x = self.act(x)
        return self.out_act(self.out_norm(self.out(x)))
