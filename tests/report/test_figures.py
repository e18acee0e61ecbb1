"""Report figures: PNG bytes with the expected layout, clear errors on bad input."""

from __future__ import annotations

import io

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from biorep.report import figures


def _decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(png), format="png")


def test_learning_curves_panels_follow_metric_groups() -> None:
    epochs = np.arange(5)
    base = pd.DataFrame({"epoch": epochs, "train_loss": 1 / (epochs + 1), "val_loss": 1.1 / (epochs + 1)})
    with_scores = base.assign(val_acc=0.5 + 0.1 * epochs, lr=1e-3 * 0.9**epochs)
    one_panel = _decode(figures.learning_curves(base))
    three_panels = _decode(figures.learning_curves(with_scores, title="run"))
    # One panel per group (losses / scores / learning rate): three panels are much wider than one.
    assert three_panels.shape[1] > 2.5 * one_panel.shape[1]


def test_learning_curves_handle_lightning_style_rows() -> None:
    # Lightning's CSVLogger writes train and val metrics on different rows (NaN elsewhere), several per epoch.
    df = pd.DataFrame(
        {
            "epoch": [0, 0, 0, 1, 1, 1],
            "step": [1, 2, 2, 3, 4, 4],
            "train_loss_step": [1.0, 0.9, np.nan, 0.8, 0.7, np.nan],
            "val_acc": [np.nan, np.nan, 0.6, np.nan, np.nan, 0.7],
        }
    )
    assert _decode(figures.learning_curves(df)).shape[0] > 100


def test_learning_rate_that_reaches_zero_plots_without_a_log_axis_warning() -> None:
    import warnings

    df = pd.DataFrame({"epoch": [0, 1], "train_loss": [1.0, 0.5], "lr": [0.0, 0.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when a log axis gets no positive value
        assert _decode(figures.learning_curves(df)).shape[0] > 100


def test_learning_curves_without_numbers_is_an_error() -> None:
    with pytest.raises(ValueError, match="no numeric metric"):
        figures.learning_curves(pd.DataFrame({"epoch": [0, 1], "note": ["a", "b"]}))


def test_confusion_matrix_24_classes_grows_with_class_count() -> None:
    classes = [str(i) for i in range(1, 23)] + ["X", "Y"]
    cm = np.eye(24, dtype=int) * 30 + 1
    cm[5] = 0  # a class without test samples must not produce NaNs
    big = _decode(figures.confusion_matrix(cm, classes, title="24 classes"))
    small = _decode(figures.confusion_matrix([[3, 1], [0, 4]], ["a", "b"]))
    assert big.shape[0] > 1.5 * small.shape[0]
    assert big.shape[0] >= 700  # readable: at least ~30 px per class row


def test_confusion_matrix_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="square"):
        figures.confusion_matrix([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="2 class names"):
        figures.confusion_matrix(np.eye(3), ["a", "b"])


def test_embedding_maps_side_by_side_and_wrapping() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 2))
    labels = np.array(["a", "b"] * 20)
    one = _decode(figures.embedding_map(z, labels, title="one", label_name="label"))
    two = _decode(figures.embedding_maps([("CE", z, labels), ("SupCon", z * 2, labels)], label_name="label"))
    six = _decode(figures.embedding_maps([(f"run{i}", z, None) for i in range(6)], max_columns=3))
    assert two.shape[1] > 1.6 * one.shape[1]
    assert six.shape[0] > 1.7 * one.shape[0]  # two rows of three panels


def test_embedding_maps_continuous_labels_and_errors() -> None:
    z = np.random.default_rng(1).normal(size=(50, 2))
    assert _decode(figures.embedding_map(z, np.linspace(0, 1, 50), label_name="dose")).size > 0
    with pytest.raises(ValueError, match="50 points but 3 labels"):
        figures.embedding_map(z, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        figures.embedding_map(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least one panel"):
        figures.embedding_maps([])


def test_comparison_bars_drop_constant_metrics() -> None:
    table = pd.DataFrame(
        {"accuracy": [0.8, 0.9], "k": [20, 20], "wall_time_s": [100.0, 300.0], "method": ["ce", "supcon"]},
        index=["ce", "supcon"],
    )
    two_panels = _decode(figures.comparison_bars(table))
    three_panels = _decode(figures.comparison_bars(table, skip_constant=False))
    assert three_panels.shape[1] > 1.3 * two_panels.shape[1]
    with pytest.raises(ValueError, match="no numeric metric"):
        figures.comparison_bars(pd.DataFrame({"method": ["a", "b"]}))


def test_natural_key_orders_karyotype_classes() -> None:
    assert sorted(["X", "10", "2", "Y", "1"], key=figures.natural_key) == ["1", "2", "10", "X", "Y"]
