"""Activation functions chosen by name (a ``Literal``), so configs stay typed and serialisable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from torch import nn

__all__ = ["ACTIVATION_NAMES", "ActivationName", "make_activation"]

ActivationName = Literal[
    "relu", "elu", "gelu", "silu", "tanh", "mish", "leaky_relu", "sigmoid", "identity"
]
"""Names accepted wherever a block takes an activation."""

ACTIVATION_NAMES: tuple[ActivationName, ...] = get_args(ActivationName)


def make_activation(name: ActivationName) -> nn.Module:
    """Build the parameter-free activation module called ``name`` with torch's default settings.

    Args:
        name: One of :data:`ACTIVATION_NAMES` (``elu`` has alpha 1, ``leaky_relu`` slope 0.01).

    Returns:
        A module mapping a tensor of any shape to one of the same shape.

    Raises:
        ValueError: ``name`` is not a known activation.
    """
    from torch import nn  # here: configs that name an activation import without torch

    constructors: dict[ActivationName, type[nn.Module]] = {
        "relu": nn.ReLU,
        "elu": nn.ELU,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "tanh": nn.Tanh,
        "mish": nn.Mish,
        "leaky_relu": nn.LeakyReLU,
        "sigmoid": nn.Sigmoid,
        "identity": nn.Identity,
    }
    try:
        return constructors[name]()
    except KeyError:
        raise ValueError(
            f"activation must be one of {list(ACTIVATION_NAMES)}, got {name!r}"
        ) from None
