"""Data: readers (class-per-folder, CSV/Parquet manifests; TIFF/PNG/BMP/JPEG/NPY), geometry, a decode-once
cache, intensity scaling fitted on the training split, built-in and synthetic data sets, and group-aware splits.

Example:
    >>> from biorep.data import DataConfig, load_dataset, split_dataset, IntensityScaler
    >>> cfg = DataConfig(dataset="synthetic-karyotype", options={"n_karyograms": 4})   # doctest: +SKIP
    >>> ds = load_dataset(cfg)                                                          # doctest: +SKIP
    >>> splits = split_dataset(ds, cfg.split)                                           # doctest: +SKIP
    >>> scaler = IntensityScaler.fit(ds, splits.train, cfg.intensity)                   # doctest: +SKIP
"""

from __future__ import annotations

from biorep.data.builtins import DATASETS, BuiltinDataset
from biorep.data.config import DataConfig, GeometryConfig, IntensityConfig, SplitConfig
from biorep.data.dataset import ImageDataset
from biorep.data.decode import read_image
from biorep.data.intensity import IntensityScaler
from biorep.data.loader import load_dataset, resolve_source
from biorep.data.splits import Splits, group_folds, split_dataset
from biorep.data.summary import describe
from biorep.data.synthetic import make_synthetic_cells, make_synthetic_karyotype

__all__ = [
    "DATASETS",
    "BuiltinDataset",
    "DataConfig",
    "GeometryConfig",
    "ImageDataset",
    "IntensityConfig",
    "IntensityScaler",
    "SplitConfig",
    "Splits",
    "describe",
    "group_folds",
    "load_dataset",
    "make_synthetic_cells",
    "make_synthetic_karyotype",
    "read_image",
    "resolve_source",
    "split_dataset",
]
