"""Batched image augmentations, each a function of a batch ``(N, C, H, W)`` and a
``torch.Generator``: the same generator state gives the same batch."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F


def random_crop_flip(
    x: Tensor, generator: torch.Generator, padding: int = 4, fill: Tensor | None = None
) -> Tensor:
    """Per-example random crop (after padding each side by ``padding``) and horizontal flip.

    ``x`` is a batch ``(N, C, H, W)``; the padding value per channel is ``fill`` (default 0).
    The same generator state gives the same result.

    >>> x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    >>> random_crop_flip(x, torch.Generator().manual_seed(0), padding=1).shape
    torch.Size([2, 3, 4, 4])
    """
    n, c, h, w = x.shape
    padded = x.new_zeros(n, c, h + 2 * padding, w + 2 * padding)
    if fill is not None:
        padded += fill.to(x).view(1, c, 1, 1)
    padded[:, :, padding : padding + h, padding : padding + w] = x
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = top[:, None] + torch.arange(h)
    cols = left[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    return padded[
        torch.arange(n)[:, None, None, None],
        torch.arange(c)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def random_resized_crop_flip(
    x: Tensor, generator: torch.Generator, scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)
) -> Tensor:
    """Per-example random resized crop and horizontal flip, as torchvision's RandomResizedCrop
    and RandomHorizontalFlip (seed 002's Tiny ImageNet augmentation): a box of a random share
    ``scale`` of the area and aspect ratio (log-uniform in ``ratio``), resized bilinearly to the
    input's size; after 10 draws that do not fit, the largest centred box of an aspect ratio
    within ``ratio``.

    >>> x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    >>> random_resized_crop_flip(x, torch.Generator().manual_seed(0)).shape
    torch.Size([2, 3, 8, 8])
    """
    n, _, h, w = x.shape
    top, left, heights, widths = crop_boxes(n, h, w, generator, scale, ratio)
    flip = torch.rand(n, generator=generator) < 0.5
    # Each output pixel's source position inside its box, as F.interpolate(align_corners=False)
    # resizes the cropped box: clamped to the box, so no pixel outside it is read.
    steps_y, steps_x = (torch.arange(size, dtype=torch.float64) + 0.5 for size in (h, w))
    rows = top[:, None] + (steps_y * heights[:, None] / h - 0.5).clamp(min=0).minimum(heights[:, None] - 1)
    cols = left[:, None] + (steps_x * widths[:, None] / w - 0.5).clamp(min=0).minimum(widths[:, None] - 1)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    grid = torch.stack(torch.broadcast_tensors(((2 * cols + 1) / w - 1)[:, None, :], ((2 * rows + 1) / h - 1)[:, :, None]), dim=-1)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def crop_boxes(
    n: int, h: int, w: int, generator: torch.Generator, scale: tuple[float, float], ratio: tuple[float, float], attempts: int = 10
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``n`` random boxes (top, left, height, width) of RandomResizedCrop's distribution."""
    area = torch.empty(n, attempts, dtype=torch.float64).uniform_(*scale, generator=generator) * (h * w)
    aspect = torch.empty(n, attempts, dtype=torch.float64).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator).exp()
    widths, heights = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (widths > 0) & (widths <= w) & (heights > 0) & (heights <= h)
    first = fits.int().argmax(dim=1, keepdim=True)  # the first draw that fits, as torchvision keeps
    widths, heights = widths.gather(1, first).squeeze(1), heights.gather(1, first).squeeze(1)
    # No draw fits: the whole image, narrowed to the nearest aspect ratio allowed.
    fallback_h, fallback_w = h, w
    if w / h < ratio[0]:
        fallback_h = round(w / ratio[0])
    elif w / h > ratio[1]:
        fallback_w = round(h * ratio[1])
    fitted = fits.any(dim=1)
    widths = torch.where(fitted, widths, float(fallback_w))
    heights = torch.where(fitted, heights, float(fallback_h))
    top = torch.where(fitted, (torch.rand(n, generator=generator, dtype=torch.float64) * (h - heights + 1)).floor(), (h - heights) // 2)
    left = torch.where(fitted, (torch.rand(n, generator=generator, dtype=torch.float64) * (w - widths + 1)).floor(), (w - widths) // 2)
    return top, left, heights, widths
