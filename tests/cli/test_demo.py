"""``biorep demo``: the main job end to end, here on its synthetic fallback (no data root)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from biorep.cli import demo


def test_demo_config_real_and_synthetic(tmp_path: Path) -> None:
    real = demo.demo_config(True, None, tmp_path)
    assert real["data"]["dataset"] == "chromosome-pki3" and real["data"]["root"] == str(tmp_path)
    assert real["method"] == {"name": "supervised", "label_smoothing": 0.1}
    synth = demo.demo_config(False, 2, None)
    assert synth["data"]["dataset"] == "synthetic-karyotype" and synth["train"]["epochs"] == 2
    assert demo.DEMO_RECIPE["data"]["dataset"] == "chromosome-pki3"  # the recipe itself is untouched


def test_demo_falls_back_to_synthetic_and_writes_the_report(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BIOREP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(demo, "SYNTHETIC", {**demo.SYNTHETIC, "options": {"n_karyograms": 10, "seed": 0}})
    monkeypatch.setitem(demo.DEMO_RECIPE, "model", {"backbone": "simple_cnn"})  # seconds, not minutes
    empty = tmp_path / "no-data"
    empty.mkdir()
    code, out, err = cli("demo", "--data-root", empty, "--epochs", "1", "--out", tmp_path / "demo")
    assert code == 0, err
    text = " ".join(out.split())
    assert "using the generated synthetic-karyotype data set instead" in text
    runs = list((tmp_path / "demo").iterdir())
    assert len(runs) == 1
    run = runs[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["method"] == "supervised" and summary["dataset"] == "synthetic-karyotype"
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert 0.0 <= evaluation["classification"]["summary"]["accuracy"] <= 1.0
    html = (run / "report.html").read_text()
    assert "biorep demo" in html and "data:image/png;base64" in html
    assert "per-crop accuracy:" in text and str((run / "report.html").resolve()) in text.replace(" ", "")


def test_demo_recipe_is_the_fast_cpu_recipe() -> None:
    import yaml

    fast = yaml.safe_load((Path(__file__).parents[2] / "configs" / "chromosome-cpu-fast.yaml").read_text())
    recipe = {k: v for k, v in demo.DEMO_RECIPE.items()}
    train = {k: v for k, v in recipe["train"].items() if k not in ("accelerator", "devices")}
    assert train == fast["train"]
    assert {k: v for k, v in recipe.items() if k != "train"} == {k: v for k, v in fast.items() if k != "train"}
