"""``biorep.evaluate.run``: what runs by default, rows and options, storage, preprocessing of new data."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from biorep.data import DATASETS, resolve_source
from biorep.errors import ConfigError
from biorep.evaluate import run as er
from biorep.training import RunConfig, load_run, train

_TRAIN = {"epochs": 1, "batch_size": 32, "accelerator": "cpu", "devices": 1, "tracemalloc": False,
          "progress": False}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A supervised karyotype run and a BYOL cells run (1 epoch each, 32 px) in a private cache."""
    old = os.environ.get("BIOREP_CACHE")
    os.environ["BIOREP_CACHE"] = str(tmp_path_factory.mktemp("run-cache"))
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("runs")
    split = {"test": 0.34, "val": 0.0, "seed": 0}
    karyo = train(RunConfig.from_dict({
        "data": {"dataset": "synthetic-karyotype", "options": {"n_karyograms": 4, "size": 32},
                 "geometry": {"mode": "canvas", "size": 32}, "split": split},
        "views": {"augment": "none"}, "model": {"backbone": "simple_cnn"}, "method": {"name": "supervised"},
        "train": _TRAIN}), base / "karyo")
    cells = train(RunConfig.from_dict({
        "data": {"dataset": "synthetic-cells", "options": {"n_cells": 120, "size": 32},
                 "geometry": {"mode": "resize", "size": 32}, "split": split},
        "views": {"augment": "none"}, "model": {"backbone": "simple_cnn"}, "method": {"name": "byol"},
        "train": _TRAIN}), base / "cells")
    yield {"karyo": karyo, "cells": cells}
    if old is None:
        os.environ.pop("BIOREP_CACHE", None)
    else:
        os.environ["BIOREP_CACHE"] = old


@pytest.fixture
def cells(runs: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(runs["cells"], tmp_path / "cells"))


def test_builtin_evaluation_defaults_are_complete_and_valid() -> None:
    for name in DATASETS:
        spec = DATASETS.get(name)
        assert spec.evaluations, name
        for ev, opts in spec.evaluations.items():
            er.check_options(ev, opts, complete=True)  # raises on unknown or missing options
    assert set(DATASETS.get("synthetic-cells").evaluations) == {
        "similarity", "treated_vs_control", "clustering", "replicate_map"}
    assert DATASETS.get("chromosome-pki3").evaluations == {"karyotype": {"karyogram_column": "karyogram"}}


def test_default_plan_follows_the_run_and_its_data(runs: dict[str, Path]) -> None:
    karyo = er.Evaluator(runs["karyo"]).plan(None, None)
    assert list(karyo) == ["classification", "knn", "linear", "karyotype"]
    cells = er.Evaluator(runs["cells"]).plan(None, {"knn": {"k": 3}})
    assert "classification" not in cells and cells["knn"] == {"k": 3}
    assert set(cells) == {"knn", "linear", "similarity", "treated_vs_control", "clustering", "replicate_map"}
    assert cells["clustering"]["where"] == {"compound": "compound_a"}
    with pytest.raises(ConfigError, match="unknown evaluation 'nope'"):
        er.Evaluator(runs["cells"]).plan(["nope"], None)
    with pytest.raises(ConfigError, match="needs option"):
        er.Evaluator(runs["karyo"]).plan(["similarity"], None)
    with pytest.raises(ConfigError) as many:  # every evaluation's missing options in one message
        er.Evaluator(runs["karyo"]).plan(["similarity", "replicate_map"], None)
    assert "'similarity' needs option(s) a, b, control" in str(many.value)
    assert "'replicate_map' needs option(s) treatment" in str(many.value)


def test_where_restricts_rows_and_results_merge(cells: Path) -> None:
    run = load_run(cells)
    meta = run.dataset().meta
    test = run.splits.test
    wells = ["B02", "B03"]
    res = er.evaluate_run(cells, ["knn"], {"knn": {"k": 3, "where": {"well": wells}}})
    assert res["knn"]["n"] == int(meta["well"].iloc[test].isin(wells).sum())
    table = pd.read_csv(cells / "evaluation" / "knn.csv")
    assert len(table) == res["knn"]["n"] and set(table["well"]) <= set(wells)
    er.evaluate_run(cells, ["linear"], {"linear": {"max_iter": 20}}, split="all")
    stored = json.loads((cells / "evaluation.json").read_text())
    assert set(stored) == {"knn", "linear@all"}  # merged; another split gets its own key
    # split "all": fitted on train, scored on everything else
    assert stored["linear@all"]["n"] == len(meta) - len(run.splits.train)


