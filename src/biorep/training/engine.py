"""``train(cfg, out_dir)`` in readable steps: validate → data → method → trainer → fit → summary.

Nothing is written to ``out_dir`` until the config, the data set and the method (backbone, heads,
view strategies run once on a dummy batch) have been built, so a typo never costs a finished run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar

from biorep.data import ImageDataset, IntensityScaler, Splits, load_dataset, split_dataset
from biorep.data.cache import usable_cores
from biorep.data.checks import check_classes, image_stats
from biorep.errors import BiorepError, ConfigError, DataError, RunDirError, TrainingInterrupted
from biorep.methods import METHODS, BaseMethod, DataInfo
from biorep.precision import PrecisionChoice, resolve_precision, training_device_type
from biorep.rundir import (
    BEST,
    CKPT_DIR,
    DataRecord,
    GeometryRecord,
    RunPaths,
    SummaryRecord,
    read_data,
    read_yaml,
    write_json,
    write_state,
    write_yaml,
)
from biorep.training.callbacks import MetricsCSV, ResourceMonitor
from biorep.training.checkpointing import AtomicCheckpointIO, LastCheckpoint, check_checkpoint
from biorep.training.config import RunConfig
from biorep.training.machine import machine_info
from biorep.training.progress import LineProgress, resolve_progress
from biorep.training.rundir import Replacement, check_run_dir, is_rank_zero_process, resume_changes
from biorep.training.sampling import ClassBalancedBatchSampler, SamplerResume, ShuffledBatchSampler, make_loader

log = logging.getLogger("biorep.training")


@contextlib.contextmanager
def quiet_lightning() -> Any:
    """Hide Lightning's start-up chatter (device lines, tips) while keeping its warnings and errors."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*defined a `validation_step` but have no `val_dataloader`.*")
            warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            yield
    finally:
        logger.setLevel(level)


class StageAwareEarlyStopping(EarlyStopping):
    """Lightning's ``EarlyStopping`` that ignores the epochs before ``start_epoch`` (a method's earlier
    stage, e.g. SupCon pre-training, whose validation accuracy is that of an untrained classifier)."""

    def __init__(self, *args: Any, start_epoch: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_epoch = start_epoch

    def _run_early_stopping_check(self, trainer: L.Trainer) -> None:
        if trainer.current_epoch >= self.start_epoch:
            super()._run_early_stopping_check(trainer)


# ----------------------------------------------------------------------------- data
@dataclass
class PreparedData:
    """The data set, its splits, fitted scaler and the method's targets, ready to train on."""

    ds: ImageDataset
    splits: Splits
    scaler: IntensityScaler
    targets: np.ndarray
    info: DataInfo
    fingerprint: dict[str, Any] = field(default_factory=dict)


def data_fingerprint(ds: ImageDataset) -> dict[str, Any]:
    """What identifies a data set for ``--resume``: image count, classes, and a hash of file names."""
    h = hashlib.sha1()
    for p in ds.meta["path"].astype(str):
        h.update(Path(p).name.encode())
        h.update(b"\0")
    return {"n_images": int(len(ds)), "classes": [str(c) for c in ds.classes], "files_sha1": h.hexdigest()}


def target_column(cfg: RunConfig, ds: ImageDataset) -> str | None:
    """The metadata column the method's targets come from (its ``column``, else the label)."""
    return getattr(cfg.method.params, "column", None) or ds.label_column


def prepare_data(cfg: RunConfig, saved: DataRecord | None, *, progress: bool) -> PreparedData:
    """Load the data set; split it and fit the scaler (or take both from a resumed run's ``data.json``)."""
    method_cls = METHODS.get(cfg.method.name)
    ds = load_dataset(cfg.data, progress=progress)
    fingerprint = data_fingerprint(ds)
    if saved is not None:
        if saved.fingerprint and saved.fingerprint != fingerprint:
            what = next(k for k in fingerprint if saved.fingerprint.get(k) != fingerprint[k])
            raise RunDirError(
                f"cannot --resume: data.dataset {cfg.data.dataset!r} is not the data the run was trained on "
                f"({what} differs); start a new run (another --out) instead"
            )
        splits = Splits.from_dict(saved.splits)
        scaler = IntensityScaler.from_dict(saved.scaler or {})
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
    if method_cls.needs_labels:
        check_classes(
            targets, classes, splits.train, method=cfg.method.name,
            where=str((getattr(ds, "info", None) or {}).get("origin") or ds.name),
            column=target_column(cfg, ds),
        )
    info = DataInfo(in_chans=ds.channels, size=ds.size, classes=[str(c) for c in classes], scaler=scaler.to_dict())
    return PreparedData(ds, splits, scaler, targets, info, fingerprint)


def data_record(cfg: RunConfig, data: PreparedData) -> DataRecord:
    """``data.json`` of a run trained on ``data``."""
    ds = data.ds
    return DataRecord(
        dataset=ds.name,
        n_images=len(ds),
        channels=ds.channels,
        size=ds.size,
        dtype=str(ds.images.dtype),
        label_column=ds.label_column,
        group_column=ds.group_column,
        dataset_classes=list(map(str, ds.classes)),
        classes=data.info.classes,
        target_column=target_column(cfg, ds),
        background=float(ds.background),
        geometry=GeometryRecord(
            mode=cfg.data.geometry.mode,
            size=ds.size,
            scale=(getattr(ds, "info", None) or {}).get("scale"),
            background=float(ds.background),
        ),
        scaler=data.info.scaler,
        splits=data.splits.to_dict(),
        fingerprint=data.fingerprint,
        images=image_stats(ds),
    )


# ----------------------------------------------------------------------------- method
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


def build_checked_method(cfg: RunConfig, data: PreparedData) -> BaseMethod:
    """Build the method and run its views and backbone once on two training images (eval mode, no
    gradient), so a bad backbone name or view strategy fails here, before the run directory is touched."""
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    try:
        method = build_method(cfg, data.info)
    except BiorepError:
        raise
    except Exception as exc:
        raise ConfigError(f"model/method: cannot build {cfg.model.backbone!r} + {cfg.method.name!r} ({exc})") from None
    idx = np.asarray(data.splits.train[:2])
    x = torch.from_numpy(np.ascontiguousarray(data.ds.images[idx]))
    try:
        with torch.no_grad():
            method.eval()
            views = method.make_views(method.prepare(x), method.n_views)
            method.backbone(views[0])
            method.train()
    except BiorepError:
        raise
    except Exception as exc:
        raise ConfigError(f"views/model: the configured views or backbone fail on the data ({exc})") from None
    if cfg.train.channels_last:
        method.use_channels_last()
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)  # the dry run drew random numbers
    return method


