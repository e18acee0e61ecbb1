"""Checks against silent wrong answers, in-process: duplicate manifest paths, split messages, tiny and
missing classes, new images unlike the training ones, and the decode cache on a full disk."""

from __future__ import annotations

import errno
import logging
import os
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biorep.data import DataConfig, SplitConfig, load_dataset, split_dataset
from biorep.data.checks import check_classes, compare_images, image_stats
from biorep.data.sources import read_manifest
from biorep.data.splits import warn_small_classes
from biorep.errors import BiorepError, DataError

from .conftest import blob, write_image


def _manifest(tmp_path: Path, rows: list[dict]) -> Path:
    for r in rows:
        p = tmp_path / r["path"]
        if not p.exists():
            write_image(p, blob(20, 20, seed=len(r["path"])))
    m = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(m, index=False)
    return m


def test_duplicate_path_with_conflicting_labels_lists_them(tmp_path: Path) -> None:
    m = _manifest(tmp_path, [{"path": "a.png", "label": "x"}, {"path": "b.png", "label": "y"},
                             {"path": "sub/../a.png", "label": "y"}])
    with pytest.raises(DataError) as exc:
        read_manifest(m)
    msg = str(exc.value)
    assert str(m) in msg and "a.png (lines 2, 4: 'x', 'y')" in msg and "b.png" not in msg


def test_duplicate_path_with_same_label_is_dropped_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    m = _manifest(tmp_path, [{"path": "a.png", "label": "x", "plate": "p1"}, {"path": "b.png", "label": "y", "plate": "p1"},
                             {"path": "a.png", "label": "x", "plate": "p2"}])
    with caplog.at_level(logging.WARNING, logger="biorep.data"):
        src = read_manifest(m)
    assert len(src.files) == 2 and src.meta["path"].tolist() == ["a.png", "b.png"]
    assert src.meta["plate"].tolist() == ["p1", "p1"]  # the first row wins
    assert "listed more than once" in caplog.text and "a.png (lines 2, 4)" in caplog.text


def test_no_image_in_two_split_parts_after_dedup(tmp_path: Path) -> None:
    rows = [{"path": f"i{i}.png", "label": "xy"[i % 2]} for i in range(10)]
    m = _manifest(tmp_path, rows + rows[:5])
    ds = load_dataset(DataConfig(dataset=str(m), geometry={"size": 16}), progress=False)
    assert len(ds) == 10
    s = split_dataset(ds, SplitConfig(test=0.3, val=0.2, seed=0))
    paths = [set(ds.meta["path"].iloc[p]) for p in (s.train, s.val, s.test)]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])


def test_one_group_error_names_manifest_and_column(tmp_path: Path) -> None:
    rows = [{"path": f"i{i}.png", "label": "xy"[i % 2], "case": "c1"} for i in range(6)]
    m = _manifest(tmp_path, rows)
    ds = load_dataset(DataConfig(dataset=str(m), group="case", geometry={"size": 16}), progress=False)
    with pytest.raises(DataError) as exc:
        split_dataset(ds, SplitConfig(test=0.3, val=0.0))
    msg = str(exc.value)
    assert str(m) in msg and "'case'" in msg and "split.test" in msg and "'c1'" in msg


def test_small_classes_are_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"path": f"i{i}.png", "label": "xy"[i % 2]} for i in range(12)] + [{"path": "z.png", "label": "z"}]
    m = _manifest(tmp_path, rows)
    ds = load_dataset(DataConfig(dataset=str(m), geometry={"size": 16}), progress=False)
    with caplog.at_level(logging.WARNING, logger="biorep.data.splits"):
        s = split_dataset(ds, SplitConfig(test=0.25, val=0.0, seed=0))
    assert "'z' (1 image(s)" in caplog.text and "'x'" not in caplog.text
    assert warn_small_classes(ds, s) == ["z"]
    # enough images everywhere: no warning
    assert warn_small_classes(ds.subset(np.flatnonzero(ds.targets < 2)), s.__class__(
        np.arange(8), np.arange(0), np.arange(8, 12))) == []


