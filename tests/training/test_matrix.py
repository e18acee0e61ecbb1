"""Every paradigm × {simple_cnn, resnet18, vit_tiny} trains a step or two on synthetic data from the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from biorep.cli import main
from biorep.training import load_config, load_run

from .conftest import SMOKE

BACKBONES = ["simple_cnn", "resnet18", "vit_tiny_patch16_224"]
# small heads keep this matrix fast; the defaults are exercised by tests/methods
VARIANTS = {
    "supervised": ["method.name=supervised"],
    "weak": ["method.name=weak", "method.column=karyogram", "method.hidden_dim=32"],
    "autoencoder": ["method.name=autoencoder"],
    "regularized": ["method.name=regularized", "method.hidden_dim=32"],
    "supcon-two_stage": [
        "method.name=supcon",
        "method.pretrain_epochs=1",
        "method.proj_dim=32",
        "train.epochs=2",
        "train.limit_train_batches=1",
    ],
    "supcon-joint": [
        "method.name=supcon",
        "method.mode=joint",
        "method.embed_hidden_dim=64",
        "method.embed_dim=32",
        "method.cls_hidden_dim=32",
    ],
    "simclr": ["method.name=simclr", "method.hidden_dim=64", "method.out_dim=32"],
    "byol": [
        "method.name=byol",
        "method.proj_hidden_dim=64",
        "method.pred_hidden_dim=64",
        "method.proj_out_dim=16",
    ],
    "barlow_twins": ["method.name=barlow_twins", "method.hidden_dim=64", "method.out_dim=64"],
    "vicreg": ["method.name=vicreg", "method.hidden_dim=64", "method.out_dim=64"],
}


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_paradigm_trains(variant: str, backbone: str, tmp_path: Path) -> None:
    overrides = [*VARIANTS[variant], f"model.backbone={backbone}", "train.batch_size=8", "train.limit_val_batches=1"]
    cfg = load_config(SMOKE, overrides)
    run = tmp_path / "run"
    # through the real command line, in-process: `biorep train SMOKE --set ... --out RUN`
    args = ["train", str(SMOKE), "--out", str(run)] + [a for o in overrides for a in ("--set", o)]
    try:
        main(args)
    except SystemExit as exc:  # typer may exit 0 explicitly; anything else is a failure
        assert not exc.code, f"biorep {' '.join(args)} exited {exc.code}"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["method"] == cfg.method.name and summary["backbone"] == backbone
    assert summary["epochs"] == cfg.train.epochs and summary["global_step"] >= 1
    assert summary["images_per_s"] > 0 and summary["peak_rss_mb"] > 0 and summary["peak_gpu_mb"] is None
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) == cfg.train.epochs and float(rows[-1]["train/loss"]) == pytest.approx(
        summary["final_metrics"]["train/loss"]
    )

    loaded = load_run(run)
    ds = loaded.dataset()
    x = torch.from_numpy(ds.images[loaded.splits.test[:3]])
    z = loaded.model.embed(x)
    assert z.shape == (3, loaded.model.num_features) and torch.isfinite(z).all()
    logits = loaded.model.classify(x)
    assert (logits is None) == (not loaded.model.has_classifier)
    if logits is not None:
        assert logits.shape == (3, len(loaded.classes))
