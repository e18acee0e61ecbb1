"""``biorep ensemble RUN RUN [RUN...] --out DIR``: the members' mean class probabilities, evaluated.

Example:
    $ biorep ensemble runs/resnet18-s0 runs/resnet18-s1 runs/vit-s0 --out runs/ensemble
    $ biorep ensemble runs/a runs/b --out runs/ab --only classification --json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

_out = Console()


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * v:.2f} %"


def ensemble_cmd(
    runs: list[Path] = typer.Argument(..., metavar="RUN...", help="Two or more run directories of classifiers "
                                      "trained on the same data set and split."),
    out: Path = typer.Option(..., "--out", help="Folder for ensemble.json, evaluation.json and evaluation/."),
    only: list[str] = typer.Option([], "--only", metavar="NAME", help="classification and/or karyotype "
                                   "(repeatable or comma-separated; default: both where they apply)."),
    option: list[str] = typer.Option([], "--option", "-o", metavar="NAME.KEY=VALUE",
                                     help="Evaluation option, e.g. -o karyotype.doubt_threshold=0.7. Repeatable."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace another ensemble's results in --out."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder holding the built-in data sets."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda ... (default: CUDA when available)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as one JSON object on stdout."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars on stderr while decoding."),
) -> None:
    """Average the class probabilities of several runs (other seeds, backbones, methods or canvases) on
    their shared test split and score the mean: classification (calibrated on the shared validation
    split) and karyotype assembly, next to each member's own numbers.
    """
    from biorep.cli.evaluate import check_options, parse_options, split_names
    from biorep.evaluate.ensemble import evaluate_ensemble

    names, options = split_names(only), parse_options(option)
    check_options(options, names)
    results = evaluate_ensemble(runs, out, names=names, options=options, overwrite=overwrite,
                                data_root=data_root, device=device, progress=progress and not as_json)
    if as_json:
        typer.echo(json.dumps(results))
        return
    for key, res in results.items():
        summary = res["summary"]
        metric = "accuracy" if key == "classification" else "accuracy_assigned"
        table = Table(title=f"{key} (test, n={res.get('n')})")
        table.add_column("")
        table.add_column(metric, justify="right")
        for member in res["members"]:
            table.add_row(member["run"], _pct(member.get(metric)))
        table.add_row("[bold]ensemble[/]", f"[bold]{_pct(summary.get(metric))}[/]")
        _out.print(table)
    _out.print(f"results in {out}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``ensemble`` verb to ``app``."""
    app.command("ensemble")(ensemble_cmd)
