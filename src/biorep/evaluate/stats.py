"""Error bars: bootstrap confidence intervals (resampling whole groups) and median ± MAD over folds.

scipy's ``scipy.stats.bootstrap`` resamples observations independently; biorep's answers need the
*group* (case, karyogram, well, field) resampled as a unit, since crops of one case are not
independent, hence this small wrapper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval."""

    value: float
    low: float
    high: float
    level: float = 0.95
    n_boot: int = 0

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}value": self.value, f"{prefix}ci_low": self.low, f"{prefix}ci_high": self.high}


def bootstrap_replicates(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    groups: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[Interval, np.ndarray]:
    """:func:`bootstrap_ci` and its ``n_boot`` replicates (NaN where the statistic is undefined).

    The resampled indices depend only on ``n``, ``groups`` and ``seed``, so two representations
    scored on the same items with the same seed get the *same* resamples: their replicates can be
    subtracted to bootstrap a paired difference (see :func:`paired_difference`).
    """
    if n == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, level, 0), np.full(n_boot, np.nan)
    rng = np.random.default_rng(seed)
    everything = np.arange(n)
    value = float(statistic(everything))
    if groups is None:
        members = [np.array([i]) for i in range(n)]
    else:
        labels = np.asarray(groups)
        if len(labels) != n:
            raise ValueError(f"groups has {len(labels)} labels for {n} items")
        _, inverse = np.unique(labels, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.flatnonzero(np.diff(inverse[order])) + 1
        members = np.split(order, bounds)
    k = len(members)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, k, size=k)
        try:
            stats[b] = statistic(np.concatenate([members[i] for i in pick]))
        except (ValueError, ZeroDivisionError):  # e.g. a resample with one class only
            stats[b] = np.nan
    alpha = (1.0 - level) / 2
    if np.isfinite(stats).any():
        low, high = np.nanquantile(stats, [alpha, 1 - alpha])
    else:
        low = high = float("nan")
    return Interval(value, float(low), float(high), level, n_boot), stats


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    groups: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap CI of ``statistic(indices)`` over ``n`` items, resampling whole ``groups``.

    ``statistic`` receives an index array into the ``n`` items (with repeats) and returns a float.
    With ``groups`` (one label per item), groups are drawn with replacement and all their items
    come along (a cluster bootstrap).

    Example:
        >>> correct = np.array([1, 1, 0, 1])
        >>> ci = bootstrap_ci(lambda idx: correct[idx].mean(), len(correct), n_boot=200)
        >>> ci.low <= ci.value <= ci.high
        True
    """
    return bootstrap_replicates(statistic, n, groups=groups, n_boot=n_boot, level=level, seed=seed)[0]


def ci_record(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    metric: str,
    groups: Sequence | np.ndarray | None = None,
    by: Sequence[str] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, object]:
    """The ``bootstrap`` block an evaluation summary carries: value, CI and the replicates.

    ``{"metric", "value", "ci_low", "ci_high", "level", "n_boot", "by", "n_units", "replicates"}``;
    the replicates (a list) let a study aggregate folds and pair setups (:mod:`biorep.study.folds`).
    """
    ci, reps = bootstrap_replicates(statistic, n, groups=groups, n_boot=n_boot, level=level, seed=seed)
    n_units = int(len(np.unique(np.asarray(groups)))) if groups is not None else int(n)
    return {"metric": metric, "value": _finite(ci.value), "ci_low": _finite(ci.low),
            "ci_high": _finite(ci.high), "level": level, "n_boot": n_boot, "by": list(by or []),
            "n_units": n_units, "replicates": [_finite(x) for x in reps]}


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def unit_labels(meta: "object", by: Sequence[str] | None) -> np.ndarray | None:
    """One label per row of ``meta`` (a DataFrame) from the ``by`` columns (None: each row its own)."""
    if not by:
        return None
    frame = meta[list(by)].astype(str)  # type: ignore[index]
    return frame.agg("/".join, axis=1).to_numpy()


def median_mad(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Median and median absolute deviation (unscaled) of ``values``, NaNs ignored.

    Example:
        >>> median_mad([0.8, 0.9, 1.0])
        (0.9, 0.1)
    """
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(arr))
    return med, float(np.round(np.median(np.abs(arr - med)), 12))
