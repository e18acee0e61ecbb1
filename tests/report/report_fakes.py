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


N_CROPS = 96  # 4 per class, cases c0..c5


def fake_data(folder: Path) -> Path:
    """A manifest of 96 distinct PNG crops (4 per class; crop ``i`` is ``10 + i % 9`` px wide)."""
    from PIL import Image

    manifest = folder / "manifest.csv"
    if manifest.is_file():
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(N_CROPS):
        cls = CLASSES[i // 4]
        h, w = 64 - 2 * (i // 4), 10 + i % 9
        crop = np.full((h, w), 255, np.uint8)
        crop[2:-2, 2:-2] = (40 + 2 * i) % 256
        crop[h // 2, :] = 0
        name = f"crop{i:03d}.png"
        Image.fromarray(crop).save(folder / name)
        rows.append({"path": name, "label": cls, "case": f"c{i % 6}"})
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


#: The fake classifier's errors: sample index → predicted class (everything else is right).
FAKE_ERRORS = {0: "2", 1: "2", 2: "2", 92: "7", 93: "7", 40: "12"}


def fake_predictions(manifest: Path, errors: dict[int, str] | None = None) -> pd.DataFrame:
    """``classification.csv`` as the classification evaluation writes it: metadata, true, predicted,
    confidence. Errors are :data:`FAKE_ERRORS` (3 × 1→2, 2 × Y→7, 1 × 11→12) unless given; confidence
    falls with ``i``."""
    FAKE_ERRORS = errors if errors is not None else globals()["FAKE_ERRORS"]
    meta = pd.read_csv(manifest)
    out = meta.copy()
    out.insert(0, "sample_index", np.arange(len(meta)))
    out["true"] = meta["label"].astype(str)
    out["predicted"] = [FAKE_ERRORS.get(i, t) for i, t in enumerate(out["true"])]
    out["confidence"] = [0.99 - 0.009 * i if i not in FAKE_ERRORS else 0.6 + 0.05 * (i % 5) for i in range(len(meta))]
    return out


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
    errors: dict[int, str] | None = None,
) -> Path:
    """Write a complete fake run directory ``root/name`` and return it.

    Its data is a manifest of :data:`N_CROPS` PNG crops (``root/data``, shared by the runs under
    ``root``); ``evaluation/classification.csv`` holds per-crop test predictions (see :func:`fake_predictions`).
    """
    rng = np.random.default_rng(seed)
    run = root / name
    run.mkdir(parents=True)
    manifest = fake_data(root / "data")
    config = {
        "data": {"dataset": str(manifest), "label": "label", "group": "case"},
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
    (run / "evaluation").mkdir()
    fake_predictions(manifest, errors).to_csv(run / "evaluation" / "classification.csv", index=False)

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


def make_assembly(root: Path, n_karyograms: int = 2, seed: int = 0) -> pd.DataFrame:
    """An assembly table (as ``assemble_run`` returns) whose crops are PNG files under ``root``.

    Per karyogram: 46 crops (XY), crop 0 (true 1) assigned to 2 and doubtful, crop 5 changed by the assembly.
    """
    from PIL import Image

    rows = []
    for k in range(n_karyograms):
        crops, assigned, _ = fake_crops(seed + k)
        folder = root / f"cell{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, (crop, cls) in enumerate(zip(crops[:46], assigned[:46])):
            f = folder / f"chr{cls}_{i}.png"
            Image.fromarray(crop).save(f)
            out = "2" if i == 0 else cls
            rows.append({
                "sample_index": k * 46 + i, "path": f"cell{k}/{f.name}", "file": str(f), "karyogram": f"{k}.1",
                "true": cls, "argmax": "7" if i == 5 else out, "assigned": out,
                "p_argmax": 0.9, "p_assigned": 0.3 if i == 0 else 0.95, "changed": i == 5,
                "doubtful": i in (0, 5), "flagged": False, "reason": None, "sex": "XY",
            })
    return pd.DataFrame(rows)
