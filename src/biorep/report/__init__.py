"""Reports: figures (PNG bytes), one self-contained HTML page per run or comparison of runs, karyogram
figures from an assembly's crop files, and the interactive karyotype review page.

Example:
    >>> from biorep.report import write_report
    >>> write_report([Path("runs/ce"), Path("runs/supcon")], Path("report.html"))  # doctest: +SKIP
"""

from __future__ import annotations

from biorep.report.figures import (
    comparison_bars,
    confusion_matrix,
    embedding_map,
    embedding_maps,
    learning_curves,
    render_karyogram,
)
from biorep.report.html import key_metrics, render_report, write_report
from biorep.report.karyogram import draw_karyograms
from biorep.report.review import render_review, write_review
from biorep.report.rundir import RunRecord, read_run

__all__ = [
    "RunRecord",
    "comparison_bars",
    "confusion_matrix",
    "draw_karyograms",
    "embedding_map",
    "embedding_maps",
    "key_metrics",
    "learning_curves",
    "read_run",
    "render_karyogram",
    "render_report",
    "render_review",
    "write_report",
    "write_review",
]
