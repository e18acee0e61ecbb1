"""Progress that works everywhere: rich bars in a terminal, flushed plain lines otherwise.

A run launched from a script or a cluster job has no TTY; Lightning's bars then print nothing
useful, so :class:`LineProgress` prints one line per epoch (and one every few minutes within a long
epoch) with the loss, the validation metric, images/s and the ETA.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import lightning as L


def _fmt_duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def resolve_progress(mode: str, stream: TextIO | None = None) -> str:
    """``auto`` → ``bar`` when ``stream`` (stdout) is a terminal, else ``lines``."""
    if mode != "auto":
        return mode
    stream = stream or sys.stdout
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


class LineProgress(L.Callback):
    """One flushed line per epoch (and every ``every_s`` seconds within an epoch) on ``stream``.

    Example line::

        epoch 3/10  train/loss 0.4123  val/acc 0.9312  412 img/s  elapsed 2m10s  ETA 5m03s
    """

    def __init__(self, every_s: float = 120.0, stream: TextIO | None = None) -> None:
        self.every_s = every_s
        self.stream = stream
        self._t_fit = 0.0
        self._t_epoch = 0.0
        self._t_line = 0.0
        self._images = 0
        self._epoch_images = 0
        self._first_epoch = 0  # the epoch this session started at (a resumed run starts later)

    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t_fit = self._t_epoch = self._t_line = time.perf_counter()
        self._images = self._epoch_images = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t_epoch = self._t_line = time.perf_counter()
        self._epoch_images = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        n = int(batch[0].shape[0]) * trainer.world_size
        self._images += n
        self._epoch_images += n
        now = time.perf_counter()
        if trainer.is_global_zero and now - self._t_line >= self.every_s:
            self._t_line = now
            total = trainer.num_training_batches
            done = batch_idx + 1
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            loss_s = f"  loss {float(loss):.4f}" if loss is not None else ""
            rate = self._epoch_images / max(now - self._t_epoch, 1e-9)
            self._print(
                f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  batch {done}/{total}{loss_s}"
                f"  {rate:.0f} img/s  elapsed {_fmt_duration(now - self._t_fit)}"
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        now = time.perf_counter()
        self._t_line = now
        epoch = trainer.current_epoch + 1
        parts = [f"epoch {epoch}/{trainer.max_epochs}"]
        metrics = trainer.callback_metrics
        for key in sorted(metrics):
            if key.endswith("_step") or not (key.endswith("loss") or key.endswith("acc")):
                continue
            parts.append(f"{key.removesuffix('_epoch')} {float(metrics[key]):.4f}")
        elapsed = now - self._t_fit
        rate = self._epoch_images / max(now - self._t_epoch, 1e-9)
        parts.append(f"{rate:.0f} img/s")
        parts.append(f"elapsed {_fmt_duration(elapsed)}")
        remaining = max((trainer.max_epochs or epoch) - epoch, 0)
        done_here = max(epoch - self._first_epoch, 1)
        if remaining:
            parts.append(f"ETA {_fmt_duration(elapsed / done_here * remaining)}")
        self._print("  ".join(parts))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_epoch = int(trainer.current_epoch)

    def _print(self, line: str) -> None:
        out = self._out()
        print(line, file=out, flush=True)
