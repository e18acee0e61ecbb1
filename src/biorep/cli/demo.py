"""``biorep demo``: the main job end to end — train a chromosome classifier, evaluate, assemble, report.

Uses the real Pki-3 chromosomes when the data root holds them, else generated karyotypes (and says so).

Example:
    $ biorep demo                      # ~10 minutes on a 2-core CPU
    $ biorep demo --epochs 1 --out /tmp/demo
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from biorep.paths import find_data_root

_out = Console()

#: The demo recipe: ``configs/chromosome-cpu-fast.yaml`` (tests keep the two equal) — ResNet-18 with
#: cross-entropy on a tall 96 × 48 canvas (upright crops keep 1.5× the resolution of a 64 px square),
#: bf16 where native, one-cycle per step, label smoothing, test-time left-right flips; 5 epochs, about
#: 7 minutes of training on 2 cores. At this budget cross-entropy beats the SupCon readings on
#: ResNet-18 (benchmarks/chromosome/RESULTS.md); they are one ``--set method.name=supcon`` away. The
#: augmentation is the chromosome preset softened for a short budget (rotation ±15° on half the
#: crops, no vertical flip): at the preset's ±90° every crop and with vertical flips, 3 epochs reach
#: only about 30 % validation accuracy after the first.
DEMO_AUGMENT: dict[str, Any] = {"preset": "chromosome",
                                "override": {"rotate": {"degrees": 15.0, "p": 0.5}, "vflip": {"p": 0.0}}}
DEMO_RECIPE: dict[str, Any] = {
    "data": {"dataset": "chromosome-pki3", "geometry": {"mode": "canvas", "size": [96, 48], "scale": "auto"},
             "split": {"test": 0.2, "val": 0.1, "seed": 0}},
    "views": {"augment": DEMO_AUGMENT, "crops": "one"},
    "model": {"backbone": "resnet18", "tta": ["hflip"]},
    "method": {"name": "supervised", "label_smoothing": 0.1},
    "train": {
        "epochs": 5,
        "batch_size": 128,
        "optimizer": "adamw",
        "lr": 2.0e-3,
        "weight_decay": 0.05,
        "scheduler": "onecycle",
        "warmup_epochs": 0.5,
        "precision": "auto",
        "seed": 0,
        "num_workers": 0,
        "tracemalloc": False,
        "accelerator": "auto",
        "devices": 1,
    },
}
SYNTHETIC = {"dataset": "synthetic-karyotype", "options": {"n_karyograms": 60, "seed": 0}}


def demo_config(real: bool, epochs: int | None, data_root: Path | None) -> dict[str, Any]:
    """The demo's run config: the recipe on real chromosomes, or on generated karyotypes."""
    import copy

    cfg = copy.deepcopy(DEMO_RECIPE)
    if real:
        if data_root is not None:
            cfg["data"]["root"] = str(data_root)
    else:
        cfg["data"].update(SYNTHETIC)
        cfg["train"]["epochs"] = 6
    if epochs is not None:
        cfg["train"]["epochs"] = epochs
    return cfg


def demo_cmd(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Folder for the demo's run (a new sub-folder each time)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Training epochs (default: the recipe's)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder holding the built-in data sets."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Use generated karyotypes even if real data is there."),
) -> None:
    """Train a chromosome classifier, evaluate on held-out cases, assemble karyotypes, write the HTML report."""
    from biorep.cli import training_interruption
    from biorep.evaluate.run import evaluate_run, karyotype_run
    from biorep.report import write_report
    from biorep.report.karyogram import draw_karyograms
    from biorep.rundir import RunPaths
    from biorep.training import RunConfig, train

    start = time.perf_counter()
    root = find_data_root(data_root, required=False)
    real = not synthetic and root is not None and (root / "chromosome_pki3" / "labels.csv").is_file()
    if real:
        _out.print(f"[bold]data:[/] real Pki-3 chromosomes from {root / 'chromosome_pki3'}")
    else:
        why = "--synthetic given" if synthetic else "no chromosome_pki3 under the data root (--data-root / BIOREP_DATA)"
        _out.print(f"[bold yellow]data:[/] {why}: using the generated [bold]synthetic-karyotype[/] data set instead")
    cfg = RunConfig.from_dict(demo_config(real, epochs, root if real else None), source="demo recipe")
    run_dir = out / datetime.now().strftime("run-%Y%m%d-%H%M%S")

    _out.rule("1/4 train (ResNet-18, cross-entropy, 96 × 48 canvas)")
    with training_interruption(str(run_dir / "config.yaml")):
        train(cfg, run_dir)
    _out.rule("2/4 evaluate on held-out cases")
    results = evaluate_run(run_dir, names=["classification", "knn"], progress=True)
    for key, rec in results.items():
        summary = rec.get("summary", {})
        acc = summary.get("accuracy")
        if acc is not None:
            _out.print(f"{key}: accuracy {acc:.4f}, macro F1 {summary.get('macro_f1', float('nan')):.4f}")
    _out.rule("3/4 assemble karyotypes")
    kar = karyotype_run(run_dir, max_images=6, figures=draw_karyograms)
    before, after = kar.get("accuracy_argmax"), kar.get("accuracy_assigned")
    if before is not None and after is not None:
        _out.print(f"per-crop accuracy: {before:.4f} (argmax) → {after:.4f} (karyotype-constrained)")
    _out.rule("4/4 report")
    report = write_report([run_dir], RunPaths(run_dir).report, title="biorep demo: chromosome recognition")
    _out.print(f"[bold green]report:[/] {report.resolve()}  ({time.perf_counter() - start:.0f} s in all)")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
