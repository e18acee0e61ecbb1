"""``biorep evaluate`` (and ``biorep report`` on its output): selection, options, storage, numbers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biorep.evaluate import knn_predict_proba, read_embeddings
from biorep.training import load_run


def _in01(v: float) -> bool:
    return 0.0 <= v <= 1.0


def test_probes_and_classifier_match_a_direct_computation(karyotype_copy: Path, cli: Callable) -> None:
    code, out, err = cli("evaluate", karyotype_copy, "--only", "knn,classification", "--only", "linear",
                         "-o", "knn.k=5", "-o", "linear.max_iter=50", "--json", "--no-progress")
    assert code == 0, err
    res = json.loads(out)  # exactly one JSON object on stdout
    assert set(res) == {"knn", "linear", "classification"}
    run = load_run(karyotype_copy)
    n_test = len(run.splits.test)
    for name, r in res.items():
        s = r["summary"]
        assert r["n"] == n_test and r["split"] == "test"
        assert all(_in01(s[k]) for k in ("accuracy", "macro_f1", "balanced_accuracy", "auroc_macro")), name
    assert res["knn"]["summary"]["k"] == 5

    # knn: the same vote computed here from the stored embeddings
    ztr, mtr = read_embeddings(karyotype_copy / "embeddings" / "train.parquet")
    zte, mte = read_embeddings(karyotype_copy / "embeddings" / "test.parquet")
    classes = run.classes
    ytr = np.array([classes.index(c) for c in mtr["chromosome"]])
    yte = np.array([classes.index(c) for c in mte["chromosome"]])
    probs = knn_predict_proba(ztr, ytr, zte, len(classes), k=5)
    assert res["knn"]["summary"]["accuracy"] == (probs.argmax(1) == yte).mean()
    # classification: argmax of the stored logits
    logits = np.load(karyotype_copy / "embeddings" / "test.logits.npy")
    assert res["classification"]["summary"]["accuracy"] == (logits.argmax(1) == yte).mean()

    stored = json.loads((karyotype_copy / "evaluation.json").read_text())
    assert stored["knn"]["summary"]["accuracy"] == res["knn"]["summary"]["accuracy"]
    table = pd.read_csv(karyotype_copy / "evaluation" / "knn.csv")
    assert len(table) == n_test and {"true", "predicted", "confidence", "karyogram"} <= set(table.columns)

    # --only adds to evaluation.json, and stored embeddings are reused (not rewritten)
    mtime = (karyotype_copy / "embeddings" / "test.parquet").stat().st_mtime_ns
    code, out, err = cli("evaluate", karyotype_copy, "--only", "karyotype", "--no-progress")
    assert code == 0, err
    assert "karyotype" in out and "accuracy_assigned" in out
    stored = json.loads((karyotype_copy / "evaluation.json").read_text())
    assert {"knn", "linear", "classification", "karyotype"} <= set(stored)
    assert (karyotype_copy / "embeddings" / "test.parquet").stat().st_mtime_ns == mtime

    # the report shows the evaluation numbers
    code, out, err = cli("report", karyotype_copy, "--projection", "pca")
    assert code == 0, err
    html = (karyotype_copy / "report.html").read_text()
    acc = res["knn"]["summary"]["accuracy"]
    assert f">{acc:.4g}<" in html and "karyotype" in html


def test_screening_evaluations_on_cells(cells_copy: Path, cli: Callable) -> None:
    code, out, err = cli(
        "evaluate", cells_copy, "--only", "similarity,treated_vs_control,replicate_map,linear", "--json",
        "-o", "treated_vs_control.grid={hidden_layer_sizes: [[16]]}", "-o", "treated_vs_control.max_iter=30",
        "-o", "replicate_map.null_size=200", "-o", "linear.max_iter=50", "--no-progress")
    assert code == 0, err
    res = json.loads(out)
    sim = res["similarity"]["summary"]
    assert sim["n_groups"] >= 1 and sim["D"]["median"] > 0 and "dose" in sim["a"]
    tvc = res["treated_vs_control"]["summary"]
    assert _in01(tvc["overall"]["roc_auc"]) and _in01(tvc["overall"]["accuracy"])
    run = load_run(cells_copy)
    assert tvc["overall"]["n"] == len(run.splits.test)  # fitted on train, scored on every test cell
    assert _in01(res["replicate_map"]["summary"]["mean_map"])
    assert _in01(res["linear"]["summary"]["accuracy"]) and res["linear"]["summary"]["classes"] == ["control", "treated"]
    assert (cells_copy / "evaluation" / "similarity.csv").is_file()


@pytest.mark.slow  # UMAP's numba compilation, when no earlier test in the session paid for it
def test_clustering_of_treated_cells(cells_copy: Path, cli: Callable) -> None:
    code, out, err = cli("evaluate", cells_copy, "--only", "clustering", "--split", "all", "--json",
                         "-o", "clustering.min_cluster_sizes=[5]", "-o", "clustering.n_neighbors=5",
                         "--no-progress")
    assert code == 0, err
    res = json.loads(out)
    assert set(res) == {"clustering@all"}
    s = res["clustering@all"]["summary"]
    table = pd.read_csv(cells_copy / "evaluation" / "clustering@all.csv")
    # only the treated cells (the data set's default `where`), per plate, scored against dose
    assert s["group_by"] == ["plate"] and s["label_column"] == "dose"
    assert table["n_points"].sum() == 60 and table["group"].nunique() == 3
    assert table["ari"].between(-1, 1).all() and table["nmi"].between(0, 1).all()


def test_evaluate_errors_exit_2(cells_copy: Path, tmp_path: Path, cli: Callable) -> None:
    missing = tmp_path / "nope"
    code, _, err = cli("evaluate", missing)
    assert code == 2 and f"run directory {missing} does not exist" in err
    code, _, err = cli("evaluate", cells_copy, "--only", "accuracy")
    assert code == 2 and "unknown evaluation 'accuracy'" in err and "knn" in err and "similarity" in err
    code, _, err = cli("evaluate", cells_copy, "--only", "knn", "-o", "knn.kk=3")
    assert code == 2 and "unknown option(s) kk" in err
    code, _, err = cli("evaluate", cells_copy, "--only", "knn", "-o", "linear.C=2")
    assert code == 2 and "not selected" in err
    code, _, err = cli("evaluate", cells_copy, "--only", "knn", "-o", "k=3")
    assert code == 2 and "NAME.KEY=VALUE" in err
    code, _, err = cli("evaluate", cells_copy, "--only", "classification")
    assert code == 2 and "needs a classifier" in err and "(byol) has none" in err
    assert not (cells_copy / "evaluation.json").exists()


def test_the_table_title_says_how_many_images_were_scored(capsys: pytest.CaptureFixture[str]) -> None:
    from biorep.cli.evaluate import print_results

    print_results({"knn": {"split": "all", "n": 36, "summary": {"n": 34, "accuracy": 0.5}}})
    out = " ".join(capsys.readouterr().out.split())
    assert "knn (all, 36 images, 34 scored)" in out


def test_other_data_without_the_runs_classes_is_an_error(karyotype_copy: Path, tmp_path: Path, cli: Callable) -> None:
    """``--data`` whose labels share no class with the run scored accuracy 0 and said "all labels are
    missing"; a folder without labels evaluated nothing and still said "results in …" with status 0."""
    from PIL import Image

    named = tmp_path / "named"
    flat = tmp_path / "flat"
    rng = np.random.default_rng(0)
    for folder in (named / "a", named / "b", flat):
        folder.mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (48, 24), dtype=np.uint8)).save(folder / f"{i}.png")
    before = (karyotype_copy / "evaluation.json").read_text() if (karyotype_copy / "evaluation.json").exists() else None

    code, out, err = cli("evaluate", karyotype_copy, "--data", named, "--only", "classification", "--no-progress")
    assert code == 2 and "is a class of the model" in err and "'a', 'b'" in err, err
    code, out, err = cli("evaluate", karyotype_copy, "--data", flat, "--no-progress")
    assert code == 2 and "nothing could be evaluated" in err and "results in" not in out, (out, err)
    after = (karyotype_copy / "evaluation.json").read_text() if (karyotype_copy / "evaluation.json").exists() else None
    assert after == before
