"""Convolutional encoder for ``uint8`` pixel observations (MR.Q's pixel state encoder)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rl_nets._checks import check_positive_int, check_tensor
from rl_nets.activations import ActivationName, make_activation

__all__ = ["PixelEncoder", "conv_output_size"]


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int = 0) -> int:
    """Spatial size after an unpadded-or-padded, undilated convolution.

    Args:
        size: Input height or width.
        kernel_size: Kernel height or width.
        stride: Stride.
        padding: Zero padding on each side.

    Returns:
        ``(size + 2·padding − kernel_size) // stride + 1`` (may be <= 0 if the input is too small).
    """
    return (size + 2 * padding - kernel_size) // stride + 1


class PixelEncoder(nn.Module):
    """Conv stack → Linear → LayerNorm → activation, for ``uint8`` images.

    Pixels are scaled to ``x / 255 − 0.5``, then pass ``len(strides)`` unpadded convolutions with
    ``channels`` filters of size ``kernel_size``, each followed by the activation; the feature
    map is flattened, projected to ``out_dim``, LayerNorm-ed (no affine parameters) and activated.
    The defaults are MR.Q's: four 3×3 convs with 32 filters and strides (2, 2, 2, 1), ELU,
    ``out_dim = 512``. The flatten size is computed from ``image_size``: 32·7·7 = 1568 at 84×84,
    32·5·5 = 800 at 64×64.

    Weights keep torch's default initialisation; call :func:`rl_nets.init_weights` for MR.Q's.

    Args:
        in_channels: Input channels C (e.g. 3 × frame history for RGB, history for grayscale).
        image_size: ``H`` (square) or ``(H, W)``.
        out_dim: Output features (MR.Q's ``zs_dim``).
        channels: Filters per conv layer.
        strides: One stride per conv layer.
        kernel_size: Square kernel size.
        activation: Activation after every conv and after the output LayerNorm.
        norm_eps: LayerNorm epsilon.

    Shapes:
        ``forward``: ``(..., C, H, W)`` uint8 → ``(..., out_dim)`` in the weights' dtype.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int | tuple[int, int] = 84,
        out_dim: int = 512,
        *,
        channels: int = 32,
        strides: Sequence[int] = (2, 2, 2, 1),
        kernel_size: int = 3,
        activation: ActivationName = "elu",
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_dim", out_dim)
        check_positive_int("channels", channels)
        check_positive_int("kernel_size", kernel_size)
        if len(strides) == 0:
            raise ValueError("strides must name at least one conv layer")
        for i, s in enumerate(strides):
            check_positive_int(f"strides[{i}]", s)
        if isinstance(image_size, int):
            height, width = image_size, image_size
        elif len(image_size) == 2:
            height, width = image_size
        else:
            raise ValueError(f"image_size must be an int or (H, W), got {image_size!r}")
        check_positive_int("image height", height)
        check_positive_int("image width", width)
        self.in_channels = in_channels
        self.image_size: tuple[int, int] = (height, width)
        self.out_dim = out_dim

        layers: list[nn.Module] = []
        c_in, h, w = in_channels, height, width
        for i, stride in enumerate(strides):
            h = conv_output_size(h, kernel_size, stride)
            w = conv_output_size(w, kernel_size, stride)
            if h <= 0 or w <= 0:
                raise ValueError(
                    f"image_size {(height, width)} is too small: conv layer {i} "
                    f"(kernel {kernel_size}, stride {stride}) would output {h}x{w}"
                )
            layers.append(nn.Conv2d(c_in, channels, kernel_size, stride=stride))
            layers.append(make_activation(activation))
            c_in = channels
        self.convs = nn.Sequential(*layers)
        self.feature_shape: tuple[int, int, int] = (channels, h, w)
        self.flat_dim = channels * h * w
        self.linear = nn.Linear(self.flat_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim, eps=norm_eps, elementwise_affine=False)
        self.act = make_activation(activation)

    def forward(self, obs: Tensor) -> Tensor:
        """Encode images.

        Args:
            obs: ``(..., C, H, W)`` uint8 pixels (any number of leading batch dimensions,
                including none).

        Returns:
            ``(..., out_dim)`` features.

        Raises:
            TypeError: ``obs`` is not uint8.
            ValueError: ``obs`` does not end in ``(C, H, W)``.
        """
        check_tensor("obs", obs)
        if obs.dtype != torch.uint8:
            raise TypeError(f"obs must be uint8 pixels in [0, 255], got dtype {obs.dtype}")
        expected = (self.in_channels, *self.image_size)
        if obs.dim() < 3 or tuple(obs.shape[-3:]) != expected:
            raise ValueError(
                f"obs must have shape (..., C, H, W) = (..., {', '.join(map(str, expected))}), "
                f"got {tuple(obs.shape)}"
            )
        batch_shape = obs.shape[:-3]
        dtype = self.linear.weight.dtype
        # (..., C, H, W) -> (M, C, H, W) for the convs; pixels to [-0.5, 0.5].
        x = obs.reshape(-1, *expected).to(dtype) / 255.0 - 0.5
        x = self.convs(x).flatten(1)  # (M, flat_dim)
        z = self.act(self.norm(self.linear(x)))  # (M, out_dim)
        return z.reshape(*batch_shape, self.out_dim)
