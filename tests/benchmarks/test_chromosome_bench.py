"""The chromosome benchmark's RESULTS.md generator on fake run directories (no training)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from biorep.evaluate.embed import write_embeddings
from biorep.study import StudyConfig, expand_grid

RUN_PY = Path(__file__).resolve().parents[2] / "benchmarks" / "chromosome" / "run.py"
CLASSES = [str(i) for i in range(1, 23)] + ["X", "Y"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("chromosome_bench_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def study() -> StudyConfig:
    return StudyConfig(
        name="fake",
        base={},
        grid={
            "model": [{"label": "resnet18", "backbone": "resnet18"}, {"label": "vit_tiny", "backbone": "vit_tiny_patch16_224"}],
            "method": [
                {"label": "ce", "name": "supervised"},
                {"label": "supcon_two_stage", "name": "supcon", "mode": "two_stage", "pretrain_epochs": 4},
            ],
        },
    )


ACC = {"resnet18-ce": 0.90, "resnet18-supcon_two_stage": 0.93, "vit_tiny-ce": 0.80, "vit_tiny-supcon_two_stage": 0.75}


def fake_run(root: Path, name: str, acc: float, *, drop: str | None = None) -> None:
    run = root / "runs" / name
    (run / "embeddings").mkdir(parents=True)
    backbone = "resnet18" if name.startswith("resnet") else "vit_tiny_patch16_224"
    two = "two_stage" in name
    (run / "summary.json").write_text(json.dumps({
        "method": "supcon" if two else "supervised", "backbone": backbone, "dataset": "chromosome-pki3",
        "n_train": 100, "n_val": 20, "n_test": 30, "n_classes": 24, "epochs": 6, "max_epochs": 6,
        "wall_time_s": 600.0, "images_per_s": 120.0, "peak_rss_mb": 1500.0, "peak_tracemalloc_mb": 140.0,
        "peak_gpu_mb": None, "total_time_s": 610.0, "best_metric": {"name": "val/acc", "value": acc - 0.01}}))
    cls = {"accuracy": acc, "macro_f1": acc - 0.02, "auroc_macro": 0.99,
           "per_class_recall": {c: acc for c in CLASSES}}
    kar = {"accuracy_argmax": acc, "accuracy_assigned": min(acc + 0.02, 1.0), "n_flagged": 1, "n_karyograms": 5}
    ev = {"classification": {"summary": cls}, "karyotype": {"summary": kar}, "knn": {"summary": {"accuracy": acc - 0.05}}}
    if drop:
        del ev[drop]
    (run / "evaluation.json").write_text(json.dumps(ev))
    (run / "data.json").write_text(json.dumps({"size": 64, "geometry": {"mode": "canvas", "scale": 0.47}}))
    method = {"name": "supcon", "mode": "two_stage", "pretrain_epochs": 4, "temperature": 0.07, "finetune": False} \
        if two else {"name": "supervised"}
    (run / "config.yaml").write_text(yaml.safe_dump({
        "data": {"geometry": {"mode": "canvas"}, "split": {"seed": 0}},
        "views": {"augment": "chromosome", "crops": "one"}, "method": method,
        "train": {"epochs": 6, "batch_size": 96, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05,
                  "scheduler": "cosine", "precision": "32"}}))
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"path": [f"p{i}" for i in range(30)], "chromosome": [CLASSES[i % 3] for i in range(30)]})
    write_embeddings(rng.normal(size=(30, 8)).astype(np.float32), meta, run / "embeddings", "test", formats=["parquet"])


REFERENCE = {"epochs": 8, "size": 64, "train_images": 120, "test_images": 30, "test_accuracy": 0.91,
             "train_time_s": 1200.0, "process_wall_s": 1230.0, "command": "python reference_loop.py"}


def test_results_from_fake_runs(bench, tmp_path: Path) -> None:
    setups = expand_grid(study())
    for s in setups:
        fake_run(tmp_path, s.name, ACC[s.name])
    rows = bench.collect(tmp_path, setups)
    assert [(r.model, r.method) for r in rows][:2] == [("resnet18", "ce"), ("resnet18", "supcon_two_stage")]
    lines = bench.verdict(rows, REFERENCE)
    text = "\n".join(lines)
    assert "every backbone family: no** (1 of 2)" in text
    assert "SupCon vs CE, resnet18: yes" in text and "+3.00 points" in text
    assert "SupCon vs CE, vit_tiny: no" in text
    assert "Best per-crop accuracy ≥ 97 %: no** — 93.00 %" in text
    assert "karyotype assembly ≥ 98.5 %: no** — 95.00 %" in text
    # biorep resnet18-ce 600 s vs the reference's 1200 s; 120 vs 120*8/1200 = 0.8 images/s
    assert "×0.50" in text and "-1.0 points" in text

    png = bench.embedding_map_png(tmp_path, rows, method="pca", max_points=20)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    md = bench.render_results(rows, REFERENCE, study_path="s.yaml", out_dir=tmp_path, command="python run.py",
                              machine={"nproc": 2, "cpu": "X", "gpu": None, "torch": "2", "timm": "1", "lightning": "2",
                                       "python": "3.11", "torch_threads": 2},
                              invocation={"finished": "now", "load_start": [1], "load_end": [2], "wall_s": 5.0,
                                          "reused": ""}, map_name="embedding_maps.png")
    assert "| resnet18-supcon_two_stage | resnet18 | supcon_two_stage | 6/6 | 92.0 % | **93.00 %**" in md
    assert "| reference loop | resnet18 |" in md and "**91.00 %**" in md
    assert "4 SupCon epochs" in md and "2 classifier epochs on the frozen encoder" in md
    assert md.count("| Y |") == 1 and "![CE vs SupCon test embeddings](embedding_maps.png)" in md


def test_missing_numbers_fail_loudly(bench, tmp_path: Path) -> None:
    setups = expand_grid(study())
    for s in setups[:-1]:
        fake_run(tmp_path, s.name, ACC[s.name], drop="karyotype" if s.name == "resnet18-ce" else None)
    with pytest.raises(bench.BenchmarkError) as err:
        bench.collect(tmp_path, setups)
    msg = str(err.value)
    assert "resnet18-ce/evaluation.json: no value for 'karyotype.summary'" in msg
    assert "vit_tiny-supcon_two_stage/summary.json: missing" in msg


def test_set_reaches_grid_values_that_have_the_key(bench) -> None:
    s = bench.apply_study_overrides(study(), ["method.pretrain_epochs=1", "model.kwargs.patch_size=8"])
    methods = s.grid["method"]
    assert methods[1]["pretrain_epochs"] == 1 and "pretrain_epochs" not in methods[0]
    assert all("kwargs" not in m for m in s.grid["model"])  # no grid value had kwargs: left alone
    assert study().grid["method"][1]["pretrain_epochs"] == 4  # the original is not changed


def test_reference_is_run_once_and_reused(bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_command(out_json: Path, epochs: int, size: int) -> list[str]:
        calls.append(out_json)
        result = {**REFERENCE, "epochs": epochs, "size": size}
        del result["process_wall_s"], result["command"]
        code = f"import json, sys; json.dump({result!r}, open(sys.argv[1], 'w'))"
        return [sys.executable, "-c", code, str(out_json), "--out", str(out_json)]

    monkeypatch.setattr(bench, "reference_command", fake_command)
    first = bench.run_reference(tmp_path, 8, 64, log=lambda s: None)
    assert first["test_accuracy"] == 0.91 and first["process_wall_s"] >= 0
    assert json.loads((tmp_path / "reference.json").read_text())["size"] == 64
    assert not list(tmp_path.glob(".reference*"))
    again = bench.run_reference(tmp_path, 8, 64, log=lambda s: None)
    assert again == first and len(calls) == 1  # reused, not rerun
    bench.run_reference(tmp_path, 4, 64, log=lambda s: None)  # another setting: run again
    assert len(calls) == 2


def test_failing_reference_fails_loudly(bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "reference_command", lambda o, e, s: [sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(bench.BenchmarkError, match="exit 3"):
        bench.run_reference(tmp_path, 8, 64, log=lambda s: None)


def test_describe_augment_names_the_preset_and_its_changes(bench) -> None:
    assert bench.describe_augment("chromosome") == "`chromosome`"
    spec = {"preset": "chromosome", "override": {"rotate": {"degrees": 15.0, "p": 0.5}, "vflip": {"p": 0.0}}}
    assert bench.describe_augment(spec) == "`chromosome` (rotate degrees=15, p=0.5; vflip p=0)"
