"""Calibrated review: temperature scaling, expected calibration error, accuracy vs coverage.

A lab checks what the model is unsure of, so the confidence has to mean something. Temperature
scaling (Guo et al., ICML 2017) divides the logits by one scalar ``T`` fitted on *validation* logits
by minimising the negative log-likelihood; the argmax (so the accuracy) is unchanged, only the
confidence moves. The expected calibration error (ECE) is the gap between confidence and accuracy
averaged over equal-width confidence bins, weighted by the share of samples in each bin. The
coverage table answers "how accurate are the crops the model is most sure of": accuracy on the
⌈c·n⌉ most confident samples for c = 90 / 95 / 99 / 100 %, and the confidence threshold that keeps them.

Hand-written because neither scikit-learn nor torch ships temperature scaling or a top-c coverage
table; the fit is a bounded 1-D minimisation of ``log T`` (scipy).

Example:
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 500)
    >>> logits = 8.0 * np.eye(3)[y] + 4.0 * rng.normal(size=(500, 3))     # overconfident
    >>> t = fit_temperature(logits, y)
    >>> t > 1.0, ece(softmax(logits / t), y) < ece(softmax(logits), y)
    (True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: The coverages of the default accuracy-vs-coverage table.
COVERAGES = (0.90, 0.95, 0.99, 1.0)
#: Equal-width confidence bins of the ECE.
N_BINS = 15


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _labelled(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(y, dtype=np.int64)
    if p.ndim != 2 or len(p) != len(t):
        raise ValueError(f"probabilities must have shape (N={len(t)}, K), got {p.shape}")
    keep = t >= 0
    return p[keep], t[keep]


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)`` (rows with y < 0 ignored)."""
    z, t = _labelled(np.asarray(logits, dtype=np.float64) / float(temperature), y)
    if len(t) == 0:
        return float("nan")
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(t)), t].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature ``T`` (within ``bounds``) minimising the NLL of ``softmax(logits / T)``.

    Fit it on validation rows only; 1.0 when there are no labelled rows.
    """
    from scipy.optimize import minimize_scalar

    z, t = _labelled(np.asarray(logits, dtype=np.float64), y)
    if len(t) == 0:
        return 1.0
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    res = minimize_scalar(lambda s: nll(z, t, math.exp(s)), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-4})
    return float(math.exp(res.x))


def ece(probs: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error of the top-class confidence over ``n_bins`` equal-width bins.

    Example:
        >>> ece(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]))   # bins: (0.9 → 1), (0.6 → 0)
        0.35
    """
    p, t = _labelled(probs, y)
    if len(t) == 0:
        return float("nan")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = which == b
        if m.any():
            total += m.sum() * abs(correct[m].mean() - conf[m].mean())
    return float(round(total / len(t), 12))


def coverage_table(
    probs: np.ndarray, y: np.ndarray, coverages: Sequence[float] = COVERAGES
) -> list[dict[str, Any]]:
    """Accuracy on the ⌈c·n⌉ most confident samples for every coverage ``c``.

    Rows: ``coverage``, ``n`` (samples kept), ``accuracy`` on them, ``threshold`` (the lowest
    confidence kept: reviewing every crop below it leaves the rest at that accuracy), ``n_review``
    (samples left for a person). Ties in confidence are broken by the sample order.

    Example:
        >>> p = np.array([[0.99, 0.01], [0.9, 0.1], [0.8, 0.2], [0.6, 0.4]])
        >>> [(r["n"], r["accuracy"]) for r in coverage_table(p, np.array([0, 0, 1, 0]), [0.5, 1.0])]
        [(2, 1.0), (4, 0.75)]
    """
    p, t = _labelled(probs, y)
    n = len(t)
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == t
    order = np.argsort(-conf, kind="stable")
    rows: list[dict[str, Any]] = []
    for c in coverages:
        if not 0 < c <= 1:
            raise ValueError(f"coverage {c} must lie in (0, 1]")
        k = min(n, max(1, math.ceil(c * n - 1e-9))) if n else 0
        kept = order[:k]
        rows.append({
            "coverage": float(c),
            "n": int(k),
            "accuracy": float(correct[kept].mean()) if k else float("nan"),
            "threshold": float(conf[kept].min()) if k else float("nan"),
            "n_review": int(n - k),
        })
    return rows


def calibration_summary(
    val_logits: np.ndarray | None,
    val_y: np.ndarray | None,
    test_logits: np.ndarray,
    test_y: np.ndarray,
    *,
    coverages: Sequence[float] = COVERAGES,
    n_bins: int = N_BINS,
) -> dict[str, Any]:
    """Temperature fitted on the validation rows, ECE and NLL of the test rows before and after, and
    the accuracy-vs-coverage table of the calibrated test confidences.

    Without validation rows (``val_logits`` None or empty) the temperature stays 1 and
    ``calibrated`` is False (the table then uses the raw confidences).
    """
    test_logits = np.asarray(test_logits, dtype=np.float64)
    have_val = val_logits is not None and val_y is not None and int((np.asarray(val_y) >= 0).sum()) > 0
    temperature = fit_temperature(val_logits, val_y) if have_val else 1.0
    before = softmax(test_logits)
    after = softmax(test_logits / temperature)
    return {
        "calibrated": bool(have_val),
        "temperature": float(temperature),
        "n_calibration": int((np.asarray(val_y) >= 0).sum()) if have_val else 0,
        "ece_before": ece(before, test_y, n_bins),
        "ece_after": ece(after, test_y, n_bins),
        "nll_before": nll(test_logits, test_y),
        "nll_after": nll(test_logits, test_y, temperature),
        "coverage": coverage_table(after, test_y, coverages),
    }
