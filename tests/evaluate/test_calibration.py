"""Temperature scaling, ECE and the accuracy-vs-coverage table."""

from __future__ import annotations

import numpy as np
import pytest

from biorep.evaluate.calibration import (
    calibration_summary,
    coverage_table,
    ece,
    fit_temperature,
    nll,
    softmax,
)


def _toy(n: int, seed: int, overconfidence: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a calibrated 5-class model (labels drawn from its own softmax), then sharpened."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.5, size=(n, 5))
    p = softmax(logits)
    y = np.array([rng.choice(5, p=row) for row in p])
    return overconfidence * logits, y


def test_ece_drops_on_a_deliberately_overconfident_toy_model() -> None:
    val_logits, val_y = _toy(3000, seed=0)
    test_logits, test_y = _toy(3000, seed=1)
    t = fit_temperature(val_logits, val_y)
    assert t == pytest.approx(4.0, rel=0.15)  # recovers the sharpening
    before = ece(softmax(test_logits), test_y)
    after = ece(softmax(test_logits / t), test_y)
    assert before > 0.15
    assert after < 0.04 and after < before / 4
    s = calibration_summary(val_logits, val_y, test_logits, test_y)
    assert s["calibrated"] and s["temperature"] == pytest.approx(t)
    assert s["ece_after"] == pytest.approx(after) and s["ece_before"] == pytest.approx(before)
    assert s["nll_after"] < s["nll_before"]
    # temperature scaling keeps the argmax: full-coverage accuracy is the plain accuracy
    full = s["coverage"][-1]
    assert full["coverage"] == 1.0 and full["n"] == 3000 and full["n_review"] == 0
    assert full["accuracy"] == pytest.approx(float((test_logits.argmax(1) == test_y).mean()))


def test_a_calibrated_model_keeps_temperature_near_one() -> None:
    logits, y = _toy(4000, seed=2, overconfidence=1.0)
    assert fit_temperature(logits, y) == pytest.approx(1.0, abs=0.1)


def test_ece_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.62, 0.38], [0.64, 0.36], [0.17, 0.83]])
    y = np.array([0, 1, 0, 1])
    # 15 bins of width 1/15: 0.62 and 0.64 share bin 9 (acc 0.5, conf 0.63), 0.9 and 0.83 are alone
    expected = (abs(1 - 0.9) + 2 * abs(0.5 - 0.63) + abs(1 - 0.83)) / 4
    assert ece(probs, y) == pytest.approx(expected)
    assert ece(probs, y, n_bins=1) == pytest.approx(abs(0.75 - np.mean([0.9, 0.62, 0.64, 0.83])))


def test_coverage_table_on_a_hand_made_example() -> None:
    # 20 crops, confidences 0.995 … 0.52 in steps of 0.025 ; wrong: the 3rd, 19th and 20th most confident
    conf = 0.995 - 0.025 * np.arange(20)
    probs = np.stack([conf, 1 - conf], axis=1)
    y = np.zeros(20, dtype=np.int64)
    y[[2, 18, 19]] = 1
    rng = np.random.default_rng(0)
    perm = rng.permutation(20)  # the order of the rows does not matter
    rows = coverage_table(probs[perm], y[perm], [0.5, 0.9, 0.95, 0.99, 1.0])
    got = {r["coverage"]: (r["n"], r["accuracy"], r["threshold"], r["n_review"]) for r in rows}
    assert got[0.5] == (10, pytest.approx(9 / 10), pytest.approx(conf[9]), 10)
    assert got[0.9] == (18, pytest.approx(17 / 18), pytest.approx(conf[17]), 2)
    assert got[0.95] == (19, pytest.approx(17 / 19), pytest.approx(conf[18]), 1)
    assert got[0.99] == (20, pytest.approx(17 / 20), pytest.approx(conf[19]), 0)  # ⌈19.8⌉ = 20
    assert got[1.0] == (20, pytest.approx(17 / 20), pytest.approx(conf[19]), 0)


def test_unlabelled_rows_are_ignored_and_no_validation_means_no_calibration() -> None:
    logits = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    y = np.array([0, 1, -1])
    assert nll(logits, y) == pytest.approx(nll(logits[:2], y[:2]))
    s = calibration_summary(None, None, logits, y)
    assert not s["calibrated"] and s["temperature"] == 1.0 and s["ece_before"] == s["ece_after"]
    assert s["coverage"][-1]["n"] == 2
    with pytest.raises(ValueError, match="coverage"):
        coverage_table(softmax(logits), y, [0.0])


def test_classification_evaluation_calibrates_on_the_validation_split(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``evaluate_run`` fits the temperature on the run's validation rows and reports the test rows."""
    import pandas as pd
    import torch

    from biorep.evaluate.run import evaluate_run
    from biorep.rundir import RunPaths, read_data
    from biorep.training import RunConfig, train

    monkeypatch.setenv("BIOREP_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    run = train(RunConfig.from_dict({
        "data": {"dataset": "synthetic-karyotype", "options": {"n_karyograms": 6},
                 "geometry": {"mode": "canvas", "size": 32}, "split": {"test": 0.3, "val": 0.3, "seed": 0}},
        "views": {"augment": "none"}, "model": {"backbone": "simple_cnn"}, "method": {"name": "supervised"},
        "train": {"epochs": 1, "batch_size": 32, "accelerator": "cpu", "devices": 1, "precision": 32,
                  "tracemalloc": False, "progress": False}}), tmp_path / "run")
    res = evaluate_run(run, names=["classification"])
    summary = res["classification"]["summary"]
    cal = summary["calibration"]
    splits = read_data(run).splits
    assert cal["calibrated"] and cal["n_calibration"] == len(splits["val"])
    assert cal["temperature"] > 0 and [r["coverage"] for r in cal["coverage"]] == [0.9, 0.95, 0.99, 1.0]
    assert cal["coverage"][-1]["n"] == summary["n"] == len(splits["test"])
    assert cal["coverage"][-1]["accuracy"] == pytest.approx(summary["accuracy"])
    table = pd.read_csv(RunPaths(run).evaluation_dir / "classification.csv")
    assert len(table) == len(splits["test"]) and "confidence_calibrated" in table.columns
