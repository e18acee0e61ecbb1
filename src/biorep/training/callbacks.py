"""Per-epoch metrics file and the time/memory figures of a run."""

from __future__ import annotations

import csv
import io
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import lightning as L
import torch

from biorep.rundir import atomic_write_text  # the one atomic writer (also imported from here)


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
        self._prior_wall = 0.0  # wall time of earlier sessions of a resumed run
        self._prior_peaks: dict[str, float | None] = {}
        self._epoch_partial = 0.0  # time spent in the current epoch before an interruption
        self.sessions = 1

    @property
    def state_key(self) -> str:
        return "ResourceMonitor"

    def state_dict(self) -> dict[str, Any]:
        now = time.perf_counter()
        in_epoch = now - getattr(self, "_epoch_t0", now)
        peak_tm = self.peak_tracemalloc_mb
        if self._started_tm and tracemalloc.is_tracing():
            peak_tm = tracemalloc.get_traced_memory()[1] / 1024**2
        return {
            "epoch_times": list(self.epoch_times),
            "images": self.images,
            "train_time": self.train_time,
            "wall": self._prior_wall + (now - getattr(self, "_fit_t0", now)),
            "epoch_partial": self._epoch_partial + in_epoch,
            "peak_rss_mb": max(peak_rss_mb(), self._prior_peaks.get("peak_rss_mb") or 0.0),
            "peak_tracemalloc_mb": max(peak_tm or 0.0, self._prior_peaks.get("peak_tracemalloc_mb") or 0.0),
            "sessions": self.sessions,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch_times = list(state_dict.get("epoch_times", []))
        self.images = int(state_dict.get("images", 0))
        self.train_time = float(state_dict.get("train_time", 0.0))
        self._prior_wall = float(state_dict.get("wall", 0.0))
        self._epoch_partial = float(state_dict.get("epoch_partial", 0.0))
        self._prior_peaks = {
            "peak_rss_mb": state_dict.get("peak_rss_mb"),
            "peak_tracemalloc_mb": state_dict.get("peak_tracemalloc_mb"),
        }
        self.sessions = int(state_dict.get("sessions", 1)) + 1

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
        self._epoch_partial = 0.0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.images += int(batch[0].shape[0]) * trainer.world_size

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dt = time.perf_counter() - self._epoch_t0 + self._epoch_partial
        self._epoch_partial = 0.0
        self.epoch_times = self.epoch_times[: trainer.current_epoch] + [dt]
        self.train_time = sum(self.epoch_times)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.finish(pl_module)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.finish(pl_module)

    def finish(self, pl_module: L.LightningModule) -> None:
        if hasattr(self, "_fit_t0"):
            self.wall = self._prior_wall + time.perf_counter() - self._fit_t0
        if self._started_tm and tracemalloc.is_tracing():
            self.peak_tracemalloc_mb = tracemalloc.get_traced_memory()[1] / 1024**2
            tracemalloc.stop()
            self._started_tm = False
        prior_tm = self._prior_peaks.get("peak_tracemalloc_mb")
        if prior_tm and self.peak_tracemalloc_mb is not None:
            self.peak_tracemalloc_mb = max(self.peak_tracemalloc_mb, prior_tm)
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
            "peak_rss_mb": round(max(peak_rss_mb(), self._prior_peaks.get("peak_rss_mb") or 0.0), 1),
            "sessions": self.sessions,
            "peak_tracemalloc_mb": None
            if self.peak_tracemalloc_mb is None
            else round(self.peak_tracemalloc_mb, 2),
            "peak_gpu_mb": None if gpu is None else round(gpu, 1),
        }
