"""Metadata selectors: pick samples with a ``{column: value}`` spec instead of special arguments.

A selector is a mapping from a metadata column to a value or a list of accepted values; every
column must match (logical AND). Values are compared numerically when both sides are numbers
(``dose == 5`` matches ``5.0``), otherwise as strings (``"DMSO"``).

Example:
    >>> meta = pd.DataFrame({"compound": ["DMSO", "cyc", "cyc"], "dose": [0, 5, 15]})
    >>> select(meta, {"compound": "cyc", "dose": [5, 50]}).tolist()
    [False, True, False]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from biorep.errors import ConfigError
from biorep.evaluate.context import require_columns

Selector = Mapping[str, Any]


def select(meta: pd.DataFrame, spec: Selector) -> np.ndarray:
    """Boolean mask of the rows of ``meta`` that match every ``column: value(s)`` of ``spec``."""
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(f"a selector must be a non-empty {{column: value}} mapping, got {spec!r}")
    require_columns(meta, list(spec), what="metadata (selector)")
    mask = np.ones(len(meta), dtype=bool)
    for column, wanted in spec.items():
        values = wanted if isinstance(wanted, (list, tuple, set, frozenset)) else [wanted]
        mask &= _matches(meta[column], list(values))
    return mask


def describe(spec: Selector) -> str:
    """A short human-readable form of a selector, e.g. ``compound=DMSO & dose∈[5, 15]``."""
    parts = []
    for column, wanted in spec.items():
        if isinstance(wanted, (list, tuple, set, frozenset)):
            parts.append(f"{column}∈{sorted(map(str, wanted))}")
        else:
            parts.append(f"{column}={wanted}")
    return " & ".join(parts)


def _matches(column: pd.Series, values: list[Any]) -> np.ndarray:
    mask = np.zeros(len(column), dtype=bool)
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    as_str = column.astype(str).to_numpy()
    for v in values:
        num = _as_number(v) if numeric else None
        if num is not None:
            mask |= np.isclose(column.to_numpy(dtype=float), num, rtol=1e-9, atol=0.0)
        else:
            mask |= as_str == str(v)
    return mask


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
