"""What a lab's own chromosome set differs in: pixel scale (the physical canvas scale) and class naming."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from biorep.data import DataConfig, load_dataset
from biorep.data.config import GeometryConfig
from biorep.data.geometry import resize

from .conftest import blob


def _extent(img: np.ndarray, background: float) -> tuple[int, int]:
    """Rows and columns of the canvas the object covers."""
    obj = np.abs(img[0].astype(float) - background) > 60
    return int(obj.any(1).sum()), int(obj.any(0).sum())


def test_pixel_size_keeps_the_physical_canvas_scale(make_folder: Callable[..., Path]) -> None:
    crops = [blob(60, 20, seed=i) for i in range(3)] + [blob(40, 16, seed=9)]
    ref = make_folder({"a": [(f"{i}.png", c) for i, c in enumerate(crops)]}, name="ref")
    # the same crops imaged at half the resolution: every pixel covers twice the length
    half = make_folder({"a": [(f"{i}.png", resize(c[None], c.shape[0] // 2, c.shape[1] // 2)[0])
                              for i, c in enumerate(crops)]}, name="lab")
    geo = {"mode": "canvas", "size": 48, "scale": 0.5, "background": 255}
    a = load_dataset(DataConfig(dataset=str(ref), geometry=geo), progress=False)
    b = load_dataset(DataConfig(dataset=str(half), geometry={**geo, "pixel_size": 2.0}), progress=False)
    plain = load_dataset(DataConfig(dataset=str(half), geometry=geo), progress=False)
    assert a.info["scale"] == pytest.approx(0.5) and b.info["scale"] == pytest.approx(1.0)
    for i in range(len(crops)):
        ha, wa = _extent(a.images[i], 255)
        hb, wb = _extent(b.images[i], 255)
        assert abs(ha - hb) <= 2 and abs(wa - wb) <= 2           # same canvas size per chromosome
        hp, _ = _extent(plain.images[i], 255)
        assert hp < 0.7 * ha                                       # pixel scale alone would halve it
    assert GeometryConfig(scale=0.4706, pixel_size=1 / 0.7).resize_factor() == pytest.approx(0.6723, abs=1e-4)
    with pytest.raises(ValueError):
        GeometryConfig(scale="auto").resize_factor()
    with pytest.raises(ValueError):
        GeometryConfig(pixel_size=0)


def test_class_map_renames_a_labs_naming(make_folder: Callable[..., Path]) -> None:
    root = make_folder({f"chr{c}": [(f"{c}_{i}.png", blob(20, 10, seed=i)) for i in range(2)]
                        for c in ("1", "2", "X")})
    cmap = {"chr1": "1", "chr2": "2", "chrX": "X"}
    ds = load_dataset(DataConfig(dataset=str(root), class_map=cmap, classes=["1", "2", "X"],
                                 geometry={"size": 24}), progress=False)
    assert ds.classes == ["1", "2", "X"]
    assert ds.targets.tolist() == [0, 0, 1, 1, 2, 2]
    assert sorted(set(ds.meta[ds.label_column])) == ["1", "2", "X"]
    # names left out of the map are kept; several names may become one class
    merged = load_dataset(DataConfig(dataset=str(root), class_map={"chr1": "auto", "chr2": "auto"},
                                     geometry={"size": 24}), progress=False)
    assert merged.classes == ["auto", "chrX"] and merged.targets.tolist() == [0, 0, 0, 0, 1, 1]