# ----------------------------------------------------------------------------- trainer
@dataclass
class TrainerParts:
    trainer: L.Trainer
    best: ModelCheckpoint
    last: LastCheckpoint
    early: StageAwareEarlyStopping | None
    monitor: ResourceMonitor
    monitored: tuple[str, str]


def _monitor(method: BaseMethod, has_val: bool) -> tuple[str, str]:
    if has_val and method.has_classifier:
        return "val/acc", "max"
    if has_val:
        return "val/loss", "min"
    return "train/loss", "min"


def _strategy(cfg: RunConfig, method: BaseMethod) -> Any:
    if cfg.train.strategy == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=method.has_unused_parameters())
    return "auto"


def make_loaders(cfg: RunConfig, method: BaseMethod, data: PreparedData) -> tuple[Any, Any, Any]:
    """(train loader, val loader or None, the resumable train batch sampler)."""
    tc = cfg.train
    sampling = method.batch_sampling()
    if sampling["kind"] == "class_balanced":
        k = int(sampling["samples_per_class"])
        sampler: Any = ClassBalancedBatchSampler(
            data.splits.train, data.targets, samples_per_class=k,
            classes_per_batch=max(tc.batch_size // k, 1), seed=tc.seed,
        )
    else:
        sampler = ShuffledBatchSampler(data.splits.train, tc.batch_size, drop_last=tc.drop_last, seed=tc.seed)
    train_loader = make_loader(data.ds.images, data.targets, sampler, tc.num_workers)
    val_loader = None
    if len(data.splits.val):
        val_sampler = ShuffledBatchSampler(data.splits.val, tc.batch_size, shuffle=False, drop_last=False)
        val_loader = make_loader(data.ds.images, data.targets, val_sampler, tc.num_workers)
    return train_loader, val_loader, sampler


def build_trainer(
    cfg: RunConfig,
    method: BaseMethod,
    out: Path,
    sampler: Any,
    has_val: bool,
    precision: PrecisionChoice,
    extra: list[L.Callback],
    on_saved: Callable[[], None] | None = None,
) -> TrainerParts:
    """Lightning ``Trainer`` with biorep's callbacks: metrics.csv, resources, checkpoints, progress.

    ``on_saved`` is called after every ``last.ckpt`` written (``--overwrite`` drops the old run then)."""
    tc = cfg.train
    paths = RunPaths(out)
    monitor, mode = _monitor(method, has_val)
    best_cb = ModelCheckpoint(
        dirpath=paths.checkpoints, filename=Path(BEST).stem, monitor=monitor, mode=mode, save_top_k=1,
        enable_version_counter=False, auto_insert_metric_name=False,
    )
    last_cb = LastCheckpoint(
        paths.last,
        every_n_steps=tc.checkpoint_every_n_steps,
        every_s=None if tc.checkpoint_every_minutes is None else tc.checkpoint_every_minutes * 60,
        on_saved=on_saved,
    )
    monitor_cb = ResourceMonitor(tracemalloc_enabled=tc.tracemalloc)
    cbs: list[L.Callback] = [SamplerResume(sampler), MetricsCSV(paths.metrics), monitor_cb]
    early = None
    if tc.early_stopping is not None:
        es = tc.early_stopping
        early = StageAwareEarlyStopping(
            monitor=es.monitor, patience=es.patience, mode=es.resolved_mode(), min_delta=es.min_delta,
            check_on_train_epoch_end=es.monitor.startswith("train/"), start_epoch=method.first_monitored_epoch(),
        )
        cbs.append(early)
    progress = resolve_progress(tc.progress)
    if progress == "bar":
        cbs.append(RichProgressBar())
    elif progress == "lines":
        cbs.append(LineProgress(every_s=tc.progress_every_minutes * 60))
    if tc.ema_decay is not None:  # imported here: Lightning < 2.6 has no WeightAveraging
        try:
            from biorep.training.ema import WeightEMA
        except ImportError as exc:
            raise ConfigError(f"train.ema_decay needs lightning>=2.6 (installed: {L.__version__}; {exc})") from None
        cbs.append(WeightEMA(tc.ema_decay))
    cbs += list(extra) + [best_cb, last_cb]
    with quiet_lightning():
        trainer = L.Trainer(
            max_epochs=tc.epochs,
            accelerator=tc.accelerator,
            devices=tc.devices,
            num_nodes=tc.num_nodes,
            strategy=_strategy(cfg, method),
            precision=precision.value,
            deterministic=tc.deterministic,
            sync_batchnorm=tc.sync_batchnorm,
            callbacks=cbs,
            plugins=[AtomicCheckpointIO()],
            logger=False,
            default_root_dir=out,
            enable_progress_bar=progress == "bar",
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=1,
            check_val_every_n_epoch=tc.val_check,
            limit_train_batches=tc.limit_train_batches,
            limit_val_batches=tc.limit_val_batches,
            use_distributed_sampler=False,
        )
    return TrainerParts(trainer, best_cb, last_cb, early, monitor_cb, (monitor, mode))


# ----------------------------------------------------------------------------- summary
def run_summary(
    cfg: RunConfig, method: BaseMethod, data: PreparedData, parts: TrainerParts, precision: PrecisionChoice,
    *, t_start: float, resumed: bool, changes: list[str],
) -> SummaryRecord:
    """``summary.json`` of a finished fit."""
    trainer, tc = parts.trainer, cfg.train
    epochs_run = int(trainer.current_epoch)
    early = parts.early
    own_reason = method.stop_reason()
    stopped_early = bool((early is not None and early.stopped_epoch > 0) or own_reason) and epochs_run < tc.epochs
    best = parts.best.best_model_score
    monitor, mode = parts.monitored
    figures = parts.monitor.figures()
    return SummaryRecord(
        method=cfg.method.name,
        **method.summary_fields(),
        backbone=cfg.model.backbone,
        dataset=data.ds.name,
        n_train=int(len(data.splits.train)),
        n_val=int(len(data.splits.val)),
        n_test=int(len(data.splits.test)),
        n_classes=len(data.info.classes),
        epochs=epochs_run,
        max_epochs=tc.epochs,
        global_step=int(trainer.global_step),
        **figures,
        total_time_s=round(time.perf_counter() - t_start, 3),
        stopped_early=stopped_early,
        stop_reason=own_reason or ("early_stopping" if stopped_early else None),
        best_metric={
            "name": monitor,
            "mode": mode,
            "value": None if best is None else float(best),
            "checkpoint": f"{CKPT_DIR}/{BEST}" if (RunPaths(trainer.default_root_dir).best).is_file() else None,
        },
        final_metrics={k: float(v) for k, v in trainer.callback_metrics.items() if not k.endswith("_step")},
        device=str(method.device.type),
        world_size=int(trainer.world_size),
        precision=precision.value,
        precision_reason=precision.reason,
        machine=machine_info(),
        resumed=resumed,
        resume_changes=changes,
    )


def _check_devices(cfg: RunConfig) -> None:
    """Refuse device settings this machine cannot honour, before anything is read or written."""
    device = training_device_type(cfg.train.accelerator)
    cores = usable_cores()
    if device == "cpu" and isinstance(cfg.train.devices, int) and cfg.train.devices > cores:
        raise ConfigError(
            f"train.devices={cfg.train.devices}: that many training processes on the {cores} CPU core(s) this "
            f"process may use would fight over them (and each holds the data set in memory); use at most {cores}"
        )
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"train.accelerator={cfg.train.accelerator}: torch sees no CUDA GPU on this machine "
            f"(torch {torch.__version__}, cuda build {torch.version.cuda or 'none'}); use auto or cpu"
        )


