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
    assert code == 2 and "data sets" in err
    other_split = train_karyotype(tmp_path / "other-split", split_seed=1, epochs=1)
    code, _, err = cli("ensemble", karyotype_copy, other_split, "--out", out, "--only", "classification")
    assert code == 2 and "other rows" in err and str(other_split) in err
    assert not out.exists()  # nothing half-written

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    code, _, err = cli("ensemble", karyotype_copy, second_run, "--out", taken)
    assert code == 2 and "not an ensemble folder" in err
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]
