"""Profiles: aggregation, control normalisation, copairs mAP (replicate / label), NSC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biorep.errors import DataError
from biorep.evaluate import (
    EvalContext,
    aggregate_profiles,
    label_map,
    normalize_to_controls,
    nsc_accuracy,
    replicate_map,
    run_evaluation,
)

MOA = {"c1": "m1", "c2": "m1", "c3": "m2", "c4": "m2", "DMSO": "ctrl"}


def _cells(seed: int = 0, n_cells: int = 8) -> tuple[np.ndarray, pd.DataFrame]:
    """3 plates × (4 compounds + DMSO), one well each; compounds of one MoA share a direction."""
    rng = np.random.default_rng(seed)
    d = 16
    moa_dir = {m: rng.normal(size=d) * 3 for m in ("m1", "m2")}
    rows, feats = [], []
    for p, plate in enumerate(["P1", "P2", "P3"]):
        plate_shift = rng.normal(size=d) * 2.0  # batch effect removed by normalisation
        for w, cpd in enumerate(MOA):
            centre = np.zeros(d) if cpd == "DMSO" else moa_dir[MOA[cpd]] + rng.normal(size=d)
            for _ in range(n_cells):
                feats.append(centre + plate_shift + rng.normal(size=d) * 0.5)
                rows.append({"plate": plate, "well": f"{plate}-w{w}", "compound": cpd, "moa": MOA[cpd],
                             "dose": 0 if cpd == "DMSO" else 5})
    return np.asarray(feats, dtype=np.float32), pd.DataFrame(rows)


def test_aggregate_mean_and_median() -> None:
    z, meta = _cells()
    prof, pm = aggregate_profiles(z, meta, ["plate", "well"], keep=["compound"])
    assert prof.shape == (15, 16) and (pm["n_samples"] == 8).all()
    row = pm.index[(pm["well"] == "P2-w3")][0]
    assert pm.loc[row, "compound"] == "c4"
    assert np.allclose(prof[row], z[(meta["well"] == "P2-w3").to_numpy()].mean(0), atol=1e-5)
    med, _ = aggregate_profiles(z, meta, "well", how="median")
    assert np.allclose(med[0], np.median(z[(meta["well"] == "P1-w0").to_numpy()], axis=0), atol=1e-5)


def test_normalize_to_controls_per_plate() -> None:
    z, meta = _cells()
    for method in ("standardize", "robust"):
        zn = normalize_to_controls(z, meta, {"compound": "DMSO"}, by="plate", method=method)
        ctrl = zn[(meta["compound"] == "DMSO").to_numpy() & (meta["plate"] == "P3").to_numpy()]
        centre = ctrl.mean(0) if method == "standardize" else np.median(ctrl, 0)
        assert np.allclose(centre, 0, atol=1e-4)
        if method == "standardize":
            assert np.allclose(ctrl.std(0), 1, atol=1e-3)
    no_ctrl = meta["plate"].where(meta["compound"] != "DMSO", "P1")
    with pytest.raises(DataError, match="no control"):
        normalize_to_controls(z, meta.assign(plate=no_ctrl), {"compound": "DMSO"}, by="plate")


def test_replicate_map_against_controls() -> None:
    z, meta = _cells()
    zn = normalize_to_controls(z, meta, {"compound": "DMSO"}, by="plate")
    prof, pm = aggregate_profiles(zn, meta, ["plate", "compound"])
    summary, maps, ap = replicate_map(prof, pm, "compound", control={"compound": "DMSO"},
                                      pos_diffby=["plate"], null_size=200, seed=0)
    assert sorted(maps["compound"]) == ["c1", "c2", "c3", "c4"]  # controls are never queries
    assert summary["mean_map"] > 0.9 and summary["n_groups"] == 4 and summary["skipped_groups"] == []
    assert 0 <= summary["fraction_retrieved"] <= 1
    # each compound query: 2 replicates (other plates) + 3 DMSO negatives
    q = ap[ap["compound"] != "DMSO"]
    assert (q["n_pos_pairs"] == 2).all() and (q["n_total_pairs"] == 5).all()
    # without removing the plate effect, retrieval is worse; random embeddings worse still
    raw, _ = aggregate_profiles(z, meta, ["plate", "compound"])
    s_raw, _, _ = replicate_map(raw, pm, "compound", control={"compound": "DMSO"}, pos_diffby=["plate"],
                                null_size=200)
    assert s_raw["mean_map"] < summary["mean_map"]
    rnd, _ = aggregate_profiles(np.random.default_rng(1).normal(size=z.shape), meta, ["plate", "compound"])
    s_rnd, _, _ = replicate_map(rnd, pm, "compound", control={"compound": "DMSO"}, null_size=200)
    assert s_rnd["mean_map"] < summary["mean_map"]


def test_replicate_map_skips_single_member_groups() -> None:
    z, meta = _cells()
    prof, pm = aggregate_profiles(z, meta, ["plate", "compound"])
    keep = ~((pm["compound"] == "c4") & (pm["plate"] != "P1")).to_numpy()  # c4 left on one plate
    summary, maps, _ = replicate_map(prof[keep], pm[keep], "compound", null_size=100)
    assert "c4" not in set(maps["compound"]) and summary["skipped_groups"] == ["c4"]
    assert "skipped" in summary["note"]
    single = pm.groupby("compound").head(1)
    with pytest.raises(DataError, match="single profile"):
        replicate_map(prof[single.index], single, "compound", null_size=100)


def test_label_map_and_nsc() -> None:
    z, meta = _cells()
    zn = normalize_to_controls(z, meta, {"compound": "DMSO"}, by="plate")
    prof, pm = aggregate_profiles(zn, meta, ["compound", "plate"], keep=["moa"])
    summary, maps, _ = label_map(prof, pm, "moa", pos_diffby=["compound"], exclude={"compound": "DMSO"},
                                 null_size=100)
    assert sorted(maps["moa"]) == ["m1", "m2"] and summary["mean_map"] > 0.9
    nsc, table = nsc_accuracy(prof, pm, "moa", "compound", batch_column="plate", exclude={"compound": "DMSO"})
    assert nsc["nsc"] == 1.0 and nsc["nscb"] == 1.0 and nsc["drop"] == 0.0 and nsc["nsc_n"] == 12
    assert len(table) == 12


def test_profile_registry_adapters() -> None:
    z, meta = _cells()
    ctx = EvalContext(z, meta, label_column="moa")
    rep = run_evaluation("replicate_map", ctx, treatment=["compound"], pos_diffby=["plate"],
                         control={"compound": "DMSO"}, normalize="standardize", normalize_by="plate",
                         null_size=100)
    assert rep.summary["n_profiles"] == 15 and rep.summary["mean_map"] > 0.9
    assert set(rep.table["compound"]) == {"c1", "c2", "c3", "c4"}
    lab = run_evaluation("label_map", ctx, profile_by=["compound", "plate"], pos_diffby=["compound"],
                         exclude={"compound": "DMSO"}, null_size=100)
    assert lab.summary["n_groups"] == 2
    nsc = run_evaluation("nsc", ctx, profile_by=["compound", "dose"], compound_column="compound",
                         exclude={"compound": "DMSO"})
    assert nsc.summary["nsc"] == 1.0 and nsc.summary["n_profiles"] == 5
