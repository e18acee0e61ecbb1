"""Training: the run config, the Lightning-based engine and run directories.

Example:
    >>> from biorep.training import load_config, train, load_run
    >>> cfg = load_config("configs/synthetic-smoke.yaml", ["train.epochs=1"])
    >>> run_dir = train(cfg, "runs/smoke")
    >>> run = load_run(run_dir)
"""

from __future__ import annotations

from biorep.training.config import (
    EarlyStoppingConfig,
    MethodSpec,
    RunConfig,
    TrainConfig,
    apply_overrides,
    load_config,
)
from biorep.training.engine import build_method, train
from biorep.training.loading import LoadedRun, load_run
from biorep.training.sampling import BatchDataset, ClassBalancedBatchSampler, ShuffledBatchSampler

__all__ = [
    "BatchDataset",
    "ClassBalancedBatchSampler",
    "EarlyStoppingConfig",
    "LoadedRun",
    "MethodSpec",
    "RunConfig",
    "ShuffledBatchSampler",
    "TrainConfig",
    "apply_overrides",
    "build_method",
    "load_config",
    "load_run",
    "train",
]
