"""``biorep predict RUN IMAGES...``: class and per-class probabilities for new images.

Example:
    $ biorep predict runs/supcon ./new_case/ --out new_case.csv
    $ biorep predict runs/supcon a.png b.tif manifest.csv --overwrite
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from biorep.errors import RunDirError

_err = Console(stderr=True)


def predict_cmd(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory (from `biorep train`)."),
    inputs: list[Path] = typer.Argument(..., metavar="IMAGES_OR_MANIFEST...",
                                        help="Image files, folders (searched recursively) or CSV/Parquet manifests."),
    out: Path = typer.Option(Path("predictions.csv"), "--out", "-o", help="File to write: .csv or .parquet."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    path_column: str = typer.Option("path", "--path-column", help="Manifest column holding image paths."),
    batch_size: int = typer.Option(128, "--batch-size", min=1, help="Images per forward pass."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder holding the built-in data sets "
                                             "(only needed to recover the run's canvas scale)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda ... (default: CUDA when available)."),
    via: str = typer.Option("auto", "--via", help="classifier (the run's own head), knn (a vote of the run's "
                            "labelled training images, for runs without a classifier) or auto."),
    k: int = typer.Option(20, "--k", min=1, help="Neighbours of the kNN vote (--via knn)."),
    strict: bool = typer.Option(False, "--strict", help="Refuse images whose pixel type, channel count or size "
                                "differs from the run's training images (default: a warning)."),
    allow_unfinished: bool = typer.Option(False, "--allow-unfinished",
                                          help="Use a run that has not finished training (its latest "
                                               "checkpoint), with a warning, instead of refusing it."),
) -> None:
    """Predict classes with the run's own preprocessing (geometry incl. canvas scale, channels, scaler).

    The CSV has one row per image: path, manifest metadata, predicted, confidence, p_<class> per
    class, predicted_by and error. Runs without a classifier (BYOL, SimCLR, autoencoder ...) predict
    by a cosine kNN vote of their labelled training images, as the knn evaluation scores them.
    Images that cannot be read are listed with the reason (also on stderr); the rest are still
    predicted. Images unlike the training images (pixel type, channels, size) get a warning naming
    the difference, or an error with --strict.
    """
    from biorep.evaluate.run import predict_images
    from biorep.rundir import atomic_write, output_file

    if out.suffix.lower() not in WRITERS:
        raise RunDirError(f"--out {out}: the file name must end in {' or '.join(WRITERS)} (the table's format)")
    target = output_file(out, overwrite=overwrite)
    table = predict_images(run, [str(p) for p in inputs], path_column=path_column, batch_size=batch_size,
                           data_root=data_root, device=device, via=via, k=k, allow_unfinished=allow_unfinished,
                           strict=strict)
    atomic_write(target, lambda p: WRITERS[out.suffix.lower()](table, p))
    failed = table[table["error"].notna()]
    for path, reason in zip(failed["path"], failed["error"]):
        _err.print(f"[yellow]not predicted[/] {path}: {reason}", highlight=False)
    n_ok = len(table) - len(failed)
    typer.echo(f"predicted {n_ok} image(s)" + (f", {len(failed)} could not be read" if len(failed) else "")
               + f"; written to {out}")


#: --out suffix → how the predictions table is written.
WRITERS = {
    ".csv": lambda table, p: table.to_csv(p, index=False),
    ".parquet": lambda table, p: table.to_parquet(p, index=False),
}


def register(app: typer.Typer) -> None:
    """Add the ``predict`` verb to ``app``."""
    app.command("predict")(predict_cmd)
