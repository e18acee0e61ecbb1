"""Reading a run directory and its data: open the run, recover its preprocessing, load other data.

Also the run's saved splits and :func:`merge_evaluation`. The run directory's layout, its atomic
writer and its records belong to :mod:`biorep.rundir`; the names re-exported here
(``EVALUATION_FILE``, ``EVALUATION_DIR``, ``EMBEDDINGS_DIR``, ``KARYOTYPE_DIR``, ``atomic_write``) are
those, not copies.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from biorep.data import DataConfig, GeometryConfig, ImageDataset, load_dataset
from biorep.data.geometry import as_hw, as_size, size_label
from biorep.data.sources import MANIFEST_SUFFIXES
from biorep.errors import BiorepError, ConfigError, DataError, RunDirError
from biorep.rundir import (
    EMBEDDINGS_DIR,
    EVALUATION_DIR,
    KARYOTYPE_DIR,
    RunPaths,
    atomic_write,
    check_usable,
    update_json,
    write_json,
)
from biorep.rundir import EVALUATION as EVALUATION_FILE

if TYPE_CHECKING:
    from biorep.training.loading import LoadedRun

log = logging.getLogger("biorep.evaluate")

SPLITS = ("test", "val", "train", "all")

__all__ = [
    "EMBEDDINGS_DIR",
    "EVALUATION_DIR",
    "EVALUATION_FILE",
    "KARYOTYPE_DIR",
    "SPLITS",
    "atomic_write",
    "data_config_for",
    "has_classifier",
    "load_other_data",
    "merge_evaluation",
    "open_run",
    "run_geometry",
    "slug",
    "split_indices",
]


# ----------------------------------------------------------------------------- small helpers
def _write_json(target: Path, obj: Any) -> Path:
    """:func:`biorep.rundir.write_json` as results are stored (one-space indent)."""
    return write_json(target, obj, indent=1)


def slug(text: str) -> str:
    """A file-name-safe short form of a data set name or path (``../new cells/`` → ``new_cells``)."""
    name = Path(str(text).rstrip("/")).name or str(text)
    if Path(name).suffix.lower() in MANIFEST_SUFFIXES:
        name = Path(name).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "data"


def open_run(
    run_dir: str | os.PathLike[str],
    data_root: str | os.PathLike[str] | None = None,
    *,
    verb: str = "evaluate",
    allow_unfinished: bool = False,
) -> LoadedRun:
    """:func:`biorep.training.load_run` with a clear error for a missing folder and a data-root override.

    A run that has not finished training (``running``, ``interrupted``, ``failed``) is refused as
    :func:`biorep.rundir.check_usable` says (the same for every verb), naming ``verb`` in the advice;
    ``allow_unfinished`` uses its latest checkpoint with a warning instead.
    """
    from biorep.training import load_run

    path = Path(run_dir)
    if not path.exists():
        raise RunDirError(f"run directory {path} does not exist")
    if not path.is_dir():
        raise RunDirError(f"run directory {path} is not a directory")
    check_usable(path, verb, allow_unfinished=allow_unfinished)
    run = load_run(path)
    if data_root is not None:
        run.config.data.root = Path(data_root)
    return run


def has_classifier(run: LoadedRun) -> bool:
    """Whether the run's method has a classifier (``classify`` returns logits)."""
    return bool(getattr(run.model, "has_classifier", False))


