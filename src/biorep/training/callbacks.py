"""Per-epoch metrics file and the time/memory figures of a run."""

from __future__ import annotations

import csv
import io
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import lightning as L
import torch


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class MetricsCSV(L.Callback):
    """``metrics.csv``: one row per epoch (``epoch``, ``step``, ``lr``, ``epoch_time_s`` and every epoch
    metric such as ``train/loss``, ``val/acc``). Rows survive ``--resume`` (kept in the checkpoint).

    Example:
        >>> trainer = L.Trainer(callbacks=[MetricsCSV(Path("run/metrics.csv"))])
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self._t0 = 0.0

    @property
    def state_key(self) -> str:
        return "MetricsCSV"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()  # a resumed mid-epoch run gets no on_train_epoch_start

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        if trainer.optimizers:
            row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        row["epoch_time_s"] = round(time.perf_counter() - self._t0, 4)
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.endswith("_step"):
                continue
            row[key.removesuffix("_epoch")] = float(value)
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if trainer.is_global_zero:
            self.write()

    def write(self) -> None:
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB)."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / 1024**2 if sys.platform == "darwin" else ru / 1024


class ResourceMonitor(L.Callback):
    """Wall time, time per epoch, training images per second and peak memory of a fit.

    ``peak_tracemalloc_mb`` (the screening study's measure, enabled by ``tracemalloc=True``) is the
    peak of Python-level allocations (incl. numpy buffers; torch's tensor memory is not traced), with
    a small overhead on Python-heavy code. ``peak_rss_mb`` is the process's peak RSS; ``peak_gpu_mb``
    is ``torch.cuda.max_memory_allocated`` (None on CPU).
    """

    def __init__(self, tracemalloc_enabled: bool = True) -> None:
        self.tracemalloc_enabled = tracemalloc_enabled
        self.epoch_times: list[float] = []
        self.images = 0
        self.train_time = 0.0
        self.wall = 0.0
        self.peak_tracemalloc_mb: float | None = None
        self._started_tm = False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_t0 = time.perf_counter()
        if self.tracemalloc_enabled and not tracemalloc.is_tracing():
            tracemalloc.start()
            self._started_tm = True
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_t0 = time.perf_counter()  # a resumed mid-epoch run gets no on_train_epoch_start

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_t0 = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.images += int(batch[0].shape[0]) * trainer.world_size

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dt = time.perf_counter() - self._epoch_t0
        self.epoch_times.append(dt)
        self.train_time += dt

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.finish(pl_module)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.finish(pl_module)

    def finish(self, pl_module: L.LightningModule) -> None:
        if hasattr(self, "_fit_t0"):
            self.wall = time.perf_counter() - self._fit_t0
        if self._started_tm and tracemalloc.is_tracing():
            self.peak_tracemalloc_mb = tracemalloc.get_traced_memory()[1] / 1024**2
            tracemalloc.stop()
            self._started_tm = False
        self._device = pl_module.device

    def figures(self) -> dict[str, Any]:
        dev = getattr(self, "_device", torch.device("cpu"))
        gpu = None
        if dev.type == "cuda":
            gpu = torch.cuda.max_memory_allocated(dev) / 1024**2
        n = len(self.epoch_times)
        return {
            "wall_time_s": round(self.wall, 3),
            "time_per_epoch_s": round(self.train_time / n, 4) if n else None,
            "images_per_s": round(self.images / self.train_time, 2) if self.train_time > 0 else None,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "peak_tracemalloc_mb": None
            if self.peak_tracemalloc_mb is None
            else round(self.peak_tracemalloc_mb, 2),
            "peak_gpu_mb": None if gpu is None else round(gpu, 1),
        }
