"""Bring crops of any size onto one square grid, keeping relative size where asked.

Hand-written because torchvision's transforms work per image on tensors and know no "one common
scale factor + centred canvas" step; resampling itself is Pillow's (antialiased bilinear).

Example:
    >>> import numpy as np
    >>> crop = np.zeros((1, 40, 20), np.uint8)
    >>> fit_to_canvas(crop, size=64, scale=1.0, background=255)[0].shape
    (1, 64, 64)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_RESAMPLE = Image.Resampling.BILINEAR


def auto_scale(heights: np.ndarray, widths: np.ndarray, size: int, q: float = 99.0) -> float:
    """The common factor that fits the ``q``-th percentile of ``max(h, w)`` into ``size``."""
    longest = np.maximum(np.asarray(heights), np.asarray(widths)).astype(np.float64)
    ref = float(np.percentile(longest, q)) if longest.size else float(size)
    return float(size) / max(ref, 1.0)


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


def fit_to_canvas(arr: np.ndarray, size: int, scale: float, background: float) -> tuple[np.ndarray, bool]:
    """Scale ``arr`` by ``scale`` and centre it on a ``size × size`` canvas filled with ``background``.

    A crop that would still be larger than the canvas is shrunk to fit (keeping its aspect ratio).

    Returns:
        ``(canvas, shrunk)`` where ``shrunk`` tells whether the extra shrinking happened.
    """
    c, h, w = arr.shape
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    shrunk = False
    if nh > size or nw > size:
        f = size / max(h, w)
        nh, nw = max(1, min(size, round(h * f))), max(1, min(size, round(w * f)))
        shrunk = True
    small = resize(arr, nh, nw)
    canvas = np.empty((c, size, size), dtype=arr.dtype)
    canvas[...] = _cast_back(np.asarray(background, dtype=np.float64), arr.dtype)
    top, left = (size - nh) // 2, (size - nw) // 2
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
    arr: np.ndarray, mode: str, size: int, scale: float, background: float
) -> tuple[np.ndarray, bool]:
    """Apply a geometry ``mode`` (``canvas``, ``resize`` or ``none``) to one ``(C, H, W)`` array."""
    if mode == "canvas":
        return fit_to_canvas(arr, size, scale, background)
    if mode == "resize":
        return resize(arr, size, size), False
    return arr, False
