"""Karyotype assembly: the constraint helps a noisy classifier and is never violated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biorep.errors import ConfigError
from biorep.evaluate import EvalContext, assemble_karyotypes, chromosome_columns, run_evaluation
from biorep.evaluate.karyotype import AUTOSOMES, CHROMOSOMES, canonical_chromosome

CLASSES = list(CHROMOSOMES)


def _noisy_karyotypes(n_karyo: int, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Normal karyotypes (2 × 1..22 + XX/XY) scored by a classifier that confuses neighbours."""
    rng = np.random.default_rng(seed)
    rows, probs = [], []
    for k in range(n_karyo):
        truth = [c for c in AUTOSOMES for _ in range(2)] + (["X", "X"] if k % 2 else ["X", "Y"])
        for t in rng.permutation(truth):
            i = CLASSES.index(t)
            p = 0.35 * np.eye(24)[i] + 0.35 * rng.dirichlet(np.full(24, 0.3))
            nb = min(23, i + 1) if rng.random() < 0.5 else max(0, i - 1)  # a neighbouring class
            p[nb] += 0.3 * rng.random() * 1.6
            probs.append(p / p.sum())
            rows.append({"karyogram": f"k{k:02d}", "chromosome": t})
    return np.asarray(probs), pd.DataFrame(rows)


def test_constraint_raises_accuracy_and_respects_slots() -> None:
    probs, meta = _noisy_karyotypes(12, seed=0)
    crops, summary = assemble_karyotypes(probs, meta, CLASSES, label_column="chromosome",
                                         max_cost_per_crop=5.0)
    assert summary["n_flagged"] == 0 and summary["n_karyograms"] == 12
    assert 0.4 < summary["accuracy_argmax"] < 0.9  # the classifier is noisy, not useless
    assert summary["accuracy_assigned"] > summary["accuracy_argmax"] + 0.05
    assert (crops["true"] == meta["chromosome"]).all()
    for _, g in crops.groupby("karyogram"):
        counts = g["assigned"].value_counts()
        assert all(counts.get(c, 0) <= 2 for c in AUTOSOMES)
        assert counts.get("Y", 0) <= 1 and counts.get("X", 0) + counts.get("Y", 0) <= 2
        assert g["sex"].iloc[0] in ("XX", "XY")
    assert (crops.loc[crops["changed"], "doubtful"]).all()
    assert summary["sex_calls"].keys() <= {"XX", "XY"}


def test_sex_is_inferred() -> None:
    probs, meta = _noisy_karyotypes(6, seed=1)
    crops, _ = assemble_karyotypes(probs, meta, CLASSES, label_column="chromosome", max_cost_per_crop=5.0)
    truth = meta.groupby("karyogram")["chromosome"].apply(lambda s: "XY" if (s == "Y").any() else "XX")
    called = crops.groupby("karyogram")["sex"].first()
    assert (called == truth).mean() >= 5 / 6


def test_extra_crops_and_costly_assignments_are_flagged() -> None:
    probs, meta = _noisy_karyotypes(3, seed=2)
    # k00 gets a 47th crop (trisomy 21); k01 loses a crop (fine); the rest untouched
    extra = pd.DataFrame([{"karyogram": "k00", "chromosome": "21"}])
    p21 = np.full((1, 24), 0.01)
    p21[0, CLASSES.index("21")] = 1.0
    probs = np.vstack([probs, p21 / p21.sum()])
    meta = pd.concat([meta, extra], ignore_index=True)
    drop = meta.index[meta["karyogram"] == "k01"][0]
    probs, meta = np.delete(probs, drop, axis=0), meta.drop(index=drop).reset_index(drop=True)
    crops, summary = assemble_karyotypes(probs, meta, CLASSES, label_column="chromosome", max_cost_per_crop=5.0)
    k0 = crops[crops["karyogram"] == "k00"]
    assert k0["flagged"].all() and "47 crops" in k0["reason"].iloc[0]
    assert (k0["assigned"] == k0["argmax"]).all()  # flagged karyograms keep argmax
    assert not crops.loc[crops["karyogram"] != "k00", "flagged"].any()
    assert summary["n_flagged"] == 1 and summary["flagged_karyograms"][0]["karyogram"] == "k00"
    # allowing 47 crops: 46 get slots, the one left over keeps its argmax and is doubtful
    crops47, s47 = assemble_karyotypes(probs, meta, CLASSES, label_column="chromosome",
                                       max_cost_per_crop=5.0, expected_count=47)
    left = crops47[crops47["reason"].fillna("").str.startswith("no slot")]
    assert s47["n_flagged"] == 0 and len(left) == 1 and left["doubtful"].all()
    assert left["karyogram"].iloc[0] == "k00" and left["assigned"].iloc[0] == left["argmax"].iloc[0]
    # a confident classifier that contradicts the constraint (4 × chromosome 1) is flagged by cost
    p = np.full((46, 24), 1e-4)
    truth = [c for c in AUTOSOMES for _ in range(2)] + ["X", "Y"]
    for i, t in enumerate(truth):
        p[i, CLASSES.index(t)] = 1.0
    p[2:4] = p[0]  # the two "2" crops look exactly like "1"s
    _, s2 = assemble_karyotypes(p / p.sum(1, keepdims=True), pd.DataFrame({"karyogram": ["a"] * 46}),
                                CLASSES, max_cost_per_crop=0.1)
    assert s2["n_flagged"] == 1 and "nats/crop" in s2["flagged_karyograms"][0]["reason"]


def test_class_mapping() -> None:
    numbered = [str(i) for i in range(1, 25)] + ["unassigned"]
    cols = chromosome_columns(numbered, aliases={"23": "X", "24": "Y"})
    assert cols["X"] == 22 and cols["Y"] == 23 and cols["1"] == 0
    assert chromosome_columns([f"chr{c}" for c in CLASSES])["Y"] == 23
    assert canonical_chromosome("chr05") == "5" and canonical_chromosome(" x ") == "X"
    with pytest.raises(ConfigError, match="lack"):
        chromosome_columns(numbered)
    with pytest.raises(ConfigError, match="twice"):
        chromosome_columns([*CLASSES, "chr1"])


def test_registry_adapter_with_logits_and_extra_class() -> None:
    probs, meta = _noisy_karyotypes(2, seed=3)
    classes = [*CLASSES, "unassigned"]
    logits = np.log(np.hstack([probs, np.full((len(probs), 1), 1e-6)]))
    ctx = EvalContext(np.zeros((len(meta), 2)), meta, label_column="chromosome", classes=classes,
                      logits=logits)
    res = run_evaluation("karyotype", ctx, max_cost_per_crop=5.0)
    assert res.summary["n_scored"] == 92 and len(res.table) == 92
    assert res.summary["accuracy_assigned"] >= res.summary["accuracy_argmax"]


def test_non_finite_probabilities_are_one_clear_error() -> None:
    """A diverged run (NaN logits) is named, not a scipy error from inside the assignment."""
    from biorep.errors import DataError

    probs, meta = _noisy_karyotypes(2, seed=0)
    probs[3] = np.nan
    with pytest.raises(DataError, match="not finite .* for 1 of 92 crops"):
        assemble_karyotypes(probs, meta, CLASSES, label_column="chromosome")
