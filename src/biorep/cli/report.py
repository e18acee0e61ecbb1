"""``biorep report RUN... [--out report.html]``: one self-contained HTML report for one or more runs."""

from __future__ import annotations

from pathlib import Path

import typer

from biorep.errors import ConfigError
from biorep.rundir import REPORT


def default_out(runs: list[Path]) -> Path:
    """``<run>/report.html`` for one run, ``./report.html`` for several."""
    return runs[0] / REPORT if len(runs) == 1 else Path.cwd() / REPORT


def register(app: typer.Typer) -> None:
    """Add the ``report`` verb to ``app``."""

    @app.command("report")
    def report(
        runs: list[Path] = typer.Argument(
            ..., metavar="RUN...", help="Run directories (each with summary.json and config.yaml)."
        ),
        out: Path | None = typer.Option(
            None,
            "--out",
            "-o",
            help="HTML file to write (default: RUN/report.html for one run, ./report.html for several).",
        ),
        title: str | None = typer.Option(None, "--title", help="Page title."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing report."),
        projection: str = typer.Option(
            "auto", "--projection", help="Embedding maps: auto (UMAP, PCA below 15 points), umap or pca."
        ),
        max_points: int = typer.Option(
            5000, "--max-points", min=10, help="Embedding points drawn per map at most."
        ),
    ) -> None:
        """Write one self-contained HTML report (figures embedded) for one run or a comparison of runs."""
        from biorep.report.html import write_report
        from biorep.report.projection import PROJECTIONS

        if projection not in PROJECTIONS:
            raise ConfigError(f"--projection {projection!r}: choose one of {', '.join(PROJECTIONS)}")
        target = out if out is not None else default_out(runs)
        path = write_report(
            runs, target, title, overwrite=overwrite, projection=projection, max_points=max_points
        )
        typer.echo(f"report written to {path.resolve()}")