def test_check_classes() -> None:
    t = np.array([0, 0, 0, 1, -1])
    check_classes(t, ["a", "b"], method="supervised")
    with pytest.raises(DataError) as exc:
        check_classes(t, ["a", "b"], np.array([0, 1, 2]), method="supervised", where="m.csv", column="label")
    msg = str(exc.value)
    assert "m.csv" in msg and "'supervised'" in msg and "only class 'a'" in msg and "'label'" in msg
    with pytest.raises(DataError, match="no labelled image"):
        check_classes(np.array([-1, -1]), [], method="supcon")


def test_compare_images_names_each_difference() -> None:
    record = {"dtype": "uint8", "channels": 1,
              "images": {"dtype": "uint8", "channels": 1, "orig_height": {"p05": 20, "median": 30, "p95": 40},
                         "orig_width": {"p05": 10, "median": 12, "p95": 14}}}
    assert compare_images(record, dtypes=["uint8"] * 3, channels=[1] * 3, heights=[30, 31, 29],
                          widths=[12] * 3) == []
    problems = compare_images(record, dtypes=["uint16", "uint16", "uint8"], channels=[1, 3, 1],
                              heights=[90, 95, 100], widths=[12] * 3)
    text = " ".join(problems)
    assert len(problems) == 3
    assert "2 of 3 image(s) are not uint8 (2 uint16)" in text and "intensity scaler" in text
    assert "1 of 3 image(s) do not have 1 channel(s)" in text
    assert "median height is 95 px" in text and "30 px" in text
    # a median like the training images' does not hide the few that are not
    odd = compare_images(record, dtypes=["uint8"] * 5, heights=[30, 31, 29, 200, 5], widths=[12] * 5)
    assert odd == ["size: 2 of 5 image(s) have a height (5–200 px) more than 1.5× outside the training images' "
                   "5–95 % range (20–40 px)"]
    # runs without recorded image statistics: pixel type from data.json's dtype only
    assert compare_images({"dtype": "uint8"}, dtypes=["float32"], heights=[500]) != []
    assert compare_images({"dtype": "uint8"}, dtypes=["uint8"], heights=[500]) == []


def test_image_stats(tmp_path: Path) -> None:
    rows = [{"path": f"i{i}.png", "label": "x"} for i in range(4)]
    m = _manifest(tmp_path, rows)
    ds = load_dataset(DataConfig(dataset=str(m), geometry={"size": 16}), progress=False)
    st = image_stats(ds)
    assert st["dtype"] == "uint8" and st["channels"] == 1 and st["orig_height"]["median"] == 20


def _images(tmp_path: Path, n: int = 6) -> Path:
    for i in range(n):
        write_image(tmp_path / "imgs" / "a" / f"{i}.png", blob(20, 20, seed=i))
    return tmp_path / "imgs"


def test_cache_on_a_full_disk_is_one_error_and_leaves_nothing(tmp_path: Path, isolated_cache: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _images(tmp_path)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda p: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(BiorepError) as exc:
        load_dataset(DataConfig(dataset=str(folder), geometry={"size": 64}), progress=False)
    assert "not enough free space" in str(exc.value) and str(isolated_cache) in str(exc.value)
    assert [p for p in isolated_cache.rglob("*") if p.is_file()] == []


def test_cache_write_failure_cleans_its_temp_file(tmp_path: Path, isolated_cache: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _images(tmp_path)

    def enospc(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", enospc)
    with pytest.raises(BiorepError) as exc:
        load_dataset(DataConfig(dataset=str(folder), geometry={"size": 64}), progress=False)
    assert "No space left on device" in str(exc.value)
    assert [p for p in isolated_cache.rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    ds = load_dataset(DataConfig(dataset=str(folder), geometry={"size": 64}), progress=False)  # works again
    assert len(ds) == 6


def test_unwritable_cache_folder_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BIOREP_CACHE", str(blocker / "cache"))
    with pytest.raises(BiorepError) as exc:
        load_dataset(DataConfig(dataset=str(_images(tmp_path)), geometry={"size": 16}), progress=False)
    assert str(blocker) in str(exc.value) and "BIOREP_CACHE" in str(exc.value)
