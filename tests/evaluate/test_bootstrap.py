"""Bootstrap CIs of the screening tasks: the value is the task's own number; resamples are paired."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biorep.evaluate import cluster_groups, drug_similarity, treated_vs_control
from biorep.evaluate.stats import bootstrap_replicates, ci_record, median_mad


def _plate(seed: int = 0, shift: float = 1.0) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows, feats = [], []
    for plate in ("p1", "p2"):
        for cpd, dose, c in (("DMSO", 0, 0.0), ("chx", 15, shift), ("chx", 50, shift * 1.2)):
            for site in range(4):
                for _ in range(15):
                    feats.append(c + rng.normal(scale=0.8, size=4))
                    rows.append({"plate": plate, "well": f"w{dose}", "site": site, "compound": cpd, "dose": dose})
    return np.asarray(feats, dtype=np.float32), pd.DataFrame(rows)


def test_same_items_and_seed_give_the_same_resamples() -> None:
    x = np.random.default_rng(0).normal(size=50)
    y = x + 0.1
    _, rx = bootstrap_replicates(lambda i: x[i].mean(), 50, n_boot=100, seed=3)
    _, ry = bootstrap_replicates(lambda i: y[i].mean(), 50, n_boot=100, seed=3)
    np.testing.assert_allclose(ry - rx, 0.1)  # paired: the difference does not vary
    rec = ci_record(lambda i: x[i].mean(), 50, metric="mean", groups=np.arange(50) // 5, n_boot=100)
    assert rec["value"] == pytest.approx(x.mean()) and rec["n_units"] == 10 and len(rec["replicates"]) == 100
    assert rec["ci_low"] < rec["value"] < rec["ci_high"]
    assert median_mad([1.0, 2.0, 4.0]) == (2.0, 1.0)


def test_similarity_bootstrap_value_is_the_median_d() -> None:
    z, meta = _plate()
    summary, _ = drug_similarity(z, meta, {"dose": 50}, {"dose": 15}, {"compound": "DMSO"}, group_by="plate",
                                 bootstrap=100, bootstrap_by=["well", "site"])
    b = summary["bootstrap"]
    assert b["metric"] == "d" and b["value"] == pytest.approx(summary["d"]["median"])
    assert b["n_units"] == 2 * 12 and b["ci_low"] <= b["value"] <= b["ci_high"]


def test_treated_vs_control_bootstrap_value_is_the_auc() -> None:
    z, meta = _plate(1, shift=2.0)
    summary, _ = treated_vs_control(z, meta, {"compound": "DMSO"}, holdout_column="plate",
                                    grid={"hidden_layer_sizes": [8]}, max_iter=30, bootstrap=100,
                                    bootstrap_by=["plate", "well", "site"])
    b = summary["bootstrap"]
    assert b["value"] == pytest.approx(summary["overall"]["roc_auc"])
    assert b["ci_low"] <= b["value"] <= b["ci_high"] and b["by"] == ["plate", "well", "site"]


@pytest.mark.slow
def test_clustering_bootstrap_value_is_the_best_silhouette() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 10)) * 10
    y = np.repeat(np.arange(3), 40)
    z = (centres[y] + rng.normal(size=(120, 10))).astype(np.float32)
    meta = pd.DataFrame({"line": "A", "dose": y.astype(str)})
    summary, _ = cluster_groups(z, meta, group_by="line", label_column="dose", min_cluster_sizes=[10, 30],
                                n_neighbors=10, bootstrap=50)
    b = summary["bootstrap"]
    assert b["value"] == pytest.approx(summary["best_per_group"][0]["silhouette"])
