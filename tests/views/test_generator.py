"""ViewGenerator: shapes, counts, global/local views, independence, seeding, devices."""

from __future__ import annotations

import pytest
import torch

from biorep.views import ViewsConfig, build_views


def _batch(b: int = 8, c: int = 1, s: int = 64) -> torch.Tensor:
    return torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("c", [1, 3])
def test_one_crop_gives_n_views_of_the_right_shape(c: int) -> None:
    views = build_views(ViewsConfig(augment="random", crops="one"), size=64)
    out = views(_batch(c=c), n_views=3)
    assert views.n_crops(3) == 3 == len(out)
    assert all(v.shape == (8, c, 64, 64) and v.dtype == torch.float32 for v in out)
    assert views.n_global(3) == 3


def test_none_one_is_identity_and_resizes_other_sizes() -> None:
    x = _batch()
    views = build_views(ViewsConfig(), size=64)
    (only,) = views(x)
    assert torch.equal(only, x)
    small = build_views(ViewsConfig(), size=32)(x)[0]
    assert small.shape == (8, 1, 32, 32)
    torch.testing.assert_close(small.mean(), x.mean(), atol=1e-3, rtol=0)


def test_multi_crop_views_and_scales() -> None:
    views = build_views(ViewsConfig(augment="none", crops="multi"), size=32)
    out = views(_batch(s=64), n_views=2)  # n_views is ignored for multi
    assert len(out) == views.n_crops(2) == 5
    assert all(v.shape == (8, 1, 32, 32) for v in out)
    assert views.n_global() == 1
    assert views.crop_scales() == [(1.0, 1.0), (0.5, 0.75), (0.5, 0.75), (0.25, 0.5), (0.25, 0.5)]


def test_given_boxes_cut_the_expected_region() -> None:
    # a coordinate image: channel 0 = column, channel 1 = row; the crop's mean locates the box centre
    s = 64
    cols = torch.arange(s, dtype=torch.float32).expand(s, s)
    x = torch.stack([cols, cols.T]).expand(4, 2, s, s) / s
    views = build_views(ViewsConfig(crops="multi"), size=16, seed=0)
    boxes = views.sample_boxes(4, s, s)
    out = views(x, boxes=boxes)
    for k, view in enumerate(out):
        cx = (boxes[k, :, 0] + boxes[k, :, 2]) / 2 - 0.5
        cy = (boxes[k, :, 1] + boxes[k, :, 3]) / 2 - 0.5
        torch.testing.assert_close(view[:, 0].mean((-2, -1)) * s, cx, atol=0.05, rtol=0)
        torch.testing.assert_close(view[:, 1].mean((-2, -1)) * s, cy, atol=0.05, rtol=0)


def test_views_are_independent_per_sample_and_per_view() -> None:
    x = _batch(1).expand(16, -1, -1, -1).contiguous()  # 16 copies of one image
    views = build_views(ViewsConfig(augment="chromosome", crops="one"), size=64, seed=0)
    a, b = views(x, n_views=2)
    assert len({round(float(v.sum()), 3) for v in a}) == 16
    assert not torch.allclose(a, b)


def test_seed_reproduces_views() -> None:
    cfg = ViewsConfig(augment="random", crops="multi")
    x = _batch()
    first = build_views(cfg, 64, seed=5)(x)
    again = build_views(cfg, 64, seed=5)(x)
    other = build_views(cfg, 64, seed=6)(x)
    assert all(torch.equal(p, q) for p, q in zip(first, again, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(first, other, strict=True))


def test_rejects_integer_images() -> None:
    with pytest.raises(ValueError, match="float"):
        build_views(ViewsConfig(), 64)(torch.zeros(2, 1, 64, 64, dtype=torch.uint8))


def test_fluorescence_on_three_channels_keeps_range() -> None:
    out = build_views(ViewsConfig(augment="fluorescence", crops="multi"), 32)(_batch(c=3, s=48))
    assert all(v.shape == (8, 3, 32, 32) and v.min() >= 0 and v.max() <= 1 for v in out)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_views_on_gpu() -> None:
    x = _batch(c=3).cuda()
    views = build_views(ViewsConfig(augment="chromosome", crops="multi"), 64, seed=0)
    out = views(x)
    assert all(v.device == x.device and v.shape == (8, 3, 64, 64) for v in out)


def test_cpu_chunking_gives_the_same_views_for_the_same_boxes() -> None:
    x = _batch(b=10, c=2)
    cfg = ViewsConfig(augment=[{"op": "vflip", "p": 1.0}], crops="multi")
    whole = build_views(cfg, 32, chunk_size=10_000)
    chunked = build_views(cfg, 32, chunk_size=5)  # 1 input sample per chunk
    boxes = whole.sample_boxes(10, 64, 64)
    for a, b in zip(whole(x, boxes=boxes), chunked(x, boxes=boxes), strict=True):
        assert a.shape == (10, 2, 32, 32)
        torch.testing.assert_close(a, b)


def test_quarter_turns_on_a_tall_canvas_are_refused_at_build_time() -> None:
    from biorep.errors import ConfigError

    with pytest.raises(ConfigError, match=r"rot90 with k \[1, 3\].*square data.geometry.size, got 32×16"):
        build_views(ViewsConfig(augment=[{"op": "rot90"}]), size=(32, 16))
    views = build_views(ViewsConfig(augment=[{"op": "rot90", "k": [0, 2]}]), size=(32, 16), seed=0)
    assert views(torch.rand(4, 1, 32, 16))[0].shape == (4, 1, 32, 16)
    build_views(ViewsConfig(augment=[{"op": "rot90"}]), size=32)  # square: every quarter turn is fine
