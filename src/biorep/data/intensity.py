"""Map raw intensities to [0, 1] with statistics from the training split only.

Hand-written because torchvision's ``Normalize`` needs mean/std known in advance and knows nothing
about dtype ranges, percentile clipping or bright-background inversion; it is a few tensor ops.

Example:
    >>> scaler = IntensityScaler.fit(ds, splits.train, cfg.intensity)       # doctest: +SKIP
    >>> x = scaler(torch.from_numpy(ds.images[:32]))                         # doctest: +SKIP
    >>> x.dtype, float(x.min()) >= 0, float(x.max()) <= 1                    # doctest: +SKIP
    (torch.float32, True, True)
    >>> IntensityScaler.from_dict(scaler.to_dict())                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from biorep.data.config import IntensityConfig

if TYPE_CHECKING:
    import torch

    from biorep.data.dataset import ImageDataset

#: Pixels sampled per channel when fitting percentiles (keeps fitting fast on big sets).
_MAX_FIT_IMAGES = 2000


def dtype_range(dtype: np.dtype | str) -> tuple[float, float]:
    """``(0, max)`` of an integer dtype; ``(0, 1)`` for floats."""
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.integer):
        return 0.0, float(np.iinfo(dt).max)
    return 0.0, 1.0


@dataclass
class IntensityScaler:
    """Per-channel affine map ``(x - low) / (high - low)``, clipped to [0, 1], optionally inverted.

    Attributes:
        low, high: per-channel raw values mapped to 0 and 1.
        invert: map ``v → 1 - v`` so that a bright background ends near 0.
        clip: clip to [0, 1] (always for ``range``/``percentile``; ``none`` mode only casts).
        mode: the resolved mode (``range``, ``percentile`` or ``none``).
    """

    low: list[float]
    high: list[float]
    invert: bool = False
    clip: bool = True
    mode: str = "range"

    @classmethod
    def fit(cls, ds: ImageDataset, train_idx: Any, cfg: IntensityConfig | None = None) -> IntensityScaler:
        """Fit on the training rows ``train_idx`` of ``ds`` (never on val/test).

        ``auto`` mode = ``range`` for uint8 data and ``percentile`` otherwise; ``invert: auto``
        inverts when the background, scaled, lies above 0.5 (e.g. chromosomes on white).
        """
        cfg = cfg or IntensityConfig()
        dtype = np.dtype(ds.images.dtype)
        mode = cfg.mode
        if mode == "auto":
            mode = "range" if dtype == np.uint8 else "percentile"
        c = ds.channels
        idx = np.sort(np.asarray(train_idx, dtype=np.int64).ravel())
        if idx.size == 0:
            idx = np.arange(len(ds))
        if mode == "range":
            lo, hi = dtype_range(dtype)
            if not np.issubdtype(dtype, np.integer):  # floats: the training data's own range
                sample = _sample(ds, idx)
                lo, hi = float(sample.min()), float(sample.max())
            low, high = [lo] * c, [hi] * c
        elif mode == "percentile":
            sample = _sample(ds, idx)  # (n, C, H, W)
            flat = np.moveaxis(sample, 1, 0).reshape(c, -1).astype(np.float64)
            low = np.percentile(flat, cfg.low, axis=1).tolist()
            high = np.percentile(flat, cfg.high, axis=1).tolist()
        else:  # none
            low, high = [0.0] * c, [1.0] * c
        high = [h if h > lo_ else lo_ + 1.0 for lo_, h in zip(low, high)]
        if cfg.invert == "auto":
            bg = [(ds.background - lo_) / (h - lo_) for lo_, h in zip(low, high)]
            invert = mode != "none" and float(np.mean(bg)) > 0.5
        else:
            invert = bool(cfg.invert)
        return cls(low=[float(v) for v in low], high=[float(v) for v in high], invert=invert,
                   clip=mode != "none", mode=mode)

    def __call__(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Scale a ``(B, C, H, W)`` (or ``(C, H, W)``) batch of raw values to float32 [0, 1]."""
        import torch

        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x.astype(np.float32, copy=False)))
        x = x.to(torch.float32)
        shape = (1, -1, 1, 1) if x.ndim == 4 else (-1, 1, 1)
        low = torch.tensor(self.low, dtype=torch.float32, device=x.device).view(shape)
        high = torch.tensor(self.high, dtype=torch.float32, device=x.device).view(shape)
        y = (x - low) / (high - low)
        if self.clip:
            y = y.clamp_(0.0, 1.0)
        if self.invert:
            y = 1.0 - y
        return y

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (for ``data.json`` and checkpoints)."""
        return {"low": list(self.low), "high": list(self.high), "invert": self.invert,
                "clip": self.clip, "mode": self.mode}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntensityScaler:
        """Inverse of :meth:`to_dict`."""
        return cls(low=[float(v) for v in d["low"]], high=[float(v) for v in d["high"]],
                   invert=bool(d.get("invert", False)), clip=bool(d.get("clip", True)),
                   mode=str(d.get("mode", "range")))


def _sample(ds: ImageDataset, idx: np.ndarray) -> np.ndarray:
    """Up to ``_MAX_FIT_IMAGES`` training images, evenly spaced (deterministic)."""
    if idx.size > _MAX_FIT_IMAGES:
        idx = idx[np.linspace(0, idx.size - 1, _MAX_FIT_IMAGES).astype(np.int64)]
    return np.asarray(ds.images[idx])
