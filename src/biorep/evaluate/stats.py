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
    if n == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, level, 0)
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
        stats[b] = statistic(np.concatenate([members[i] for i in pick]))
    alpha = (1.0 - level) / 2
    low, high = np.nanquantile(stats, [alpha, 1 - alpha])
    return Interval(value, float(low), float(high), level, n_boot)


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
