from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from rl_nets import PixelEncoder, conv_output_size, init_weights
from torch import nn


def test_conv_output_size() -> None:
    assert [conv_output_size(s, 3, 2) for s in (84, 41, 20)] == [41, 20, 9]
    assert conv_output_size(9, 3, 1) == 7
    assert conv_output_size(84, 3, 2, padding=1) == 42


@pytest.mark.parametrize(
    ("size", "flat"), [(84, 32 * 7 * 7), (64, 32 * 5 * 5), ((84, 64), 32 * 7 * 5)]
)
def test_flatten_size_from_image_size(size: int | tuple[int, int], flat: int) -> None:
    encoder = PixelEncoder(3, size, 16)
    assert encoder.flat_dim == flat
    assert encoder.linear.in_features == flat
    h, w = (size, size) if isinstance(size, int) else size
    assert encoder(torch.zeros(2, 3, h, w, dtype=torch.uint8)).shape == (2, 16)


@pytest.mark.parametrize("batch_shape", [(), (4,), (2, 5)])
def test_leading_dims(batch_shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    encoder = PixelEncoder(9, 64, 32)
    obs = torch.randint(0, 256, (*batch_shape, 9, 64, 64), dtype=torch.uint8)
    z = encoder(obs)
    assert z.shape == (*batch_shape, 32)
    flat = encoder(obs.reshape(-1, 9, 64, 64))
    torch.testing.assert_close(z.reshape(-1, 32), flat)


def test_matches_mrq_pipeline_reference() -> None:
    torch.manual_seed(1)
    encoder = init_weights(PixelEncoder(3, 84, 64))
    obs = torch.randint(0, 256, (2, 3, 84, 84), dtype=torch.uint8)
    x = obs.float() / 255.0 - 0.5
    convs = [m for m in encoder.convs if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2), (2, 2), (2, 2), (1, 1)]
    for conv in convs:
        x = F.elu(conv(x))
    assert x.shape == (2, 32, 7, 7)
    expected = F.elu(F.layer_norm(encoder.linear(x.reshape(2, -1)), (64,)))
    torch.testing.assert_close(encoder(obs), expected)
    # LayerNorm without affine parameters: only convs and the linear layer are learnable.
    assert {n.rsplit(".", 1)[0] for n, _ in encoder.named_parameters()} == {
        "convs.0",
        "convs.2",
        "convs.4",
        "convs.6",
        "linear",
    }


def test_pixel_scaling_hand_computed() -> None:
    # One 1x1 identity "conv" on a 1x1 image exposes the scaled pixel: x / 255 - 0.5.
    encoder = PixelEncoder(1, 1, 2, channels=1, kernel_size=1, strides=(1,), activation="identity")
    with torch.no_grad():
        conv = encoder.convs[0]
        assert isinstance(conv, nn.Conv2d)
        conv.weight.fill_(1.0)
        conv.bias.zero_()  # pyright: ignore[reportOptionalMemberAccess]
        encoder.linear.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        encoder.linear.bias.zero_()
    for pixel, scaled in [(0, -0.5), (255, 0.5), (51, -0.3)]:
        z = encoder(torch.full((1, 1, 1), pixel, dtype=torch.uint8))
        # Linear gives (s, -s); LayerNorm maps it to (±1 scaled by s / sqrt(s² + eps)).
        expected = torch.tensor([scaled, -scaled]) / (scaled**2 + 1e-5) ** 0.5
        torch.testing.assert_close(z, expected, rtol=1e-5, atol=1e-5)


def test_bad_input_is_named() -> None:
    encoder = PixelEncoder(3, 84)
    with pytest.raises(
        TypeError, match=r"obs must be uint8 pixels in \[0, 255\], got dtype torch\.float32"
    ):
        encoder(torch.zeros(2, 3, 84, 84))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 84, 84\), got \(2, 4, 84, 84\)"):
        encoder(torch.zeros(2, 4, 84, 84, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"got \(2, 3, 64, 64\)"):
        encoder(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"got \(84, 84\)"):
        encoder(torch.zeros(84, 84, dtype=torch.uint8))
    with pytest.raises(ValueError, match="image_size \\(16, 16\\) is too small: conv layer 3"):
        PixelEncoder(3, 16)
    with pytest.raises(ValueError, match=r"image_size must be an int or \(H, W\)"):
        PixelEncoder(3, (84, 84, 3))  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        PixelEncoder(0, 84)
