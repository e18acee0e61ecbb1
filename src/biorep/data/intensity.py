"""Map raw intensities to [0, 1] with statistics from the training split only.

Hand-written because torchvision's ``Normalize`` needs mean/std known in advance and knows nothing
about dtype ranges, percentile clipping or bright-background inversion; it is a few tensor ops.

Contrast polarity: every run feeds its network *bright objects on a dark background*. Dark-on-light
images (G-banded chromosomes on white, bright-field) are inverted, light-on-dark ones (Q-banded or
fluorescence images) are not, so a run started from another (``model.weights``) sees the polarity it
was trained on whatever the banding technique. The polarity is detected on the training images
(:func:`detect_polarity`: object pixels vs the median border pixel) or forced with
``data.intensity.polarity``; ``data.intensity.invert: true|false`` overrides both.

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
#: Images looked at to detect the contrast polarity.
_MAX_POLARITY_IMAGES = 500
#: A pixel is "object" when it differs from the border median by more than this share of the range.
_OBJECT_TOLERANCE = 0.1
#: Below this median object-vs-border contrast (share of the range) the polarity is undecided.
_MIN_POLARITY_CONTRAST = 0.05

DARK_ON_LIGHT = "dark_on_light"
LIGHT_ON_DARK = "light_on_dark"


def polarity_scores(images: np.ndarray, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Per image ``(N, C, H, W)``: mean of the object pixels minus the median border pixel, as a share
    of ``high - low`` (< 0: dark objects on a light background; NaN: no object pixel).

    Object pixels are those more than 10 % of the range away from the border median, so a small
    object on a large canvas counts as much as a large one.
    """
    from biorep.data.geometry import border_median

    arr = np.asarray(images, dtype=np.float64)
    span = float(high - low) or 1.0
    out = np.full(len(arr), np.nan)
    for i, img in enumerate(arr):
        x = (img - low) / span
        b = border_median(x)
        obj = np.abs(x - b) > _OBJECT_TOLERANCE
        if obj.any():
            out[i] = float(x[obj].mean() - b)
    return out


def detect_polarity(images: np.ndarray, low: float = 0.0, high: float = 1.0) -> str | None:
    """``dark_on_light``, ``light_on_dark`` or None (undecided) for a set of images.

    The median over images of :func:`polarity_scores`; undecided when its size is below 5 % of the
    range (e.g. texture without a background) or no image has object pixels.

    Example:
        >>> img = np.full((3, 1, 16, 16), 250.0); img[:, :, 6:10, 4:12] = 90.0   # dark on white
        >>> detect_polarity(img, 0, 255), detect_polarity(255 - img, 0, 255)
        ('dark_on_light', 'light_on_dark')
    """
    scores = polarity_scores(images, low, high)
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        return None
    med = float(np.median(scores))
    if abs(med) < _MIN_POLARITY_CONTRAST:
        return None
    return DARK_ON_LIGHT if med < 0 else LIGHT_ON_DARK


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
        polarity: the raw images' contrast (``dark_on_light``/``light_on_dark``; None = not known),
            and how it was found (``polarity_source``: ``detected``, ``config``, ``background``).
    """

    low: list[float]
    high: list[float]
    invert: bool = False
    clip: bool = True
    mode: str = "range"
    polarity: str | None = None
    polarity_source: str | None = None

    @classmethod
    def fit(cls, ds: ImageDataset, train_idx: Any, cfg: IntensityConfig | None = None) -> IntensityScaler:
        """Fit on the training rows ``train_idx`` of ``ds`` (never on val/test).

        ``auto`` mode = ``range`` for uint8 data and ``percentile`` otherwise. ``invert: auto``
        inverts dark-on-light images: the polarity given as ``cfg.polarity``, else detected on the
        training images (:func:`detect_polarity`), else — undecided — when the background, scaled,
        lies above 0.5 (e.g. chromosomes on white).
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
        polarity: str | None = None
        source: str | None = None
        wanted = getattr(cfg, "polarity", "auto")
        if wanted != "auto":
            polarity, source = str(wanted), "config"
        elif mode != "none" and cfg.invert == "auto":
            pick = idx if idx.size <= _MAX_POLARITY_IMAGES else idx[
                np.linspace(0, idx.size - 1, _MAX_POLARITY_IMAGES).astype(np.int64)]
            polarity = detect_polarity(np.asarray(ds.images[pick]), float(np.mean(low)), float(np.mean(high)))
            source = "detected" if polarity is not None else None
        if cfg.invert != "auto":
            invert = bool(cfg.invert)
        elif mode == "none":
            invert = False
        elif polarity is not None:
            invert = polarity == DARK_ON_LIGHT
        else:
            bg = [(ds.background - lo_) / (h - lo_) for lo_, h in zip(low, high)]
            invert = float(np.mean(bg)) > 0.5
            polarity, source = (DARK_ON_LIGHT if invert else LIGHT_ON_DARK), "background"
        return cls(low=[float(v) for v in low], high=[float(v) for v in high], invert=invert,
                   clip=mode != "none", mode=mode, polarity=polarity, polarity_source=source)

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
                "clip": self.clip, "mode": self.mode, "polarity": self.polarity,
                "polarity_source": self.polarity_source}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntensityScaler:
        """Inverse of :meth:`to_dict`."""
        return cls(low=[float(v) for v in d["low"]], high=[float(v) for v in d["high"]],
                   invert=bool(d.get("invert", False)), clip=bool(d.get("clip", True)),
                   mode=str(d.get("mode", "range")), polarity=d.get("polarity"),
                   polarity_source=d.get("polarity_source"))


def _sample(ds: ImageDataset, idx: np.ndarray) -> np.ndarray:
    """Up to ``_MAX_FIT_IMAGES`` training images, evenly spaced (deterministic)."""
    if idx.size > _MAX_FIT_IMAGES:
        idx = idx[np.linspace(0, idx.size - 1, _MAX_FIT_IMAGES).astype(np.int64)]
    return np.asarray(ds.images[idx])
