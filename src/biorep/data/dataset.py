"""The in-memory data set every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from biorep.data.geometry import Size, as_hw


@dataclass
class ImageDataset:
    """Images with geometry applied (raw intensities) plus per-sample metadata.

    Attributes:
        name: data set name (built-in name or the path it was read from).
        images: ``(N, C, H, W)`` uint8/uint16/float32; usually a read-only memory map of the cache.
        meta: N rows (RangeIndex): ``path`` (relative to the data set folder), ``orig_height``,
            ``orig_width`` and every metadata column (case, karyogram, plate, well, ...).
        label_column: the ``meta`` column holding class names, or ``None`` when unlabeled.
        classes: ordered class names; ``targets`` index into it.
        targets: int64 class index per sample, −1 where unlabeled.
        group_column: ``meta`` column that splits must keep together (e.g. ``case``, ``plate``).
        background: canvas fill value in raw intensity units.
        channels: C.
        size: ``H`` for square images (H = W), else ``(H, W)``; :attr:`hw` is always ``(H, W)``.
        info: how the images were made (dtype, common scale factor, crops shrunk to fit, cache key).

    Example:
        >>> ds = load_dataset(DataConfig(dataset="synthetic-karyotype"))   # doctest: +SKIP
        >>> train = ds.subset(np.flatnonzero(ds.targets < 12))              # doctest: +SKIP
    """

    name: str
    images: np.ndarray
    meta: pd.DataFrame
    label_column: str | None
    classes: list[str]
    targets: np.ndarray
    group_column: str | None
    background: float
    channels: int
    size: Size
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if len(self.meta) != n or len(self.targets) != n:
            raise ValueError(f"images ({n}), meta ({len(self.meta)}) and targets ({len(self.targets)}) differ")

    @property
    def hw(self) -> tuple[int, int]:
        """``(height, width)`` of every image."""
        return as_hw(self.size)

    @property
    def groups(self) -> np.ndarray | None:
        """Group value per sample as strings, or ``None`` without a group column."""
        if self.group_column is None:
            return None
        return self.meta[self.group_column].astype(str).to_numpy()

    @property
    def class_counts(self) -> dict[str, int]:
        """Samples per class (in class order); unlabeled samples are not counted."""
        counts = np.bincount(self.targets[self.targets >= 0], minlength=len(self.classes))
        return {c: int(k) for c, k in zip(self.classes, counts)}

    def subset(self, indices: Any) -> ImageDataset:
        """A new data set holding the given rows (images are copied into memory).

        Args:
            indices: integer indices or a boolean mask of length N.
        """
        idx = np.asarray(indices)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        return replace(
            self,
            images=np.asarray(self.images[idx]),
            meta=self.meta.iloc[idx].reset_index(drop=True),
            targets=self.targets[idx].copy(),
        )
