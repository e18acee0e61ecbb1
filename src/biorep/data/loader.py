"""``load_dataset``: a :class:`DataConfig` in, an :class:`ImageDataset` out.

Resolution order for ``cfg.dataset``: a built-in name (:data:`DATASETS`), else a path — a folder
is read class-per-folder, a ``.csv``/``.tsv``/``.parquet`` file as a manifest. Relative paths are tried
against the working directory first and then against the data root.

Example:
    >>> ds = load_dataset(DataConfig(dataset="synthetic-cells", options={"n_cells": 200}))  # doctest: +SKIP
    >>> ds.images.shape, ds.classes                                                          # doctest: +SKIP
    ((200, 3, 64, 64), ['control', 'treated'])
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from biorep import paths
from biorep.data.builtins import DATASETS
from biorep.data.cache import decode_cached
from biorep.data.config import DataConfig
from biorep.data.dataset import ImageDataset
from biorep.data.geometry import as_size
from biorep.data.sources import (
    MANIFEST_SUFFIXES,
    Source,
    _label_strings,
    encode_labels,
    read_folder,
    read_manifest,
)
from biorep.errors import DataError

log = logging.getLogger("biorep.data")


def _find_path(cfg: DataConfig) -> Path:
    p = Path(cfg.dataset).expanduser()
    if p.exists() or p.is_absolute():
        return p
    root = paths.find_data_root(cfg.root, required=False)
    if root is not None and (root / p).exists():
        return root / p
    known = ", ".join(DATASETS.names())
    raise DataError(f"dataset {cfg.dataset!r}: not a built-in data set ({known}) and no such file or folder")


def resolve_source(cfg: DataConfig) -> Source:
    """The :class:`Source` (files + metadata, nothing decoded) that ``cfg.dataset`` names."""
    if cfg.dataset in DATASETS:
        return DATASETS.get(cfg.dataset).source(cfg)
    path = _find_path(cfg)
    if not path.exists():
        raise DataError(f"dataset {cfg.dataset!r}: {path} does not exist")
    if cfg.options:
        raise DataError(f"dataset {cfg.dataset!r}: `options` are only for built-in data sets")
    if path.is_dir():
        if cfg.label not in (None, "label"):
            log.warning("%s: data.label=%r only names the class column: in a folder the classes are the names of "
                        "the folders holding the images (a manifest's column is chosen with data.label)",
                        path, cfg.label)
        src = read_folder(path, label=cfg.label or "label")
    elif path.suffix.lower() in MANIFEST_SUFFIXES:
        src = read_manifest(path, path_column=cfg.path_column, label=cfg.label, group=cfg.group,
                            text_columns=(cfg.split.group,) if cfg.split.group else ())
    else:
        raise DataError(f"{path}: expected a folder or a .csv/.tsv/.parquet manifest")
    return src


def apply_class_map(src: Source, class_map: dict[str, str]) -> Source:
    """Rename ``src``'s classes through ``class_map`` (``data.class_map``: name → new name; names
    not in it are kept, several names may map to one). Applied after the data set's own naming."""
    if not class_map or src.label_column is None:
        return src
    own = dict(src.label_names or {})
    raw = {v for v in _label_strings(src.meta[src.label_column]) if v is not None} | set(own)
    src.label_names = {v: class_map.get(own.get(v, v), own.get(v, v)) for v in raw}
    if src.classes:
        src.classes = list(dict.fromkeys(class_map.get(c, c) for c in src.classes))
    return src


def load_dataset(cfg: DataConfig, *, progress: bool = True) -> ImageDataset:
    """Load (decoding once, then from the memory-mapped cache) the data set ``cfg`` describes.

    Labels are checked before any decoding; images are decoded, checked (channels, NaN, size),
    brought to ``cfg.geometry`` and cached; ``meta`` gains ``orig_height``/``orig_width``.

    Raises:
        DataError: any unusable input, with the file or column named.
    """
    src = apply_class_map(resolve_source(cfg), cfg.class_map)
    classes, targets = encode_labels(src, cfg.classes or src.classes)
    group = cfg.group or src.group_column
    if group is not None and group not in src.meta.columns:
        raise DataError(
            f"{src.origin or src.name}: group column {group!r} not found (columns: {', '.join(src.meta.columns)})"
        )
    dec = decode_cached(
        src.files,
        cfg.geometry,
        name=src.name,
        channels=cfg.channels,
        background=src.background,
        progress=progress,
        workers=cfg.workers,
        origin=src.origin,
    )
    meta = src.meta.reset_index(drop=True)
    meta["orig_height"] = dec.orig_sizes[:, 0].astype(np.int64)
    meta["orig_width"] = dec.orig_sizes[:, 1].astype(np.int64)
    return ImageDataset(
        name=src.name,
        images=dec.images,
        meta=meta,
        label_column=src.label_column,
        classes=classes,
        targets=targets,
        group_column=group,
        background=float(dec.info["background"]),
        channels=int(dec.info["channels"]),
        size=as_size(dec.info["size"]),
        info={**{k: dec.info[k] for k in ("dtype", "scale", "n_shrunk", "key", "settings") if k in dec.info},
              "origin": src.origin or src.name},
    )
