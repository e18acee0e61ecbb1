"""The screening study's BYOL stopping rule as a Lightning callback."""

from __future__ import annotations

from typing import Any

import lightning as L


class LossTrendStop(L.Callback):
    """Stop when the epoch loss rises twice in a row, exceeds the first epoch's, or stalls.

    "Stalls" = relative change below ``stall_tol``. Only epoch-level values of ``monitor`` are used.

    Example:
        >>> trainer = L.Trainer(callbacks=[LossTrendStop("train/loss")])
    """

    def __init__(self, monitor: str = "train/loss", stall_tol: float = 1e-3) -> None:
        self.monitor = monitor
        self.stall_tol = stall_tol
        self.history: list[float] = []
        self.reason: str | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        self.history.append(float(value))
        h = self.history
        if len(h) < 2:
            return
        if h[-1] > h[0]:
            self.reason = "loss exceeds the first epoch's"
        elif len(h) >= 3 and h[-1] > h[-2] > h[-3]:
            self.reason = "loss rose twice in a row"
        elif abs(h[-1] - h[-2]) <= self.stall_tol * max(abs(h[-2]), 1e-12):
            self.reason = "loss stalled"
        if self.reason:
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "reason": self.reason}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.reason = state_dict.get("reason")
