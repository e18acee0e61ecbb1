"""Classical features: known values on synthetic shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biorep.models import ModelConfig, build_backbone
from biorep.models.classical import (
    ClassicalFeatures,
    cell_features,
    cell_mask,
    feature_names,
    shape_features,
    texture_features,
)

pytest.importorskip("skimage")


def _disc(size: int = 64, radius: float = 12.0, value: float = 0.8) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), 0.1)
    img[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius**2] = value
    return img


def _ellipse(size: int = 64, a: float = 20.0, b: float = 8.0) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size))
    img[((yy - size / 2) / b) ** 2 + ((xx - size / 2) / a) ** 2 <= 1] = 1.0
    return img


def test_disc_shape_area_eccentricity_solidity() -> None:
    img = _disc(radius=12)
    mask = cell_mask(img)
    s = shape_features(mask)
    assert s["area"] * 64 * 64 == pytest.approx(np.pi * 12**2, rel=0.03)
    assert s["eccentricity"] < 0.1
    assert s["solidity"] > 0.93  # a pixelated disc: area / convex-hull area just under 1
    assert s["major_axis"] == pytest.approx(s["minor_axis"], rel=0.03)


def test_ellipse_eccentricity() -> None:
    s = shape_features(cell_mask(_ellipse(a=20, b=8)))
    assert s["eccentricity"] == pytest.approx(np.sqrt(1 - (8 / 20) ** 2), abs=0.02)
    assert s["major_axis"] * 64 == pytest.approx(40, rel=0.05)


def test_l_shape_solidity() -> None:
    img = np.zeros((64, 64))
    img[12:52, 12:52] = 1.0
    img[12:32, 32:52] = 0.0  # a 40×40 square less a 20×20 corner: hull area 1600 − 200
    s = shape_features(cell_mask(img))
    assert s["area"] * 64 * 64 == 1200
    assert s["solidity"] == pytest.approx(1200 / 1400, abs=0.02)


def test_constant_image_intensity_and_texture() -> None:
    img = np.full((2, 32, 32), 0.25)
    names = feature_names(2)
    f = dict(zip(names, cell_features(img), strict=True))
    for c in range(2):
        assert f[f"ch{c}_mean"] == pytest.approx(0.25)
        assert f[f"ch{c}_std"] == 0.0
        assert f[f"ch{c}_min"] == f[f"ch{c}_max"] == pytest.approx(0.25)
        assert f[f"ch{c}_p50"] == pytest.approx(0.25)
        assert f[f"ch{c}_contrast"] == 0.0
        assert f[f"ch{c}_dissimilarity"] == 0.0
        assert f[f"ch{c}_homogeneity"] == pytest.approx(1.0)
        assert f[f"ch{c}_energy"] == pytest.approx(1.0)
    assert f["area"] == 0.0  # a constant image has no foreground


def test_checkerboard_has_maximal_contrast() -> None:
    img = (np.indices((16, 16)).sum(0) % 2).astype(float)  # 0/1 alternating
    t = texture_features(img, levels=8)
    # horizontal and vertical neighbours always differ by 7 levels, diagonal ones never
    assert t["contrast"] == pytest.approx(0.5)


def test_backbone_registered_and_shapes() -> None:
    net = build_backbone(ModelConfig(backbone="classical"), in_chans=3, img_size=64)
    assert isinstance(net, ClassicalFeatures)
    x = torch.from_numpy(np.stack([np.stack([_disc()] * 3)] * 2)).float()
    out = net(x)
    assert out.shape == (2, net.num_features) == (2, len(feature_names(3)))
    assert torch.isfinite(out).all()
    assert sum(p.numel() for p in net.parameters()) == 0
    assert float(out.abs().max()) <= 1.5  # unit-range features


def test_backbone_kwargs_checked() -> None:
    from biorep.errors import ConfigError

    with pytest.raises(ConfigError, match="mask_channel"):
        build_backbone(ModelConfig(backbone="classical", kwargs={"mask_channel": 3}), in_chans=1, img_size=64)
