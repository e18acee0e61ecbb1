"""Classification metrics from class probabilities (wrapping scikit-learn).

Accuracy, macro precision/recall/F1 (sklearn's macro average over the classes present in ``y_true``
or predicted, ``zero_division=0``), per-class recall, the confusion matrix over all classes and
one-vs-rest AUROC from the probabilities. Hand-written part: the AUROC loop, because
``sklearn.metrics.roc_auc_score(multi_class="ovr")`` refuses inputs where a class never occurs in
``y_true``; here such classes are skipped and listed instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from biorep.errors import DataError
from biorep.evaluate.calibration import calibration_summary, softmax
from biorep.evaluate.context import EVALUATIONS, EvalContext, EvalResult


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str] | None = None
) -> dict[str, Any]:
    """Metrics of a probabilistic classifier on labelled samples.

    Args:
        y_true: ``(N,)`` int class indices into ``classes``; rows with −1 (unlabelled) are ignored.
        probs: ``(N, K)`` class probabilities (rows sum to 1; the argmax is the prediction).
        classes: ``K`` class names (default ``"0".."K-1"``).

    Returns:
        ``n``, ``accuracy``, ``balanced_accuracy``, ``macro_precision``, ``macro_recall``,
        ``macro_f1``, ``auroc_macro`` (mean one-vs-rest AUROC over the classes present in ``y_true``;
        None if fewer than two are), ``per_class_recall`` and ``per_class_auroc`` (name → value, None
        for classes absent from ``y_true``), ``auroc_skipped`` (absent class names), ``classes``,
        ``confusion_matrix`` (``K×K`` list, rows = true, columns = predicted).

    Example:
        >>> m = classification_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"])
        >>> m["accuracy"], m["auroc_macro"]
        (1.0, 1.0)
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise DataError(f"probabilities must have shape (N={len(y_true)}, K), got {probs.shape}")
    k = probs.shape[1]
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise DataError(f"{len(names)} class names for probabilities with {k} columns")
    keep = y_true >= 0
    if (y_true >= k).any():
        raise DataError(f"label index {int(y_true.max())} out of range for {k} classes")
    y, p = y_true[keep], probs[keep]
    if len(y) == 0:
        raise DataError("no labelled samples to score (all labels are missing / −1)")
    pred = p.argmax(axis=1)
    labels = np.arange(k)
    present = np.unique(y)

    recall_all = skm.recall_score(y, pred, labels=labels, average=None, zero_division=0)
    per_class_recall = {n: (float(recall_all[i]) if i in present else None) for i, n in enumerate(names)}
    per_class_auroc: dict[str, float | None] = {}
    for i, n in enumerate(names):
        pos = y == i
        per_class_auroc[n] = float(skm.roc_auc_score(pos, p[:, i])) if 0 < pos.sum() < len(y) else None
    aurocs = [v for v in per_class_auroc.values() if v is not None]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
        balanced = float(skm.balanced_accuracy_score(y, pred))
    return {
        "n": int(len(y)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": balanced,
        "macro_precision": float(skm.precision_score(y, pred, average="macro", zero_division=0)),
        "macro_recall": float(skm.recall_score(y, pred, average="macro", zero_division=0)),
        "macro_f1": float(skm.f1_score(y, pred, average="macro", zero_division=0)),
        "auroc_macro": float(np.mean(aurocs)) if len(present) >= 2 and aurocs else None,
        "per_class_recall": per_class_recall,
        "per_class_auroc": per_class_auroc,
        "auroc_skipped": [n for n, v in per_class_auroc.items() if v is None],
        "classes": names,
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=labels).tolist(),
    }


def binary_metrics(y_true: np.ndarray, prob_pos: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 at ``threshold`` and ROC-AUC from the positive-class probability.

    ``roc_auc`` is None when ``y_true`` holds a single class.

    Example:
        >>> binary_metrics(np.array([0, 1, 1]), np.array([0.2, 0.7, 0.4]))["roc_auc"]
        1.0
    """
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(prob_pos, dtype=np.float64)
    pred = (s >= threshold).astype(np.int64)
    two = len(np.unique(y)) == 2
    return {
        "n": int(len(y)),
        "n_positive": int(y.sum()),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y, s)) if two else None,
    }


def predictions_table(
    meta: pd.DataFrame, y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]
) -> pd.DataFrame:
    """Per-sample table: the metadata plus ``true``, ``predicted`` (class names) and ``confidence``."""
    names = np.asarray([str(c) for c in classes], dtype=object)
    y_true = np.asarray(y_true)
    out = meta.reset_index(drop=True).copy()
    out["true"] = np.where(y_true >= 0, names[np.clip(y_true, 0, None)], None)
    out["predicted"] = names[probs.argmax(axis=1)]
    out["confidence"] = probs.max(axis=1)
    return out


@EVALUATIONS.register("classification")
def run_classification(ctx: EvalContext) -> EvalResult:
    """Score the classifier outputs of ``ctx`` (``probs`` or ``logits``) on its test rows.

    With logits, ``summary["calibration"]`` holds temperature scaling fitted on the context's
    calibration rows (``train_idx``: the run's validation split when the evaluator supplies it;
    none → temperature 1), the ECE and NLL of the test rows before/after and the accuracy-vs-coverage
    table (:mod:`biorep.evaluate.calibration`); the table gains ``confidence_calibrated``.
    """
    probs = ctx.probabilities()
    if probs is None:
        raise DataError("classification needs probabilities or logits (this model has no classifier)")
    calib, test = ctx.split()
    targets = ctx.targets()
    y = targets[test]
    summary = classification_metrics(y, probs[test], ctx.class_names())
    table = predictions_table(ctx.meta.iloc[test], y, probs[test], ctx.class_names())
    if ctx.logits is not None:
        logits = np.asarray(ctx.logits, dtype=np.float64)
        has_calib = ctx.train_idx is not None and len(calib) > 0
        cal = calibration_summary(logits[calib] if has_calib else None, targets[calib] if has_calib else None,
                                  logits[test], y)
        summary["calibration"] = cal
        table["confidence_calibrated"] = softmax(logits[test] / cal["temperature"]).max(axis=1)
    return EvalResult("classification", summary, table)
