"""Random-shift image augmentation (DrQ / MR.Q): pad with replicated edges, crop back at random.

Shifting an image by ``(dy, dx)`` whole pixels with replicate padding is the same as padding it
by ``pad`` pixels on each side with its edge values and cropping the original size at offset
``(pad − dy, pad − dx)``. It is done here with one gather at clamped coordinates, so it is exact,
works on ``uint8`` as well as float images, and never builds the padded copy. (MR.Q and DrQ-v2
do the same crop with ``F.grid_sample`` at pixel centres on float images.)
"""

from __future__ import annotations

from typing import overload

import torch
from torch import Tensor

from rl_nets._checks import check_tensor

__all__ = ["random_shift", "sample_shifts", "shift_images"]


def _check_pad(pad: int) -> None:
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError(f"pad must be an int >= 0, got {pad!r}")


def _check_images(name: str, images: Tensor) -> None:
    check_tensor(name, images)
    if images.dim() < 3:
        raise ValueError(
            f"{name} must have shape (B, ..., H, W) with at least 3 dimensions, "
            f"got {tuple(images.shape)}"
        )
    if images.dtype == torch.bool or images.is_complex():
        raise TypeError(f"{name} must be a real numeric image tensor, got dtype {images.dtype}")


def sample_shifts(batch_size: int, *, pad: int = 4, generator: torch.Generator) -> Tensor:
    """Draw one integer shift per image, uniformly in ``[-pad, pad]`` on each axis.

    Args:
        batch_size: Number of shifts B.
        pad: Largest shift in pixels.
        generator: Source of randomness; the shifts are created on its device.

    Returns:
        ``(B, 2)`` int64 tensor of ``(dy, dx)`` shifts.
    """
    _check_pad(pad)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError(f"batch_size must be an int >= 0, got {batch_size!r}")
    return torch.randint(
        -pad, pad + 1, (batch_size, 2), generator=generator, device=generator.device
    )


def shift_images(images: Tensor, shifts: Tensor) -> Tensor:
    """Translate each image by whole pixels, filling the uncovered border with the edge pixels.

    ``out[b, ..., i, j] = images[b, ..., clamp(i − dy_b, 0, H−1), clamp(j − dx_b, 0, W−1)]``:
    a positive ``dy`` moves the content down, a positive ``dx`` moves it right. All channels
    (and any other middle dimensions, e.g. stacked frames or a horizon) of image ``b`` get the
    same shift. A shift of ``(0, 0)`` returns an identical copy.

    Args:
        images: ``(B, ..., H, W)`` tensor of any real dtype (``uint8`` pixels stay ``uint8``).
        shifts: ``(B, 2)`` integer tensor of ``(dy, dx)``, e.g. from :func:`sample_shifts`.

    Returns:
        ``(B, ..., H, W)`` tensor of ``images``' dtype and device.
    """
    _check_images("images", images)
    check_tensor("shifts", shifts)
    if shifts.dtype.is_floating_point or shifts.dtype == torch.bool or shifts.is_complex():
        raise TypeError(f"shifts must be an integer tensor, got dtype {shifts.dtype}")
    batch = images.shape[0]
    if shifts.shape != (batch, 2):
        raise ValueError(
            f"shifts must have shape ({batch}, 2) for {batch} images, got {tuple(shifts.shape)}"
        )
    height, width = images.shape[-2:]
    shifts = shifts.to(device=images.device, dtype=torch.long)
    if images.numel() == 0:
        return images.clone()
    # (B, ..., H, W) -> (B, K, H*W): every middle dimension shares the image's shift.
    flat = images.reshape(batch, -1, height * width)
    planes = flat.shape[1]
    rows = torch.arange(height, device=images.device)
    cols = torch.arange(width, device=images.device)
    # Source coordinates, clamped to the image: this is the replicate padding.
    src_rows = (rows.unsqueeze(0) - shifts[:, :1]).clamp(0, height - 1)  # (B, H)
    src_cols = (cols.unsqueeze(0) - shifts[:, 1:]).clamp(0, width - 1)  # (B, W)
    # One flat source index per output pixel, (B, 1, H*W), shared (stride 0) by the K planes:
    # a single gather is much faster than 4-way advanced indexing or grid_sample.
    src = (src_rows.unsqueeze(2) * width + src_cols.unsqueeze(1)).reshape(batch, 1, -1)
    out = flat.gather(2, src.expand(batch, planes, height * width))
    return out.reshape(images.shape)


@overload
def random_shift(obs: Tensor, /, *, pad: int = 4, generator: torch.Generator) -> Tensor: ...
@overload
def random_shift(
    obs: Tensor, next_obs: Tensor, /, *, pad: int = 4, generator: torch.Generator
) -> tuple[Tensor, Tensor]: ...
def random_shift(
    obs: Tensor,
    next_obs: Tensor | None = None,
    /,
    *,
    pad: int = 4,
    generator: torch.Generator,
) -> Tensor | tuple[Tensor, Tensor]:
    """Random-shift augmentation: each sample moved by its own ``(dy, dx)`` in ``[-pad, pad]²``.

    When ``next_obs`` is given, sample ``b`` of ``obs`` and of ``next_obs`` get the same shift
    (one draw per sample), so a transition stays spatially consistent.

    Args:
        obs: ``(B, ..., H, W)`` images, any real dtype.
        next_obs: Optional ``(B, ..., H, W)`` images with the same leading ``B``.
        pad: Largest shift in pixels (DrQ and MR.Q use 4).
        generator: Source of randomness (the shifts are drawn on its device, then moved).

    Returns:
        The shifted ``obs``, or ``(obs, next_obs)`` both shifted, with unchanged shapes and dtypes.
    """
    _check_images("obs", obs)
    if next_obs is not None:
        _check_images("next_obs", next_obs)
        if next_obs.shape[0] != obs.shape[0]:
            raise ValueError(
                f"next_obs must have the batch size of obs ({obs.shape[0]}), "
                f"got shape {tuple(next_obs.shape)}"
            )
    shifts = sample_shifts(obs.shape[0], pad=pad, generator=generator)
    if next_obs is None:
        return shift_images(obs, shifts)
    return shift_images(obs, shifts), shift_images(next_obs, shifts)
