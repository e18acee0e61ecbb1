"""Typed records of a run directory: ``data.json`` (:class:`DataRecord`) and ``summary.json``
(:class:`SummaryRecord`). Readers get these objects, never bare dicts; unknown extra keys written by
newer versions are kept (``extra="allow"``) so an old biorep can still read a newer run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from biorep.errors import RunDirError
from biorep.rundir.atomic import read_json
from biorep.rundir.layout import DATA, SUMMARY


class GeometryRecord(BaseModel):
    """How images were brought to the network's input size (see :class:`biorep.data.GeometryConfig`)."""

    model_config = ConfigDict(extra="allow")
    mode: str = "canvas"
    size: Any = None
    scale: Any = None
    background: float | None = None


class DataRecord(BaseModel):
    """``data.json``: what the run was trained on, its classes, scaler and split indices.

    ``size`` is the network input size (an int for a square canvas, or ``[height, width]``).
    ``background`` and ``geometry`` are ``None`` in runs written before they were recorded; readers
    then recover them from the run's data (see :func:`biorep.evaluate.rundata.run_geometry`).
    """

    model_config = ConfigDict(extra="allow")
    dataset: str
    n_images: int = 0
    channels: int = 1
    size: Any = None
    dtype: str | None = None
    label_column: str | None = None
    group_column: str | None = None
    dataset_classes: list[str] = Field(default_factory=list)
    classes: list[str] = Field(default_factory=list)
    target_column: str | None = None
    background: float | None = None
    geometry: GeometryRecord | None = Field(
        None, description="the geometry actually applied (scale and background resolved); None in older runs"
    )
    scaler: dict[str, Any] | None = None
    splits: dict[str, list[int]] = Field(default_factory=dict)
    images: dict[str, Any] | None = Field(
        None, description="pixel type, channels and original-size quantiles of the images (for predict)"
    )
    fingerprint: dict[str, Any] | None = Field(
        None, description="what identifies the data (source, file count, preprocessing) for --resume"
    )


class SummaryRecord(BaseModel):
    """``summary.json``: the finished run's figures (method, epochs, time, memory, best metric...)."""

    model_config = ConfigDict(extra="allow")
    method: str | None = None
    backbone: str | None = None
    dataset: str | None = None
    epochs: int | None = None
    max_epochs: int | None = None
    wall_time_s: float | None = None
    total_time_s: float | None = None
    best_metric: dict[str, Any] = Field(default_factory=dict)
    final_metrics: dict[str, Any] = Field(default_factory=dict)
    precision: str | None = None

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style access to any field, extra fields included."""
        return self.model_dump().get(key, default)


def _parse(model: type[BaseModel], path: Path) -> Any:
    try:
        return model.model_validate(read_json(path))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RunDirError(f"{path}: {where}: {first['msg']}") from None


def read_data(run_dir: str | Path) -> DataRecord:
    """The run's ``data.json`` as a :class:`DataRecord`."""
    return _parse(DataRecord, Path(run_dir) / DATA)


def read_summary(run_dir: str | Path) -> SummaryRecord:
    """The run's ``summary.json`` as a :class:`SummaryRecord`."""
    return _parse(SummaryRecord, Path(run_dir) / SUMMARY)
