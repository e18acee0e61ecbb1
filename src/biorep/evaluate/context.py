"""The common input of every evaluation and the ``EVALUATIONS`` registry.

An evaluation is a function ``fn(ctx: EvalContext, **options) -> EvalResult`` registered by name, so
the CLI and the study runner look evaluations up instead of branching on names.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biorep.errors import ConfigError, DataError, short_list
from biorep.registry import Registry
from biorep.rundir import atomic_write, to_jsonable, write_json

__all__ = [
    "EVALUATIONS",
    "EvalContext",
    "EvalResult",
    "Evaluation",
    "as_list",
    "encode_labels",
    "require_columns",
    "run_evaluation",
    "softmax",
    "to_jsonable",
]


@dataclass
class EvalContext:
    """Frozen embeddings + metadata (+ optional classifier outputs) that evaluations read.

    Attributes:
        embeddings: ``(N, D)`` float array, one row per sample.
        meta: ``N`` rows of metadata (any columns: label, case, karyogram, plate, well, compound, dose...).
        label_column: column of ``meta`` holding the class label (probes, classification, karyotype).
        classes: ordered class names; the columns of ``probs``/``logits``. Inferred from the label
            column (sorted unique values) when not given.
        probs: ``(N, K)`` class probabilities, or None.
        logits: ``(N, K)`` logits, or None (turned into probabilities with a softmax when needed).
        group_columns: metadata columns to report per group (plate, cell line...).
        train_idx: rows used to fit probes; None = all rows not in ``test_idx``.
        test_idx: rows scored; None = all rows.

    Example:
        >>> ctx = EvalContext(np.eye(3, dtype=np.float32), pd.DataFrame({"y": ["a", "b", "a"]}),
        ...                   label_column="y")
        >>> ctx.class_names(), ctx.targets().tolist()
        (['a', 'b'], [0, 1, 0])
    """

    embeddings: np.ndarray
    meta: pd.DataFrame
    label_column: str | None = None
    classes: list[str] | None = None
    probs: np.ndarray | None = None
    logits: np.ndarray | None = None
    group_columns: list[str] = field(default_factory=list)
    train_idx: np.ndarray | None = None
    test_idx: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.embeddings = np.asarray(self.embeddings)
        if self.embeddings.ndim != 2:
            raise DataError(f"embeddings must be 2-D (N, D), got shape {self.embeddings.shape}")
        if len(self.meta) != len(self.embeddings):
            raise DataError(
                f"metadata has {len(self.meta)} rows but embeddings have {len(self.embeddings)}"
            )
        self.meta = self.meta.reset_index(drop=True)
        for name in ("probs", "logits"):
            arr = getattr(self, name)
            if arr is not None and (np.ndim(arr) != 2 or len(arr) != len(self.embeddings)):
                raise DataError(f"{name} must have shape (N={len(self.embeddings)}, K), got {np.shape(arr)}")
        for col in [self.label_column, *self.group_columns]:
            if col is not None:
                require_columns(self.meta, [col])

    # -- labels -----------------------------------------------------------------------------------
    def class_names(self) -> list[str]:
        """The ordered class names (given, or the sorted distinct labels)."""
        if self.classes is not None:
            return [str(c) for c in self.classes]
        if self.label_column is None:
            raise ConfigError("this evaluation needs a label column (label_column) or class names")
        values = self.meta[self.label_column].dropna().astype(str).unique()
        return sorted(values, key=_natural_key)

    def targets(self) -> np.ndarray:
        """Label of every row as an index into :meth:`class_names` (−1 when missing or unknown)."""
        if self.label_column is None:
            raise ConfigError("this evaluation needs a label column (label_column)")
        names = self.class_names()
        values = self.meta[self.label_column]
        y = encode_labels(values, names)
        given = values.dropna().astype(str)
        if len(given) and (y < 0).all():  # labels there, none of them a class: scores would be meaningless
            seen = sorted(given.unique(), key=_natural_key)
            raise DataError(
                f"no label in column {self.label_column!r} is a class of the model: the data has "
                f"{short_list(seen, 6, repr)}, the model knows {short_list(names, 6, repr)} (rename the "
                "data's classes to the model's)"
            )
        return y

    def probabilities(self) -> np.ndarray | None:
        """``probs`` if given, else ``softmax(logits)``, else None."""
        if self.probs is not None:
            return np.asarray(self.probs, dtype=np.float64)
        if self.logits is not None:
            return softmax(np.asarray(self.logits, dtype=np.float64))
        return None

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """``(train_idx, test_idx)``; a missing side is the complement of the other (all rows if both)."""
        n = len(self.embeddings)
        test = np.arange(n) if self.test_idx is None else np.asarray(self.test_idx, dtype=np.int64)
        if self.train_idx is not None:
            train = np.asarray(self.train_idx, dtype=np.int64)
        else:
            train = np.setdiff1d(np.arange(n), test) if self.test_idx is not None else np.arange(n)
        return train, test


@dataclass
class EvalResult:
    """What an evaluation returns: a JSON-able summary and an optional tidy table.

    Example:
        >>> EvalResult("knn", {"accuracy": 0.9}).to_dict()
        {'name': 'knn', 'summary': {'accuracy': 0.9}}
    """

    name: str
    summary: dict[str, Any]
    table: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON types (numpy scalars converted, NaN → None)."""
        return {"name": self.name, "summary": to_jsonable(self.summary)}

    def save(self, out_dir: str | os.PathLike[str], stem: str | None = None) -> dict[str, Path]:
        """Write ``<stem>.json`` (summary) and, with a table, ``<stem>.csv`` atomically
        (:func:`biorep.rundir.atomic_write`).

        ``stem`` defaults to the evaluation name. Returns ``{"json": path, "csv": path}``.
        """
        out = Path(out_dir)
        stem = stem or self.name
        paths = {"json": write_json(out / f"{stem}.json", self.to_dict(), indent=1)}
        table = self.table
        if table is not None:
            paths["csv"] = atomic_write(out / f"{stem}.csv", lambda p: table.to_csv(p, index=False))
        return paths