def test_default_mode_records_failures_without_storing_them(cells: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    bad = {"a": {"dose": 999}, "b": {"dose": 15}, "control": {"compound": "DMSO"}}
    monkeypatch.setattr(er.Evaluator, "defaults", lambda self: {"knn": {"k": 3}, "similarity": bad})
    res = er.evaluate_run(cells)
    assert "accuracy" in res["knn"]["summary"] and "matches no sample" in res["similarity"]["error"]
    assert set(json.loads((cells / "evaluation.json").read_text())) == {"knn"}
    with pytest.raises(Exception, match="matches no sample"):  # named explicitly: an error
        er.evaluate_run(cells, ["similarity"], {"similarity": bad})


def test_new_data_gets_the_runs_geometry(runs: dict[str, Path], tmp_path: Path) -> None:
    run = load_run(runs["karyo"])
    ds = run.dataset()
    geom = er.run_geometry(run)
    assert geom.mode == "canvas" and geom.scale == pytest.approx(ds.info["scale"]) and geom.background == 255
    assert er.run_geometry(load_run(runs["cells"])).mode == "resize"
    older = load_run(runs["karyo"])  # a data.json without the geometry record: read back from the data
    older.data = older.data.model_copy(update={"geometry": None, "background": None})
    assert er.run_geometry(older) == geom
    files = resolve_source(run.config.data).files
    folder = tmp_path / "new"
    for i in range(3):  # class-per-folder, named by chromosome
        cls = folder / str(ds.meta["chromosome"].iloc[i])
        cls.mkdir(parents=True, exist_ok=True)
        shutil.copy(files[i], cls / f"{i}.png")
    cfg = er.data_config_for(run, folder)
    assert cfg.dataset == str(folder) and cfg.options == {} and cfg.geometry.scale == geom.scale
    new = er.load_other_data(run, folder)
    np.testing.assert_array_equal(new.images, ds.images[:3])  # pixel-identical to the run's own preprocessing
    res = er.evaluate_run(runs["karyo"], ["classification"], data=folder)
    assert set(res) == {"classification@new"} and res["classification@new"]["summary"]["n"] == 3
    logits = run.model.classify(torch.from_numpy(np.asarray(ds.images[:3]))).numpy()
    truth = [run.classes.index(c) for c in ds.meta["chromosome"].iloc[:3]]
    assert res["classification@new"]["summary"]["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == truth))
    with pytest.raises(ConfigError, match="no saved splits"):
        er.evaluate_run(runs["karyo"], ["classification"], data=folder, split="val")


def test_small_helpers(tmp_path: Path) -> None:
    assert er.slug("../new cells/") == "new_cells" and er.slug("lists/plate 1.csv") == "plate_1"
    er.merge_evaluation(tmp_path, {"a": {"x": 1}})
    er.merge_evaluation(tmp_path, {"b": {"x": np.float32(0.5)}, "a": {"x": 2}})
    assert json.loads((tmp_path / "evaluation.json").read_text()) == {"a": {"x": 2}, "b": {"x": 0.5}}


def test_loaded_runs_are_typed_and_bad_checkpoints_are_named(runs: dict[str, Path], tmp_path: Path) -> None:
    from biorep.errors import RunDirError
    from biorep.rundir import DataRecord, SummaryRecord

    run = load_run(runs["karyo"])
    assert isinstance(run.data, DataRecord) and isinstance(run.summary, SummaryRecord)
    assert run.state is not None and run.state.status == "finished"
    assert run.classes == run.data.classes and run.summary.method == "supervised"
    broken = Path(shutil.copytree(runs["karyo"], tmp_path / "karyo"))
    ckpt = run.checkpoint.relative_to(runs["karyo"])
    data = (broken / ckpt).read_bytes()
    (broken / ckpt).write_bytes(data[: len(data) // 2])
    with pytest.raises(RunDirError, match=rf"{broken / ckpt}: truncated or unreadable checkpoint"):
        load_run(broken)
    (broken / ckpt).write_bytes(b"")
    with pytest.raises(RunDirError, match=rf"{broken / ckpt}: empty checkpoint"):
        load_run(broken)


def test_unfinished_runs_are_refused_by_the_library_too(cells: Path) -> None:
    from biorep.errors import RunDirError
    from biorep.rundir import write_state

    write_state(cells, "failed", message="out of memory")
    with pytest.raises(RunDirError, match=r"failed during training \(out of memory\).*--allow-unfinished"):
        er.evaluate_run(cells, ["knn"])
    with pytest.raises(RunDirError, match="`embed`"):
        er.embed_run(cells)
    assert "knn" in er.evaluate_run(cells, ["knn"], allow_unfinished=True)
