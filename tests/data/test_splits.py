from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biorep.data import ImageDataset, SplitConfig, group_folds, split_dataset
from biorep.errors import DataError


def _ds(n_groups: int = 40, per_group: int = 10, n_classes: int = 4, group: str | None = "case") -> ImageDataset:
    n = n_groups * per_group
    meta = pd.DataFrame({"path": [f"{i}.png" for i in range(n)], "case": np.repeat([f"c{g}" for g in range(n_groups)], per_group)})
    targets = np.tile(np.arange(n_classes), n // n_classes + 1)[:n].astype(np.int64)
    return ImageDataset(name="t", images=np.zeros((n, 1, 2, 2), np.uint8), meta=meta, label_column="y",
                        classes=[str(c) for c in range(n_classes)], targets=targets, group_column=group,
                        background=0.0, channels=1, size=2)


def _groups(ds: ImageDataset, idx: np.ndarray) -> set[str]:
    return set(ds.meta["case"].to_numpy()[idx])


def test_no_group_in_two_parts_and_fractions() -> None:
    ds = _ds()
    s = split_dataset(ds, SplitConfig(test=0.2, val=0.1, seed=3))
    parts = [s.train, s.val, s.test]
    assert sum(map(len, parts)) == len(ds) and len(np.unique(np.concatenate(parts))) == len(ds)
    assert not (_groups(ds, s.train) & _groups(ds, s.test))
    assert not (_groups(ds, s.train) & _groups(ds, s.val))
    assert not (_groups(ds, s.val) & _groups(ds, s.test))
    assert 0.15 < len(s.test) / len(ds) < 0.25 and 0.05 < len(s.val) / len(ds) < 0.15
    for part in parts:  # stratified: every class in every part
        assert set(ds.targets[part]) == {0, 1, 2, 3}


def test_deterministic_by_seed() -> None:
    ds = _ds()
    a = split_dataset(ds, SplitConfig(seed=1))
    b = split_dataset(ds, SplitConfig(seed=1))
    c = split_dataset(ds, SplitConfig(seed=2))
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert not np.array_equal(a.test, c.test)
    assert a.to_dict() == type(a).from_dict(a.to_dict()).to_dict()


def test_explicit_holdout_groups() -> None:
    ds = _ds()
    s = split_dataset(ds, SplitConfig(holdout=["c0", "c5"], val=0.1))
    assert _groups(ds, s.test) == {"c0", "c5"} and not ({"c0", "c5"} & _groups(ds, s.train))
    with pytest.raises(DataError, match="not found"):
        split_dataset(ds, SplitConfig(holdout=["nope"]))


def test_without_groups_splits_samples_stratified() -> None:
    ds = _ds(group=None)
    s = split_dataset(ds, SplitConfig(test=0.25, val=0.0))
    assert len(s.val) == 0 and len(s.test) == 100
    assert np.bincount(ds.targets[s.test]).tolist() == [25, 25, 25, 25]


def test_group_folds_leave_one_group_out() -> None:
    ds = _ds(n_groups=3, per_group=20)
    folds = group_folds(ds, "case", val=0.3)
    assert [sorted(_groups(ds, f.test)) for f in folds] == [["c0"], ["c1"], ["c2"]]
    for f in folds:
        assert not (_groups(ds, f.train) & _groups(ds, f.test)) and not (_groups(ds, f.val) & _groups(ds, f.train))
        assert len(f.train) + len(f.val) + len(f.test) == len(ds)
    with pytest.raises(DataError, match="column 'plate'"):
        group_folds(ds, "plate")


def test_warns_when_whole_groups_make_a_part_far_larger_than_asked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="biorep.data.splits"):
        split_dataset(_ds(), SplitConfig(test=0.2, val=0.1, seed=3))  # 40 groups: close to what was asked
    assert not caplog.records
    with caplog.at_level("WARNING", logger="biorep.data.splits"):
        s = split_dataset(_ds(n_groups=3), SplitConfig(holdout=["c0"], val=0.1))
    assert len(s.val) == 10 and len(caplog.records) == 1  # one of the two training groups
    msg = caplog.records[0].getMessage()
    assert "split.val asked for 0.10" in msg and "'case' give 0.33 (1 of 3 groups)" in msg


def test_an_image_without_a_group_is_refused() -> None:
    """A missing group would be a group of its own ('nan') and could become the whole val part."""
    ds = _ds(n_groups=4, per_group=3)
    ds.meta.loc[3, "case"] = None
    with pytest.raises(DataError, match=r"group column 'case' is empty for 1 of 12 image\(s\) \(first: 3.png\)"):
        split_dataset(ds, SplitConfig(group="case"))
    with pytest.raises(DataError, match="is empty"):
        group_folds(ds, "case")


def test_a_holdout_number_that_names_several_spellings_is_refused() -> None:
    """YAML reads ``holdout: [001]`` as the number 1; with plates 001, 01 and 1 that is ambiguous."""
    ds = _ds(n_groups=3, per_group=4)
    ds.meta["case"] = np.repeat(["001", "01", "1"], 4)
    with pytest.raises(DataError, match=r"'1' is ambiguous: column 'case' also has '001', '01'"):
        split_dataset(ds, SplitConfig(holdout=[1], val=0))
    for written in ("001", "1"):  # quoted: the spelling is the lab's own
        splits = split_dataset(ds, SplitConfig(holdout=[written], val=0))
        assert set(ds.meta["case"].to_numpy()[splits.test]) == {written}


def test_a_declared_class_without_images_is_named(caplog: pytest.LogCaptureFixture) -> None:
    from biorep.data.splits import warn_small_classes

    ds = _ds(n_groups=10, per_group=4, n_classes=2)
    ds.classes = ["0", "1", "never"]
    warn_small_classes(ds, split_dataset(ds, SplitConfig(group="case")))
    assert "1 declared class(es) have no image at all: 'never'" in caplog.text
