"""A JSON-able description of a loaded data set (what ``biorep datasets show`` prints).

Example:
    >>> describe(ds)["n_samples"]     # doctest: +SKIP
    28135
"""

from __future__ import annotations

from typing import Any

import numpy as np

from biorep.data.dataset import ImageDataset


def describe(ds: ImageDataset, *, max_groups: int = 20) -> dict[str, Any]:
    """Counts, classes, groups, channels and original size range of ``ds``.

    Keys: ``name, n_samples, label_column, n_classes, classes, class_counts, n_unlabeled,
    group_column, n_groups, group_counts`` (largest ``max_groups``)``, channels, dtype, size,
    background, orig_height, orig_width`` (``{"min", "median", "max"}`` of the original files),
    ``scale, n_shrunk, metadata_columns``.
    """
    meta = ds.meta
    out: dict[str, Any] = {
        "name": ds.name,
        "n_samples": len(ds),
        "label_column": ds.label_column,
        "n_classes": len(ds.classes),
        "classes": list(ds.classes),
        "class_counts": ds.class_counts,
        "n_unlabeled": int((ds.targets < 0).sum()),
        "group_column": ds.group_column,
        "n_groups": None,
        "group_counts": {},
        "channels": ds.channels,
        "dtype": str(ds.images.dtype),
        "size": ds.size,
        "background": ds.background,
    }
    if ds.group_column is not None:
        counts = meta[ds.group_column].astype(str).value_counts()
        out["n_groups"] = int(counts.size)
        out["group_counts"] = {str(k): int(v) for k, v in counts.head(max_groups).items()}
    for col in ("orig_height", "orig_width"):
        if col in meta.columns and len(meta):
            v = meta[col].to_numpy()
            out[col] = {"min": int(v.min()), "median": float(np.median(v)), "max": int(v.max())}
    out["scale"] = ds.info.get("scale")
    out["n_shrunk"] = ds.info.get("n_shrunk")
    out["metadata_columns"] = [c for c in meta.columns if c not in ("path", "orig_height", "orig_width")]
    return out
