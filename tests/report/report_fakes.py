"""Fake run directories for the report tests: every file a real run writes, tiny and synthetic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from biorep.report.figures import render_karyogram

CLASSES = [str(i) for i in range(1, 23)] + ["X", "Y"]


def fake_crops(seed: int = 0) -> tuple[list[np.ndarray], list[str | None], list[bool]]:
    """One synthetic karyogram: 2 banded crops per autosome, X and Y, plus 2 unassigned crops."""
    rng = np.random.default_rng(seed)
    crops, assigned, doubtful = [], [], []
    for k, cls in enumerate(CLASSES):
        for _ in range(1 if cls in "XY" else 2):
            h, w = 64 - 2 * k, 18
            crop = np.full((h, w), 255, np.uint8)
            bands = (np.sin(np.arange(h - 6) * (0.5 + 0.04 * k)) > 0) * 120 + 60
            crop[3:-3, 4:-4] = bands[:, None].astype(np.uint8)
            crops.append(crop)
            assigned.append(cls)
            doubtful.append(bool(rng.random() < 0.1))
    crops += [np.full((40, 18), 90, np.uint8), np.full((30, 16), 140, np.uint8)]
    assigned += [None, "25"]
    doubtful += [False, True]
    return crops, assigned, doubtful


def make_run(
    root: Path,
    name: str,
    *,
    method: str = "supcon",
    accuracy: float = 0.8731,
    wall_time: float = 123.4,
    n_points: int = 60,
    karyogram: bool = True,
    seed: int = 0,
) -> Path:
    """Write a complete fake run directory ``root/name`` and return it."""
    rng = np.random.default_rng(seed)
    run = root / name
    run.mkdir(parents=True)
    config = {
        "data": {"dataset": "synthetic-karyotype", "label": "label", "group": "case"},
        "views": {"augment": "chromosome", "crops": "one"},
        "model": {"backbone": "resnet18", "weights": None, "kwargs": {}},
        "method": {"name": method, "temperature": 0.07},
        "train": {"epochs": 4, "batch_size": 48, "lr": 1e-4},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    summary = {
        "method": method,
        "backbone": "resnet18",
        "epochs": 4,
        "wall_time_s": wall_time,
        "time_per_epoch_s": wall_time / 4,
        "images_per_s": 812.5,
        "peak_rss_mb": 2345.6,
        "peak_tracemalloc_mb": 310.2,
        "peak_gpu_mb": None,
        "stopped_early": False,
        "seed": seed,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    epochs = np.arange(4)
    pd.DataFrame(
        {
            "epoch": epochs,
            "step": (epochs + 1) * 10,
            "train_loss": 2.0 / (epochs + 1),
            "val_loss": 2.2 / (epochs + 1),
            "val_acc": 0.5 + 0.1 * epochs,
            "lr": 1e-4 * 0.95**epochs,
        }
    ).to_csv(run / "metrics.csv", index=False)

    cm = rng.integers(0, 3, size=(24, 24))
    np.fill_diagonal(cm, 40)
    evaluation = {
        "classification": {
            "accuracy": accuracy,
            "macro_f1": round(accuracy - 0.0123, 4),
            "auroc": 0.9912,
            "per_class_recall": {c: round(0.7 + 0.01 * i, 3) for i, c in enumerate(CLASSES)},
            "per_class_precision": {c: round(0.75 + 0.01 * i, 3) for i, c in enumerate(CLASSES)},
            "confusion_matrix": cm.tolist(),
            "classes": CLASSES,
        },
        "probes": {
            "knn": {"accuracy": round(accuracy - 0.05, 4), "k": 20},
            "linear": {"accuracy": round(accuracy - 0.02, 4), "macro_f1": 0.7777},
        },
        "per_case": [{"case": f"case{i}", "accuracy": 0.9 - 0.1 * i, "n": 46} for i in range(3)],
    }
    (run / "evaluation.json").write_text(json.dumps(evaluation))

    (run / "embeddings").mkdir()
    labels = np.array(["1", "2", "X"])[np.arange(n_points) % 3]
    centres = rng.normal(scale=5.0, size=(3, 16))
    feats = centres[np.arange(n_points) % 3] + rng.normal(size=(n_points, 16))
    frame = pd.DataFrame(
        {
            "path": [f"img{i}.tif" for i in range(n_points)],
            "case": [f"c{i % 5}" for i in range(n_points)],
            "label": labels,
        }
    )
    for j in range(feats.shape[1]):
        frame[f"f{j:04d}"] = feats[:, j].astype(np.float32)
    frame.to_parquet(run / "embeddings" / "test.parquet")

    if karyogram:
        (run / "karyotype").mkdir()
        png = render_karyogram(*fake_crops(seed), title=f"{name}: case c0")
        (run / "karyotype" / "case_c0.png").write_bytes(png)
    return run
