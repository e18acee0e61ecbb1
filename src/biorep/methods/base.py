"""The shared Lightning plumbing of every paradigm: backbone, views, scaling, optimiser, logging.

A paradigm subclasses :class:`BaseMethod`, declares its ``Params`` (pydantic, ``extra="forbid"``),
builds its heads in :meth:`BaseMethod.build_heads` and computes its loss in
:meth:`BaseMethod.compute_loss`. Everything else (optimiser, LR schedule, per-step reseeding of the
augmentation RNG, online validation accuracy, logging) lives here once.
"""

from __future__ import annotations

import math

from typing import Any, ClassVar, Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field, field_validator
from torch import Tensor, nn

from biorep.configmodel import ConfigModel
from biorep.data.geometry import as_size
from biorep.methods.staged_lr import StagedLR
from biorep.registry import Registry

METHODS: Registry[type[BaseMethod]] = Registry("method")


class MethodParams(ConfigModel):
    """Base of every paradigm's ``Params``: unknown keys are an error."""


class OptimConfig(ConfigModel):
    """Optimiser and LR schedule (filled from the run's ``train`` section).

    Per-epoch schedules: ``none``; ``cosine`` (to ``min_lr`` over the run's epochs); ``step``
    (× ``gamma`` every ``step_size`` epochs, gamma default 0.1); ``exponential`` (× ``gamma`` per
    epoch, default 0.95 — the chromosome study's schedule). Per-step schedules (they step every
    batch, which short budgets need): ``warmup_cosine`` (linear warm-up over ``warmup_epochs``, then
    cosine to ``min_lr``) and ``onecycle`` (torch's ``OneCycleLR`` peaking at ``lr`` after
    ``warmup_epochs``, the hand-written reference loop's schedule).
    """

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    scheduler: Literal["none", "cosine", "step", "exponential", "warmup_cosine", "onecycle"] = "none"
    step_size: int = Field(30, gt=0)
    gamma: float | None = Field(None, gt=0, le=1)
    min_lr: float = Field(0.0, ge=0)
    warmup_epochs: float = Field(0.0, ge=0, description="warm-up length of the per-step schedules")
    backbone_lr_scale: float = Field(1.0, gt=0, description="backbone lr = lr × this (fine-tuning)")


