"""``load_run(run_dir)``: a trained method back from its run directory, with its data and splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml

from biorep.data import ImageDataset, Splits, load_dataset
from biorep.errors import RunDirError
from biorep.methods import METHODS, BaseMethod, DataInfo
from biorep.training import rundir as rd
from biorep.training.config import RunConfig


@dataclass
class LoadedRun:
    """A trained run: ``model`` (eval mode, CPU), its ``config``, ``splits`` and ``info`` (data.json).

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
    info: dict[str, Any]
    summary: dict[str, Any] | None
    checkpoint: Path
    _dataset: ImageDataset | None = field(default=None, repr=False)

    @property
    def classes(self) -> list[str]:
        """Class names of the method's targets (the label column's, or the weak column's)."""
        return list(self.info["classes"])

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
    run = Path(run_dir)
    if not (run / rd.CONFIG).is_file():
        raise RunDirError(f"{run}: not a biorep run directory (no {rd.CONFIG})")
    config = RunConfig.from_dict(yaml.safe_load((run / rd.CONFIG).read_text()), source=str(run / rd.CONFIG))
    info = rd.read_json(run / rd.DATA)
    ckpts = run / rd.CKPT_DIR
    order = {"auto": [rd.BEST, rd.LAST], "best": [rd.BEST], "last": [rd.LAST]}[checkpoint]
    path = next((ckpts / name for name in order if (ckpts / name).is_file()), None)
    if path is None:
        raise RunDirError(f"{ckpts}: no {' or '.join(order)} — did the run finish an epoch?")
    data_info = DataInfo(
        in_chans=info["channels"], size=info["size"], classes=info["classes"], scaler=info["scaler"]
    )
    cls = METHODS.get(config.method.name)
    model = cls(
        config.method.params,
        model=config.model,
        views=config.views,
        data=data_info,
        optim=config.train.optim(),
        seed=config.train.seed,
    )
    state = torch.load(path, map_location=map_location, weights_only=False)
    model.load_state_dict(state["state_dict"])
    model.eval()
    summary = rd.read_json(run / rd.SUMMARY) if (run / rd.SUMMARY).is_file() else None
    return LoadedRun(
        run_dir=run,
        model=model,
        config=config,
        splits=Splits.from_dict(info["splits"]),
        info=info,
        summary=summary,
        checkpoint=path,
    )
