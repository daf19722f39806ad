"""Batched augmentations against per-example references: windows of the padded image, and
torchvision's crop-then-resize (a crop of the image, resized by F.interpolate)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from prunelab.data.augment import crop_boxes, random_crop_flip, random_resized_crop_flip

RANGES = {"scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3)}


def test_augment_without_padding_only_flips() -> None:
    x = torch.randn(64, 3, 8, 8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=0)
    flipped = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert bool((flipped | kept).all()) and flipped.any() and kept.any()


def test_augment_crops_are_shifted_windows_padded_with_fill() -> None:
    x = torch.arange(1, 17, dtype=torch.float32).reshape(1, 1, 4, 4).repeat(32, 1, 1, 1)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2, fill=torch.tensor([-1.0]))
    padded = torch.full((1, 8, 8), -1.0)
    padded[:, 2:6, 2:6] = x[0]
    windows = [padded[:, i : i + 4, j : j + 4] for i in range(5) for j in range(5)]
    windows += [w.flip(-1) for w in windows]
    assert all(any(torch.equal(o, w) for w in windows) for o in out)
    assert len({tuple(o.flatten().tolist()) for o in out}) > 1


@pytest.mark.parametrize(("h", "w"), [(64, 64), (12, 20)])
def test_resized_crops_are_boxes_resized_as_f_interpolate_resizes_them(h: int, w: int) -> None:
    """The reference crops each box and resizes it alone, as torchvision's resized_crop does."""
    x = torch.randn(40, 3, h, w)
    out = random_resized_crop_flip(x, torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(5)  # the same draws: the boxes, then the flips
    boxes = torch.stack(crop_boxes(40, h, w, generator, **RANGES), dim=1).long().tolist()
    flips = torch.rand(40, generator=generator) < 0.5
    for k, (top, left, height, width) in enumerate(boxes):
        box = x[k : k + 1, :, top : top + height, left : left + width]
        reference = F.interpolate(box, size=(h, w), mode="bilinear", align_corners=False)[0]
        torch.testing.assert_close(out[k], reference.flip(-1) if flips[k] else reference, rtol=0, atol=1e-5)
    assert flips.any() and not flips.all()


def test_boxes_follow_random_resized_crops_distribution() -> None:
    """Areas uniform in 8%..100% of the image where they fit, aspect ratios log-uniform in 3/4..4/3."""
    top, left, height, width = crop_boxes(20_000, 64, 64, torch.Generator().manual_seed(0), **RANGES)
    assert bool(((top >= 0) & (left >= 0) & (top + height <= 64) & (left + width <= 64) & (height >= 1) & (width >= 1)).all())
    share = height * width / 64**2
    assert share.min() >= 0.07 and share.max() <= 1
    log_aspect = (width / height).log()
    assert log_aspect.abs().max() <= math.log(4 / 3) + 0.1  # rounding to whole pixels widens it a little
    assert log_aspect.mean().abs() < 0.01  # symmetric about a square box
    # A box of share a and aspect r fits a square if a*r <= 1 and a/r <= 1: always for a <= 3/4,
    # else with chance ln(1/a) / ln(4/3). The shares kept then have density 1 on 0.08..0.75 (mass
    # 0.67) and ln(1/a) / ln(4/3) above (mass (0.25 - 0.75 ln(4/3)) / ln(4/3) = 0.119): half the
    # mass, 0.3945, lies below 0.08 + 0.3945 = 0.4745 (whole pixels move it a little).
    assert share.median() == pytest.approx(0.4745, abs=0.01)


@pytest.mark.parametrize(("h", "w"), [(8, 16), (16, 8)])
def test_a_box_that_fills_a_side_is_kept_and_placed_anywhere_inside(h: int, w: int) -> None:
    """Half the area of an 8x16 image at aspect 1 is an 8x8 box: as tall (or wide) as the image,
    which fits, as torchvision's ``<=`` says. Its top and left are uniform over every position
    that keeps it inside: 0..h-8 and 0..w-8, both ends included."""
    top, left, height, width = crop_boxes(400, h, w, torch.Generator().manual_seed(0), scale=(0.5, 0.5), ratio=(1.0, 1.0))
    assert height.tolist() == width.tolist() == [8.0] * 400
    assert set(top.tolist()) == set(map(float, range(h - 8 + 1))) and set(left.tolist()) == set(map(float, range(w - 8 + 1)))


@pytest.mark.parametrize(("h", "w", "box"), [(64, 64, (0, 0, 64, 64)), (32, 64, (0, 10, 32, 43)), (64, 32, (10, 0, 43, 32))])
def test_when_no_box_fits_the_centred_box_of_the_nearest_allowed_aspect_is_taken(h: int, w: int, box: tuple) -> None:
    """torchvision's fallback. A 32x64 image is wider than 4/3 allows: all 32 rows and
    round(32 * 4/3) = 43 columns, from column (64 - 43) // 2 = 10; a 64x32 one is narrower than
    3/4: round(32 / (3/4)) = 43 rows from row 10, all 32 columns; a square one: all of it."""
    top, left, height, width = crop_boxes(3, h, w, torch.Generator().manual_seed(0), scale=(2.0, 3.0), ratio=RANGES["ratio"])
    assert [tuple(int(v[k]) for v in (top, left, height, width)) for k in range(3)] == [box] * 3


def test_a_box_of_the_whole_image_only_flips() -> None:
    x = torch.randn(64, 3, 8, 8)
    out = random_resized_crop_flip(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    flipped = torch.tensor([torch.allclose(o, xi.flip(-1), atol=1e-6) for o, xi in zip(out, x)])
    kept = torch.tensor([torch.allclose(o, xi, atol=1e-6) for o, xi in zip(out, x)])
    assert bool((flipped | kept).all()) and flipped.any() and kept.any()
