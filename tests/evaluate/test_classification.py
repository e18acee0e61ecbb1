"""Classification metrics agree with direct scikit-learn calls; absent classes are handled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from biorep.errors import DataError
from biorep.evaluate import EvalContext, binary_metrics, classification_metrics, run_evaluation


@pytest.fixture
def fixed() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0, 2, 1, 1])
    probs = rng.dirichlet(np.ones(3), size=len(y))
    probs[np.arange(len(y)), y] += 0.4  # mostly right, not always
    return y, probs / probs.sum(1, keepdims=True)


def test_metrics_match_sklearn(fixed: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = fixed
    m = classification_metrics(y, p, ["a", "b", "c"])
    pred = p.argmax(1)
    assert m["n"] == len(y)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["macro_precision"] == pytest.approx(skm.precision_score(y, pred, average="macro", zero_division=0))
    assert m["macro_recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["auroc_macro"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    rec = skm.recall_score(y, pred, average=None)
    assert [m["per_class_recall"][c] for c in "abc"] == pytest.approx(rec.tolist())
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert 0 < m["accuracy"] < 1  # the fixture is neither trivial nor hopeless


def test_absent_class_and_unlabelled_rows() -> None:
    # class "c" never occurs in y_true; one row is unlabelled (-1) and must be ignored
    y = np.array([0, 1, 0, 1, -1])
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1], [0.0, 0.0, 1.0]])
    m = classification_metrics(y, p, ["a", "b", "c"])
    assert m["n"] == 4
    assert m["per_class_recall"]["c"] is None and m["per_class_auroc"]["c"] is None
    assert m["auroc_skipped"] == ["c"]
    expected = np.mean([skm.roc_auc_score(y[:4] == k, p[:4, k]) for k in (0, 1)])
    assert m["auroc_macro"] == pytest.approx(expected)
    assert np.asarray(m["confusion_matrix"]).shape == (3, 3)
    assert m["accuracy"] == pytest.approx(0.75)  # row 2 is predicted "c"


def test_single_class_auroc_is_none_and_errors() -> None:
    m = classification_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert m["auroc_macro"] is None
    with pytest.raises(DataError):
        classification_metrics(np.array([-1]), np.array([[0.5, 0.5]]))
    with pytest.raises(DataError):
        classification_metrics(np.array([0, 1]), np.ones((3, 2)) / 2)


def test_binary_metrics_from_probabilities() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    s = np.array([0.1, 0.6, 0.4, 0.9, 0.7, 0.2])
    m = binary_metrics(y, s)
    pred = (s >= 0.5).astype(int)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))  # from scores, not labels
    assert m["roc_auc"] != pytest.approx(skm.roc_auc_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert binary_metrics(np.array([1, 1]), np.array([0.2, 0.9]))["roc_auc"] is None


def test_registry_classification_from_logits() -> None:
    logits = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    meta = pd.DataFrame({"label": ["a", "b", "b", "b"]})
    ctx = EvalContext(np.zeros((4, 2)), meta, label_column="label", logits=logits, test_idx=np.array([1, 2, 3]))
    res = run_evaluation("classification", ctx)
    assert res.summary["n"] == 3
    assert res.summary["accuracy"] == pytest.approx(2 / 3)
    assert res.table["predicted"].tolist() == ["b", "a", "b"]
    assert res.to_dict()["summary"]["classes"] == ["a", "b"]
