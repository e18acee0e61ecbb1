"""Crop images for the report and the review page: read from the image files, shown as PNGs.

The report shows what a person would look at: the original crop files (not the network's canvas),
found through the run's data source (:func:`biorep.data.resolve_source` lists every file of the data
set in the order of its ``sample_index``; nothing is decoded but the crops shown).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from biorep.errors import BiorepError

__all__ = ["crop_png", "data_uri", "display_image", "load_crop", "source_files"]

#: Longest side of a crop thumbnail in the report (pixels); larger crops are shrunk.
THUMB_MAX = 160


def source_files(data: Mapping[str, Any] | None) -> tuple[list[str] | None, str | None]:
    """Absolute image file per sample of a run's data section (``config.yaml`` ``data``).

    Returns ``(files, None)``, or ``(None, why)`` when the data set cannot be found here.
    """
    if not isinstance(data, Mapping) or "dataset" not in data:
        return None, "config.yaml has no data.dataset"
    from biorep.data import DataConfig, resolve_source

    try:
        cfg = DataConfig.model_validate(dict(data))
        return list(resolve_source(cfg).files), None
    except BiorepError as exc:
        return None, f"the run's images cannot be found ({exc})"
    except ValueError as exc:  # pydantic ValidationError
        return None, f"config.yaml data section is not valid here ({str(exc).splitlines()[0]})"


def display_image(arr: np.ndarray) -> np.ndarray:
    """A ``(C, H, W)`` / ``(H, W)`` image of any dtype as uint8 ``(H, W)`` grey or ``(H, W, 3)`` RGB.

    uint8 is shown as is; other dtypes are stretched between their 0.5th and 99.5th percentiles.
    One channel is grey, two or more are shown as RGB (a missing third channel is black).
    """
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"expected a 2-D or (C, H, W) image, got shape {a.shape}")
    if a.dtype != np.uint8:
        f = a.astype(np.float64)
        low, high = np.nanpercentile(f, [0.5, 99.5])
        if high <= low:
            high = low + 1.0
        a = (np.clip((f - low) / (high - low), 0, 1) * 255).round().astype(np.uint8)
    if a.shape[0] == 1:
        return a[0]
    rgb = np.zeros((3, *a.shape[1:]), np.uint8)
    rgb[: min(3, a.shape[0])] = a[:3]
    return np.moveaxis(rgb, 0, -1)


def load_crop(file: str | None) -> tuple[np.ndarray | None, str | None]:
    """Decode one crop file for display: ``(uint8 image, None)`` or ``(None, why not)``."""
    if not file or (isinstance(file, float) and np.isnan(file)):
        return None, "no image file recorded"
    from biorep.data import read_image

    try:
        return display_image(read_image(file)), None
    except BiorepError as exc:
        return None, str(exc)
    except Exception as exc:  # any decoder failure is a per-crop problem in a report
        return None, f"{file}: cannot read image ({type(exc).__name__})"


def crop_png(img: np.ndarray, max_side: int = THUMB_MAX) -> bytes:
    """PNG bytes of a uint8 display image, shrunk (never enlarged) to ``max_side``."""
    from PIL import Image

    pil = Image.fromarray(img)
    if max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an embedded image."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
