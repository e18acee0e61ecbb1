"""The transfer benchmark's pieces without training: the lab's imaging, the study it runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biorep.rundir import RunPaths, write_json, write_yaml
from biorep.study import expand_grid
from biorep.study.grid import setup_config
from biorep.training import RunConfig

from .conftest import script_module

TRANSFER_PY = Path(__file__).resolve().parents[2] / "benchmarks" / "chromosome" / "transfer.py"


@pytest.fixture(scope="module")
def tr():
    with script_module(TRANSFER_PY, "chromosome_bench_transfer") as module:
        yield module


def test_the_lab_images_inverted_and_at_another_pixel_size(tr) -> None:
    crop = np.full((60, 20), 250, np.uint8)
    crop[10:50, 5:15] = 80
    lab = tr.transform_crop(crop, invert=True, scale=0.7)
    assert lab.shape == (42, 14) and lab.dtype == np.uint8
    assert lab[0, 0] == 5 and lab[21, 7] == 175  # background dark, chromosome bright
    assert tr.transform_crop(crop, invert=False, scale=1.0).tolist() == crop.tolist()
    assert tr.lab_name("X") == "chrX"


def test_study_keeps_the_sources_physical_scale_and_fine_tunes_from_it(tr, tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_yaml(RunPaths(source).config, {"data": {"dataset": "chromosome-pki3"}, "model": {"backbone": "resnet18"}})
    write_json(RunPaths(source).data, {"dataset": "chromosome-pki3", "size": 64,
                                       "geometry": {"mode": "canvas", "size": 64, "scale": 0.4706}})
    lab = {"settings": {"scale": 0.7}, "test_cases": ["c1", "c2"]}
    study, base = tr.transfer_study(source, lab, tmp_path / "out", ["train.epochs=3"], 2)
    geo = base["data"]["geometry"]
    assert geo["scale"] == pytest.approx(0.4706) and geo["pixel_size"] == pytest.approx(1 / 0.7, abs=1e-5)
    assert base["data"]["split"]["holdout"] == ["c1", "c2"] and base["train"]["epochs"] == 3
    runs = expand_grid(study)
    assert [r.name for r in runs] == ["scratch@s0", "from_source@s0", "scratch@s1", "from_source@s1"]
    cfgs = {r.name: tr._scratch_lr(setup_config(base, r), tmp_path / r.name) for r in runs}
    assert cfgs["from_source@s1"]["model"]["weights"] == str(source.resolve())
    assert cfgs["from_source@s1"]["train"]["backbone_lr_scale"] == 0.1 and cfgs["from_source@s1"]["train"]["seed"] == 1
    assert cfgs["scratch@s0"]["model"].get("weights") is None
    assert cfgs["scratch@s0"]["train"]["backbone_lr_scale"] == 1.0
    cfg = RunConfig.from_dict(cfgs["from_source@s0"])  # the recipe validates
    assert cfg.data.class_map["chrY"] == "Y" and cfg.data.intensity.polarity == "auto"