Evaluation = Callable[..., EvalResult]
EVALUATIONS: Registry[Evaluation] = Registry("evaluation")


def run_evaluation(name: str, ctx: EvalContext, **options: Any) -> EvalResult:
    """Look ``name`` up in :data:`EVALUATIONS` and run it; unknown options are a :class:`ConfigError`.

    Example:
        >>> res = run_evaluation("knn", ctx, k=10)  # doctest: +SKIP
    """
    fn = EVALUATIONS.get(name)
    params = inspect.signature(fn).parameters
    allowed = [p for p in list(params)[1:] if params[p].kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"evaluation {name!r}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )
    return fn(ctx, **options)


# -- small shared helpers -------------------------------------------------------------------------
def require_columns(meta: pd.DataFrame, columns: Sequence[str], what: str = "metadata") -> None:
    """Raise a :class:`DataError` naming the columns of ``meta`` that are missing."""
    missing = [c for c in columns if c not in meta.columns]
    if missing:
        raise DataError(
            f"{what} has no column(s) {', '.join(map(repr, missing))}; available: "
            + ", ".join(map(str, meta.columns))
        )


def encode_labels(values: pd.Series, classes: Sequence[str]) -> np.ndarray:
    """Map label values to indices into ``classes`` (compared as strings); −1 where missing/unknown."""
    lookup = {str(c): i for i, c in enumerate(classes)}
    out = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values.to_numpy()):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        out[i] = lookup.get(str(v), -1)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def as_list(columns: str | Sequence[str] | None) -> list[str]:
    """``None`` → ``[]``, ``"a"`` → ``["a"]``, sequences unchanged (as a list)."""
    if columns is None:
        return []
    if isinstance(columns, str):
        return [columns]
    return list(columns)


def _natural_key(s: str) -> tuple[int, float, str]:
    """Sort numbers numerically before other strings ("2" < "10" < "X")."""
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)

