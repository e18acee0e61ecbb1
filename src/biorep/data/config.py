"""Validated data settings: which images, how to size them, how to scale intensities, how to split.

Example:
    >>> cfg = DataConfig(dataset="chromosome-pki3", geometry={"size": 96})
    >>> cfg.geometry.mode, cfg.intensity.mode, cfg.split.test
    ('canvas', 'auto', 0.2)
"""

from __future__ import annotations

import math

from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from biorep.configmodel import ConfigModel
from biorep.data.geometry import as_hw


def _class_name(v: Any, what: str) -> Any:
    """A class name given as a YAML number → its text (``1`` → ``"1"``, ``2.0`` → ``"2"``)."""
    if isinstance(v, bool) or v is None:
        raise ValueError(f"{what} is {v!r}; class names are text or numbers (quote 'yes', 'no', 'null')")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v) if isinstance(v, (int, float)) else v


class _Strict(ConfigModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class GeometryConfig(_Strict):
    """How crops of varying size become images of one size.

    ``size`` is the side of a square (``64``) or ``[height, width]`` (``[96, 48]``: a tall canvas for
    upright, elongated crops such as chromosomes, which keeps 1.5× the resolution of a 64 px square
    for about the same pixel count). ``canvas`` scales every crop by ONE common factor (``scale``;
    ``auto`` = the factor at which 99 % of the crops fit the canvas whole) and centres it on a canvas
    filled with the background, so relative sizes survive; ``resize`` stretches each image to
    ``size``; ``none`` requires all images to be of one size already (``size`` is then unused).

    Physical canvas scale: ``pixel_size`` (None = 1) is the length one pixel of these images covers,
    relative to the data set whose ``scale`` you reuse. With a numeric ``scale`` the resize factor is
    ``scale × pixel_size``, so a chromosome covers as many canvas pixels in a lab's set imaged at
    another resolution as in the set a run was trained on: to fine-tune a Pki-3 run (scale 0.4706)
    on images taken at 0.7× its resolution (pixels 1/0.7 as long), give ``scale: 0.4706`` and
    ``pixel_size: 1.4286``. ``scale: auto`` fits each data set's own 99th-percentile length into the
    canvas instead (pixel size then plays no part).
    """

    def resize_factor(self) -> float:
        """The factor applied to every image: ``scale × pixel_size`` (a numeric scale only)."""
        if self.scale == "auto":
            raise ValueError("scale auto has no fixed factor; it is fitted on the data")
        return float(self.scale) * (self.pixel_size if self.pixel_size is not None else 1.0)

    @property
    def hw(self) -> tuple[int, int]:
        """``(height, width)`` of the output images."""
        return as_hw(self.size)

    mode: Literal["canvas", "resize", "none"] = "canvas"
    size: int | tuple[int, int] = Field(
        64, description="Output size in pixels: the side of a square, or [height, width]."
    )
    scale: Literal["auto"] | float = Field("auto", description="Common scale factor for canvas mode.")
    pixel_size: float | None = Field(
        None,
        gt=0,
        description="Physical size of one image pixel relative to the reference data set's (1.0); with a "
        "numeric scale, images are resized by scale × pixel_size (the physical canvas scale).",
    )
    background: Literal["auto"] | float | None = Field(
        None, description="Fill value in raw units; None = the data set's default; auto = median border pixel."
    )

    @field_validator("size", mode="before")
    @classmethod
    def _check_size(cls, v: Any) -> Any:
        def pixels(n: Any) -> int:
            if isinstance(n, str) and n.strip().isdigit():
                n = int(n)
            if isinstance(n, float) and n.is_integer():
                n = int(n)
            if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= 4096:
                raise ValueError(f"size values must be whole numbers of pixels in 1..4096, got {n!r}")
            return n

        if isinstance(v, (list, tuple)):
            if len(v) != 2:
                raise ValueError(f"size must be one number or [height, width], got {len(v)} values")
            h, w = pixels(v[0]), pixels(v[1])
            return h if h == w else (h, w)  # [64, 64] is the square 64: one spelling, one cache key
        return pixels(v)

    @field_validator("scale")
    @classmethod
    def _positive_scale(cls, v: Any) -> Any:
        if not isinstance(v, str) and not (v > 0 and math.isfinite(v)):
            raise ValueError("scale must be 'auto' or a finite number > 0")
        return v

    @field_validator("pixel_size", "background")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"must be a finite number, got {v}")
        return v


