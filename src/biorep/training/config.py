"""``RunConfig``: everything a training run needs, validated before any work starts.

A run config is YAML with five sections — ``data`` (:class:`biorep.data.DataConfig`), ``views``
(:class:`biorep.views.ViewsConfig`), ``model`` (:class:`biorep.models.ModelConfig`), ``method``
(``name`` + that method's ``Params``) and ``train`` (:class:`TrainConfig`). ``--set a.b=value``
overrides are YAML-parsed. Unknown keys and impossible values raise a
:class:`~biorep.errors.ConfigError` naming the field, e.g. ``method.temperature: Input should be
greater than 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from biorep.configmodel import ConfigModel
from biorep.data import DataConfig
from biorep.errors import ConfigError
from biorep.methods import METHODS, MethodParams, OptimConfig
from biorep.models import ModelConfig
from biorep.views import ViewsConfig


class EarlyStoppingConfig(ConfigModel):
    """Lightning's ``EarlyStopping`` on an epoch metric (``mode: auto`` = max for acc, min otherwise)."""

    monitor: str = "val/acc"
    patience: int = Field(10, ge=1)
    mode: Literal["auto", "min", "max"] = "auto"
    min_delta: float = Field(0.0, ge=0)

    def resolved_mode(self) -> str:
        if self.mode != "auto":
            return self.mode
        return "max" if self.monitor.endswith("acc") else "min"


class TrainConfig(ConfigModel):
    """How to train: epochs, batches, optimiser, schedule, devices, checkpoints.

    ``batch_size`` is per device (the global batch is ``batch_size × devices × num_nodes``; scale
    ``lr`` accordingly). ``checkpoint_every_n_steps`` also writes ``last.ckpt`` mid-epoch, so
    ``--resume`` can continue an interrupted epoch exactly. ``tracemalloc`` measures the peak Python
    heap (incl. numpy, not torch tensors) like the screening study; it slows Python-heavy code a
    little — switch it off for timing benchmarks.

    Example:
        >>> TrainConfig(epochs=50, batch_size=256, lr=1e-4).optim().optimizer
        'adam'
    """

    epochs: int = Field(10, ge=0, description="0: no training, the initialised (or supplied) weights are saved and evaluated")
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    scheduler: Literal["none", "cosine", "step", "exponential", "warmup_cosine", "onecycle"] = "none"
    step_size: int = Field(30, ge=1)
    gamma: float | None = Field(None, gt=0, le=1)
    min_lr: float = Field(0.0, ge=0)
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up (warmup_cosine, onecycle)")
    backbone_lr_scale: float = Field(1.0, gt=0, description="backbone lr = lr x this, e.g. 0.1 to fine-tune")
    ema_decay: float | None = Field(
        None, gt=0, lt=1,
        description="keep an exponential moving average of the weights (e.g. 0.998; the decay warmed up as "
        "min(decay, (1+n)/(10+n)) after n steps) and validate, checkpoint and evaluate it instead of the "
        "last weights (needs lightning>=2.6)",
    )
    seed: int = 0
    deterministic: bool = False
    precision: Literal["auto", "32", "16-mixed", "bf16-mixed"] = Field(
        "auto", description="auto: bf16 mixed precision where the CPU/GPU has native bf16, else fp32"
    )
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: int | Literal["auto"] = "auto"
    num_nodes: int = Field(1, ge=1)
    strategy: Literal["auto", "ddp"] = "auto"
    sync_batchnorm: bool = False
    early_stopping: EarlyStoppingConfig | None = None
    num_workers: int = Field(0, ge=0)
    drop_last: bool = True
    limit_train_batches: int | float | None = Field(None, gt=0)
    limit_val_batches: int | float | None = Field(None, ge=0)
    checkpoint_every_n_steps: int | None = Field(None, ge=1)
    checkpoint_every_minutes: float | None = Field(
        5.0, gt=0, description="also write last.ckpt mid-epoch after this much training time (None: off)"
    )
    val_check: int = Field(1, ge=1, description="validate every N epochs")
    tracemalloc: bool = True
    channels_last: bool = Field(
        True, description="NHWC memory layout for convolutions (measured 1.1-1.9x faster on a CPU)"
    )
    progress: Literal["auto", "bar", "lines", "none"] = Field(
        "auto", description="auto: rich bars in a terminal, one flushed line per epoch otherwise"
    )
    progress_every_minutes: float = Field(2.0, gt=0, description="lines mode: a line this often within an epoch")

    @field_validator("progress", mode="before")
    @classmethod
    def _progress_bool(cls, v: Any) -> Any:
        if v is True:
            return "auto"
        if v is False:
            return "none"
        return v

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: Any) -> Any:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be >= 1 or 'auto'")
        return v

    def optim(self) -> OptimConfig:
        """The optimiser/schedule part, as the methods take it."""
        return OptimConfig(
            optimizer=self.optimizer,
            lr=self.lr,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
            scheduler=self.scheduler,
            step_size=self.step_size,
            gamma=self.gamma,
            min_lr=self.min_lr,
            warmup_epochs=self.warmup_epochs,
            backbone_lr_scale=self.backbone_lr_scale,
        )


