"""One results table across runs: a row per run, flattened summary and evaluation numbers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from biorep.rundir import RunPaths, read_json, read_summary

SUMMARY_KEYS = (
    "method",
    "backbone",
    "epochs",
    "stopped_early",
    "wall_time_s",
    "time_per_epoch_s",
    "images_per_s",
    "peak_rss_mb",
    "peak_tracemalloc_mb",
    "peak_gpu_mb",
)


def flatten(tree: Any, prefix: str = "", max_depth: int = 4) -> dict[str, Any]:
    """Scalars of a nested JSON tree as ``{"a.b.c": value}``; lists and deeper levels are left out."""
    out: dict[str, Any] = {}
    if isinstance(tree, dict) and max_depth > 0:
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}.", max_depth - 1))
    elif isinstance(tree, bool | int | float | str) or tree is None:
        if isinstance(tree, float) and math.isnan(tree):
            tree = None
        out[prefix[:-1]] = tree
    return out


def run_row(run_dir: Path) -> dict[str, Any]:
    """The numbers of one run: selected summary keys and every scalar of its evaluation."""
    row: dict[str, Any] = {}
    paths = RunPaths(run_dir)
    if paths.summary.is_file():
        summary = read_summary(run_dir)
        row.update({k: summary.get(k) for k in SUMMARY_KEYS})
    if paths.evaluation.is_file():
        row.update(flatten(read_json(paths.evaluation)))
    return row


def results_table(runs_dir: Path, names: list[str]) -> pd.DataFrame:
    """A DataFrame indexed by setup name over the runs that exist under ``runs_dir``."""
    rows = {name: run_row(runs_dir / name) for name in names if (runs_dir / name).is_dir()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "setup"
    return table
