"""``biorep train CONFIG.yaml``: train one run into a run directory.

Example:
    $ biorep train configs/chromosome-supcon-resnet18.yaml --set train.epochs=5 --out runs/supcon
    $ biorep train configs/chromosome-supcon-resnet18.yaml --out runs/supcon --resume
    $ biorep train configs/chromosome-finetune.yaml --init-from runs/pki3 --out runs/lab
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from biorep.errors import ConfigError

_out = Console()


def train_cmd(
    config: Path = typer.Argument(..., help="Run config (YAML): data/views/model/method/train sections."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a config value: KEY=VALUE (YAML), repeatable."
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: runs/<config name>)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from checkpoints/last.ckpt."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    data_root: Optional[Path] = typer.Option(
        None, "--data-root", help="Folder holding the built-in data sets."
    ),
    init_from: Optional[Path] = typer.Option(
        None, "--init-from", help="Start from another biorep run (its folder or a .ckpt): sets model.weights."
    ),
) -> None:
    """Train a method; the run directory gets config, checkpoints, metrics.csv and summary.json."""
    from biorep.cli import training_interruption
    from biorep.rundir import RunPaths, read_summary
    from biorep.training import load_config, train

    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: --resume continues the run in --out, "
                          "--overwrite replaces it")
    overrides = list(set_)
    if data_root is not None:
        overrides.append(f"data.root={json.dumps(str(data_root))}")
    if init_from is not None:
        overrides.append(f"model.weights={json.dumps(str(init_from.expanduser().resolve()))}")
    cfg = load_config(config, overrides)
    run_dir = out or Path("runs") / config.stem
    with training_interruption(str(RunPaths(run_dir).config)):  # the saved config holds every --set
        path = train(cfg, run_dir, resume=resume, overwrite=overwrite)

    if RunPaths(path).summary.is_file():
        _print_summary(path, read_summary(path).model_dump())


def _print_summary(path: Path, s: dict) -> None:
    table = Table(title=f"run {path}", show_header=False)
    best = s.get("best_metric") or {}
    rows = [
        ("method", f"{s['method']}" + (f" ({s['mode']})" if s.get("mode") else "")),
        ("backbone", s["backbone"]),
        ("data", f"{s['dataset']}: {s['n_train']} train / {s['n_val']} val / {s['n_test']} test"),
        (
            "epochs",
            f"{s['epochs']} of {s['max_epochs']}" + (" (stopped early)" if s.get("stopped_early") else ""),
        ),
        ("precision", f"{s.get('precision')} ({s.get('precision_reason') or ''})"),
        ("best " + str(best.get("name")), "—" if best.get("value") is None else f"{best['value']:.4f}"),
        (
            "time",
            f"{s['wall_time_s']:.1f} s ({s['time_per_epoch_s'] or 0:.2f} s/epoch, "
            f"{s['images_per_s'] or 0:.0f} images/s)",
        ),
        (
            "peak memory",
            f"RSS {s['peak_rss_mb']:.0f} MiB"
            + (f", Python heap {s['peak_tracemalloc_mb']:.1f} MiB" if s.get("peak_tracemalloc_mb") else "")
            + (f", GPU {s['peak_gpu_mb']:.0f} MiB" if s.get("peak_gpu_mb") else ""),
        ),
    ]
    for k, v in rows:
        table.add_row(k, str(v))
    _out.print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
