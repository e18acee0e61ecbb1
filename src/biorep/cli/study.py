"""``biorep study CONFIG.yaml``: train and evaluate every setup of a study grid, then compare them.

Example:
    $ biorep study configs/studies/screening-16.yaml                         # into runs/screening-16
    $ biorep study configs/studies/screening-16.yaml --set train.epochs=50 --out runs/s16-e50
    $ biorep study configs/studies/screening-16.yaml --only byol-random-multi --no-report

The study folder holds ``runs/<setup>/`` (one run directory per setup; ``<setup>@<fold>`` when the
study has folds), ``study.json``, ``results.csv`` / ``results.md`` (one row per run, rewritten after
every setup) and ``report.html`` (the comparison report, regenerated on every call). Running the same
command again skips finished setups, resumes interrupted ones from their last checkpoint and
evaluates what is missing.

Every setup is trained in a fresh child process (``--isolate``, the default), so each run's
``peak_rss_mb`` is its own peak rather than the largest of all setups trained before it in the same
process (``ru_maxrss`` only grows), and memory is returned to the system between setups.

A thin layer over :mod:`biorep.study.session` (the library functions that do the work).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from biorep.errors import ConfigError
from biorep.study.session import (  # re-exported: older scripts import them from here
    PreparedStudy,
    StudyResult,
    fmt_seconds,
    parse_overrides,
    prepare_study,
    run_prepared,
    train_isolated,
    write_study_report,
)

__all__ = [
    "PreparedStudy",
    "StudyResult",
    "parse_overrides",
    "prepare_study",
    "register",
    "results_rich_table",
    "run_prepared",
    "study_cmd",
    "train_isolated",
    "write_study_report",
]

_out = Console()

#: Columns of the results table shown at the end (header, column); absent ones are left out.
SHOWN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("method", "method"),
    ("epochs", "epochs"),
    ("s/epoch", "time_per_epoch_s"),
    ("train s", "wall_time_s"),
    ("RSS MiB", "peak_rss_mb"),
    ("heap MiB", "peak_tracemalloc_mb"),
    ("D⁻¹", "similarity.summary.D_inv.median"),
    ("d", "similarity.summary.d.median"),
    ("AUC", "treated_vs_control.summary.overall.roc_auc"),
    ("F1", "treated_vs_control.summary.overall.f1"),
    ("rep. mAP", "replicate_map.summary.mean_map"),
    ("label mAP", "label_map.summary.mean_map"),
    ("kNN acc", "knn.summary.accuracy"),
    ("linear acc", "linear.summary.accuracy"),
    ("accuracy", "classification.summary.accuracy"),
)

# ----------------------------------------------------------------------------- printing
def results_rich_table(table: pd.DataFrame, title: str) -> Table:
    """The main columns of a results table (see :data:`SHOWN_COLUMNS`) as a rich table."""
    shown = [(h, c) for h, c in SHOWN_COLUMNS if c in table.columns and table[c].notna().any()]
    out = Table(title=title)
    out.add_column("setup")
    for header, _ in shown:
        out.add_column(header, justify="right")
    for name, row in table.iterrows():
        out.add_row(str(name), *(_cell(row[c]) for _, c in shown))
    return out


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def _echo(message: str) -> None:
    _out.print(message, markup=False, highlight=False, soft_wrap=True)


def study_cmd(
    config: Path = typer.Argument(
        ..., help="Study config (YAML): name, base, grid, extra, set, evaluations."
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Study folder (default: runs/<study name>)."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a base config value for every setup: KEY=VALUE (YAML), repeatable; "
        "wins over the study's own 'set' section."
    ),
    only: list[str] = typer.Option([], "--only", help="Run only this setup (repeatable)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write <out>/report.html at the end."),
    isolate: bool = typer.Option(
        True, "--isolate/--no-isolate", help="Train each setup in a fresh process (per-setup peak RSS)."
    ),
    projection: str = typer.Option(
        "auto", "--report-projection", help="Embedding maps in the report: auto (UMAP), umap or pca (fast)."
    ),
) -> None:
    """Train and evaluate every setup of a study; rerun the same command to resume an interrupted one."""
    from biorep.report.projection import PROJECTIONS

    if projection not in PROJECTIONS:
        raise ConfigError(f"--report-projection {projection!r}: choose one of {', '.join(PROJECTIONS)}")
    prep = prepare_study(config, set_, out=out, only=only or None)
    try:
        result = run_prepared(prep, report=report, isolate=isolate, echo=_echo, projection=projection)
    except KeyboardInterrupt as exc:  # handled here: typer turns an escaping one into a bare Exit(130)
        _echo(f"interrupted; run the same command again to resume the study in {prep.out}")
        raise typer.Exit(int(getattr(exc, "exit_code", 130))) from exc  # 143 for SIGTERM
    if not result.table.empty:
        _out.print(results_rich_table(result.table, f"study {prep.study.name} — {prep.out}"))
    _echo(f"results: {prep.out / 'results.csv'} and results.md ({fmt_seconds(result.wall_time_s)})")


def register(app: typer.Typer) -> None:
    """Add the ``study`` verb to ``app``."""
    app.command("study")(study_cmd)
