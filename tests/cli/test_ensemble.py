"""``biorep ensemble``: the members' mean probabilities scored, their own numbers beside it, bad input refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from biorep.evaluate.context import softmax
from biorep.training import load_run

@pytest.fixture(scope="module")
def second_run(train_karyotype: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another seed on the same data and split as ``karyotype_run``, trained for fewer epochs."""
    return train_karyotype(tmp_path_factory.mktemp("runs") / "karyo-s1", seed=1, epochs=8)


def _test_probs(run: Path) -> np.ndarray:
    return softmax(np.load(run / "embeddings" / "test.logits.npy").astype(np.float64))


def test_ensemble_scores_the_mean_probabilities(karyotype_copy: Path, second_run: Path, tmp_path: Path,
                                                 cli: Callable) -> None:
    out = tmp_path / "ens"
    code, text, err = cli("ensemble", karyotype_copy, second_run, "--out", out, "--no-progress")
    assert code == 0, err
    assert "ensemble" in text and "karyotype" in text
    results = json.loads((out / "evaluation.json").read_text())
    assert set(results) == {"classification", "karyotype"}

    run = load_run(karyotype_copy)
    targets = run.targets()[run.splits.test]
    mean = (_test_probs(karyotype_copy) + _test_probs(second_run)) / 2  # each member's stored test outputs
    assert results["classification"]["summary"]["accuracy"] == pytest.approx((mean.argmax(1) == targets).mean())
    assert results["classification"]["n"] == len(targets)

    record = json.loads((out / "ensemble.json").read_text())
    assert [m["run"] for m in record["members"]] == [str(karyotype_copy.resolve()), str(second_run.resolve())]
    for member, path in zip(record["members"], (karyotype_copy, second_run)):
        own = (_test_probs(path).argmax(1) == targets).mean()
        assert member["classification"]["accuracy"] == pytest.approx(own)
        assert 0 <= member["karyotype"]["accuracy_argmax"] <= 1
    assert (out / "evaluation" / "classification.csv").is_file()

    # the same members again update the folder; other members are refused without --overwrite
    code, text, _ = cli("ensemble", karyotype_copy, second_run, "--out", out, "--only", "classification", "--json")
    assert code == 0 and set(json.loads(text)) == {"classification"}
    assert not (out / "evaluation" / "karyotype.csv").exists()  # the folder is replaced whole, never mixed
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".ens")) == []
    code, _, err = cli("ensemble", second_run, karyotype_copy, "--out", out)
    assert code == 2 and "pass --overwrite" in err


def test_ensemble_refuses_bad_input(karyotype_copy: Path, second_run: Path, cells_copy: Path, tmp_path: Path,
                                    train_karyotype: Callable[..., Path], cli: Callable) -> None:
    out = tmp_path / "ens"
    code, _, err = cli("ensemble", karyotype_copy, "--out", out)
    assert code == 2 and "at least two runs" in err
    code, _, err = cli("ensemble", karyotype_copy, karyotype_copy, "--out", out)
    assert code == 2 and "named twice" in err
    code, _, err = cli("ensemble", karyotype_copy, second_run, "--out", out, "--only", "knn")
    assert code == 2 and "not knn" in err
    code, _, err = cli("ensemble", karyotype_copy, cells_copy, "--out", out)
    assert code == 2 and "other data" in err
    other_split = train_karyotype(tmp_path / "other-split", split_seed=1, epochs=1)
    code, _, err = cli("ensemble", karyotype_copy, other_split, "--out", out, "--only", "classification")
    assert code == 2 and "other test rows" in err and str(other_split) in err
    assert not out.exists()  # nothing half-written

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    code, _, err = cli("ensemble", karyotype_copy, second_run, "--out", taken)
    assert code == 2 and "not an ensemble folder" in err
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]


def test_ensemble_calibrates_on_the_shared_validation_rows(train_karyotype: Callable[..., Path], tmp_path: Path,
                                                           cli: Callable) -> None:
    runs = [train_karyotype(tmp_path / f"val-s{s}", seed=s, epochs=6, val=0.25) for s in (0, 1)]
    out = tmp_path / "ens"
    code, text, err = cli("ensemble", *runs, "--out", out, "--json")
    assert code == 0, err
    cls = json.loads(text)["classification"]
    calibration = cls["summary"]["calibration"]
    assert calibration["calibrated"] and calibration["temperature"] > 0
    run = load_run(runs[0])
    val = run.splits.val
    assert len(val) > 0
    mean = sum(softmax(np.load(r / "embeddings" / "val.logits.npy").astype(np.float64)) for r in runs) / 2
    assert cls["val_accuracy"] == pytest.approx((mean.argmax(1) == run.targets()[val]).mean())
    assert all(m["val_accuracy"] is not None for m in cls["members"])

    other_val = train_karyotype(tmp_path / "val-other", seed=0, epochs=1, val=0.1)
    code, _, err = cli("ensemble", runs[0], other_val, "--out", tmp_path / "ens2", "--only", "classification")
    assert code == 2 and "validation rows" in err


def test_ensemble_defaults_skip_karyotype_where_it_does_not_apply(cli_cache: Path, tmp_path: Path,
                                                                  cli: Callable) -> None:
    from biorep.training import RunConfig, train

    def weak(seed: int) -> Path:
        return train(RunConfig.from_dict({
            "data": {"dataset": "synthetic-cells", "options": {"n_cells": 96, "size": 32, "seed": 0},
                     "geometry": {"mode": "none", "size": 32}, "split": {"test": 0.3, "val": 0.0, "seed": 0}},
            "views": {"augment": "none", "crops": "one"}, "model": {"backbone": "simple_cnn"},
            "method": {"name": "weak"},
            "train": {"epochs": 1, "batch_size": 16, "seed": seed, "accelerator": "cpu", "devices": 1,
                      "tracemalloc": False, "progress": False}}), tmp_path / f"weak-{seed}")

    a, b = weak(0), weak(1)
    code, _, err = cli("ensemble", a, b, "--out", tmp_path / "ens", "--no-progress")
    assert code == 0, err
    assert set(json.loads((tmp_path / "ens" / "evaluation.json").read_text())) == {"classification"}


def test_ensemble_never_writes_into_a_member_or_a_foreign_folder(karyotype_copy: Path, second_run: Path,
                                                                 cli: Callable) -> None:
    before = sorted(p.name for p in karyotype_copy.iterdir())
    for out in (karyotype_copy, karyotype_copy / "ens"):
        code, _, err = cli("ensemble", karyotype_copy, second_run, "--out", out, "--overwrite")
        assert code == 2 and "inside the member run" in err
    assert sorted(p.name for p in karyotype_copy.iterdir()) == before
