"""time_to_accuracy.py's report from clock rows (no training): minutes to the reference, with flips."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import BENCHMARKS, script_module


@pytest.fixture(scope="module")
def tta():
    with script_module(BENCHMARKS / "chromosome" / "time_to_accuracy.py", "chromosome_tta") as module:
        yield module


def _row(epoch: int, minutes: float, acc: float, acc_tta: float | None) -> dict:
    row = {"epoch": epoch, "train_s": 60 * minutes, "val_acc": 0.9, "test_acc": acc, "ci_low": acc - 0.01,
           "ci_high": acc + 0.01}
    if acc_tta is not None:
        row.update(test_acc_tta=acc_tta, ci_low_tta=acc_tta - 0.01, ci_high_tta=acc_tta + 0.01)
    return row


def test_minutes_and_accuracy_read_the_chosen_score(tta) -> None:
    rows = [_row(1, 2.0, 0.90, 0.92), _row(2, 4.0, 0.93, 0.945), _row(3, 25.0, 0.96, 0.97)]
    assert tta.minutes_to(rows, 0.94) == 25.0
    assert tta.minutes_to(rows, 0.94, "test_acc_tta") == 4.0
    assert tta.minutes_to(rows, 0.99, "test_acc_tta") is None
    assert tta.acc_within(rows, 20) == 0.93 and tta.acc_within(rows, 20, "test_acc_tta") == 0.945
    assert tta.minutes_to([_row(1, 1.0, 0.95, None)], 0.9, "test_acc_tta") is None  # an old run: no flips


def test_report_has_both_scores_and_the_ratio_to_the_reference(tta, tmp_path: Path) -> None:
    runs = {"short-bf16": {"overrides": ["train.epochs=4"], "precision": "bf16-mixed", "images_per_s": 250.0,
                           "wall_min": 5.5, "rows": [_row(1, 2.5, 0.90, 0.92), _row(2, 5.0, 0.93, 0.945)]}}
    ref = {"test_accuracy": 0.94, "train_time_s": 900.0}
    out = tmp_path / "RESULTS_time.md"
    tta.write_results(runs, ref, (0.5, 0.5, 0.5), out)
    text = out.read_text()
    assert "| 2 | 5.00 | 0.9000 | 0.9300 (0.9200–0.9400) | 0.9450 (0.9350–0.9550) |" in text
    assert "network alone: minutes to the reference's 94.00 %: not reached" in text
    assert "with the recipe's flips: minutes to the reference's 94.00 %: 5.0 (0.33× the reference's)" in text
    assert (tmp_path / "results_time.json").is_file()


def test_clock_scores_each_epoch_with_and_without_the_flips(tta, tmp_path: Path) -> None:
    from types import SimpleNamespace

    import numpy as np
    import torch

    from biorep.models import ModelConfig

    from methods.conftest import make_method, toy_batch  # tests/ is on sys.path (prepend import mode)

    m = make_method("supervised").eval()
    m.model_cfg = ModelConfig(backbone="simple_cnn", tta=["hflip"])
    x, y, _ = toy_batch()
    images, targets = x.numpy(), y.numpy()
    clock = tta.TestClock(images, targets, np.arange(len(targets)) // 2, tmp_path / "clock.json")
    trainer = SimpleNamespace(precision="32-true", current_epoch=0, callback_metrics={"val/acc": torch.tensor(0.5)})
    clock.on_train_epoch_start(trainer, m)
    clock.on_train_epoch_end(trainer, m)
    row = clock.rows[0]
    with torch.no_grad():
        plain = (m.classify(x, tta=False).argmax(1).numpy() == targets).mean()
        flipped = (m.classify(x).argmax(1).numpy() == targets).mean()
    assert row["epoch"] == 1 and row["val_acc"] == 0.5 and row["train_s"] >= 0
    assert row["test_acc"] == pytest.approx(plain) and row["test_acc_tta"] == pytest.approx(flipped)
    assert not m.training  # the module's mode is restored
    assert tta.read_json(tmp_path / "clock.json")["rows"] == clock.rows  # written after every epoch
