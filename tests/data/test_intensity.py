from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from biorep.data import ImageDataset, IntensityConfig, IntensityScaler


def _ds(images: np.ndarray, background: float) -> ImageDataset:
    n = len(images)
    return ImageDataset(name="t", images=images, meta=pd.DataFrame({"path": [f"{i}" for i in range(n)]}),
                        label_column=None, classes=[], targets=np.full(n, -1, np.int64), group_column=None,
                        background=background, channels=images.shape[1], size=images.shape[2])


def test_uint8_range_and_auto_invert_for_white_background() -> None:
    imgs = np.full((4, 1, 8, 8), 255, np.uint8)
    imgs[:, :, 2:6, 2:6] = 55
    scaler = IntensityScaler.fit(_ds(imgs, 255.0), np.arange(4), IntensityConfig())
    assert scaler.mode == "range" and scaler.invert
    y = scaler(torch.from_numpy(imgs))
    assert y.dtype == torch.float32
    assert float(y[0, 0, 0, 0]) == pytest.approx(0.0)  # background → 0
    assert float(y[0, 0, 3, 3]) == pytest.approx(200 / 255)


def test_percentile_fitted_on_training_rows_only_and_per_channel() -> None:
    rng = np.random.default_rng(0)
    imgs = np.zeros((10, 2, 8, 8), np.uint16)
    imgs[:5, 0] = rng.integers(0, 1000, (5, 8, 8))
    imgs[:5, 1] = rng.integers(0, 20000, (5, 8, 8))
    imgs[5:] = 60000  # val/test rows must not influence the fit
    scaler = IntensityScaler.fit(_ds(imgs, 0.0), np.arange(5), IntensityConfig(low=0, high=100))
    assert scaler.mode == "percentile" and not scaler.invert
    assert scaler.high[0] < 1000 and 10000 < scaler.high[1] < 20000
    y = scaler(imgs[:5])
    assert float(y.min()) == 0.0 and float(y.max()) == 1.0
    assert float(scaler(imgs[5:]).min()) == 1.0  # clipped


def test_dict_roundtrip_is_json_and_identical() -> None:
    imgs = np.random.default_rng(1).integers(0, 4000, (6, 3, 4, 4)).astype(np.uint16)
    scaler = IntensityScaler.fit(_ds(imgs, 0.0), [0, 1, 2], IntensityConfig(mode="percentile", invert=True))
    back = IntensityScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    x = torch.from_numpy(imgs.astype(np.int32))
    torch.testing.assert_close(scaler(x), back(x))
    assert back.invert


def test_none_mode_only_casts() -> None:
    imgs = np.full((2, 1, 4, 4), 7, np.uint8)
    scaler = IntensityScaler.fit(_ds(imgs, 0.0), [0], IntensityConfig(mode="none"))
    assert float(scaler(imgs).max()) == 7.0
