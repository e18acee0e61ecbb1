from __future__ import annotations

import numpy as np

from biorep.data.geometry import apply_geometry, auto_scale, border_median, fit_to_canvas


def _extent(canvas: np.ndarray, bg: float) -> tuple[int, int]:
    rows = np.flatnonzero((canvas[0] != bg).any(axis=1))
    cols = np.flatnonzero((canvas[0] != bg).any(axis=0))
    return int(rows.size), int(cols.size)


def test_canvas_keeps_relative_size_and_centres() -> None:
    long = np.zeros((1, 80, 20), np.uint8)
    short = np.zeros((1, 40, 20), np.uint8)
    a, _ = fit_to_canvas(long, 64, 0.5, 255)
    b, _ = fit_to_canvas(short, 64, 0.5, 255)
    assert a.shape == b.shape == (1, 64, 64)
    assert _extent(a, 255) == (40, 10) and _extent(b, 255) == (20, 10)
    rows = np.flatnonzero((b[0] != 255).any(axis=1))
    assert rows[0] == 22 and rows[-1] == 41  # centred
    assert (b[0, 0] == 255).all()  # filled with the background, not stretched


def test_too_large_crop_is_shrunk_and_flagged() -> None:
    big = np.zeros((1, 200, 50), np.uint16)
    out, shrunk = fit_to_canvas(big, 64, 1.0, 0)
    assert shrunk and out.dtype == np.uint16 and _extent(out + 1, 1)[0] <= 64
    _, shrunk = fit_to_canvas(np.zeros((1, 10, 10), np.uint8), 64, 1.0, 0)
    assert not shrunk


def test_auto_scale_fits_99th_percentile() -> None:
    h = np.array([10] * 99 + [1000])
    w = np.full(100, 5)
    s = auto_scale(h, w, 64)
    assert 64 / 20 < s <= 64 / 10 + 1e-9  # the outlier does not set the scale


def test_resize_and_none_modes() -> None:
    img = np.random.default_rng(0).random((2, 30, 10)).astype(np.float32)
    out, _ = apply_geometry(img, "resize", 16, 1.0, 0)
    assert out.shape == (2, 16, 16) and out.dtype == np.float32
    same, _ = apply_geometry(img, "none", 16, 1.0, 0)
    assert same is img


def test_border_median_estimates_background() -> None:
    img = np.full((1, 20, 20), 250, np.uint8)
    img[0, 5:15, 5:15] = 10
    assert border_median(img) == 250


def test_tall_canvas_keeps_scale_and_shape() -> None:
    crop = np.zeros((1, 60, 20), np.uint8)
    out, shrunk = fit_to_canvas(crop, (96, 48), 1.5, 255)
    assert out.shape == (1, 96, 48) and not shrunk
    assert _extent(out, 255) == (90, 30)  # one common factor on both axes: no stretching
    wide = np.zeros((1, 20, 100), np.uint8)  # too wide for the canvas: shrunk on its width
    out, shrunk = fit_to_canvas(wide, (96, 48), 1.0, 255)
    assert shrunk and _extent(out, 255) == (10, 48)


def test_auto_scale_on_a_tall_canvas_fits_both_axes() -> None:
    h = np.array([60] * 199 + [1000])  # one outlier in 200: above the 99th percentile
    w = np.array([20] * 199 + [5])
    assert np.isclose(auto_scale(h, w, (96, 48)), 96 / 60)  # the height binds
    w_wide = np.array([40] * 199 + [5])
    assert np.isclose(auto_scale(h, w_wide, (96, 48)), 48 / 40)  # here the width binds
    # on a square canvas the rule is the old one: size / percentile(max(h, w))
    assert auto_scale(h, w, (64, 64)) == auto_scale(h, w, 64)


def test_size_spellings() -> None:
    import pytest
    from pydantic import ValidationError

    from biorep.data.config import GeometryConfig
    from biorep.data.geometry import as_hw

    assert GeometryConfig(size=[96, 48]).hw == (96, 48) and GeometryConfig(size=[64, 64]).size == 64
    assert as_hw(64) == (64, 64)
    for bad, msg in [([96, 48, 1], "one number or"), ([96, 0], "whole numbers"), (2.5, "whole numbers")]:
        with pytest.raises(ValidationError, match=msg):
            GeometryConfig(size=bad)
    assert apply_geometry(np.zeros((1, 30, 10), np.uint8), "resize", (40, 20), 1.0, 0)[0].shape == (1, 40, 20)


def test_one_huge_image_does_not_set_the_auto_scale() -> None:
    """With few crops the 99th percentile is the largest one; a stray 1000×800 image among 40×24
    crops must not shrink them all to a few pixels."""
    h = np.array([40] * 36 + [1000])
    w = np.array([24] * 36 + [800])
    assert np.isclose(auto_scale(h, w, 64), 64 / 40)
    assert auto_scale(h, w, 64, exclude_outliers=False) < 0.1
    assert np.isclose(auto_scale(h, w, (96, 48)), 48 / 24)  # the width binds
