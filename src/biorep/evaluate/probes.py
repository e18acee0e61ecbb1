"""Probes on frozen embeddings: weighted kNN (faiss) and a linear probe (scikit-learn).

Both return class probabilities for the test rows, scored by :func:`classification_metrics`, so
every paradigm (supervised or not) gets comparable numbers.

The kNN vote is the one of DINO / solo-learn (``weighted_knn_classifier``): cosine similarity to the
``k`` nearest training embeddings, each neighbour votes for its class with weight
``exp(sim / temperature)``; the votes, normalised, are the probabilities. The search itself is
faiss (exact, ``IndexFlatIP`` on L2-normalised vectors).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import faiss
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from biorep.errors import ConfigError, DataError
from biorep.evaluate.classification import classification_metrics, predictions_table
from biorep.evaluate.context import EVALUATIONS, EvalContext, EvalResult

log = logging.getLogger("biorep.evaluate")


def knn_search(
    database: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    metric: str = "cosine",
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-nearest-neighbour search with faiss.

    Args:
        database: ``(M, D)`` vectors to search in.
        queries: ``(Q, D)`` query vectors.
        k: neighbours per query (capped at ``M``).
        metric: ``"cosine"`` (L2-normalise, inner product; scores are similarities, larger = nearer)
            or ``"l2"`` (squared Euclidean distances, smaller = nearer).
        n_threads: faiss OpenMP threads (None = faiss' default).

    Returns:
        ``(scores, indices)``, each ``(Q, k)``, nearest first.

    Example:
        >>> s, i = knn_search(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32)[:1], 2)
        >>> int(i[0, 0])
        0
    """
    db = np.ascontiguousarray(database, dtype=np.float32)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if db.ndim != 2 or q.ndim != 2 or db.shape[1] != q.shape[1]:
        raise DataError(f"kNN needs 2-D arrays of equal width, got {db.shape} and {q.shape}")
    if len(db) == 0:
        raise DataError("kNN database is empty")
    if n_threads is not None:
        faiss.omp_set_num_threads(int(n_threads))
    k = int(min(k, len(db)))
    if metric == "cosine":
        db, q = db.copy(), q.copy()
        faiss.normalize_L2(db)
        faiss.normalize_L2(q)
        index: Any = faiss.IndexFlatIP(db.shape[1])
    elif metric == "l2":
        index = faiss.IndexFlatL2(db.shape[1])
    else:
        raise ConfigError(f"kNN metric must be 'cosine' or 'l2', got {metric!r}")
    index.add(db)
    scores, idx = index.search(q, k)
    return scores, idx


def knn_predict_proba(
    train_z: np.ndarray,
    train_y: np.ndarray,
    test_z: np.ndarray,
    n_classes: int,
    *,
    k: int = 20,
    temperature: float = 0.07,
    n_threads: int | None = None,
) -> np.ndarray:
    """Class probabilities of ``test_z`` by a similarity-weighted vote of its ``k`` nearest neighbours.

    Training rows labelled −1 are ignored. Weights are ``exp(cos_sim / temperature)`` (DINO's
    kNN, temperature 0.07); ``temperature <= 0`` means an unweighted majority vote.

    Example:
        >>> z = np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
        >>> knn_predict_proba(z, np.array([0, 0, 1]), z[:1], 2, k=2).round(2).tolist()
        [[1.0, 0.0]]
    """
    train_y = np.asarray(train_y, dtype=np.int64)
    labelled = train_y >= 0
    if not labelled.any():
        raise DataError("kNN probe: no labelled training samples")
    db, db_y = (train_z, train_y) if labelled.all() else (train_z[labelled], train_y[labelled])
    sims, idx = knn_search(db, test_z, k, metric="cosine", n_threads=n_threads)
    neighbour_y = db_y[idx]
    w = np.exp((sims - 1.0) / temperature) if temperature > 0 else np.ones_like(sims)  # shift: no overflow
    votes = np.zeros((len(test_z), n_classes), dtype=np.float64)
    np.add.at(votes, (np.repeat(np.arange(len(test_z)), idx.shape[1]), neighbour_y.ravel()), w.ravel())
    return votes / votes.sum(axis=1, keepdims=True)


def linear_probe_proba(
    train_z: np.ndarray,
    train_y: np.ndarray,
    test_z: np.ndarray,
    n_classes: int,
    *,
    C: float = 1.0,
    max_iter: int = 300,
) -> np.ndarray:
    """Multinomial logistic regression on standardised features; probabilities for ``test_z``.

    scikit-learn's L-BFGS solver: deterministic and fast for the sizes here (28k × 512 × 24 classes
    fits in seconds). Classes missing from the training rows get probability 0.

    Example:
        >>> z = np.array([[0.0], [0.1], [1.0], [1.1]], dtype=np.float32)
        >>> linear_probe_proba(z, np.array([0, 0, 1, 1]), z, 2).argmax(1).tolist()
        [0, 0, 1, 1]
    """
    train_y = np.asarray(train_y, dtype=np.int64)
    labelled = train_y >= 0
    seen = np.unique(train_y[labelled])
    out = np.zeros((len(test_z), n_classes), dtype=np.float64)
    if len(seen) == 0:
        raise DataError("linear probe: no labelled training samples")
    if len(seen) == 1:
        out[:, seen[0]] = 1.0
        return out
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(np.asarray(train_z, dtype=np.float64)[labelled], train_y[labelled])
    out[:, model.classes_] = model.predict_proba(np.asarray(test_z, dtype=np.float64))
    return out


def _probe_inputs(ctx: EvalContext) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    train, test = ctx.split()
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"probes need train and test rows, got {len(train)} train and {len(test)} test")
    return train, test, ctx.targets(), ctx.class_names()


@EVALUATIONS.register("knn")
def run_knn(ctx: EvalContext, *, k: int = 20, temperature: float = 0.07) -> EvalResult:
    """kNN probe: fit on ``ctx``'s train rows, score its test rows."""
    train, test, y, classes = _probe_inputs(ctx)
    z = ctx.embeddings
    counts = np.bincount(y[train][y[train] >= 0], minlength=len(classes))
    typical = int(np.median(counts[counts > 0])) if (counts > 0).any() else 0
    if k > typical > 0:
        log.warning("knn: k=%d is more than the %d training images of a typical class, so every vote also counts "
                    "other classes' images and favours the largest; a smaller k (-o knn.k=%d) suits this data set",
                    k, typical, max(1, typical // 2))
    probs = knn_predict_proba(z[train], y[train], z[test], len(classes), k=k, temperature=temperature)
    summary = {"k": k, "temperature": temperature, **classification_metrics(y[test], probs, classes)}
    return EvalResult("knn", summary, predictions_table(ctx.meta.iloc[test], y[test], probs, classes))


@EVALUATIONS.register("linear")
def run_linear(ctx: EvalContext, *, C: float = 1.0, max_iter: int = 300) -> EvalResult:
    """Linear probe (logistic regression on standardised embeddings): fit on train, score test."""
    train, test, y, classes = _probe_inputs(ctx)
    z = ctx.embeddings
    probs = linear_probe_proba(z[train], y[train], z[test], len(classes), C=C, max_iter=max_iter)
    summary = {"C": C, **classification_metrics(y[test], probs, classes)}
    return EvalResult("linear", summary, predictions_table(ctx.meta.iloc[test], y[test], probs, classes))
