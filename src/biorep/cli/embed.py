"""``biorep embed RUN``: backbone representations of a split (or of new data) with all metadata.

Example:
    $ biorep embed runs/supcon                       # RUN/embeddings/test.parquet + test.h5ad
    $ biorep embed runs/supcon --split all --out emb/
    $ biorep embed runs/byol --data ./new_plate/     # RUN/embeddings/new_plate.all.parquet + .h5ad
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from biorep.errors import ConfigError

FORMATS = ("parquet", "h5ad")


def embed_cmd(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory (from `biorep train`)."),
    data: Optional[str] = typer.Option(None, "--data", metavar="NAME_OR_PATH",
                                       help="Embed another data set (built-in name, folder or manifest) with the "
                                            "run's preprocessing (geometry, channels, intensity scaler)."),
    split: Optional[str] = typer.Option(None, "--split", help="test | val | train | all (default: test; all with --data)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder to write to (default: RUN/embeddings)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace embeddings another run wrote under --out."),
    allow_unfinished: bool = typer.Option(False, "--allow-unfinished",
                                          help="Use a run that has not finished training (its latest "
                                               "checkpoint), with a warning, instead of refusing it."),
    fmt: list[str] = typer.Option(list(FORMATS), "--format", help="parquet and/or h5ad (repeatable)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder holding the built-in data sets."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda ... (default: CUDA when available)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars on stderr while decoding."),
) -> None:
    """Save the backbone representation (not the projection head) of every sample with its metadata.

    Parquet (metadata columns, then f0000, f0001, ...) and AnnData .h5ad (X = embeddings, obs =
    metadata) go to RUN/embeddings/<split>.* (other data: <data>.<split>.*) or --out. Embeddings
    another run wrote under --out are never replaced without --overwrite.
    """
    from biorep.evaluate.run import embed_run

    bad = sorted(set(fmt) - set(FORMATS))
    if bad or not fmt:
        raise ConfigError(f"--format {', '.join(bad) or '(none)'}: choose parquet and/or h5ad")
    emb = embed_run(run, data=data, split=split, out=out, formats=fmt, data_root=data_root,
                    progress=progress and not as_json, device=device, overwrite=overwrite,
                    allow_unfinished=allow_unfinished)
    files = {k: str(v) for k, v in emb.paths.items()}
    if as_json:
        typer.echo(json.dumps({"n": int(emb.z.shape[0]), "dim": int(emb.z.shape[1]), "reused": emb.reused,
                               "files": files}))
        return
    what = "reused" if emb.reused else "embedded"
    typer.echo(f"{what} {emb.z.shape[0]} images × {emb.z.shape[1]} features")
    for f in files.values():
        typer.echo(f"  {f}")


def register(app: typer.Typer) -> None:
    """Add the ``embed`` verb to ``app``."""
    app.command("embed")(embed_cmd)
