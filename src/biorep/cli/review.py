"""``biorep review RUN [--data ...]``: an interactive karyotype review page (one self-contained HTML).

Assembles the karyograms (as ``biorep karyotype`` does, writing nothing into the run) and writes a
page where a person moves crops to their class, marks them and exports a CSV manifest of the
corrections that ``biorep train`` reads as data.

Example:
    $ biorep review runs/pki3                          # test split → runs/pki3/review.html
    $ biorep review runs/pki3 --data lab_cells.csv --out lab-review.html
    $ biorep train configs/finetune.yaml -s data.dataset=corrections.csv -s data.label=label
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def review_cmd(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory of a classifier over 1..22, X, Y."),
    data: Optional[str] = typer.Option(None, "--data", metavar="NAME_OR_PATH",
                                       help="Review another data set (with a karyogram column) instead."),
    split: Optional[str] = typer.Option(None, "--split", help="test | val | train | all (default: test; all with --data)."),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default: RUN/review.html)."),
    karyogram: list[str] = typer.Option([], "--karyogram", "-k", help="Only these karyograms (repeatable)."),
    max_karyograms: int = typer.Option(50, "--max-karyograms", min=1, help="Karyograms on the page at most (flagged first)."),
    option: list[str] = typer.Option([], "--option", "-o", metavar="KEY=VALUE",
                                     help="Assembly option KEY=VALUE, e.g. -o doubt_threshold=0.7. Repeatable."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder holding the built-in data sets."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda ... (default: CUDA when available)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing page."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars on stderr while decoding."),
) -> None:
    """Write an interactive review page: karyograms laid out by assigned class, doubtful crops in red;
    move crops, mark them, export the corrections as a CSV manifest for `biorep train`."""
    from biorep.cli.evaluate import parse_options
    from biorep.evaluate.karyotype_run import assemble_run
    from biorep.report.review import REVIEW_FILE, write_review

    opts = parse_options(option, section="karyotype").get("karyotype", {})
    asm = assemble_run(run, data=data, split=split, options=opts, data_root=data_root,
                       progress=progress, device=device)
    suffix = asm.key.removeprefix("karyotype")
    target = out if out is not None else run / REVIEW_FILE.replace(".html", f"{suffix}.html")
    s = asm.summary
    subtitle = (f"run {run.resolve().name} · {s['data']} ({s['split']}) · {s['n_karyograms']} karyograms, "
                f"{s['n_crops']} crops, {s['n_doubtful']} doubtful")
    path = write_review(asm.crops, target, title=f"Karyotype review: {run.resolve().name}",
                        subtitle=subtitle, doubt_threshold=float(s.get("doubt_threshold", 0.5)),
                        karyograms=karyogram or None, max_karyograms=max_karyograms, overwrite=overwrite)
    typer.echo(f"review page written to {path.resolve()} ({s['n_review']} crops to check)")


def register(app: typer.Typer) -> None:
    """Add the ``review`` verb to ``app``."""
    app.command("review")(review_cmd)
