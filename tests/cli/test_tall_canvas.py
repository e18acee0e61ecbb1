"""A run on a tall ``[height, width]`` canvas works through every verb, and predict matches training."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from biorep.data import resolve_source
from biorep.training import load_run


def test_tall_canvas_train_predict_karyotype(cli_cache: Path, tmp_path: Path, cli: Callable) -> None:
    cfg = {
        "data": {"dataset": "synthetic-karyotype", "options": {"n_karyograms": 4, "seed": 0, "size": 32},
                 "geometry": {"mode": "canvas", "size": [40, 24]}, "split": {"test": 0.5, "val": 0.0, "seed": 0}},
        "views": {"augment": "chromosome", "crops": "one"},
        "model": {"backbone": "resnet18"},
        "method": {"name": "supervised"},
        # fp32 and a small lr: one epoch of a ResNet-18 on 92 crops in bf16 at the default lr can diverge to NaN
        "train": {"epochs": 1, "batch_size": 32, "lr": 1e-4, "precision": "32", "accelerator": "cpu", "devices": 1,
                  "tracemalloc": False, "progress": False},
    }
    path = tmp_path / "tall.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    code, _, err = cli("train", path, "--out", run_dir)
    assert code == 0, err
    run = load_run(run_dir)
    ds = run.dataset()
    assert ds.images.shape[2:] == (40, 24) and ds.hw == (40, 24) and run.model.data_info.size == (40, 24)

    files = resolve_source(run.config.data).files
    rows = run.splits.test[:3]
    for i in rows:
        shutil.copy(files[i], tmp_path / f"img{i:04d}.png")
    out = tmp_path / "pred.csv"
    code, _, err = cli("predict", run_dir, *[tmp_path / f"img{i:04d}.png" for i in rows], "--out", out)
    assert code == 0, err
    table = pd.read_csv(out).sort_values("path")
    logits = run.model.classify(torch.from_numpy(np.asarray(ds.images[rows]))).float().numpy()
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(table[[f"p_{c}" for c in run.classes]].to_numpy(), expected, atol=2e-2)

    code, _, err = cli("karyotype", run_dir)
    assert code == 0, err
    code, _, err = cli("evaluate", run_dir, "--only", "classification")
    assert code == 0, err
