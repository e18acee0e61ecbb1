"""The run directory: its layout, its guards and atomic writes.

```
RUN_DIR/
  config.yaml          resolved RunConfig (method flat)
  data.json            dataset name/size/channels, classes, split indices, scaler, target column
  checkpoints/last.ckpt   latest state (every epoch; also every N steps with train.checkpoint_every_n_steps)
  checkpoints/best.ckpt   best epoch by summary.json's best_metric.name
  metrics.csv          one row per epoch
  summary.json         method, backbone, epochs, timings, peak memory, stopped_early, best metric
```
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from biorep.errors import RunDirError
from biorep.training.callbacks import atomic_write_text

CONFIG = "config.yaml"
DATA = "data.json"
SUMMARY = "summary.json"
METRICS = "metrics.csv"
CKPT_DIR = "checkpoints"
LAST = "last.ckpt"
BEST = "best.ckpt"


def is_rank_zero_process() -> bool:
    """False in the extra processes Lightning launches for DDP (they re-run the command)."""
    return all(int(os.environ.get(k, "0") or 0) == 0 for k in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK"))


def check_run_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing run (without ``overwrite``) or to resume a missing one."""
    if resume:
        if not (out / CKPT_DIR / LAST).is_file():
            raise RunDirError(f"{out}: cannot --resume, no {CKPT_DIR}/{LAST} in it")
        return
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise RunDirError(
            f"{out}: run directory already exists and is not empty; pass --overwrite to replace it "
            "or --resume to continue it"
        )


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_yaml(path: Path, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing — is {path.parent} a biorep run directory?") from None
