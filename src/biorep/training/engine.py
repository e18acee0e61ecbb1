"""``train(cfg, out_dir)``: data → method → Lightning Trainer → run directory."""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar

from biorep.data import IntensityScaler, Splits, load_dataset, split_dataset
from biorep.errors import DataError
from biorep.methods import METHODS, BaseMethod, DataInfo
from biorep.methods.early_stop import LossTrendStop
from biorep.training import rundir as rd
from biorep.training.callbacks import MetricsCSV, ResourceMonitor
from biorep.training.config import RunConfig
from biorep.training.sampling import (
    ClassBalancedBatchSampler,
    SamplerResume,
    ShuffledBatchSampler,
    make_loader,
)


@contextlib.contextmanager
def quiet_lightning() -> Any:
    """Hide Lightning's start-up chatter (device lines, tips) while keeping its warnings and errors."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*defined a `validation_step` but have no `val_dataloader`.*")
            yield
    finally:
        logger.setLevel(level)


class StageAwareEarlyStopping(EarlyStopping):
    """Lightning's ``EarlyStopping`` that ignores the epochs before ``start_epoch`` (e.g. the SupCon
    pre-training stage of ``two_stage``, whose validation accuracy is that of an untrained classifier)."""

    def __init__(self, *args: Any, start_epoch: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_epoch = start_epoch

    def _run_early_stopping_check(self, trainer: L.Trainer) -> None:
        if trainer.current_epoch >= self.start_epoch:
            super()._run_early_stopping_check(trainer)


def build_method(cfg: RunConfig, info: DataInfo) -> BaseMethod:
    """Instantiate the configured method for data described by ``info``."""
    cls = METHODS.get(cfg.method.name)
    return cls(
        cfg.method.params,
        model=cfg.model,
        views=cfg.views,
        data=info,
        optim=cfg.train.optim(),
        seed=cfg.train.seed,
    )


def _monitor(method: BaseMethod, has_val: bool) -> tuple[str, str]:
    if has_val and method.has_classifier:
        return "val/acc", "max"
    if has_val:
        return "val/loss", "min"
    return "train/loss", "min"


def _strategy(cfg: RunConfig, method: BaseMethod) -> Any:
    if cfg.train.strategy == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        unused = bool(getattr(method, "has_unused_parameters", lambda: False)())
        return DDPStrategy(find_unused_parameters=unused)
    return "auto"


def train(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list[L.Callback] | None = None,
) -> Path:
    """Train ``cfg`` into the run directory ``out_dir`` and return its path.

    An existing, non-empty ``out_dir`` is an error unless ``overwrite`` (replaced) or ``resume``
    (continued from ``checkpoints/last.ckpt`` with the saved splits and scaler). ``callbacks`` are
    extra Lightning callbacks (e.g. for tests or custom logging).

    Example:
        >>> run = train(load_config("configs/synthetic-smoke.yaml"), "runs/smoke")
        >>> load_run(run).model.embed(x_raw)
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    zero = rd.is_rank_zero_process()
    if zero:
        rd.check_run_dir(out, resume=resume, overwrite=overwrite)
    method_cls = METHODS.get(cfg.method.name)

    ds = load_dataset(cfg.data, progress=cfg.train.progress and zero)
    if resume:
        saved = rd.read_json(out / rd.DATA)
        splits = Splits.from_dict(saved["splits"])
        scaler = IntensityScaler.from_dict(saved["scaler"])
    else:
        splits = split_dataset(ds, cfg.data.split)
        scaler = IntensityScaler.fit(ds, splits.train, cfg.data.intensity)
    targets, classes = method_cls.make_targets(cfg.method.params, ds.meta, ds.targets, ds.classes)
    targets = np.asarray(targets, dtype=np.int64)
    if len(splits.train) == 0:
        raise DataError(f"data.split: the training split of {ds.name!r} is empty")
    if method_cls.needs_labels and not (targets[splits.train] >= 0).any():
        raise DataError(
            f"method {cfg.method.name!r} needs labels, but no training image of {ds.name!r} has one "
            "(set data.label or method.column)"
        )
    info = DataInfo(
        in_chans=ds.channels, size=ds.size, classes=[str(c) for c in classes], scaler=scaler.to_dict()
    )

    if zero:
        if overwrite and not resume and out.exists():
            shutil.rmtree(out)
        (out / rd.CKPT_DIR).mkdir(parents=True, exist_ok=True)
        rd.write_yaml(out / rd.CONFIG, cfg.to_dict())
        rd.write_json(
            out / rd.DATA,
            {
                "dataset": ds.name,
                "n_images": len(ds),
                "channels": ds.channels,
                "size": ds.size,
                "dtype": str(ds.images.dtype),
                "label_column": ds.label_column,
                "group_column": ds.group_column,
                "dataset_classes": list(map(str, ds.classes)),
                "classes": info.classes,
                "target_column": getattr(cfg.method.params, "column", None) or ds.label_column,
                "background": float(ds.background),
                "geometry": {
                    "mode": cfg.data.geometry.mode,
                    "size": ds.size,
                    "scale": (getattr(ds, "info", None) or {}).get("scale"),
                    "background": float(ds.background),
                },
                "scaler": info.scaler,
                "splits": splits.to_dict(),
            },
        )

    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    method = build_method(cfg, info)
    if cfg.train.channels_last:
        method.use_channels_last()
    tc = cfg.train

    sampling = method.batch_sampling()
    if sampling["kind"] == "class_balanced":
        k = int(sampling["samples_per_class"])
        sampler: Any = ClassBalancedBatchSampler(
            splits.train,
            targets,
            samples_per_class=k,
            classes_per_batch=max(tc.batch_size // k, 1),
            seed=tc.seed,
        )
    else:
        sampler = ShuffledBatchSampler(splits.train, tc.batch_size, drop_last=tc.drop_last, seed=tc.seed)
    train_loader = make_loader(ds.images, targets, sampler, tc.num_workers)
    val_loader = None
    if len(splits.val):
        val_sampler = ShuffledBatchSampler(splits.val, tc.batch_size, shuffle=False, drop_last=False)
        val_loader = make_loader(ds.images, targets, val_sampler, tc.num_workers)

    monitor, mode = _monitor(method, val_loader is not None)
    ckpt_dir = out / rd.CKPT_DIR
    best_cb = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    last_cbs = [
        ModelCheckpoint(
            dirpath=ckpt_dir, save_top_k=0, save_last=True, every_n_epochs=1, save_on_train_epoch_end=True
        )
    ]
    if tc.checkpoint_every_n_steps:
        last_cbs.append(
            ModelCheckpoint(
                dirpath=ckpt_dir,
                save_top_k=0,
                save_last=True,
                every_n_train_steps=tc.checkpoint_every_n_steps,
            )
        )
    monitor_cb = ResourceMonitor(tracemalloc_enabled=tc.tracemalloc)
    cbs: list[L.Callback] = [SamplerResume(sampler), MetricsCSV(out / rd.METRICS), monitor_cb]
    early = None
    if tc.early_stopping is not None:
        es = tc.early_stopping
        start = (
            getattr(cfg.method.params, "pretrain_epochs", 0)
            if getattr(cfg.method.params, "mode", "") == "two_stage"
            else 0
        )
        early = StageAwareEarlyStopping(
            monitor=es.monitor,
            patience=es.patience,
            mode=es.resolved_mode(),
            min_delta=es.min_delta,
            check_on_train_epoch_end=es.monitor.startswith("train/"),
            start_epoch=start,
        )
        cbs.append(early)
    if tc.progress:
        cbs.append(RichProgressBar())
    cbs += list(callbacks or []) + [best_cb, *last_cbs]

    with quiet_lightning():
        trainer = L.Trainer(
            max_epochs=tc.epochs,
            accelerator=tc.accelerator,
            devices=tc.devices,
            num_nodes=tc.num_nodes,
            strategy=_strategy(cfg, method),
            precision=tc.precision,
            deterministic=tc.deterministic,
            sync_batchnorm=tc.sync_batchnorm,
            callbacks=cbs,
            logger=False,
            default_root_dir=out,
            enable_progress_bar=tc.progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=1,
            check_val_every_n_epoch=tc.val_check,
            limit_train_batches=tc.limit_train_batches,
            limit_val_batches=tc.limit_val_batches,
            use_distributed_sampler=False,
        )
    last = ckpt_dir / rd.LAST
    with quiet_lightning(), warnings.catch_warnings():
        # our own last.ckpt/best.ckpt live in checkpoints/ by design
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer.fit(method, train_loader, val_loader, ckpt_path=str(last) if resume else None)
    if tc.epochs == 0:  # an untrained baseline: keep the initialised weights as the run's checkpoint
        trainer.save_checkpoint(str(last), weights_only=False)

    if trainer.is_global_zero:
        epochs_run = int(trainer.current_epoch)
        trend = next((c for c in trainer.callbacks if isinstance(c, LossTrendStop)), None)
        stopped_early = (
            bool(
                (early is not None and early.stopped_epoch > 0)
                or (trend is not None and trend.reason is not None)
            )
            and epochs_run < tc.epochs
        )
        best = best_cb.best_model_score
        final = {k: float(v) for k, v in trainer.callback_metrics.items() if not k.endswith("_step")}
        summary = {
            "method": cfg.method.name,
            "mode": getattr(cfg.method.params, "mode", None),
            "backbone": cfg.model.backbone,
            "dataset": ds.name,
            "n_train": int(len(splits.train)),
            "n_val": int(len(splits.val)),
            "n_test": int(len(splits.test)),
            "n_classes": len(info.classes),
            "epochs": epochs_run,
            "max_epochs": tc.epochs,
            "global_step": int(trainer.global_step),
            **monitor_cb.figures(),
            "total_time_s": round(time.perf_counter() - t_start, 3),
            "stopped_early": stopped_early,
            "stop_reason": (
                trend.reason
                if trend is not None and trend.reason
                else ("early_stopping" if stopped_early else None)
            ),
            "best_metric": {
                "name": monitor,
                "mode": mode,
                "value": None if best is None else float(best),
                "checkpoint": rd.CKPT_DIR + "/" + rd.BEST if (ckpt_dir / rd.BEST).is_file() else None,
            },
            "final_metrics": final,
            "device": str(method.device.type),
            "world_size": int(trainer.world_size),
            "precision": tc.precision,
            "resumed": resume,
        }
        rd.write_json(out / rd.SUMMARY, summary)
    return out
