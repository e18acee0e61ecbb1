"""Bring crops of any size onto one grid (square, or ``height × width``), keeping relative size where asked.

Hand-written because torchvision's transforms work per image on tensors and know no "one common
scale factor + centred canvas" step; resampling itself is Pillow's (antialiased bilinear).

Example:
    >>> import numpy as np
    >>> crop = np.zeros((1, 40, 20), np.uint8)
    >>> fit_to_canvas(crop, size=64, scale=1.0, background=255)[0].shape
    (1, 64, 64)
    >>> fit_to_canvas(crop, size=(48, 24), scale=1.0, background=255)[0].shape
    (1, 48, 24)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_RESAMPLE = Image.Resampling.BILINEAR

Size = int | tuple[int, int]
"""An image size: ``n`` (``n × n``) or ``(height, width)``."""


def as_hw(size: Size | list[int]) -> tuple[int, int]:
    """``(height, width)`` of a :data:`Size` (``64`` → ``(64, 64)``; ``[96, 48]`` → ``(96, 48)``)."""
    if isinstance(size, (tuple, list)):
        h, w = size
        return int(h), int(w)
    return int(size), int(size)


def as_size(size: Size | list[int]) -> Size:
    """The one spelling of a size: ``n`` for a square, else ``(height, width)`` (e.g. read from JSON)."""
    h, w = as_hw(size)
    return h if h == w else (h, w)


def size_label(size: Size | list[int]) -> str:
    """``64 px`` or ``96×48 px`` (height × width), for messages."""
    h, w = as_hw(size)
    return f"{h} px" if h == w else f"{h}×{w} px"


#: A crop needing more than this many times the median crop's shrink factor is a size outlier.
OUTLIER_FACTOR = 3.0


def _need(heights: np.ndarray, widths: np.ndarray, size: Size) -> np.ndarray:
    """Per crop, the factor by which the canvas would have to grow to hold it: ``max(h / H, w / W)``."""
    ch, cw = as_hw(size)
    return np.maximum(np.asarray(heights, dtype=np.float64) / ch, np.asarray(widths, dtype=np.float64) / cw)


def size_outliers(heights: np.ndarray, widths: np.ndarray, size: Size, factor: float = OUTLIER_FACTOR) -> np.ndarray:
    """Crops more than ``factor`` × the median crop's size (relative to the canvas): one stray
    whole-slide image among chromosome crops must not set the scale for all of them."""
    need = _need(heights, widths, size)
    return need > factor * float(np.median(need)) if need.size else np.zeros(0, dtype=bool)


def auto_scale(
    heights: np.ndarray, widths: np.ndarray, size: Size, q: float = 99.0, *, exclude_outliers: bool = True
) -> float:
    """The common factor that fits the ``q``-th percentile crop into a ``size`` canvas.

    ``1 / percentile(max(h / H, w / W), q)`` (for a square canvas: ``size / percentile(max(h, w))``),
    never above the factor that makes a 1-px crop fill the canvas. :func:`size_outliers` are left out
    of the percentile: with few crops it is their maximum, and one huge image would shrink every
    other crop to a few pixels.
    """
    ch, cw = as_hw(size)
    need = _need(heights, widths, size)
    if exclude_outliers:
        need = need[~size_outliers(heights, widths, size)]
    ref = float(np.percentile(need, q)) if need.size else 1.0
    return 1.0 / max(ref, 1.0 / max(ch, cw))


def _cast_back(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(x), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a ``(C, H, W)`` array to ``(C, height, width)`` (antialiased bilinear, dtype kept)."""
    c, h, w = arr.shape
    if (h, w) == (height, width):
        return arr
    out = np.empty((c, height, width), dtype=arr.dtype)
    for i in range(c):
        if arr.dtype == np.uint8:
            out[i] = np.asarray(Image.fromarray(arr[i]).resize((width, height), _RESAMPLE))
        else:
            img = Image.fromarray(arr[i].astype(np.float32))
            out[i] = _cast_back(np.asarray(img.resize((width, height), _RESAMPLE)), arr.dtype)
    return out


def fit_to_canvas(arr: np.ndarray, size: Size, scale: float, background: float) -> tuple[np.ndarray, bool]:
    """Scale ``arr`` by ``scale`` and centre it on a ``size`` canvas (``n`` or ``(H, W)``) of ``background``.

    A crop that would still be larger than the canvas is shrunk to fit (keeping its aspect ratio).

    Returns:
        ``(canvas, shrunk)`` where ``shrunk`` tells whether the extra shrinking happened.
    """
    c, h, w = arr.shape
    ch, cw = as_hw(size)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    shrunk = False
    if nh > ch or nw > cw:
        f = min(ch / h, cw / w)
        nh, nw = max(1, min(ch, round(h * f))), max(1, min(cw, round(w * f)))
        shrunk = True
    small = resize(arr, nh, nw)
    canvas = np.empty((c, ch, cw), dtype=arr.dtype)
    canvas[...] = _cast_back(np.asarray(background, dtype=np.float64), arr.dtype)
    top, left = (ch - nh) // 2, (cw - nw) // 2
    canvas[:, top : top + nh, left : left + nw] = small
    return canvas, shrunk


def border_median(arr: np.ndarray) -> float:
    """Median of the outermost pixel ring over all channels (the background estimate)."""
    if arr.shape[1] < 3 or arr.shape[2] < 3:
        return float(np.median(arr))
    ring = np.concatenate(
        [arr[:, 0, :].ravel(), arr[:, -1, :].ravel(), arr[:, 1:-1, 0].ravel(), arr[:, 1:-1, -1].ravel()]
    )
    return float(np.median(ring))


def apply_geometry(
    arr: np.ndarray, mode: str, size: Size, scale: float, background: float
) -> tuple[np.ndarray, bool]:
    """Apply a geometry ``mode`` (``canvas``, ``resize`` or ``none``) to one ``(C, H, W)`` array."""
    if mode == "canvas":
        return fit_to_canvas(arr, size, scale, background)
    if mode == "resize":
        return resize(arr, *as_hw(size)), False
    return arr, False
