"""The chromosome benchmark's RESULTS.md generator on fake run directories (no training)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from biorep.evaluate.embed import write_embeddings
from biorep.study import StudyConfig, expand_grid

from .conftest import script_module

RUN_PY = Path(__file__).resolve().parents[2] / "benchmarks" / "chromosome" / "run.py"
CLASSES = [str(i) for i in range(1, 23)] + ["X", "Y"]


@pytest.fixture(scope="module")
def bench():
    with script_module(RUN_PY, "chromosome_bench_run") as module:
        yield module


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
        # CE given more epochs: about the two-stage reading's training time (the equal-CPU-time comparison)
        extra=[{"label": "resnet18-ce_time", "model": {"label": "resnet18", "backbone": "resnet18"},
                "method": {"label": "ce_time", "name": "supervised"}, "train.epochs": 9}],
        folds=[{"label": "s0", "train.seed": 0}, {"label": "s1", "train.seed": 1}],
    )


ACC = {"resnet18-ce": 0.80, "resnet18-supcon_two_stage": 0.93, "vit_tiny-ce": 0.80, "vit_tiny-supcon_two_stage": 0.75,
       "resnet18-ce_time": 0.85}
N_CROPS, N_CASES = 100, 20  # crop i belongs to case i % 20: five crops per case


def fake_run(root: Path, name: str, acc: float, *, drop: str | None = None, seed: int = 0) -> None:
    """A finished run: the wrong crops are the first (1 − acc) · 100, i.e. spread one per case first."""
    run = root / "runs" / name
    (run / "embeddings").mkdir(parents=True)
    (run / "evaluation").mkdir()
    backbone = "resnet18" if name.startswith("resnet") else "vit_tiny_patch16_224"
    two = "two_stage" in name
    (run / "summary.json").write_text(json.dumps({
        "method": "supcon" if two else "supervised", "backbone": backbone, "dataset": "chromosome-pki3",
        "n_train": 100, "n_val": 20, "n_test": N_CROPS, "n_classes": 24, "epochs": 6, "max_epochs": 6,
        "wall_time_s": 900.0 if two else 880.0 if "ce_time" in name else 600.0, "images_per_s": 120.0,
        "peak_rss_mb": 1500.0,
        "peak_tracemalloc_mb": 140.0, "peak_gpu_mb": None, "total_time_s": 610.0,
        "best_metric": {"name": "val/acc", "value": acc - 0.01 * (seed + 1)}}))
    n_wrong = round((1 - acc) * N_CROPS)
    coverage = [{"coverage": c, "n": round(c * N_CROPS), "accuracy": min(acc + 0.05, 1.0), "threshold": 0.5,
                 "n_review": N_CROPS - round(c * N_CROPS)} for c in (0.9, 0.95, 0.99, 1.0)]
    cls = {"accuracy": acc, "macro_f1": acc - 0.02, "auroc_macro": 0.99,
           "per_class_recall": {c: acc for c in CLASSES},
           "calibration": {"calibrated": True, "temperature": 1.5, "ece_before": 0.06, "ece_after": 0.02,
                           "coverage": coverage}}
    kar = {"accuracy_argmax": acc, "accuracy_assigned": min(acc + 0.02, 1.0), "n_flagged": 1, "n_karyograms": 5}
    ev = {"classification": {"summary": cls}, "karyotype": {"summary": kar}, "knn": {"summary": {"accuracy": acc - 0.05}}}
    if drop:
        del ev[drop]
    (run / "evaluation.json").write_text(json.dumps(ev))
    true = [CLASSES[i % 24] for i in range(N_CROPS)]
    wrong = [CLASSES[(i + 1) % 24] for i in range(N_CROPS)]
    pd.DataFrame({"sample_index": range(1000, 1000 + N_CROPS), "case": [f"c{i % N_CASES}" for i in range(N_CROPS)],
                  "true": true, "predicted": [wrong[i] if i < n_wrong else true[i] for i in range(N_CROPS)]}
                 ).to_csv(run / "evaluation" / "classification.csv", index=False)
    pd.DataFrame({"karyogram": ["k"] * N_CROPS, "true": true,
                  "assigned": [wrong[i] if i < n_wrong - 2 else true[i] for i in range(N_CROPS)]}
                 ).to_csv(run / "evaluation" / "karyotype.csv", index=False)
    (run / "data.json").write_text(json.dumps({"dataset": "chromosome-pki3", "group_column": "case", "size": 64,
                                               "geometry": {"mode": "canvas", "scale": 0.47}}))
    method = {"name": "supcon", "mode": "two_stage", "pretrain_epochs": 4, "temperature": 0.07, "finetune": False} \
        if two else {"name": "supervised"}
    (run / "config.yaml").write_text(yaml.safe_dump({
        "data": {"geometry": {"mode": "canvas"}, "split": {"seed": 0}},
        "views": {"augment": "chromosome", "crops": "one"}, "method": method,
        "train": {"epochs": 6, "batch_size": 96, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05,
                  "scheduler": "cosine", "precision": "32", "seed": seed}}))
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"path": [f"p{i}" for i in range(30)], "chromosome": [CLASSES[i % 3] for i in range(30)]})
    write_embeddings(rng.normal(size=(30, 8)).astype(np.float32), meta, run / "embeddings", "test", formats=["parquet"])


REFERENCE = {"epochs": 8, "size": 64, "train_images": 120, "test_images": 30, "test_accuracy": 0.91,
             "train_time_s": 1200.0, "process_wall_s": 1230.0, "command": "python reference_loop.py"}


def _all_runs(root: Path) -> list:
    runs = expand_grid(study())
    for r in runs:
        fake_run(root, r.name, ACC[r.setup], seed=int(r.fold[1:]))
    return runs


def test_results_from_fake_runs(bench, tmp_path: Path) -> None:
    runs = _all_runs(tmp_path)
    assert [r.name for r in runs][:2] == ["resnet18-ce@s0", "resnet18-supcon_two_stage@s0"]
    rows = bench.collect(tmp_path, runs)
    setups = bench.aggregate(rows, n_boot=400)
    assert [(s.model, s.method, s.seeds) for s in setups][:2] == [("resnet18", "ce", ["s0", "s1"]),
                                                                 ("resnet18", "supcon_two_stage", ["s0", "s1"])]
    ce = setups[0]
    assert ce.accuracy == pytest.approx(0.80) and ce.ci[0] <= 0.80 <= ce.ci[1]
    assert ce.assembled == pytest.approx(0.82) and ce.train_minutes == pytest.approx(10.0)
    assert ce.ci == (pytest.approx(0.80), pytest.approx(0.80))  # one wrong crop in every case: no spread
    pairs = bench.comparisons(setups, n_boot=400)
    res, res_time, vit = pairs
    assert (res.vs, res.basis, res_time.vs, res_time.basis) == ("ce", "equal epochs", "ce_time", "equal CPU time")
    assert res_time.difference == pytest.approx(0.08) and res_time.time_ratio == pytest.approx(900 / 880)
    assert res.difference == pytest.approx(0.13) and res.ci[0] > 0 and res.answer == "SupCon better"
    assert vit.difference == pytest.approx(-0.05) and vit.ci[1] < 0 and vit.answer == "CE better"
    assert res.time_ratio == pytest.approx(1.5) and res.seeds == 2
    text = "\n".join(bench.verdict(setups, REFERENCE, pairs))
    assert "every backbone family: no** (1 of 2)" in text
    assert "SupCon vs CE, resnet18, equal epochs, paired over the held-out cases (seeds averaged): yes" in text
    assert "supcon_two_stage (2 seed(s)) +13.00 points" in text and "SupCon better" in text
    assert "SupCon vs CE, vit_tiny, equal epochs, paired over the held-out cases (seeds averaged): no" in text
    assert "-5.00 points" in text and "CE better" in text
    assert "SupCon vs CE, resnet18, equal CPU time:** supcon_two_stage vs ce_time (×1.02 its training time) +8.00" in text
    assert "vit_tiny, equal CPU time" not in text  # no CE with another budget for that backbone
    assert "Best per-crop accuracy ≥ 97 %: no** — 93.00 %" in text
    assert "karyotype assembly ≥ 99.0 %: no** — 95.00 %" in text
    # every CE budget of a backbone is read; the Transformer verdict takes its best one
    assert ("Cross-entropy per backbone:** resnet18 ce 80.00 % (95 % CI [80.00, 80.00]; 6 epochs, 10.0 min, "
            "2 seed(s)), ce_time 85.00 %") in text
    assert ("vit_tiny ce 80.00 % (95 % CI [80.00, 80.00]; 6 epochs, 10.0 min, 2 seed(s)) — a fair Transformer "
            "(≥ 93 % with CE): no") in text
    assert "6.00 → 2.00" in text  # ECE before → after (percent)
    # biorep resnet18-ce 600 s vs the reference's 1200 s; 120 vs 120*8/1200 = 0.8 images/s
    assert "×0.50" in text and "-11.0 points" in text

    png = bench.embedding_map_png(tmp_path, setups, method="pca", max_points=20)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    md = bench.render_results(setups, REFERENCE, study_path="s.yaml", out_dir=tmp_path, command="python run.py",
                              machine={"nproc": 2, "cpu": "X", "gpu": None, "torch": "2", "timm": "1", "lightning": "2",
                                       "python": "3.11", "torch_threads": 2},
                              invocation={"finished": "now", "load_start": [1], "load_end": [2], "wall_s": 5.0,
                                          "reused": ""}, map_name="embedding_maps.png", pairs=pairs)
    # val acc: mean of 0.92 and 0.91; acc @ 90 % most confident from the calibration table
    assert "| resnet18-supcon_two_stage | resnet18 | supcon_two_stage | 2 | 91.5 % | **93.00 %**" in md
    assert "| 6.00 → 2.00 % | 1.50 | 98.00 % | 98.00 % | 98.00 % | 15.0 min |" in md
    assert "| resnet18 | supcon_two_stage | ce | equal epochs | 2 | +13.00 [" in md
    assert "| resnet18 | supcon_two_stage | ce_time | equal CPU time | 2 | +8.00 [" in md
    assert "| resnet18-ce@s1 | s1 | 6/6 | 78.0 % | 80.00 % | 82.00 % |" in md  # val acc 0.80 − 0.02
    assert "| reference loop | resnet18 |" in md and "**91.00 %**" in md
    assert "4 SupCon epochs" in md and "2 classifier epochs on the frozen encoder" in md
    assert md.count("| Y |") == 1 and "![CE vs SupCon test embeddings](embedding_maps.png)" in md

    out = bench.results_json(setups, pairs, REFERENCE, study_path="s.yaml", invocation={"finished": "now"})
    one = out["setups"]["resnet18-supcon_two_stage"]
    for key in ("test_accuracy", "assembled_accuracy", "ci_low", "ci_high", "seeds", "train_minutes"):
        assert key in one
    assert one["test_accuracy"] == pytest.approx(0.93) and one["seeds"] == ["s0", "s1"]
    assert one["train_minutes"] == pytest.approx(15.0) and one["n_test_cases"] == N_CASES
    assert one["ece_after"] == pytest.approx(0.02) and one["coverage_accuracy"]["0.9"] == pytest.approx(0.98)
    assert out["comparisons"][0]["answer"] == "SupCon better"
    assert out["comparisons"][1]["basis"] == "equal CPU time" and out["comparisons"][1]["vs"] == "ce_time"
    json.dumps(out)  # machine-readable as it is


def test_runs_on_other_hardware_are_named_in_the_verdict(bench, tmp_path: Path) -> None:
    """Seeds resumed on another machine (here one run in fp32, the others bf16): the verdict says the
    times mix machines; on one machine it says nothing of it."""
    _all_runs(tmp_path)
    for path in (tmp_path / "runs").glob("*/summary.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "device": "cpu", "precision": "bf16-mixed"}))
    setups = bench.aggregate(bench.collect(tmp_path, expand_grid(study())), n_boot=50)
    assert "same hardware" not in "\n".join(bench.verdict(setups, REFERENCE))
    path = tmp_path / "runs" / "resnet18-ce@s1" / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "precision": "32"}))
    setups = bench.aggregate(bench.collect(tmp_path, expand_grid(study())), n_boot=50)
    text = "\n".join(bench.verdict(setups, REFERENCE))
    assert "did not all train on the same hardware** (cpu/32, cpu/bf16-mixed" in text


def test_seeds_option_picks_the_first_seeds_runs_of_the_whole_study(bench) -> None:
    whole = study()
    chosen = bench.first_seeds(whole, 1)
    assert chosen and all(name.endswith("@s0") for name in chosen)
    assert len(chosen) == len(expand_grid(whole)) // 2
    assert len(whole.folds) == 2  # the study itself stays whole: its study.json does not change
    assert bench.first_seeds(whole, None) is None
    with pytest.raises(bench.BenchmarkError):
        bench.first_seeds(whole, 0)


def test_missing_numbers_fail_loudly(bench, tmp_path: Path) -> None:
    runs = expand_grid(study())
    for r in runs[:-1]:
        fake_run(tmp_path, r.name, ACC[r.setup], drop="karyotype" if r.name == "resnet18-ce@s0" else None)
    with pytest.raises(bench.BenchmarkError) as err:
        bench.collect(tmp_path, runs)
    msg = str(err.value)
    assert "resnet18-ce@s0/evaluation.json: no value for 'karyotype.summary'" in msg
    assert "resnet18-ce_time@s1/summary.json: missing" in msg


def test_partial_results_name_the_runs_not_run_yet(bench, tmp_path: Path) -> None:
    runs = expand_grid(study())
    absent = {"vit_tiny-supcon_two_stage@s0", "vit_tiny-supcon_two_stage@s1"}
    for r in runs:
        if r.name not in absent:
            fake_run(tmp_path, r.name, ACC[r.setup], seed=int(r.fold[1:]))
    with pytest.raises(bench.BenchmarkError, match="vit_tiny-supcon_two_stage@s0/summary.json: missing"):
        bench.collect(tmp_path, runs)
    assert set(bench.missing_runs(tmp_path, runs)) == absent
    setups = bench.aggregate(bench.collect(tmp_path, runs, partial=True), n_boot=100)
    assert "vit_tiny-supcon_two_stage" not in {s.name for s in setups}
    with pytest.raises(bench.BenchmarkError, match="no SupCon run"):
        bench.comparisons(setups, n_boot=100)
    pairs = bench.comparisons(setups, n_boot=100, partial=True)
    assert {p.model for p in pairs} == {"resnet18"}
    md = bench.render_results(setups, None, study_path="s.yaml", out_dir=tmp_path, command="python run.py --partial",
                              machine={"nproc": 2, "cpu": "X", "gpu": None, "torch": "2", "timm": "1", "lightning": "2",
                                       "python": "3.11", "torch_threads": 2},
                              invocation={"finished": "now", "load_start": [1], "load_end": [2], "wall_s": 5.0,
                                          "reused": ""}, map_name=None, pairs=pairs, missing=sorted(absent))
    assert "**Partial results:** 2 of the study's runs have not run yet (vit_tiny-supcon_two_stage@s0, " in md


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
