"""Targets from any metadata column (weak supervision: e.g. treated vs control)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from biorep.errors import ConfigError
from biorep.methods.base import MethodParams


class ColumnTargetParams(MethodParams):
    """Where a (weak) label comes from.

    ``column: None`` uses the dataset's label column. With ``control`` values, the target is binary:
    ``control`` (those values) vs ``treated`` (everything else); otherwise every distinct value of
    the column is a class (sorted). Missing values get target −1 (ignored by the losses).
    """

    column: str | None = None
    control: list[str] | None = Field(None, min_length=1)


def column_targets(
    params: ColumnTargetParams, meta: pd.DataFrame, targets: np.ndarray, classes: list[str]
) -> tuple[np.ndarray, list[str]]:
    """Per-image targets and class names for :class:`ColumnTargetParams`."""
    if params.column is None and params.control is None:
        return targets, classes
    if params.column is None:
        values = pd.Series(np.asarray(classes, dtype=object)[np.clip(targets, 0, None)], index=meta.index)
        values[targets < 0] = None
    else:
        if params.column not in meta.columns:
            raise ConfigError(
                f"method.column: metadata column {params.column!r} not found; "
                f"have {', '.join(map(str, meta.columns))}"
            )
        values = meta[params.column]
    missing = values.isna().to_numpy()
    as_str = values.astype(str)
    if params.control is not None:
        is_control = as_str.isin([str(c) for c in params.control]).to_numpy()
        if not is_control.any():
            raise ConfigError(
                f"method.control: none of {params.control} occurs in column {params.column or 'label'!r}"
            )
        out = np.where(is_control, 0, 1).astype(np.int64)
        out[missing] = -1
        return out, ["control", "treated"]
    names = sorted(as_str[~missing].unique().tolist())
    lookup = {n: i for i, n in enumerate(names)}
    out = np.array([lookup.get(v, -1) for v in as_str], dtype=np.int64)
    out[missing] = -1
    return out, names
