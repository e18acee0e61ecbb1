"""UMAP + HDBSCAN sweep within groups; metrics agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from biorep.errors import ConfigError
from biorep.evaluate import EvalContext, cluster_metrics, run_evaluation


def test_cluster_metrics_match_sklearn_on_non_noise_points() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    labels = np.array([0] * 10 + [1] * 10 + [2] * 5 + [-1] * 5)
    truth = np.array(["a"] * 10 + ["b"] * 20)
    m = cluster_metrics(x, labels, truth)
    core = labels >= 0
    assert m["n_clusters"] == 3 and m["noise_fraction"] == pytest.approx(5 / 30)
    assert m["silhouette"] == pytest.approx(skm.silhouette_score(x[core], labels[core]))
    assert m["calinski_harabasz"] == pytest.approx(skm.calinski_harabasz_score(x[core], labels[core]))
    assert m["davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(x[core], labels[core]))
    assert m["ari"] == pytest.approx(skm.adjusted_rand_score(truth, labels))
    assert m["nmi"] == pytest.approx(skm.normalized_mutual_info_score(truth, labels))
    one = cluster_metrics(x, np.where(core, 0, -1))
    assert one["n_clusters"] == 1 and one["silhouette"] is None and one["davies_bouldin"] is None


@pytest.mark.slow
def test_umap_hdbscan_sweep_within_groups() -> None:
    """One UMAP call (numba compiles on first use: the slow part) on three separated blobs."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 20)) * 10
    y = np.repeat(np.arange(3), 40)
    z = (centres[y] + rng.normal(size=(120, 20))).astype(np.float32)
    meta = pd.DataFrame({"line": ["A"] * 120 + ["B"] * 3, "dose": list(y.astype(str)) + ["0"] * 3})
    z = np.vstack([z, rng.normal(size=(3, 20)).astype(np.float32)])  # group B: too small, skipped
    ctx = EvalContext(z, meta, group_columns=["line"])
    res = run_evaluation("clustering", ctx, label_column="dose", min_cluster_sizes=[10, 30, 200],
                         n_neighbors=10)
    t = res.table
    assert t["group"].unique().tolist() == ["A"] and t["min_cluster_size"].tolist() == [10, 30]
    assert (t["n_clusters"] == 3).all() and (t["ari"] > 0.95).all()
    assert (t["silhouette"] > 0.5).all() and (t["noise_fraction"] < 0.1).all()
    assert res.summary["skipped"][0]["group"] == "B"
    assert res.summary["best_per_group"][0]["group"] == "A"
    assert [r["min_cluster_size"] for r in res.summary["median_over_groups"]] == [10, 30]
    with pytest.raises(ConfigError):
        run_evaluation("clustering", ctx, n_components=12)
