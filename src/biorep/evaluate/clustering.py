"""Clustering within groups (Study B task 3): UMAP, then HDBSCAN over a sweep of ``min_cluster_size``.

Per group (e.g. cell line): UMAP (umap-learn, fixed ``random_state``) to ``n_components`` dimensions,
then ``sklearn.cluster.HDBSCAN`` for each ``min_cluster_size``; internal metrics (silhouette,
Calinski–Harabasz, Davies–Bouldin) on the non-noise points when there are ≥ 2 clusters (else None),
noise fraction, cluster count, and ARI / NMI against a label column when given (noise counted as
its own cluster). The internal metrics are computed in the space that was clustered (the UMAP
coordinates) by default, or on the original embeddings (``metric_space="embedding"``).

The study sweeps the minimum cluster size from 10 to 150; its step is not published, so the default
is every 10 (``DEFAULT_MIN_CLUSTER_SIZES``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.cluster import HDBSCAN

from biorep.errors import ConfigError, DataError
from biorep.evaluate.context import EVALUATIONS, EvalContext, EvalResult, as_list, require_columns

DEFAULT_MIN_CLUSTER_SIZES: tuple[int, ...] = tuple(range(10, 151, 10))
METRIC_COLUMNS = ("silhouette", "calinski_harabasz", "davies_bouldin", "noise_fraction", "n_clusters")


def umap_reduce(
    x: np.ndarray, *, n_components: int = 2, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0
) -> np.ndarray:
    """UMAP of ``x`` (``n_neighbors`` capped at ``len(x) − 1``); deterministic for a given ``seed``."""
    import umap  # imported lazily: numba compiles on first use

    if not 2 <= n_components <= 10:
        raise ConfigError(f"clustering: n_components must be within 2..10, got {n_components}")
    if len(x) < 4:
        raise DataError(f"clustering: UMAP needs at least 4 points, got {len(x)}")
    reducer = umap.UMAP(
        n_components=n_components,
        n_neighbors=int(min(n_neighbors, len(x) - 1)),
        min_dist=min_dist,
        random_state=seed,
        n_jobs=1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(reducer.fit_transform(np.asarray(x, dtype=np.float32)), dtype=np.float64)


def cluster_metrics(
    space: np.ndarray, cluster_labels: np.ndarray, truth: np.ndarray | None = None
) -> dict[str, Any]:
    """Metrics of one clustering (``-1`` = noise); internal metrics on non-noise points."""
    labels = np.asarray(cluster_labels)
    core = labels >= 0
    n_clusters = int(len(np.unique(labels[core])))
    out: dict[str, Any] = {
        "n_clusters": n_clusters,
        "noise_fraction": float(1.0 - core.mean()) if len(labels) else None,
        "silhouette": None,
        "calinski_harabasz": None,
        "davies_bouldin": None,
    }
    if n_clusters >= 2 and core.sum() > n_clusters:
        x, lab = space[core], labels[core]
        out["silhouette"] = float(skm.silhouette_score(x, lab))
        out["calinski_harabasz"] = float(skm.calinski_harabasz_score(x, lab))
        out["davies_bouldin"] = float(skm.davies_bouldin_score(x, lab))
    if truth is not None:
        out["ari"] = float(skm.adjusted_rand_score(truth, labels))
        out["nmi"] = float(skm.normalized_mutual_info_score(truth, labels))
    return out


def cluster_groups(
    embeddings: np.ndarray,
    meta: pd.DataFrame,
    *,
    group_by: str | Sequence[str] | None = None,
    label_column: str | None = None,
    n_components: int = 2,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    min_cluster_sizes: Sequence[int] = DEFAULT_MIN_CLUSTER_SIZES,
    max_points: int | None = 5000,
    metric_space: str = "umap",
    seed: int = 0,
    bootstrap: int = 0,
    bootstrap_by: str | Sequence[str] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """UMAP + HDBSCAN sweep within each group.

    Args:
        embeddings: ``(N, D)`` features.
        meta: ``N`` rows of metadata.
        group_by: column(s) to cluster within (None: all samples together).
        label_column: compare clusters to this column (ARI, NMI), e.g. dose or compound.
        n_components: UMAP output dimensions (2..10).
        min_cluster_sizes: HDBSCAN sweep; sizes larger than a group are skipped for it.
        max_points: subsample each group to at most this many points (fixed ``seed``); None = all.
        metric_space: ``"umap"`` (the clustered coordinates) or ``"embedding"``.
        bootstrap: with N > 0, a ``bootstrap`` block: percentile CI of the median over groups of
            the best-size silhouette, from N resamples of the clustered (non-noise) points' silhouette
            values (or of whole ``bootstrap_by`` units); the clustering itself is not redone.

    Returns:
        ``(summary, table)``: one table row per (group, min_cluster_size) with ``n_points`` and the
        metrics; the summary gives, per group, the row with the best silhouette, and the medians over
        groups of each metric at every swept size.
    """
    if metric_space not in ("umap", "embedding"):
        raise ConfigError(f"clustering: metric_space must be 'umap' or 'embedding', got {metric_space!r}")
    sizes = sorted({int(s) for s in min_cluster_sizes})
    if not sizes or sizes[0] < 2:
        raise ConfigError(f"clustering: min_cluster_sizes must be integers >= 2, got {list(min_cluster_sizes)}")
    if label_column is not None:
        require_columns(meta, [label_column])
    z = np.asarray(embeddings, dtype=np.float32)
    cols = as_list(group_by)
    if cols:
        require_columns(meta, cols)
        groups = list(meta.groupby(cols, sort=True, dropna=False).indices.items())
    else:
        groups = [("all", np.arange(len(meta)))]
    rng = np.random.default_rng(seed)
    rows, skipped = [], []
    best_fit: dict[str, tuple[float, np.ndarray, np.ndarray, np.ndarray]] = {}  # group → (sil, idx, space, labels)
    for key, idx in groups:
        name = "/".join(map(str, key)) if isinstance(key, tuple) else str(key)
        if max_points is not None and len(idx) > max_points:
            idx = np.sort(rng.choice(idx, max_points, replace=False))
        if len(idx) < max(4, sizes[0]):
            skipped.append({"group": name, "reason": f"only {len(idx)} points"})
            continue
        coords = umap_reduce(z[idx], n_components=n_components, n_neighbors=n_neighbors,
                             min_dist=min_dist, seed=seed)
        space = coords if metric_space == "umap" else z[idx]
        truth = meta[label_column].astype(str).to_numpy()[idx] if label_column is not None else None
        for size in sizes:
            if size > len(idx):
                continue
            labels = HDBSCAN(min_cluster_size=size, copy=True).fit_predict(coords)
            m = cluster_metrics(space, labels, truth)
            rows.append({"group": name, "min_cluster_size": size, "n_points": len(idx), **m})
            if bootstrap and m["silhouette"] is not None and m["silhouette"] > best_fit.get(name, (-np.inf,))[0]:
                best_fit[name] = (m["silhouette"], idx, space, labels)
    table = pd.DataFrame(rows)
    summary: dict[str, Any] = {
        "group_by": cols, "label_column": label_column, "n_components": n_components,
        "min_cluster_sizes": sizes, "metric_space": metric_space, "skipped": skipped,
        "best_per_group": [], "median_over_groups": [],
    }
    if not table.empty:
        ranked = table.assign(_s=table["silhouette"].astype(float).fillna(-np.inf))
        best = ranked.sort_values(["group", "_s"], ascending=[True, False]).groupby("group").head(1)
        summary["best_per_group"] = best.drop(columns="_s").to_dict(orient="records")
        metric_cols = [c for c in (*METRIC_COLUMNS, "ari", "nmi") if c in table.columns]
        numeric = table[metric_cols].astype(float).assign(min_cluster_size=table["min_cluster_size"])
        med = numeric.groupby("min_cluster_size").median().reset_index()
        summary["median_over_groups"] = med.to_dict(orient="records")
    if bootstrap and best_fit:
        summary["bootstrap"] = _silhouette_bootstrap(best_fit, meta, as_list(bootstrap_by), bootstrap, seed)
    return summary, table


def _silhouette_bootstrap(
    best: dict[str, tuple[float, np.ndarray, np.ndarray, np.ndarray]], meta: pd.DataFrame,
    by: list[str], n_boot: int, seed: int,
) -> dict[str, Any]:
    from biorep.evaluate.stats import ci_record, unit_labels

    values, owner, rows = [], [], []
    for gi, (_, idx, space, labels) in enumerate(best.values()):
        core = labels >= 0
        values.append(skm.silhouette_samples(space[core], labels[core]))
        owner.append(np.full(int(core.sum()), gi))
        rows.append(idx[core])
    v, o, r = np.concatenate(values), np.concatenate(owner), np.concatenate(rows)
    n_groups = len(best)

    def stat(sel: np.ndarray) -> float:
        sums = np.bincount(o[sel], weights=v[sel], minlength=n_groups)
        counts = np.bincount(o[sel], minlength=n_groups)
        present = counts > 0
        return float(np.median(sums[present] / counts[present])) if present.any() else float("nan")

    groups = unit_labels(meta.iloc[r].reset_index(drop=True), by)
    if groups is not None:
        groups = np.char.add(o.astype(str), np.char.add("|", groups.astype(str)))
    return ci_record(stat, len(v), metric="silhouette", groups=groups, by=by, n_boot=n_boot, seed=seed)


@EVALUATIONS.register("clustering")
def run_clustering(
    ctx: EvalContext,
    *,
    group_by: str | list[str] | None = None,
    label_column: str | None = None,
    n_components: int = 2,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    min_cluster_sizes: Sequence[int] = DEFAULT_MIN_CLUSTER_SIZES,
    max_points: int | None = 5000,
    metric_space: str = "umap",
    bootstrap: int = 0,
    bootstrap_by: list[str] | None = None,
    seed: int = 0,
) -> EvalResult:
    """Registry adapter of :func:`cluster_groups` on ``ctx``'s test rows (``group_by`` defaults to
    ``ctx.group_columns``)."""
    _, test = ctx.split()
    group_by = ctx.group_columns if group_by is None else group_by
    summary, table = cluster_groups(
        ctx.embeddings[test], ctx.meta.iloc[test].reset_index(drop=True), group_by=group_by,
        label_column=label_column, n_components=n_components, n_neighbors=n_neighbors, min_dist=min_dist,
        min_cluster_sizes=min_cluster_sizes, max_points=max_points, metric_space=metric_space, seed=seed,
        bootstrap=bootstrap, bootstrap_by=bootstrap_by)
    return EvalResult("clustering", summary, table)
