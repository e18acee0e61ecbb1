"""``load_run(run_dir)``: a trained method back from its run directory, with its data and splits.

Every file is read through :mod:`biorep.rundir` (its names, typed records and run state).
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from biorep.data import ImageDataset, Splits, load_dataset
from biorep.errors import RunDirError
from biorep.methods import METHODS, BaseMethod, DataInfo
from biorep.rundir import (
    BEST,
    CONFIG,
    LAST,
    DataRecord,
    RunPaths,
    RunState,
    SummaryRecord,
    read_data,
    read_state,
    read_summary,
    read_yaml,
)
from biorep.training.config import RunConfig


@dataclass
class LoadedRun:
    """A trained run: ``model`` (eval mode, CPU), its ``config``, ``splits``, ``data`` (``data.json``),
    ``summary`` (``summary.json``; None for an unfinished run), run ``state`` and the ``checkpoint`` loaded.

    Example:
        >>> run = load_run("runs/smoke")
        >>> ds = run.dataset()
        >>> z = run.model.embed(torch.from_numpy(ds.images[run.splits.test[:8]]))
        >>> run.classes, run.targets()[run.splits.test][:8]
    """

    run_dir: Path
    model: BaseMethod
    config: RunConfig
    splits: Splits
    data: DataRecord
    summary: SummaryRecord | None
    checkpoint: Path
    state: RunState | None = None
    _dataset: ImageDataset | None = field(default=None, repr=False)

    @property
    def classes(self) -> list[str]:
        """Class names of the method's targets (the label column's, or the weak column's)."""
        return list(self.data.classes)

    def dataset(self, *, progress: bool = False) -> ImageDataset:
        """The run's data set (read back from the decode cache; loaded once per LoadedRun)."""
        if self._dataset is None:
            self._dataset = load_dataset(self.config.data, progress=progress)
        return self._dataset

    def targets(self) -> np.ndarray:
        """Per-image integer targets the method trained on (−1 = none), aligned with :meth:`dataset`."""
        ds = self.dataset()
        cls = METHODS.get(self.config.method.name)
        t, _ = cls.make_targets(self.config.method.params, ds.meta, ds.targets, ds.classes)
        return np.asarray(t, dtype=np.int64)


def load_run(
    run_dir: str | Path, *, checkpoint: Literal["auto", "best", "last"] = "auto", map_location: str = "cpu"
) -> LoadedRun:
    """Rebuild the method from ``config.yaml`` + ``data.json`` and load a checkpoint's weights.

    ``checkpoint="auto"`` takes ``best.ckpt`` when present, else ``last.ckpt``.
    """
    paths = RunPaths(Path(run_dir))
    run = paths.root
    if not paths.config.is_file():
        raise RunDirError(f"{run}: not a biorep run directory (no {CONFIG})")
    config = RunConfig.from_dict(read_yaml(paths.config), source=str(paths.config))
    data = read_data(run)
    order = {"auto": [paths.best, paths.last], "best": [paths.best], "last": [paths.last]}[checkpoint]
    path = next((p for p in order if p.is_file()), None)
    if path is None and paths.summary.is_file() and not paths.checkpoints.is_dir():
        raise RunDirError(f"{run}: has results but no checkpoints/ folder — a run restored from a study "
                          "archive keeps only its result files; train it again to get a model")
    if path is None:
        names = {"auto": [BEST, LAST], "best": [BEST], "last": [LAST]}[checkpoint]
        raise RunDirError(f"{paths.checkpoints}: no {' or '.join(names)} — did the run finish an epoch?")
    if data.size is None:
        raise RunDirError(f"{paths.data}: size: missing (the network input size)")
    data_info = DataInfo(in_chans=data.channels, size=data.size, classes=data.classes, scaler=data.scaler)
    cls = METHODS.get(config.method.name)
    model = cls(
        config.method.params,
        # the checkpoint holds every weight: a run fine-tuned from another needs that run no more
        model=config.model.model_copy(update={"weights": None}),
        views=config.views,
        data=data_info,
        optim=config.train.optim(),
        seed=config.train.seed,
    )
    model.load_state_dict(_read_checkpoint(path, map_location)["state_dict"])
    model.eval()
    summary = read_summary(run) if paths.summary.is_file() else None
    model.inference_precision = inference_precision(config, summary)
    return LoadedRun(
        run_dir=run,
        model=model,
        config=config,
        splits=Splits.from_dict(data.splits),
        data=data,
        summary=summary,
        checkpoint=path,
        state=read_state(run),
    )


def _read_checkpoint(path: Path, map_location: str) -> dict[str, Any]:
    """``torch.load`` of a checkpoint; an empty, truncated or foreign file is a :class:`RunDirError` naming it."""
    if path.stat().st_size == 0:
        raise RunDirError(f"{path}: empty checkpoint (written when the disk was full or the run was killed?)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise RunDirError(f"{path}: truncated or unreadable checkpoint ({exc})") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise RunDirError(f"{path}: not a biorep checkpoint (no state_dict)")
    return state


def inference_precision(config: RunConfig, summary: SummaryRecord | None) -> str:
    """The precision a run embeds and classifies at: the one it trained at (``summary.json``), else
    what its ``train.precision`` resolves to on this machine's CPU (``BIOREP_PRECISION`` overrides)."""
    import os

    from biorep.precision import resolve_precision

    forced = os.environ.get("BIOREP_PRECISION")
    if forced:
        return resolve_precision(forced, "cpu").value
    if summary is not None and summary.precision:
        return str(summary.precision)
    return resolve_precision(config.train.precision, "cpu").value
