"""Weight EMA: an exponential moving average of the weights, validated, checkpointed and evaluated.

Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging` does the bookkeeping (the averaged
copy, swapping it in for validation, ``best.ckpt``/``last.ckpt`` holding the average as
``state_dict`` and the live weights as ``current_model_state``, so ``--resume`` continues both). Its
:class:`~lightning.pytorch.callbacks.EMAWeightAveraging` uses a fixed decay from the first step,
which on a short CPU budget leaves the random initial weights in the average (0.999 over 1,200
steps keeps 30 % of them); the averaging function here warms the decay up as TensorFlow's
``ExponentialMovingAverage(num_updates=n)`` does, ``min(decay, (1 + n) / (10 + n))`` after ``n``
updates, which no library offers as a Lightning callback. The decay reaches ``decay`` after
``(10·decay − 1) / (1 − decay)`` updates (1,790 for 0.995); a shorter run averages over the warm-up
schedule alone (after 765 updates ≈ 0.988, a window of about 85 steps).
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import WeightAveraging


def warmup_decay(decay: float, n_averaged: int) -> float:
    """The decay of the update after ``n_averaged`` earlier ones: ``min(decay, (1 + n) / (10 + n))``."""
    return min(decay, (1.0 + n_averaged) / (10.0 + n_averaged))


class WarmupEMA:
    """A ``multi_avg_fn`` for :class:`torch.optim.swa_utils.AveragedModel`: EMA with a warmed-up decay.

    Floating tensors move towards the live ones in one fused ``lerp``; integer buffers (BatchNorm's
    ``num_batches_tracked``) take the live value. A class, not a closure, so it pickles (spawned
    DDP workers)."""

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def __call__(self, averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        d = warmup_decay(self.decay, int(n_averaged))
        if averaged and (torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0])):
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        else:
            for a, c in zip(averaged, current):
                a.copy_(c)


class WeightEMA(WeightAveraging):
    """EMA of all weights and buffers, updated after every optimiser step (``train.ema_decay``)."""

    def __init__(self, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        super().__init__(use_buffers=True, multi_avg_fn=WarmupEMA(decay))
        self.decay = decay
