"""Checkpoints that survive ``kill -9`` and full disks.

- :class:`AtomicCheckpointIO`: Lightning's checkpoint writer through :func:`biorep.rundir.atomic_write`
  (temp file, fsync, rename), so ``last.ckpt`` and ``best.ckpt`` are never truncated under their names.
- :class:`LastCheckpoint`: ``last.ckpt`` at the end of every epoch and, within epochs, every N steps
  and/or every few minutes of training; the previous one is kept as ``previous.ckpt``.
- :func:`check_checkpoint`: a clear error for a truncated or unreadable checkpoint, naming the
  previous good one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from biorep.errors import RunDirError
from biorep.rundir import atomic_write

PREVIOUS = "previous.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temp file beside the target, fsync, then rename."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        atomic_write(Path(path), lambda tmp: torch.save(checkpoint, tmp))


class LastCheckpoint(Checkpoint):
    """Write ``last.ckpt`` every epoch, every ``every_n_steps`` steps and every ``every_s`` seconds.

    The time trigger is decided on rank 0 and broadcast, so every process saves at the same step.
    Subclassing Lightning's ``Checkpoint`` makes it run after the other callbacks' epoch-end hooks
    (so the checkpoint holds the epoch's metrics row).
    """

    def __init__(
        self,
        path: Path,
        every_n_steps: int | None = None,
        every_s: float | None = 300.0,
        on_saved: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self.every_s = every_s
        self.on_saved = on_saved
        self._t_last = time.monotonic()

    @property
    def state_key(self) -> str:
        return "LastCheckpoint"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t_last = time.monotonic()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.fit_loop.epoch_loop._num_ready_batches_reached():
            # The epoch's last batch: its state is saved at the epoch's end, after validation and the
            # metrics row; a checkpoint taken here would resume past an epoch end that never ran.
            return
        step = trainer.global_step
        due = bool(self.every_n_steps) and step % int(self.every_n_steps or 1) == 0
        if self.every_s is not None:
            timed = time.monotonic() - self._t_last >= self.every_s
            due = due or bool(trainer.strategy.broadcast(timed))
        if due:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        if trainer.is_global_zero and self.path.is_file():
            keep = self.path.with_name(PREVIOUS)
            tmp = self.path.with_name(f".{PREVIOUS}.{os.getpid()}.link")
            tmp.unlink(missing_ok=True)
            try:  # a hard link costs no copy; the rename makes it atomic
                os.link(self.path, tmp)
                os.replace(tmp, keep)
            except OSError:
                tmp.unlink(missing_ok=True)
        trainer.save_checkpoint(str(self.path), weights_only=False)
        self._t_last = time.monotonic()
        if self.on_saved is not None:
            self.on_saved()


def check_checkpoint(path: Path) -> dict[str, Any]:
    """Load ``path`` (to CPU) or raise a :class:`RunDirError` naming it and the previous good one."""
    try:
        if path.stat().st_size == 0:
            raise RuntimeError("the file is empty")
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing") from None
    except Exception as exc:  # truncated zip, unpickling error, ...
        hint = ""
        prev = path.with_name(PREVIOUS)
        if path.name != PREVIOUS and prev.is_file():
            hint = f"; the previous checkpoint {prev} may be good: move it to {path} and --resume again"
        raise RunDirError(f"{path}: checkpoint is truncated or unreadable ({exc}){hint}") from None
