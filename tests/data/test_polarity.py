"""Contrast polarity: detection (object vs border), forcing it, and the same network input for a
dark-on-light set and its contrast-inverted (light-on-dark) twin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from biorep.data import ImageDataset, IntensityConfig, IntensityScaler
from biorep.data.intensity import detect_polarity, polarity_scores


def _ds(images: np.ndarray, background: float) -> ImageDataset:
    n = len(images)
    return ImageDataset(name="t", images=images, meta=pd.DataFrame({"path": [f"{i}" for i in range(n)]}),
                        label_column=None, classes=[], targets=np.full(n, -1, np.int64), group_column=None,
                        background=background, channels=images.shape[1], size=images.shape[2])


def _gband(n: int = 12, size: int = 64, seed: int = 0) -> np.ndarray:
    """Dark banded 'chromosomes' (about 10 × 29 px, 7 % of the canvas) on a white canvas."""
    rng = np.random.default_rng(seed)
    imgs = np.full((n, 1, size, size), 255, np.uint8)
    for i in range(n):
        h, w = rng.integers(20, 30), rng.integers(8, 11)
        top, left = (size - h) // 2, (size - w) // 2
        bands = rng.integers(40, 170, size=h).astype(np.uint8)
        imgs[i, 0, top : top + h, left : left + w] = bands[:, None]
    return imgs


def test_detects_both_polarities_even_for_small_objects() -> None:
    g = _gband()
    assert detect_polarity(g, 0, 255) == "dark_on_light"
    assert detect_polarity(255 - g, 0, 255) == "light_on_dark"
    assert np.all(polarity_scores(g, 0, 255) < -0.2)


def test_texture_without_background_is_undecided() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (8, 1, 32, 32)).astype(np.uint8)
    assert detect_polarity(noise, 0, 255) is None
    assert detect_polarity(np.full((3, 1, 8, 8), 9, np.uint8), 0, 255) is None  # nothing but background


def test_inverted_contrast_set_gives_the_same_network_input() -> None:
    """A G-band set and its inverted (Q-band-like) twin map to the same bright-on-dark tensors —
    even when the twin's data set claims a white background."""
    g = _gband()
    q = 255 - g
    sg = IntensityScaler.fit(_ds(g, 255.0), np.arange(len(g)), IntensityConfig())
    sq = IntensityScaler.fit(_ds(q, 255.0), np.arange(len(q)), IntensityConfig())  # background claim wrong
    assert (sg.invert, sg.polarity, sg.polarity_source) == (True, "dark_on_light", "detected")
    assert (sq.invert, sq.polarity, sq.polarity_source) == (False, "light_on_dark", "detected")
    xg, xq = sg(torch.from_numpy(g)), sq(torch.from_numpy(q))
    torch.testing.assert_close(xg, xq)
    assert float(xg[:, :, 0, 0].max()) == 0.0 and float(xg.max()) > 0.3  # background 0, object bright


def test_polarity_can_be_forced_and_invert_overrides_it() -> None:
    g = _gband()
    forced = IntensityScaler.fit(_ds(g, 255.0), np.arange(4), IntensityConfig(polarity="light_on_dark"))
    assert (forced.invert, forced.polarity, forced.polarity_source) == (False, "light_on_dark", "config")
    explicit = IntensityScaler.fit(_ds(g, 255.0), np.arange(4), IntensityConfig(invert=False))
    assert not explicit.invert
    with pytest.raises(ValueError):
        IntensityConfig(polarity="sideways")


def test_undecided_falls_back_to_the_background_and_the_record_round_trips() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (6, 1, 16, 16)).astype(np.uint8)
    s = IntensityScaler.fit(_ds(noise, 250.0), np.arange(6), IntensityConfig())
    assert (s.invert, s.polarity_source) == (True, "background")
    back = IntensityScaler.from_dict(s.to_dict())
    assert (back.polarity, back.polarity_source, back.invert) == (s.polarity, s.polarity_source, True)
    old = {k: v for k, v in s.to_dict().items() if not k.startswith("polarity")}  # data.json of older runs
    assert IntensityScaler.from_dict(old).polarity is None
