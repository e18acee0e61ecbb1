"""Folds: expansion into <setup>@<fold> runs, aggregation over folds, paired verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biorep.rundir import write_json
from biorep.study import (
    CANNOT_TELL,
    DOES_NOT_HOLD,
    HOLDS,
    FoldValue,
    StudyConfig,
    Task,
    aggregate_folds,
    compare_folds,
    expand_grid,
    fold_values,
    setup_config,
    study_setups,
)


def _fv(fold: str, value: float, reps: np.ndarray) -> FoldValue:
    return FoldValue(fold, value, float(np.quantile(reps, 0.025)), float(np.quantile(reps, 0.975)), reps)


def test_aggregate_median_mad_and_ci_over_folds() -> None:
    rng = np.random.default_rng(0)
    folds = [_fv(f, v, v + rng.normal(scale=0.01, size=500)) for f, v in (("a", 0.7), ("b", 0.8), ("c", 1.0))]
    agg = aggregate_folds(folds)
    assert agg["median"] == pytest.approx(0.8) and agg["mad"] == pytest.approx(0.1) and agg["n_folds"] == 3
    assert agg["ci_low"] < 0.8 < agg["ci_high"] and agg["ci_high"] - agg["ci_low"] < 0.1
    assert [p["fold"] for p in agg["per_fold"]] == ["a", "b", "c"]
    no_reps = aggregate_folds([FoldValue("a", 1.0), FoldValue("b", 3.0)])
    assert no_reps["median"] == 2.0 and no_reps["mad"] == 1.0 and no_reps["ci_low"] is None
    assert aggregate_folds([FoldValue("a", None)])["median"] is None


def test_compare_folds_verdicts_are_paired() -> None:
    rng = np.random.default_rng(1)
    noise = [rng.normal(scale=0.2, size=400) for _ in range(3)]  # large, but shared by both setups
    a = [_fv(f, 0.5 + 0.05, 0.55 + e) for f, e in zip("xyz", noise, strict=True)]
    b = [_fv(f, 0.5, 0.5 + e) for f, e in zip("xyz", noise, strict=True)]
    better = compare_folds(a, b)
    assert better["verdict"] == HOLDS and better["difference"] == pytest.approx(0.05)
    assert better["ci_low"] == pytest.approx(0.05) and better["n_folds"] == 3
    assert compare_folds(b, a)["verdict"] == DOES_NOT_HOLD
    # unpaired noise of the same size: the CI of the difference contains 0
    c = [_fv(f, 0.5, 0.5 + rng.normal(scale=0.2, size=400)) for f in "xyz"]
    assert compare_folds(a, c)["verdict"] == CANNOT_TELL
    assert compare_folds([FoldValue("x", 1.0)], [FoldValue("x", 0.0)])["verdict"] == CANNOT_TELL


def _study(**kw) -> StudyConfig:
    return StudyConfig(name="s", base={"data": {"split": {"holdout": ["P1"]}}},
                       grid={"method": [{"name": "weak"}, {"name": "byol"}]},
                       extra=[{"label": "untrained", "train.epochs": 0}], **kw)


def test_folds_expand_every_setup_fold_major() -> None:
    study = _study(folds=[{"label": "P1", "data.split.holdout": ["P1"]},
                          {"label": "P2", "data.split.holdout": ["P2"]}])
    runs = expand_grid(study)
    assert [r.name for r in runs] == ["weak@P1", "byol@P1", "untrained@P1", "weak@P2", "byol@P2", "untrained@P2"]
    assert study_setups(study) == ["weak", "byol", "untrained"]
    r = runs[-1]
    assert (r.setup, r.fold, r.setup_name) == ("untrained", "P2", "untrained")
    cfg = setup_config(study.base, r)
    assert cfg["data"]["split"]["holdout"] == ["P2"] and cfg["train"]["epochs"] == 0
    # studies without folds keep their fingerprint (no setup/fold keys)
    assert expand_grid(_study())[0].fingerprint() == {"name": "weak", "overrides": {"method": {"name": "weak"}}}
    with pytest.raises(ValueError, match="label"):
        _study(folds=[{"data.split.holdout": ["P1"]}])


def test_fold_values_read_evaluation_json(tmp_path: Path) -> None:
    runs = {}
    for i, fold in enumerate(["P1", "P2"]):
        run = tmp_path / f"weak@{fold}"
        run.mkdir()
        write_json(run / "evaluation.json", {"treated_vs_control": {"name": "treated_vs_control", "summary": {
            "overall": {"roc_auc": 0.8 + i / 10},
            "bootstrap": {"value": 0.8 + i / 10, "ci_low": 0.7, "ci_high": 0.9, "replicates": [0.8, None, 0.9]}}},
            "clustering": {"summary": {"best_per_group": [{"silhouette": 0.2}, {"silhouette": 0.4}]}}})
        runs[fold] = run
    vals = fold_values(runs, Task("treated_vs_control", "overall.roc_auc"))
    assert [v.value for v in vals] == pytest.approx([0.8, 0.9])
    assert np.isnan(vals[0].replicates[1]) and vals[1].ci_high == 0.9
    sil = fold_values(runs, Task("clustering", "best_per_group.silhouette"))
    assert sil[0].value == pytest.approx(0.3) and sil[0].replicates is None
    assert fold_values(runs, Task("label_map", "mean_map"))[0].value is None


def test_run_study_with_folds_trains_each_setup_per_fold_and_resumes(tmp_path: Path) -> None:
    from biorep.study import run_study

    trained: list[str] = []

    def train(cfg, run_dir: Path, resume: bool) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        trained.append(run_dir.name)
        write_json(run_dir / "summary.json", {"method": cfg.get("method", {}).get("name"),
                                              "holdout": cfg["data"]["split"]["holdout"]})

    def evaluate(run_dir: Path, names, options) -> dict:
        write_json(run_dir / "evaluation.json", {"knn": {"summary": {"accuracy": 0.5}}})
        return {}

    study = _study(folds=[{"label": "P1", "data.split.holdout": ["P1"]},
                          {"label": "P2", "data.split.holdout": ["P2"]}], evaluations=["knn"])
    table = run_study(study, study.base, tmp_path, train_fn=train, evaluate_fn=evaluate, log=lambda s: None)
    assert len(trained) == 6 and list(table.index) == [r.name for r in expand_grid(study)]
    assert (tmp_path / "runs" / "byol@P2").is_dir()
    trained.clear()
    run_study(study, study.base, tmp_path, train_fn=train, evaluate_fn=evaluate, log=lambda s: None)
    assert trained == []  # every run finished: nothing retrained
