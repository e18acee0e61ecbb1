from __future__ import annotations

import pytest
from pydantic import ValidationError

from biorep.data import DataConfig, IntensityConfig, SplitConfig


def test_defaults_and_nested_dicts() -> None:
    cfg = DataConfig(dataset="x", geometry={"size": 96, "scale": 0.5}, split={"holdout": [27801, "B"]})
    assert cfg.geometry.mode == "canvas" and cfg.geometry.size == 96 and cfg.geometry.scale == 0.5
    assert cfg.intensity.mode == "auto" and cfg.intensity.invert == "auto"
    assert cfg.split.holdout == ["27801", "B"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "x", "colour": 1}, "colour"),
        ({"dataset": "x", "geometry": {"size": -4}}, "size"),
        ({"dataset": "x", "geometry": {"scale": 0}}, "scale"),
        ({"dataset": "x", "geometry": {"mode": "stretch"}}, "mode"),
        ({"dataset": "x", "split": {"test": 0.6, "val": 0.4}}, "test \\+ val must be < 1"),
        ({"dataset": "x", "intensity": {"low": 99, "high": 1}}, "percentiles out of order"),
        ({"dataset": "x", "channels": 0}, "channels"),
        ({"dataset": "x", "channels": [0, 0]}, "repeated"),
    ],
)
def test_impossible_values_fail_clearly(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DataConfig(**kwargs)


def test_submodels_forbid_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="extra"):
        IntensityConfig(mode="range", gamma=2)
    with pytest.raises(ValidationError):
        SplitConfig(folds=3)


@pytest.mark.parametrize("field", ["scale", "pixel_size", "background"])
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_geometry_numbers_must_be_finite(field: str, value: float) -> None:
    from biorep.data.config import GeometryConfig

    kwargs = {"scale": 0.5, field: value} if field != "scale" else {field: value}
    with pytest.raises(ValueError, match="finite|greater than 0"):
        GeometryConfig(**kwargs)
