"""Crop strategies: counts, area fractions, aspect ratios, roi_align resizing."""

from __future__ import annotations

import pytest
import torch

from biorep.views.crops import CROPS, CropGroup, MultiCrop, OneCrop, RandomResizedCrop, crop_resize


def _areas(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]) / (h * w)


def test_registry() -> None:
    assert set(CROPS.names()) >= {"one", "multi", "random_resized"}


def test_default_multi_crop_scales() -> None:
    multi = MultiCrop()
    assert multi.n_crops(1) == multi.n_crops(7) == 5
    boxes = multi.sample_boxes(256, 64, 64, generator=torch.Generator().manual_seed(0))
    assert boxes.shape == (5, 256, 4)
    area = _areas(boxes, 64, 64)
    assert torch.all(area[0] == 1.0)
    eps = 1e-4
    for i, (lo, hi) in enumerate(multi.scales()):
        assert torch.all(area[i] >= lo - eps) and torch.all(area[i] <= hi + eps), i
    # boxes lie inside the image and the aspect ratio stays in [3/4, 4/3]
    assert boxes.min() >= 0 and boxes[..., [0, 2]].max() <= 64 and boxes[..., [1, 3]].max() <= 64
    ratio = (boxes[1:, :, 2] - boxes[1:, :, 0]) / (boxes[1:, :, 3] - boxes[1:, :, 1])
    assert ratio.min() >= 3 / 4 - 1e-4 and ratio.max() <= 4 / 3 + 1e-4
    # the ranges are actually explored
    assert area[3:].min() < 0.3 and area[3:].max() > 0.45


def test_custom_groups_and_non_square_images() -> None:
    multi = MultiCrop(
        groups=[{"n": 2, "scale": (1.0, 1.0)}, {"n": 3, "scale": (0.1, 0.2), "ratio": (1.0, 1.0)}]
    )
    assert multi.scales() == [(1.0, 1.0)] * 2 + [(0.1, 0.2)] * 3
    boxes = multi.sample_boxes(64, 40, 80)
    area = _areas(boxes, 40, 80)
    assert torch.all(area[:2] == 1) and torch.all((area[2:] >= 0.1 - 1e-4) & (area[2:] <= 0.2 + 1e-4))
    # ratio 1 is the image's own aspect (80 / 40): resized to the 40 × 80 view, content keeps its shape
    sq = boxes[2:]
    torch.testing.assert_close(sq[..., 2] - sq[..., 0], 2 * (sq[..., 3] - sq[..., 1]))


def test_one_and_random_resized_follow_n_views() -> None:
    assert OneCrop().n_crops(3) == 3
    rrc = RandomResizedCrop(scale=(0.2, 1.0))
    assert rrc.n_crops(2) == 2
    area = _areas(rrc.sample_boxes(128, 32, 32, 2), 32, 32)
    assert area.min() >= 0.2 - 1e-4 and area.max() <= 1.0 + 1e-4


def test_boxes_are_per_sample() -> None:
    boxes = MultiCrop().sample_boxes(32, 64, 64)
    assert len({tuple(b.tolist()) for b in boxes[1]}) == 32


def test_crop_resize_full_box_is_identity_and_crop_is_exact_on_coordinates() -> None:
    x = torch.rand(3, 2, 16, 16)
    full = torch.tensor([0.0, 0.0, 16.0, 16.0]).expand(1, 3, 4)
    assert torch.equal(crop_resize(x, full, 16), x)
    # a coordinate image: value = column index; an 8-px wide box resized to 8 px keeps the columns
    cols = torch.arange(16.0).expand(1, 1, 16, 16).repeat(2, 1, 1, 1)
    box = torch.tensor([[[4.0, 2.0, 12.0, 10.0], [0.0, 8.0, 8.0, 16.0]]])
    out = crop_resize(cols, box, 8)
    torch.testing.assert_close(out[0, 0, 0], torch.arange(4.0, 12.0))
    torch.testing.assert_close(out[1, 0, 0], torch.arange(0.0, 8.0))
    # and downscaling the full image to half size averages neighbouring columns
    half = crop_resize(cols, torch.tensor([[[0.0, 0.0, 16.0, 16.0]] * 2]), 8)
    torch.testing.assert_close(half[0, 0, 0], torch.arange(0.5, 16.0, 2.0))


def test_invalid_groups() -> None:
    with pytest.raises(ValueError, match="scale"):
        CropGroup(scale=(0.5, 1.5))
    with pytest.raises(ValueError):
        CropGroup(n=0)