class MethodSpec(ConfigModel):
    """A method name and its validated ``Params``; flat in YAML: ``{name: supcon, temperature: 0.1}``."""

    name: str
    params: SerializeAsAny[MethodParams]

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = {"name": v}
        if isinstance(v, dict) and "params" not in v:
            v = dict(v)
            name = v.pop("name", None)
            if name is None:
                raise ValueError(f"missing 'name' (one of {', '.join(METHODS.names())})")
            if name not in METHODS:
                raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS.names())}")
            return {"name": name, "params": METHODS.get(name).Params.model_validate(v)}
        return v

    def flat(self) -> dict[str, Any]:
        """The YAML form."""
        return {"name": self.name, **self.params.model_dump(mode="json")}


class RunConfig(ConfigModel):
    """The whole run: ``data``, ``views``, ``model``, ``method``, ``train``.

    Example:
        >>> cfg = RunConfig.from_dict({"data": {"dataset": "synthetic-cells"}, "method": {"name": "byol"}})
        >>> cfg.method.params.momentum
        0.99
    """

    data: DataConfig
    views: ViewsConfig = Field(default_factory=ViewsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodSpec
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> RunConfig:
        problem = METHODS.get(self.method.name).check_train(self.method.params, self.train.epochs)
        if problem:
            raise ValueError(problem)
        es = self.train.early_stopping
        if (
            es is not None
            and es.monitor.startswith("val/acc")
            and not METHODS.get(self.method.name).has_classifier
        ):
            raise ValueError(
                f"train.early_stopping.monitor: {self.method.name!r} has no classifier, so there is no "
                f"{es.monitor!r}; use 'train/loss' or 'val/loss'"
            )
        return self

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "config", set_keys: Sequence[str] = ()) -> RunConfig:
        """Validate a plain dict; every problem becomes one :class:`ConfigError` naming the fields.

        ``set_keys`` are the dotted keys given with ``--set``: a problem with one of them is marked
        ``(from --set)``, so the user is not sent to look for it in the config file.
        """
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping with sections data/views/model/method/train")
        method = raw.get("method")
        if isinstance(method, dict) and "name" in method and method["name"] in METHODS:
            rest = {k: v for k, v in method.items() if k != "name"}
            try:
                METHODS.get(method["name"]).Params.model_validate(rest)
            except ValidationError as err:
                raise ConfigError(_format(err, source, prefix="method", set_keys=set_keys)) from None
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(_format(err, source, set_keys=set_keys)) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-able form (``method`` flat), the inverse of :meth:`from_dict`."""
        d = self.model_dump(mode="json", exclude={"method"})
        d["method"] = self.method.flat()
        return {k: d[k] for k in ("data", "views", "model", "method", "train")}


def _format(err: ValidationError, source: str, prefix: str = "", set_keys: Sequence[str] = ()) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(e["loc"]))
        mark = " (from --set)" if any(loc == k or loc.startswith(k + ".") for k in set_keys) else ""
        msg = e["msg"]
        given = e.get("input")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] != "missing" and not isinstance(given, (dict, list)) and "Value error" not in msg:
            msg = f"{msg} (given: {given!r})"
        msg = msg.removeprefix("Value error, ")
        if msg.startswith(loc + ":"):
            lines.append(msg + mark)
        else:
            lines.append((f"{loc}: {msg}" if loc else msg) + mark)
    return f"{source}: invalid config\n  " + "\n  ".join(lines)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=5")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({err})") from None
        node = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = parsed
    return raw


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run config, apply ``--set`` overrides, validate.

    Example:
        >>> cfg = load_config("configs/synthetic-smoke.yaml", ["train.epochs=2", "method.name=simclr"])
    """
    raw: dict[str, Any] = {}
    source = "config"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{p}: not valid YAML ({err})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping with sections data/views/model/method/train")
    apply_overrides(raw, list(overrides or []))
    set_keys = [o.partition("=")[0].strip() for o in overrides or []]
    return RunConfig.from_dict(raw, source=source, set_keys=set_keys)
