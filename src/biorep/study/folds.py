"""Numbers over folds: median ± MAD, a CI over folds, and paired comparisons of two setups.

A study with ``folds`` (e.g. leave-one-plate-out: every plate held out once) runs each setup once
per fold. Within a fold, an evaluation run with ``bootstrap: N`` stores its value, a percentile CI
and the N bootstrap replicates (:func:`biorep.evaluate.stats.ci_record`). Across folds:

- :func:`aggregate_folds` — median and MAD (unscaled) of the fold values, and a CI of that median:
  replicate ``b`` of the median is the median over folds of each fold's replicate ``b`` (the folds
  are fixed, the items within each fold resampled: a stratified bootstrap);
- :func:`compare_folds` — is setup A better than setup B? Two setups evaluated on the same items with
  the same seed get the same resamples, so replicate-wise differences bootstrap the *paired*
  difference; its median over folds and CI give the verdict: ``holds`` (CI above 0), ``does not
  hold`` (CI below 0) or ``cannot tell`` (CI contains 0, or no CI). Where the resampled items
  differ between the setups (e.g. the non-noise cells of a clustering), the replicates are not
  paired and the same subtraction gives the CI of a difference of independent estimates (wider).

Example:
    >>> a = [FoldValue("p1", 0.8, replicates=np.array([0.7, 0.8, 0.9])),
    ...      FoldValue("p2", 0.9, replicates=np.array([0.85, 0.9, 0.95]))]
    >>> aggregate_folds(a)["median"]
    0.85
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biorep.evaluate.stats import median_mad
from biorep.rundir import RunPaths, read_json

HOLDS, DOES_NOT_HOLD, CANNOT_TELL = "holds", "does not hold", "cannot tell"


@dataclass(frozen=True)
class FoldValue:
    """One setup's value of one task on one fold, with its bootstrap replicates when known."""

    fold: str
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    replicates: np.ndarray | None = field(default=None, repr=False)


def _num(x: Any) -> float | None:
    return None if x is None or not np.isfinite(float(x)) else float(x)


def _quantiles(reps: np.ndarray, level: float) -> tuple[float | None, float | None]:
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return None, None
    alpha = (1.0 - level) / 2
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    return float(low), float(high)


def _stack(values: Sequence[FoldValue]) -> np.ndarray | None:
    """Replicates as ``(n_folds, n_boot)``; None when a fold has none or their counts differ."""
    reps = [v.replicates for v in values]
    if not reps or any(r is None for r in reps) or len({len(r) for r in reps}) != 1:  # type: ignore[arg-type]
        return None
    return np.vstack([np.asarray(r, dtype=np.float64) for r in reps])  # type: ignore[arg-type]


def _fold_median(stack: np.ndarray) -> np.ndarray:
    out = np.full(stack.shape[1], np.nan)
    ok = np.isfinite(stack).any(axis=0)
    out[ok] = np.nanmedian(stack[:, ok], axis=0)
    return out


def aggregate_folds(values: Sequence[FoldValue], *, level: float = 0.95) -> dict[str, Any]:
    """``{median, mad, ci_low, ci_high, n_folds, per_fold}`` over the folds' values.

    The CI is of the median over folds (see the module docstring); None without replicates.
    """
    vals = [v.value for v in values if v.value is not None and np.isfinite(v.value)]
    med, mad = median_mad(vals) if vals else (float("nan"), float("nan"))
    stack = _stack(values)
    low, high = _quantiles(_fold_median(stack), level) if stack is not None else (None, None)
    return {
        "median": _num(med), "mad": _num(mad), "ci_low": low, "ci_high": high, "level": level,
        "n_folds": len(vals),
        "per_fold": [{"fold": v.fold, "value": _num(v.value) if v.value is not None else None,
                      "ci_low": v.ci_low, "ci_high": v.ci_high} for v in values],
    }


def verdict(low: float | None, high: float | None) -> str:
    """``holds`` when the CI of a difference lies above 0, ``does not hold`` below 0, else ``cannot tell``."""
    if low is None or high is None:
        return CANNOT_TELL
    if low > 0:
        return HOLDS
    if high < 0:
        return DOES_NOT_HOLD
    return CANNOT_TELL


def compare_folds(a: Sequence[FoldValue], b: Sequence[FoldValue], *, level: float = 0.95) -> dict[str, Any]:
    """Paired difference ``a − b`` over the folds both have: median, CI and :func:`verdict`.

    ``{"difference", "ci_low", "ci_high", "verdict", "n_folds", "per_fold": [a − b per fold]}``.
    """
    by_fold = {v.fold: v for v in b}
    pairs = [(x, by_fold[x.fold]) for x in a if x.fold in by_fold]
    diffs = [x.value - y.value for x, y in pairs if x.value is not None and y.value is not None]
    med = float(np.median(diffs)) if diffs else None
    sa, sb = _stack([x for x, _ in pairs]), _stack([y for _, y in pairs])
    low = high = None
    if sa is not None and sb is not None and sa.shape == sb.shape:
        low, high = _quantiles(_fold_median(sa - sb), level)
    return {"difference": med, "ci_low": low, "ci_high": high, "level": level,
            "verdict": verdict(low, high) if med is not None else CANNOT_TELL,
            "n_folds": len(diffs), "per_fold": diffs}


# ----------------------------------------------------------------------------- reading a study's runs
@dataclass(frozen=True)
class Task:
    """One number of an evaluation: ``evaluation.json[evaluation].summary`` at ``path`` (dotted; a
    ``best_per_group.<key>`` path takes the median over the groups' best rows). The bootstrap block
    of that evaluation, when present, gives the CI and replicates."""

    evaluation: str
    path: str
    higher_is_better: bool = True


def _dig(tree: Any, path: str) -> Any:
    node = tree
    parts = path.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, list):  # a list of records: the median of the rest of the path over them
            vals = [_dig(item, ".".join(parts[i:])) for item in node]
            vals = [v for v in vals if v is not None]
            return float(np.median(vals)) if vals else None
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def task_value(run_dir: str | Path, task: Task, fold: str = "") -> FoldValue:
    """The task's value (and bootstrap replicates) in one run directory; value None when absent."""
    path = RunPaths(Path(run_dir)).evaluation
    record = (read_json(path) if path.is_file() else {}).get(task.evaluation) or {}
    summary = record.get("summary") or {}
    value = _dig(summary, task.path)
    boot = summary.get("bootstrap") or {}
    reps = boot.get("replicates")
    sign = 1.0 if task.higher_is_better else -1.0
    arr = None if reps is None else sign * np.array([np.nan if r is None else r for r in reps], dtype=float)
    v = None if value is None else float(value)
    lo, hi = boot.get("ci_low"), boot.get("ci_high")
    if not task.higher_is_better:  # scores are oriented so that higher is better
        v = None if v is None else -v
        lo, hi = (None if hi is None else -hi), (None if lo is None else -lo)
    return FoldValue(fold, v, lo, hi, arr)


def fold_values(runs: Mapping[str, str | Path], task: Task) -> list[FoldValue]:
    """:func:`task_value` of each ``{fold: run_dir}``."""
    return [task_value(run_dir, task, fold) for fold, run_dir in runs.items()]