def _remove_half_made(out: Path, existed: bool) -> None:
    """Remove what a failed new run wrote into ``out`` (and ``out`` itself unless it existed, empty)."""
    with contextlib.suppress(OSError):
        if existed:
            for child in list(out.iterdir()):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            shutil.rmtree(out)


# ----------------------------------------------------------------------------- the whole run
def train(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list[L.Callback] | None = None,
) -> Path:
    """Train ``cfg`` into the run directory ``out_dir`` and return its path.

    An existing, non-empty ``out_dir`` is an error unless ``overwrite`` (replaced once the new run has
    a checkpoint; a failure before that restores it) or ``resume`` (continued from
    ``checkpoints/last.ckpt`` with the saved splits and scaler; the config may change only in
    train-only fields such as ``epochs``). ``callbacks`` are extra Lightning callbacks.

    Example:
        >>> run = train(load_config("configs/synthetic-smoke.yaml"), "runs/smoke")
        >>> load_run(run).model.embed(x_raw)
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    paths = RunPaths(out)
    zero = is_rank_zero_process()
    # 1. validate: nothing on disk changes until the config, data and method are known to work
    _check_devices(cfg)
    if zero:
        check_run_dir(out, resume=resume, overwrite=overwrite)
    saved: DataRecord | None = None
    changes: list[str] = []
    ckpt_path: Path | None = None
    if resume:
        changes = resume_changes(read_yaml(paths.config) or {}, cfg.to_dict(), paths.config)
        saved = read_data(out) if paths.data.is_file() else None
        if paths.last.is_file():
            check_checkpoint(paths.last)
            ckpt_path = paths.last
        else:
            log.warning("%s: no checkpoint yet (interrupted before its first one); starting it again", out)
    data = prepare_data(cfg, saved, progress=zero and resolve_progress(cfg.train.progress) == "bar")
    method = build_checked_method(cfg, data)
    device = training_device_type(cfg.train.accelerator)
    precision = resolve_precision(cfg.train.precision, device)
    train_loader, val_loader, sampler = make_loaders(cfg, method, data)

    # 2. the run directory
    replacement = Replacement(out)
    fresh = zero and not resume and not (out.is_dir() and any(out.iterdir()))
    existed = out.is_dir()
    try:
        if zero:
            if overwrite and not resume:
                replacement.begin()
            paths.checkpoints.mkdir(parents=True, exist_ok=True)
            write_yaml(paths.config, cfg.to_dict())
            write_json(paths.data, data_record(cfg, data))
            write_state(out, "running", "; ".join(changes) or None)
        parts = build_trainer(
            cfg, method, out, sampler, val_loader is not None, precision, list(callbacks or []),
            on_saved=replacement.commit,
        )

        # 3. fit
        with quiet_lightning():
            parts.trainer.fit(method, train_loader, val_loader, ckpt_path=None if ckpt_path is None else str(ckpt_path))
        if cfg.train.epochs == 0:  # an untrained baseline: keep the initialised weights as the run's checkpoint
            parts.trainer.save_checkpoint(str(paths.last), weights_only=False)
    except BaseException as exc:
        # Lightning answers Ctrl-C with sys.exit(1) and SIGTERM with SIGTERMException (a SystemExit)
        signal_name = "SIGTERM" if type(exc).__name__ == "SIGTERMException" else "SIGINT"
        interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit))
        misconfigured = type(exc).__name__ == "MisconfigurationException"  # Lightning refusing a train.* setting
        # a new run that never got its config written (a full disk) or that Lightning refused: nothing to
        # resume, and left in place it would block the retry
        half_made = fresh and not paths.last.exists() and (misconfigured or not paths.config.is_file())
        if zero and not replacement.rollback():
            if half_made:
                _remove_half_made(out, existed)
            elif out.is_dir():
                message = f"interrupted by {signal_name}" if interrupted else f"{type(exc).__name__}: {exc}"
                with contextlib.suppress(OSError):  # a full disk must not hide the error itself
                    write_state(out, "interrupted" if interrupted else "failed", message[:500])
        if isinstance(exc, SystemExit):
            raise TrainingInterrupted(str(out), signal_name) from exc
        if misconfigured:
            raise ConfigError(f"train settings that Lightning cannot use: {exc}") from exc
        raise
    replacement.commit()

    # 4. summary
    if parts.trainer.is_global_zero:
        summary = run_summary(
            cfg, method, data, parts, precision, t_start=t_start, resumed=resume, changes=changes
        )
        write_json(paths.summary, summary)
        write_state(out, "finished")
    return out