class IntensityConfig(_Strict):
    """How raw intensities map to [0, 1] (fitted on the training split only).

    ``range`` divides by the dtype range, ``percentile`` clips per channel to the ``low``/``high``
    percentiles, ``auto`` = range for uint8 and percentile otherwise, ``none`` only casts to float.
    ``invert`` flips values so background maps to ≈ 0 (``auto``: for dark-on-light images).
    ``polarity`` is the raw images' contrast: ``auto`` detects it on the training images (object
    pixels vs the border), ``dark_on_light`` (G-banding, bright-field) or ``light_on_dark``
    (Q-banding, fluorescence) forces it. Every run thus sees bright objects on dark, so a run
    fine-tuned from another gets the polarity the other was trained on.
    """

    mode: Literal["auto", "range", "percentile", "none"] = "auto"
    low: float = Field(0.5, ge=0, le=100)
    high: float = Field(99.5, ge=0, le=100)
    invert: Literal["auto"] | bool = "auto"
    polarity: Literal["auto", "dark_on_light", "light_on_dark"] = "auto"

    @model_validator(mode="after")
    def _ordered(self) -> IntensityConfig:
        if self.low >= self.high:
            raise ValueError(f"percentiles out of order: low={self.low} must be below high={self.high}")
        return self


class SplitConfig(_Strict):
    """Group-aware, stratified, seeded train/val/test split.

    ``holdout`` lists group values that form the test set (the ``test`` fraction is then unused);
    ``group`` overrides the data set's grouping column.
    """

    test: float = Field(0.2, ge=0, lt=1)
    val: float = Field(0.1, ge=0, lt=1)
    seed: int = 0
    stratify: bool = True
    group: str | None = None
    holdout: list[str] = Field(default_factory=list)

    @field_validator("holdout", mode="before")
    @classmethod
    def _as_strings(cls, v: Any) -> Any:
        if isinstance(v, (str, int, float)):
            v = [v]
        if isinstance(v, (list, tuple)):
            return [str(x) for x in v]
        return v

    #: holdout values written as YAML numbers (``[001]`` arrives as 1): checked against other spellings
    _numeric_holdout: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_numbers(cls, data: Any, handler: Any) -> SplitConfig:
        model = handler(data)
        raw = data.get("holdout") if isinstance(data, dict) else None
        raw = raw if isinstance(raw, (list, tuple)) else [] if raw is None else [raw]
        model._numeric_holdout = [str(x) for x in raw if isinstance(x, (int, float)) and not isinstance(x, bool)]
        return model

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.test + self.val >= 1:
            raise ValueError(f"test + val must be < 1 (got {self.test} + {self.val})")
        return self


class DataConfig(_Strict):
    """Everything :func:`biorep.data.load_dataset` needs.

    ``dataset`` is a built-in name (see ``biorep datasets list``) or a path to a class-per-folder
    image folder or to a CSV/Parquet manifest. ``channels`` is a channel count to enforce (int), a
    list of channel indices to keep, or ``None`` (all; count inferred from the majority of files).
    ``options`` are data-set specific (e.g. ``n_karyograms`` for ``synthetic-karyotype``).
    ``class_map`` renames classes (a lab's ``chr1`` → ``1``) before ``classes`` orders them.

    Example:
        >>> DataConfig(dataset="my_manifest.csv", label="compound", group="plate").label
        'compound'
    """

    dataset: str
    root: Path | None = None
    label: str | None = None
    group: str | None = None
    classes: list[str] | None = None
    class_map: dict[str, str] = Field(
        default_factory=dict,
        description="Rename classes: {name in this data set: name to use}, e.g. {chr1: '1'} to train "
        "with another set's naming; names not listed are kept.",
    )
    path_column: str = "path"
    channels: int | list[int] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    workers: int | None = Field(None, ge=1)
    geometry: GeometryConfig = Field(default_factory=GeometryConfig)
    intensity: IntensityConfig = Field(default_factory=IntensityConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: Any) -> Any:
        if isinstance(v, int) and v < 1:
            raise ValueError("channels must be a count ≥ 1 or a list of channel indices ≥ 0")
        if isinstance(v, list):
            if not v or any(i < 0 for i in v):
                raise ValueError("channels list must be non-empty with indices ≥ 0")
            if len(set(v)) != len(v):
                raise ValueError("channels list has repeated indices")
        return v

    @field_validator("class_map", mode="before")
    @classmethod
    def _class_map(cls, v: Any) -> Any:
        """Numbers as YAML reads them (``{chr1: 1}``, ``{1: chr1}``) are the class names written."""
        if not isinstance(v, dict):
            return v
        return {_class_name(k, "a key"): _class_name(x, f"the value of {k!r}") for k, x in v.items()}

    @field_validator("classes", mode="before")
    @classmethod
    def _classes(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            v = [str(x) for x in v]
            if len(set(v)) != len(v):
                raise ValueError("classes has repeated names")
        return v
