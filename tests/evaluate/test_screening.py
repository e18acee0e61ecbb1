"""Drug similarity (D, D⁻¹, d; median ± MAD) and the treated-vs-control MLP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from biorep.errors import ConfigError, DataError
from biorep.evaluate import EvalContext, drug_similarity, run_evaluation, treated_vs_control


def _screen(seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """3 cell lines × (methotrexate, pemetrexed near each other; other drug; DMSO far away)."""
    rng = np.random.default_rng(seed)
    rows, feats = [], []
    centres = {"mtx": [5, 0, 0, 0], "pem": [5.5, 0, 0, 0], "other": [0, 5, 0, 0], "DMSO": [0, 0, 0, 0]}
    for line in ["L1", "L2", "L3"]:
        for drug, c in centres.items():
            for plate in ["p1", "p2"]:
                for _ in range(12):
                    rows.append({"cell_line": line, "compound": drug, "plate": plate})
                    feats.append(np.asarray(c, float) + rng.normal(scale=0.7, size=4))
    return np.asarray(feats, dtype=np.float32), pd.DataFrame(rows)


def test_similarity_matches_manual_computation() -> None:
    z, meta = _screen()
    summary, table = drug_similarity(z, meta, {"compound": "mtx"}, {"compound": "pem"}, {"compound": "DMSO"},
                                     group_by="cell_line")
    assert table["group"].tolist() == ["L1", "L2", "L3"]
    m = (meta["cell_line"] == "L2").to_numpy()
    pick = lambda d: z[m & (meta["compound"] == d).to_numpy()]  # noqa: E731
    D = np.median(cdist(pick("mtx"), pick("pem")))
    D_hat = (np.median(cdist(pick("mtx"), pick("DMSO"))) + np.median(cdist(pick("pem"), pick("DMSO")))) / 2
    row = table.set_index("group").loc["L2"]
    assert row["D"] == pytest.approx(D) and row["D_inv"] == pytest.approx(1 / D)
    assert row["d"] == pytest.approx((D_hat - D) / D_hat)
    assert summary["d"]["median"] == pytest.approx(np.median(table["d"]))
    mad = np.median(np.abs(table["d"] - np.median(table["d"])))
    assert summary["d"]["mad"] == pytest.approx(mad)
    assert summary["d"]["median"] > 0.3  # alike drugs are closer to each other than to control
    assert summary["n_groups"] == 3 and summary["skipped"] == []


def test_similarity_skips_incomplete_groups_and_validates_selectors() -> None:
    z, meta = _screen()
    keep = ~((meta["cell_line"] == "L3") & (meta["compound"] == "pem")).to_numpy()
    summary, table = drug_similarity(z[keep], meta[keep], {"compound": "mtx"}, {"compound": "pem"},
                                     {"compound": "DMSO"}, group_by=["cell_line"])
    assert summary["n_groups"] == 2 and summary["skipped"][0]["group"] == "L3"
    assert "b" in summary["skipped"][0]["reason"]
    with pytest.raises(DataError, match="matches no sample"):
        drug_similarity(z, meta, {"compound": "nope"}, {"compound": "pem"}, {"compound": "DMSO"})
    with pytest.raises(DataError, match="no column"):
        drug_similarity(z, meta, {"drug": "mtx"}, {"compound": "pem"}, {"compound": "DMSO"})
    with pytest.raises(ConfigError, match="disjoint"):
        drug_similarity(z, meta, {"compound": "mtx"}, {"compound": ["mtx", "pem"]}, {"compound": "DMSO"})


def test_treated_vs_control_leave_one_plate_out() -> None:
    z, meta = _screen(1)
    grid = {"learning_rate_init": [1e-2], "alpha": [1e-4, 1e-2], "hidden_layer_sizes": [16]}
    summary, table = treated_vs_control(z, meta, control={"compound": "DMSO"},
                                        treated={"compound": ["mtx", "pem"]}, holdout_column="plate",
                                        report_by="cell_line", grid=grid, max_iter=60)
    assert [f["held_out"] for f in summary["folds"]] == ["p1", "p2"]
    assert all(len(f["trials"]) == 2 for f in summary["folds"])
    assert summary["overall"]["n"] == int(meta["compound"].isin(["mtx", "pem", "DMSO"]).sum())
    assert summary["overall"]["roc_auc"] > 0.95 and summary["overall"]["accuracy"] > 0.9
    assert table["group"].tolist() == ["L1", "L2", "L3"] and (table["n"] == 72).all()


def test_treated_vs_control_registry_given_split() -> None:
    z, meta = _screen(2)
    test = np.flatnonzero((meta["plate"] == "p2").to_numpy())
    ctx = EvalContext(z, meta, group_columns=["cell_line"], test_idx=test)
    res = run_evaluation("treated_vs_control", ctx, control={"compound": "DMSO"},
                         grid={"hidden_layer_sizes": [[8]], "learning_rate_init": [0.01]}, max_iter=50)
    assert res.summary["overall"]["n"] == len(test)  # all non-control compounds count as treated
    assert res.summary["folds"][0]["n_test"] == len(test)
    assert len(res.table) == 3 and res.summary["overall"]["roc_auc"] > 0.9
    with pytest.raises(ConfigError):
        treated_vs_control(z, meta, control={"compound": "DMSO"})  # neither split nor holdout column
