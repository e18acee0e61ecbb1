"""``biorep karyotype RUN``: constrained karyotype assembly per karyogram, with figures.

Example:
    $ biorep karyotype runs/supcon                      # test split, 12 karyogram figures
    $ biorep karyotype runs/supcon --split all --max-images 0 --json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from biorep.rundir import RunPaths

_out = Console()


def karyotype_cmd(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory of a classifier over 1..22, X, Y."),
    data: Optional[str] = typer.Option(None, "--data", metavar="NAME_OR_PATH",
                                       help="Assemble another data set (with a karyogram column) instead."),
    split: Optional[str] = typer.Option(None, "--split", help="test | val | train | all (default: test; all with --data)."),
    max_images: int = typer.Option(12, "--max-images", min=0, help="Karyogram figures to draw (flagged ones first)."),
    option: list[str] = typer.Option([], "--option", "-o", metavar="KEY=VALUE", help="Assembly option KEY=VALUE (YAML value), e.g. "
                                     "-o doubt_threshold=0.7 -o karyogram_column=cell. Repeatable."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder holding the built-in data sets."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda ... (default: CUDA when available)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars on stderr while decoding."),
) -> None:
    """Assign each karyogram's crops to chromosome classes (two per autosome, XX or XY) from the
    classifier's log-probabilities; report accuracy before and after, and flagged karyograms.

    Writes RUN/karyotype/assignments.csv, summary.json and <karyogram>.png figures, and stores the
    result in RUN/evaluation.json under "karyotype".
    """
    from biorep.cli.evaluate import check_options, parse_options
    from biorep.evaluate.run import karyotype_run
    from biorep.report.karyogram import draw_karyograms

    opts = parse_options(option, section="karyotype").get("karyotype", {})
    check_options({"karyotype": opts})
    # evaluate assigns, report draws: the verb composes the two stages (evaluate never imports report)
    summary = karyotype_run(run, data=data, split=split, max_images=max_images, options=opts,
                            data_root=data_root, progress=progress and not as_json, device=device,
                            figures=draw_karyograms)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    _print(run, summary)


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def _print(run: Path, s: dict[str, Any]) -> None:
    table = Table(title=f"karyotype assembly ({s['split']}: {s['n_karyograms']} karyograms, {s['n_crops']} crops)",
                  show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("accuracy before (argmax)", _pct(s.get("accuracy_argmax")))
    table.add_row("accuracy after (assigned)", _pct(s.get("accuracy_assigned")))
    table.add_row("changed crops", str(s["n_changed"]))
    table.add_row("doubtful crops", str(s["n_doubtful"]))
    table.add_row("flagged karyograms", str(s["n_flagged"]))
    table.add_row("sex calls", ", ".join(f"{k}: {v}" for k, v in s.get("sex_calls", {}).items()) or "—")
    _out.print(table)
    for f in s.get("flagged_karyograms", []):
        _out.print(f"[red]flagged[/] {f['karyogram']}: {f['reason']}", highlight=False)
    _print_review(s)
    from biorep.evaluate.karyotype_run import ASSIGNMENTS

    folder = RunPaths(run).karyotype
    _out.print(f"assignments: {folder / ASSIGNMENTS}; {len(s.get('images', []))} figure(s) in {folder}",
               highlight=False)


def _print_review(s: dict[str, Any], limit: int = 5, karyograms: int = 6) -> None:
    """Per karyogram, the crops to check: those the assembly changed (first) or doubts (least sure first)."""
    listed = [k for k in s.get("per_karyogram", []) if k.get("review")]
    if not listed:
        return
    table = Table(title=f"to review: {s.get('n_review', 0)} crop(s) the assembly changed or doubts "
                        "(all in karyotype/summary.json; `biorep review RUN` opens them)")
    for col in ("karyogram", "crop", "argmax → assigned", "p", ""):
        table.add_column(col, overflow="fold")
    for k in listed[:karyograms]:
        for i, r in enumerate(k["review"][:limit]):
            table.add_row(k["karyogram"] if i == 0 else "", Path(r["path"]).name,
                          f"{r['argmax']} → {r['assigned']}", f"{r['p_assigned']:.2f}",
                          "changed" if r["argmax"] != r["assigned"] else "doubtful")
        if len(k["review"]) > limit:
            table.add_row("", f"… {len(k['review']) - limit} more", "", "", "")
    if len(listed) > karyograms:
        table.add_row(f"… {len(listed) - karyograms} more karyograms", "", "", "", "")
    _out.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``karyotype`` verb to ``app``."""
    app.command("karyotype")(karyotype_cmd)