def _device(device: str | None) -> torch.device:
    """The inference device for ``--device`` (None / ``auto``: a CUDA GPU if there is one, else the CPU).

    Raises:
        ConfigError: a name torch does not know, or a device this machine does not have.
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"--device {device!r}: not a device name (auto, cpu, cuda, cuda:N or mps)") from None
    have = {"cpu": True, "cuda": torch.cuda.is_available(),
            "mps": bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()}
    if dev.type not in have:
        raise ConfigError(f"--device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    if not have[dev.type]:
        raise ConfigError(f"--device {device!r}: torch sees no {dev.type} device on this machine; use auto or cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


# ----------------------------------------------------------------------------- preprocessing
def run_geometry(run: LoadedRun) -> GeometryConfig:
    """The run's geometry with the canvas scale and background it was actually trained with.

    ``scale: auto`` and a data-set default background are resolved when the data is first decoded,
    so new images must reuse those numbers rather than fit their own. They are read from
    ``data.json`` (``geometry``, when the training stage records it), else from the run's own decoded
    data set (``ds.info["scale"]``, ``ds.background``; the decode cache makes this cheap).
    """
    g = run.config.data.geometry
    size = as_size(run.data.size if run.data.size is not None else g.size)
    if g.mode != "canvas":  # scale and background only matter on a canvas
        return g.model_copy(update={"size": size})
    saved = run.data.geometry
    scale: Any = saved.scale if saved is not None and saved.scale is not None else g.scale
    background: Any = next((b for b in (saved.background if saved is not None else None,
                                        run.data.background) if b is not None), g.background)
    needs_scale = scale is None or scale == "auto"
    if needs_scale or background is None or background == "auto":
        try:
            ds = run.dataset()
        except BiorepError as exc:
            raise DataError(
                f"the run's canvas scale/background are not in {RunPaths(run.run_dir).data} and its own "
                f"data cannot be loaded to recover them ({exc})"
            ) from None
        if needs_scale:
            scale = float(ds.info.get("scale") or 1.0)
        if background is None or background == "auto":
            background = float(ds.background)
    if scale is None or scale == "auto":
        scale = 1.0
    return GeometryConfig(mode=g.mode, size=size, scale=float(scale),
                          background=float(background))


def data_config_for(run: LoadedRun, data: str | os.PathLike[str]) -> DataConfig:
    """The run's :class:`DataConfig` with ``dataset`` replaced and the run's resolved geometry.

    Label, group, classes and options are reset to the new data's defaults unless ``data`` names the
    run's own built-in data set. Channel selection and intensity settings are kept (the fitted scaler
    itself lives in the model).
    """
    own = run.config.data
    raw = own.model_dump()
    same = str(data) == own.dataset
    raw.update(dataset=str(data), geometry=run_geometry(run).model_dump())
    if not same:
        raw.update(label=None, group=None, classes=None, options={}, path_column="path")
    try:
        return DataConfig(**raw)
    except Exception as exc:  # pydantic ValidationError
        raise ConfigError(f"--data {data}: {exc}") from None


def load_other_data(run: LoadedRun, data: str | os.PathLike[str], *, progress: bool = False) -> ImageDataset:
    """Load another data set (built-in name, folder or manifest) with the run's preprocessing."""
    cfg = data_config_for(run, data)
    ds = load_dataset(cfg, progress=progress)
    want = int(run.data.channels)
    if ds.channels != want:
        raise DataError(f"--data {data}: images have {ds.channels} channel(s) but run {run.run_dir} was "
                        "trained "
                        f"on {want}; choose the channels with the run's data.channels or convert the images")
    if ds.hw != as_hw(run.data.size):
        raise DataError(f"--data {data}: images are {size_label(ds.size)} but run {run.run_dir} expects "
                        f"{size_label(run.data.size)} "
                        "(geometry mode 'none' needs images of the training size)")
    if run.data.dtype is not None and str(ds.images.dtype) != run.data.dtype:
        log.warning("%s: pixel type %s differs from the run's %s; its intensity scaler is applied as is",
                    data, ds.images.dtype, run.data.dtype)
    return ds


# ----------------------------------------------------------------------------- splits
def split_indices(run: LoadedRun, ds: ImageDataset, split: str, *, own: bool) -> np.ndarray:
    """Rows of ``split``: the run's saved split for its own data; for other data only ``all``."""
    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: choose one of {', '.join(SPLITS)}")
    if split == "all":
        return np.arange(len(ds), dtype=np.int64)
    if not own:
        raise ConfigError(f"--split {split}: other data (--data) has no saved splits; use --split all")
    idx = np.asarray(getattr(run.splits, split), dtype=np.int64)
    if len(idx) and idx.max() >= len(ds):
        raise RunDirError(f"{RunPaths(run.run_dir).data}: split indices exceed the {len(ds)} images of "
                          f"{ds.name!r}; "
                          "the data changed since training")
    return idx


# ----------------------------------------------------------------------------- results on disk
def merge_evaluation(run_dir: Path, records: Mapping[str, Any]) -> Path:
    """Merge ``records`` into ``RUN/evaluation.json`` (same keys replaced, others kept), atomically and
    under a lock, so two verbs storing results in one run at once both keep theirs."""
    return update_json(RunPaths(run_dir).evaluation, lambda old: {**old, **records}, indent=1)
