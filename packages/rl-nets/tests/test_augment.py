from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from rl_nets import random_shift, sample_shifts, shift_images
from torch import Tensor

IMAGE = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=torch.uint8)


def _one(dy: int, dx: int) -> Tensor:
    return shift_images(IMAGE[None, None], torch.tensor([[dy, dx]]))[0, 0]


def test_zero_shift_is_identity() -> None:
    images = torch.randint(0, 256, (4, 3, 10, 12), dtype=torch.uint8)
    out = shift_images(images, torch.zeros(4, 2, dtype=torch.long))
    assert out.dtype == torch.uint8
    assert torch.equal(out, images)
    floats = torch.randn(2, 5, 7)
    assert torch.equal(shift_images(floats, torch.zeros(2, 2, dtype=torch.int32)), floats)


def test_known_shifts_hand_computed() -> None:
    # dy = +1 moves the content down one row; the top row is replicated.
    assert _one(1, 0).tolist() == [[1, 2, 3], [1, 2, 3], [4, 5, 6]]
    # dx = -1 moves the content left; the right column is replicated.
    assert _one(0, -1).tolist() == [[2, 3, 3], [5, 6, 6], [8, 9, 9]]
    assert _one(-1, 1).tolist() == [[4, 4, 5], [7, 7, 8], [7, 7, 8]]
    # Shifts past the image size replicate the edge everywhere.
    assert _one(5, 5).tolist() == [[1, 1, 1], [1, 1, 1], [1, 1, 1]]


def test_each_sample_gets_its_own_shift_and_all_channels_share_it() -> None:
    images = torch.randint(0, 256, (3, 2, 4, 6, 6), dtype=torch.uint8)  # (B, T, C, H, W)
    shifts = torch.tensor([[1, -2], [0, 0], [-3, 4]])
    out = shift_images(images, shifts)
    for b in range(3):
        for t in range(2):
            for c in range(4):
                single = shift_images(images[b, t, c][None, None], shifts[b : b + 1])[0, 0]
                assert torch.equal(out[b, t, c], single)


def _pad_crop_reference(images: Tensor, shifts: Tensor, pad: int) -> Tensor:
    """Replicate-pad by `pad`, crop the original size at offset (pad - dy, pad - dx)."""
    h, w = images.shape[-2:]
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    crops = []
    for b, (dy, dx) in enumerate(shifts.tolist()):
        oy, ox = pad - dy, pad - dx
        crops.append(padded[b, :, oy : oy + h, ox : ox + w])
    return torch.stack(crops)


def _grid_sample_reference(images: Tensor, shifts: Tensor, pad: int) -> Tensor:
    """The DrQ/MR.Q formulation: bilinear sampling of the padded image at shifted pixel centres."""
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    hp, wp = h + 2 * pad, w + 2 * pad
    offset = pad - shifts  # (B, 2) crop offsets (oy, ox) in the padded image
    rows = torch.arange(h).view(1, h, 1) + offset[:, 0].view(b, 1, 1)
    cols = torch.arange(w).view(1, 1, w) + offset[:, 1].view(b, 1, 1)
    # Pixel k's centre in align_corners=False coordinates is (2k + 1) / size - 1.
    gy = ((2 * rows + 1) / hp - 1).expand(b, h, w)
    gx = ((2 * cols + 1) / wp - 1).expand(b, h, w)
    grid = torch.stack([gx, gy], dim=-1).to(images.dtype)
    return F.grid_sample(padded, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@given(
    st.integers(1, 4),
    st.integers(3, 12),
    st.integers(3, 12),
    st.integers(0, 4),
    st.integers(0, 2**31 - 1),
)
def test_matches_pad_crop_and_grid_sample(
    batch: int, height: int, width: int, pad: int, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 2, height, width), generator=g).float()
    shifts = sample_shifts(batch, pad=pad, generator=g)
    out = shift_images(images, shifts)
    assert torch.equal(out, _pad_crop_reference(images, shifts, pad))
    torch.testing.assert_close(out, _grid_sample_reference(images, shifts, pad), atol=1e-3, rtol=0)


def test_shift_distribution_covers_the_pad_range() -> None:
    shifts = sample_shifts(4000, pad=4, generator=torch.Generator().manual_seed(0))
    assert shifts.shape == (4000, 2)
    assert shifts.dtype == torch.int64
    for axis in range(2):
        counts = torch.bincount(shifts[:, axis] + 4, minlength=9)
        assert counts.numel() == 9
        # 9 equally likely values, ~444 each; a fair draw stays far inside these bounds.
        assert int(counts.min()) > 300
        assert int(counts.max()) < 600
    assert sample_shifts(3, pad=0, generator=torch.Generator()).abs().sum() == 0


def test_random_shift_applies_the_same_shift_to_obs_and_next_obs() -> None:
    g = torch.Generator().manual_seed(1)
    obs = torch.randint(0, 200, (64, 3, 16, 16), dtype=torch.uint8)
    next_obs = obs + 7
    a, b = random_shift(obs, next_obs, generator=g)
    assert a.dtype == b.dtype == torch.uint8
    assert torch.equal(b, a + 7)
    # Reproducible with the same generator state; the shifts drawn are sample_shifts' draws.
    shifts = sample_shifts(64, pad=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, shift_images(obs, shifts))
    again = random_shift(obs, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, a)
    # Different samples really get different shifts.
    assert int((shifts[:, None] != shifts[None]).any(-1).sum()) > 0


def test_empty_batch() -> None:
    out = random_shift(torch.zeros(0, 3, 8, 8, dtype=torch.uint8), generator=torch.Generator())
    assert out.shape == (0, 3, 8, 8)


def test_random_shift_pad_zero_is_identity() -> None:
    obs = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(random_shift(obs, pad=0, generator=torch.Generator()), obs)


def test_bad_input_is_named() -> None:
    g = torch.Generator()
    with pytest.raises(ValueError, match=r"images must have shape \(B, \.\.\., H, W\)"):
        shift_images(torch.zeros(8, 8), torch.zeros(8, 2, dtype=torch.long))
    with pytest.raises(
        TypeError, match=r"shifts must be an integer tensor, got dtype torch\.float32"
    ):
        shift_images(torch.zeros(2, 1, 8, 8), torch.zeros(2, 2))
    with pytest.raises(
        ValueError, match=r"shifts must have shape \(2, 2\) for 2 images, got \(3, 2\)"
    ):
        shift_images(torch.zeros(2, 1, 8, 8), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="next_obs must have the batch size of obs"):
        random_shift(torch.zeros(2, 1, 8, 8), torch.zeros(3, 1, 8, 8), generator=g)
    with pytest.raises(ValueError, match="pad must be an int >= 0"):
        random_shift(torch.zeros(2, 1, 8, 8), pad=-1, generator=g)
    with pytest.raises(TypeError, match="real numeric image tensor"):
        random_shift(torch.zeros(2, 1, 8, 8, dtype=torch.bool), generator=g)