class DataInfo(BaseModel):
    """What a method needs to know about its data (saved in the run's ``data.json``)."""

    in_chans: int
    size: int | tuple[int, int]
    classes: list[str] = Field(default_factory=list)

    @field_validator("size", mode="before")
    @classmethod
    def _one_spelling(cls, v: Any) -> Any:
        return as_size(v) if isinstance(v, (list, tuple)) else v
    scaler: dict[str, Any] | None = None

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def mlp(dims: list[int], *, bias_last: bool = True, batch_norm: bool = False) -> nn.Sequential:
    """``Linear-ReLU-…-Linear`` through ``dims`` (e.g. ``[2048, 256, 2]``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        last = i == len(dims) - 2
        layers.append(nn.Linear(a, b, bias=bias_last or not last))
        if not last:
            if batch_norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def concat_crops(crops: list[Tensor], *others: Tensor) -> tuple[Tensor, ...]:
    """Stack every crop as its own sample; repeat per-sample tensors (targets, ids) to match."""
    n = len(crops)
    return (torch.cat(crops, 0), *(o.repeat(n) for o in others))


class BaseMethod(L.LightningModule):
    """A representation-learning paradigm as a LightningModule.

    Subclasses set ``Params``, ``n_views`` (views per sample fed to the loss: 1 means every crop of
    the view generator is its own training sample), and implement :meth:`compute_loss`; methods with
    a classifier implement :meth:`logits_from_features`.

    Example:
        >>> method = METHODS.get("supervised")(params, model=ModelConfig(backbone="simple_cnn"),
        ...     views=ViewsConfig(), data=DataInfo(in_chans=1, size=64, classes=["a", "b"]),
        ...     optim=OptimConfig(lr=1e-4))
        >>> z = method.embed(x_raw)          # [B, D] backbone representation
        >>> logits = method.classify(x_raw)  # [B, 2] or None
    """

    name: ClassVar[str] = "base"
    Params: ClassVar[type[MethodParams]] = MethodParams
    n_views: ClassVar[int] = 1
    has_classifier: ClassVar[bool] = False
    needs_labels: ClassVar[bool] = False

    def __init__(
        self,
        params: MethodParams,
        *,
        model: Any,
        views: Any,
        data: DataInfo,
        optim: OptimConfig | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        from biorep.models import build_backbone
        from biorep.views import build_views

        self.params = params
        self.model_cfg = model
        self.data_info = data
        self.optim_cfg = optim or OptimConfig()
        self.seed = seed
        self.backbone = build_backbone(model, in_chans=data.in_chans, img_size=data.size)
        self.num_features = int(self.backbone.num_features)
        self.views = build_views(views, data.size)
        self.memory_format = torch.contiguous_format
        self.scaler = None
        if data.scaler:
            from biorep.data import IntensityScaler

            self.scaler = IntensityScaler.from_dict(data.scaler)
        self._epoch_sums: dict[str, tuple[Tensor, int]] = {}
        self.build_heads()
        weights = getattr(model, "weights", None)
        if weights:  # started from another biorep run: its heads too, when the class set is the same
            from biorep.models.weights import init_heads_from, run_dir_of

            if run_dir_of(weights) is not None:
                init_heads_from(self, weights, data.classes)

    # ----------------------------------------------------------------- for subclasses
    @classmethod
    def make_targets(
        cls, params: MethodParams, meta: pd.DataFrame, targets: np.ndarray, classes: list[str]
    ) -> tuple[np.ndarray, list[str]]:
        """Per-image integer targets (−1 = none) and their class names; default: the dataset's labels."""
        return targets, classes

    def batch_sampling(self) -> dict[str, Any]:
        """How the training engine should form batches: ``{"kind": "random"}`` or class-balanced."""
        return {"kind": "random"}

    def build_heads(self) -> None:
        """Create the paradigm's heads (called at the end of ``__init__``)."""

    def compute_loss(self, views: list[Tensor], y: Tensor, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss from the augmented views (each ``[B, C, H, W]`` in [0, 1]); returns (loss, extra logs)."""
        raise NotImplementedError

    def logits_from_features(self, h: Tensor) -> Tensor | None:
        """Class logits from backbone features (methods with a classifier override this)."""
        return None

    # ----------------------------------------------------------------- public inference API
    def prepare(self, x_raw: Tensor) -> Tensor:
        """Raw images → float32 in [0, 1] on the model's device (the fitted intensity scaler)."""
        x = x_raw.to(self.device)
        if self.scaler is not None:
            x = self.scaler(x)
        elif not torch.is_floating_point(x):
            x = x.float() / float(torch.iinfo(x.dtype).max)
        return x.float()

    #: precision of :meth:`embed`/:meth:`classify` (a Lightning precision string); :func:`load_run`
    #: sets the one the run trained at, so a bf16-trained run also embeds in bf16.
    inference_precision: str = "32"

    @torch.no_grad()
    def embed(self, x_raw: Tensor) -> Tensor:
        """Backbone representation ``[B, D]`` (never a projection head) of raw images, as float32."""
        from biorep.precision import autocast

        x = self.prepare(x_raw)
        with autocast(self.inference_precision, x.device):
            return self.backbone(x).float()

    @torch.no_grad()
    def classify(self, x_raw: Tensor, *, tta: bool = True, precision: str | None = None) -> Tensor | None:
        """Class logits ``[B, n_classes]`` (float32) where the method has a classifier, else None.

        With ``model.tta`` flips (and ``tta``), the log of the probabilities averaged over the image
        and its flips. ``precision`` overrides :attr:`inference_precision` (e.g. a callback scoring
        during training at the trainer's precision).
        """
        if not self.has_classifier:
            return None
        from biorep.precision import autocast

        x = self.prepare(x_raw)
        flips = [[], *([-1] if f == "hflip" else [-2] for f in (self.model_cfg.tta if tta else ()))]
        probs = None
        for dims in flips:
            with autocast(precision or self.inference_precision, x.device):
                logits = self.logits_from_features(self.backbone(x.flip(dims) if dims else x))
            if logits is None:
                return None
            if len(flips) == 1:
                return logits.float()
            p = logits.float().softmax(1)
            probs = p if probs is None else probs + p
        # test-time augmentation: log of the mean probability, so softmax of the result is that mean
        return (probs / len(flips)).clamp_min(1e-12).log()

    # ----------------------------------------------------------------- Lightning hooks
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Augmentation randomness is a function of (seed, global step, rank), so a run resumed from a
        # mid-epoch checkpoint draws exactly the views an uninterrupted run would have drawn.
        rank = self.global_rank if self._trainer is not None else 0
        torch.manual_seed((self.seed * 1_000_003 + self.global_step * 7_919 + rank * 104_729) % (2**63))

    def use_channels_last(self) -> None:
        """Keep conv weights and training views in NHWC layout (faster convolutions on CPU and GPU)."""
        self.memory_format = torch.channels_last
        self.to(memory_format=torch.channels_last)

    def make_views(self, x: Tensor, n_views: int) -> list[Tensor]:
        """Apply the view generator (in float32, outside any autocast: augmentations are data
        preparation, and their in-place writes need one dtype); a single tensor is wrapped into a list."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = self.views(x.float(), n_views)
        views = list(out) if isinstance(out, (list, tuple)) else [out]
        return [v.contiguous(memory_format=self.memory_format) for v in views]

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x_raw, y, idx = batch
        x = self.prepare(x_raw)
        loss, logs = self.compute_loss(self.make_views(x, self.n_views), y, idx)
        self._accumulate({"loss": loss, **logs}, x.shape[0])
        if self._epoch_ends_here():
            self._log_epoch_means()
        return loss

    # Epoch means of the training terms are kept here rather than in Lightning's result collection,
    # because Lightning does not checkpoint that collection: a run resumed mid-epoch would report
    # the means of only the batches after the restart.
    def _accumulate(self, values: dict[str, Tensor], n: int) -> None:
        for key, value in values.items():
            total, count = self._epoch_sums.get(key, (0.0, 0))
            self._epoch_sums[key] = (total + value.detach().float() * n, count + n)

    def _epoch_ends_here(self) -> bool:
        if self._trainer is None:
            return False
        loop = self.trainer.fit_loop.epoch_loop
        return bool(loop._num_ready_batches_reached())

    def _log_epoch_means(self) -> None:
        for key, (total, count) in self._epoch_sums.items():
            mean = total / max(count, 1)
            if not torch.is_tensor(mean):
                mean = torch.tensor(float(mean))
            self.log(
                f"train/{key}", mean, on_step=False, on_epoch=True, prog_bar=key == "loss", batch_size=1,
                sync_dist=True,
            )
        self._epoch_sums = {}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["biorep_epoch_sums"] = {k: (float(t), int(c)) for k, (t, c) in self._epoch_sums.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("biorep_epoch_sums") or {}
        self._epoch_sums = {k: (torch.tensor(t), int(c)) for k, (t, c) in saved.items()}

    # ----------------------------------------------------------------- hooks for the engine
    def has_unused_parameters(self) -> bool:
        """True when some parameters get no gradient in some steps (DDP must then look for them)."""
        return False

    def first_monitored_epoch(self) -> int:
        """The first epoch whose validation metric means what early stopping monitors (a later stage)."""
        return 0

    def stop_reason(self) -> str | None:
        """Why the method stopped training itself (e.g. BYOL's loss-trend rule), None if it did not."""
        return None

    def summary_fields(self) -> dict[str, Any]:
        """Extra fields for ``summary.json`` (e.g. the reading of a method with modes)."""
        return {"mode": getattr(self.params, "mode", None)}

    @classmethod
    def check_train(cls, params: MethodParams, epochs: int) -> str | None:
        """A problem with ``params`` given ``train.epochs`` (message naming the field), else None."""
        return None

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x_raw, y, idx = batch
        x = self.prepare(x_raw)
        bs = x.shape[0]
        if self.has_classifier:
            logits = self.logits_from_features(self.backbone(x))
            assert logits is not None
            keep = y >= 0
            if bool(keep.any()):
                n = int(keep.sum())
                self.log(
                    "val/loss", F.cross_entropy(logits[keep].float(), y[keep]), batch_size=n, sync_dist=True
                )
                acc = (logits[keep].argmax(1) == y[keep]).float().mean()
                self.log("val/acc", acc, prog_bar=True, batch_size=n, sync_dist=True)
        else:
            loss, _ = self.compute_loss(self.make_views(x, self.n_views), y, idx)
            self.log("val/loss", loss, prog_bar=True, batch_size=bs, sync_dist=True)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters handed to the optimiser (EMA copies and frozen parts excluded)."""
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self) -> Any:
        o = self.optim_cfg
        params = self.param_groups()
        kind, kwargs = _OPTIMIZERS[o.optimizer]
        kwargs = {k: getattr(o, k) for k in kwargs}
        try:
            # The fused kernels are several times faster than the default per-tensor loop (measured
            # 0.009 s vs 0.060 s per AdamW step for a ResNet-18 on one CPU core).
            opt: torch.optim.Optimizer = kind(params, lr=o.lr, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):  # a device/dtype without fused kernels
            opt = kind(params, lr=o.lr, **kwargs)
        stages = self.schedule_stages(self._max_epochs())
        if o.scheduler in _STEP_SCHEDULERS:
            total = self._total_steps()
            per_epoch = self._steps_per_epoch(total)
            make = _STEP_SCHEDULERS[o.scheduler]
            lengths = [round(n * per_epoch) for n in stages[:-1]]
            lengths.append(total - sum(lengths))
            build: Any = lambda opt_, n: make(opt_, o, n, per_epoch)  # noqa: E731
            interval = "step"
        elif o.scheduler == "none":
            return opt
        else:
            lengths, interval = stages, "epoch"
            build = lambda opt_, n: _SCHEDULERS[o.scheduler](opt_, o, n)  # noqa: E731
        sched = StagedLR(opt, lengths, build) if len(lengths) > 1 else build(opt, lengths[0])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """Step torch schedulers as Lightning does, and :class:`StagedLR` (not a torch class) too."""
        if metric is None:
            scheduler.step()
        else:
            scheduler.step(metric)

    def schedule_stages(self, epochs: int) -> list[int]:
        """Epochs of each stage that gets its own LR schedule (one stage: the run's schedule)."""
        return [epochs]

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups: the backbone at ``lr × backbone_lr_scale``, the heads at ``lr``."""
        params = self.trainable_parameters()
        scale = self.optim_cfg.backbone_lr_scale
        if scale == 1.0:
            return [{"params": params}]
        in_backbone = {id(p) for p in self.backbone.parameters()}
        backbone = [p for p in params if id(p) in in_backbone]
        heads = [p for p in params if id(p) not in in_backbone]
        groups = [{"params": heads}] if heads else []
        if backbone:
            groups.append({"params": backbone, "lr": self.optim_cfg.lr * scale})
        return groups

    def _max_epochs(self) -> int:
        if self._trainer is not None and self.trainer.max_epochs and self.trainer.max_epochs > 0:
            return int(self.trainer.max_epochs)
        return 1

    def _total_steps(self) -> int:
        if self._trainer is not None:
            try:
                total = self.trainer.estimated_stepping_batches
                if total and total != float("inf"):
                    return max(int(total), 1)
            except Exception:  # no dataloader attached yet
                pass
        return max(self._max_epochs(), 1)

    def _steps_per_epoch(self, total: int) -> float:
        return total / max(self._max_epochs(), 1)


_OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], tuple[str, ...]]] = {
    "sgd": (torch.optim.SGD, ("momentum", "weight_decay")),
    "adamw": (torch.optim.AdamW, ("weight_decay",)),
    "adam": (torch.optim.Adam, ("weight_decay",)),
}


def _no_sched(opt: torch.optim.Optimizer, o: OptimConfig, epochs: int) -> None:
    return None


def _cosine(opt: torch.optim.Optimizer, o: OptimConfig, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1), eta_min=o.min_lr)


def _step(opt: torch.optim.Optimizer, o: OptimConfig, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.StepLR(opt, step_size=o.step_size, gamma=o.gamma or 0.1)


def _exponential(
    opt: torch.optim.Optimizer, o: OptimConfig, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=o.gamma or 0.95)


_SCHEDULERS = {"none": _no_sched, "cosine": _cosine, "step": _step, "exponential": _exponential}


def _warmup_cosine(
    opt: torch.optim.Optimizer, o: OptimConfig, total: int, per_epoch: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up from ~0 over ``warmup_epochs``, then cosine to ``min_lr``, stepped every batch."""
    warm = min(int(round(o.warmup_epochs * per_epoch)), max(total - 1, 0))
    floor = o.min_lr / o.lr

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / (warm + 1)
        progress = min((step - warm) / max(total - warm, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _onecycle(
    opt: torch.optim.Optimizer, o: OptimConfig, total: int, per_epoch: float
) -> torch.optim.lr_scheduler.LRScheduler:
    if total < 3:  # torch's OneCycleLR divides by zero below 3 steps (a tiny data set): constant lr
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    pct = o.warmup_epochs * per_epoch / total if o.warmup_epochs else 0.3
    # each phase needs at least one step: 1 < pct · total < total (else OneCycleLR divides by zero)
    pct = min(max(pct, 1.5 / total), 1.0 - 0.5 / total)
    max_lr = [g.get("lr", o.lr) for g in opt.param_groups]
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lr, total_steps=total, pct_start=pct,
        final_div_factor=(o.lr / o.min_lr / 25.0) if o.min_lr > 0 else 1e4,
    )


_STEP_SCHEDULERS = {"warmup_cosine": _warmup_cosine, "onecycle": _onecycle}
