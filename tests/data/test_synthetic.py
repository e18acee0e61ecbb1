from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biorep.data import DataConfig, load_dataset, make_synthetic_cells, make_synthetic_karyotype, split_dataset


def test_karyotype_is_deterministic_and_has_46_per_cell(tmp_path: Path) -> None:
    a = make_synthetic_karyotype(3, seed=5, size=48, out_dir=tmp_path / "a")
    b = make_synthetic_karyotype(3, seed=5, size=48, out_dir=tmp_path / "b")
    c = make_synthetic_karyotype(3, seed=6, size=48, out_dir=tmp_path / "c")
    ma, mb = pd.read_csv(a, dtype=str), pd.read_csv(b, dtype=str)
    pd.testing.assert_frame_equal(ma, mb)
    assert ma.groupby("karyogram").size().tolist() == [46, 46, 46]
    for p in ma["path"][:20]:
        assert (a.parent / p).read_bytes() == (b.parent / p).read_bytes()
    mc = pd.read_csv(c, dtype=str)
    assert (a.parent / ma["path"][0]).read_bytes() != (c.parent / mc["path"][0]).read_bytes()
    sex = ma[ma.chromosome.isin(["X", "Y"])].groupby("karyogram").chromosome.apply(lambda s: "".join(sorted(s)))
    assert set(sex) <= {"XX", "XY"}


def test_karyotype_lengths_fall_with_class_and_dark_on_white() -> None:
    ds = load_dataset(DataConfig(dataset="synthetic-karyotype", options={"n_karyograms": 6, "size": 64}), progress=False)
    assert len(ds) == 6 * 46 and ds.classes[:3] == ["1", "2", "3"] and ds.classes[-2:] == ["X", "Y"]
    assert ds.background == 255 and ds.group_column == "case" and ds.meta["case"].nunique() >= 3
    h = ds.meta.groupby("chromosome")["orig_height"].mean()
    assert h["1"] > h["5"] > h["10"] > h["15"] > h["21"]
    assert ds.meta["orig_height"].nunique() > 20  # varying crop sizes
    img = np.asarray(ds.images[0, 0])
    assert img[0, 0] == 255 and img.min() < 150


def test_cells_dose_effect_plate_effect_and_splits() -> None:
    ds = load_dataset(DataConfig(dataset="synthetic-cells", options={"n_cells": 240, "size": 32},
                                 geometry={"size": 32}), progress=False)
    assert ds.images.shape == (240, 3, 32, 32) and ds.images.dtype == np.uint16
    assert ds.classes == ["control", "treated"] and np.bincount(ds.targets).tolist() == [120, 120]
    assert set(ds.meta.columns) >= {"plate", "well", "compound", "dose", "treated", "orig_height"}
    x = np.asarray(ds.images).astype(float)
    area = (x[:, 0] > 3000).sum(axis=(1, 2))
    dose = ds.meta["dose"].to_numpy()
    assert area[dose == 0].mean() > area[dose == 5].mean() > area[dose == 50].mean()
    plate_mean = pd.Series(x[:, 1].mean(axis=(1, 2))).groupby(ds.meta["plate"]).mean()
    assert plate_mean.max() / plate_mean.min() > 1.05
    s = split_dataset(ds, DataConfig(dataset="x", split={"holdout": ["Plate3"], "val": 0.3}).split)
    assert set(ds.meta["plate"][s.test]) == {"Plate3"} and set(ds.meta["plate"][s.val]).isdisjoint(ds.meta["plate"][s.train])


def test_cells_manifest_deterministic(tmp_path: Path) -> None:
    a = make_synthetic_cells(12, seed=1, size=24, out_dir=tmp_path / "a")
    b = make_synthetic_cells(12, seed=1, size=24, out_dir=tmp_path / "b")
    arr = np.load(a.parent / pd.read_csv(a)["path"][3])
    assert arr.shape == (3, 24, 24) and arr.dtype == np.uint16
    np.testing.assert_array_equal(arr, np.load(b.parent / pd.read_csv(b)["path"][3]))
