"""The step benchmark's recipes are valid run configs and its table renders (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from biorep.training import RunConfig

from .conftest import script_module

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "step" / "bench_step.py"


@pytest.fixture(scope="module")
def bench():
    with script_module(SCRIPT, "step_bench") as module:
        yield module


def test_every_recipe_is_a_valid_run_config(bench) -> None:
    assert {"resnet18", "vit_tiny", "ae-multi", "reg-multi", "byol-one", "weak-multi"} <= set(bench.RECIPES)
    for name, raw in bench.RECIPES.items():
        for prec in bench.PRECISIONS.values():
            cfg = RunConfig.from_dict({**raw, "train": {**raw["train"], "precision": prec}})
            assert cfg.train.precision == prec, name


def test_render_table_with_old_main(bench) -> None:
    new = {"recipe": "ae-multi", "precision": "bf16", "batch": 320, "full_img_s": 100.0, "bare_img_s": 102.0,
           "ratio": 0.98}
    old = {"recipe": "ae-multi", "precision": "fp32", "batch": 320, "full_img_s": 20.0}
    text = bench.render({
        "meta": {"torch": "x", "cpu": "cpu", "flags": ["avx512_bf16"], "old_commit": "abc",
                 "invocations": [{"command": "bench_step.py", "date": "d", "uptime": "load 1", "threads": 1}]},
        "rows": {"ae-multi/bf16/new": new, "ae-multi/fp32/old": old},
    })
    assert "| ae-multi | 320 | bf16 | 100 | 102 | 0.980 | — | 5.00× |" in text
    assert "avx512_bf16" in text and "load 1" in text
