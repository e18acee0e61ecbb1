"""2-D maps of stored embeddings: read ``embeddings/<split>.parquet``, subsample, UMAP (or PCA).

Feature columns are named ``f0000``, ``f0001``, ...; every other column is metadata. The points are
coloured by the run's label column (``data.label`` in ``config.yaml``) or, when that is absent, by
the first categorical metadata column that looks like a grouping (2..60 distinct values, not ``path``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from biorep.errors import RunDirError

FEATURE_COLUMN = re.compile(r"^f\d+$")
#: Below this many points UMAP is not meaningful and PCA is used instead.
MIN_UMAP_POINTS = 15
PROJECTIONS = ("auto", "umap", "pca")
_MAX_CATEGORIES = 60


@dataclass
class Projection:
    """A 2-D map of one embedding file.

    Example:
        >>> proj = project_file(Path("runs/a/embeddings/test.parquet"), label="label")  # doctest: +SKIP
        >>> proj.coords.shape, proj.method  # doctest: +SKIP
        ((5000, 2), 'UMAP')
    """

    coords: np.ndarray
    labels: np.ndarray | None
    label_name: str | None
    method: str
    n_total: int


def _is_categorical(dtype: pa.DataType) -> bool:
    return (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_dictionary(dtype)
        or pa.types.is_boolean(dtype)
    )


def pick_label_column(table: pa.Table, preferred: str | None) -> str | None:
    """``preferred`` when the table has it, else the first categorical grouping column, else None."""
    names = [n for n in table.column_names if not FEATURE_COLUMN.match(n)]
    if preferred and preferred in names:
        return preferred
    for name in names:
        if name == "path" or not _is_categorical(table.schema.field(name).type):
            continue
        n_unique = len(table.column(name).unique())
        if 1 < n_unique <= _MAX_CATEGORIES:
            return name
    return None


def project(features: np.ndarray, method: str = "auto", *, random_state: int = 0) -> tuple[np.ndarray, str]:
    """Project ``features`` (n × d) to 2-D; returns the coordinates and ``"UMAP"`` or ``"PCA"``.

    ``auto`` uses UMAP (umap-learn, fixed ``random_state``) from :data:`MIN_UMAP_POINTS` points on and PCA
    below; ``umap`` also falls back to PCA below that count, where UMAP cannot build its neighbour graph.

    Raises:
        ValueError: for an unknown method or no points.
    """
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    if n == 0:
        raise ValueError("no points to project")
    if method != "pca" and n >= MIN_UMAP_POINTS:
        import umap  # slow import (numba); only when needed

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reducer = umap.UMAP(
                n_components=2, n_neighbors=min(15, n - 1), random_state=random_state, n_jobs=1
            )
            return np.asarray(reducer.fit_transform(x), dtype=float), "UMAP"
    from sklearn.decomposition import PCA

    k = min(2, n, x.shape[1])
    coords = np.zeros((n, 2))
    if n > 1 and k > 0:
        coords[:, :k] = PCA(n_components=k, random_state=random_state).fit_transform(x)
    return coords, "PCA"


def project_file(
    path: Path,
    *,
    label: str | None = None,
    method: str = "auto",
    max_points: int = 5000,
    random_state: int = 0,
) -> Projection:
    """Read one embeddings Parquet file, subsample to ``max_points`` rows and project it to 2-D.

    Rows with non-finite features are dropped.

    Raises:
        RunDirError: when the file cannot be read or has no ``f0000``-style feature column or no rows.
    """
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise RunDirError(f"{path}: cannot read Parquet ({exc})") from exc
    features = [n for n in table.column_names if FEATURE_COLUMN.match(n)]
    if not features:
        raise RunDirError(f"{path}: no feature columns (expected f0000, f0001, ...)")
    n_total = table.num_rows
    if n_total == 0:
        raise RunDirError(f"{path}: no rows")
    label_name = pick_label_column(table, label)
    if n_total > max_points:
        rng = np.random.default_rng(random_state)
        table = table.take(np.sort(rng.choice(n_total, size=max_points, replace=False)))
    x = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in features]).astype(np.float32)
    labels = None if label_name is None else np.asarray(table.column(label_name).to_pylist(), dtype=object)
    keep = np.isfinite(x).all(axis=1)
    if not keep.any():
        raise RunDirError(f"{path}: every row has non-finite features")
    x = x[keep]
    if labels is not None:
        labels = labels[keep]
        present = [v for v in labels if v is not None]
        if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            if any(isinstance(v, float) for v in present) or len(present) < len(labels):
                labels = np.asarray([np.nan if v is None else v for v in labels], dtype=float)
            else:
                labels = labels.astype(np.int64)
    coords, used = project(x, method, random_state=random_state)
    return Projection(coords=coords, labels=labels, label_name=label_name, method=used, n_total=n_total)
