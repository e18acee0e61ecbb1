"""Group-aware, stratified, seeded splits (scikit-learn's group splitters underneath).

No group (case, plate, ...) ever appears in two parts of a split; classes are balanced across parts
where the groups allow it; the same seed gives the same split.

Example:
    >>> splits = split_dataset(ds, SplitConfig(test=0.2, val=0.1, seed=0))   # doctest: +SKIP
    >>> folds = group_folds(ds, "plate")                                       # doctest: +SKIP
    >>> [len(f.test) for f in folds]                                          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from biorep.data.config import SplitConfig
from biorep.data.dataset import ImageDataset
from biorep.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Splits:
    """Sorted integer row indices of the train, validation and test parts."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-able form (for ``data.json``)."""
        return {k: getattr(self, k).astype(int).tolist() for k in ("train", "val", "test")}

    @classmethod
    def from_dict(cls, d: dict[str, list[int]]) -> Splits:
        """Inverse of :meth:`to_dict`."""
        return cls(*(np.asarray(d.get(k, []), dtype=np.int64) for k in ("train", "val", "test")))


def _as_splits(train: np.ndarray, val: np.ndarray, test: np.ndarray) -> Splits:
    return Splits(*(np.sort(np.asarray(a, dtype=np.int64)) for a in (train, val, test)))


def _carve(
    idx: np.ndarray, frac: float, y: np.ndarray, groups: np.ndarray | None, stratify: bool, seed: int,
    *, where: str = "", column: str | None = None, part_name: str = "test",
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, part) with ``part`` ≈ ``frac`` of it, by group and stratified.

    ``where`` (the manifest or data set), ``column`` (the group column) and ``part_name`` only name
    things in error messages."""
    prefix = f"{where}: " if where else ""
    if frac <= 0 or idx.size == 0:
        return idx, idx[:0]
    from sklearn.model_selection import (
        GroupShuffleSplit,
        StratifiedGroupKFold,
        StratifiedShuffleSplit,
        ShuffleSplit,
    )

    yy = y[idx]
    labeled = yy >= 0
    can_stratify = stratify and labeled.all() and np.unique(yy).size > 1
    if groups is None:
        n_part = max(1, round(frac * idx.size))
        if n_part >= idx.size:
            raise DataError(f"{prefix}cannot split {idx.size} sample(s) to leave a fraction {frac:.2g} out for "
                            f"split.{part_name}; give more images or set split.{part_name}: 0")
        if can_stratify and np.bincount(yy).min(initial=2) >= 2 and n_part >= np.unique(yy).size:
            splitter = StratifiedShuffleSplit(1, test_size=n_part, random_state=seed)
        else:
            splitter = ShuffleSplit(1, test_size=n_part, random_state=seed)
        rest, part = next(splitter.split(idx, yy))
        return idx[rest], idx[part]
    g = groups[idx]
    n_groups = np.unique(g).size
    if n_groups < 2:
        left = " left after the test part" if part_name == "val" else ""
        raise DataError(
            f"{prefix}cannot make split.{part_name} by group column {column!r}: it has only {n_groups} "
            f"value(s){left} ({', '.join(map(repr, np.unique(g)[:3].tolist()))}), and whole groups go to "
            f"one part; use a column with more values (split.group), set split.{part_name}: 0, or (for "
            "your own manifest) leave data.group unset to split image by image"
        )
    n_splits = int(min(n_groups, max(2, round(1 / frac))))
    if can_stratify:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "least populated class has fewer members than n_splits"
            rest, part = next(splitter.split(idx, yy, g))
    else:
        splitter = GroupShuffleSplit(1, test_size=1 / n_splits, random_state=seed)
        rest, part = next(splitter.split(idx, yy, g))
    return idx[rest], idx[part]


def group_values(ds: ImageDataset, column: str) -> np.ndarray:
    """``column`` as one string per sample; a sample without a value is refused, since it would
    otherwise form a group of its own (``'nan'``) that can end up as a whole split part.

    Raises:
        DataError: rows whose group is empty or missing (how many, and the first image).
    """
    values = ds.meta[column]
    missing = (values.isna() | values.astype(str).str.strip().eq("")).to_numpy()
    if missing.any():
        first = ds.meta["path"].iloc[int(np.flatnonzero(missing)[0])] if "path" in ds.meta.columns else "?"
        where = str(ds.info.get("origin") or ds.name)
        raise DataError(
            f"{where}: group column {column!r} is empty for {int(missing.sum())} of {len(values)} image(s) "
            f"(first: {first}); whole groups go to one split part, so every image needs its group — fill "
            "them in or drop those rows"
        )
    return values.astype(str).to_numpy()


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _check_holdout(holdout: list[str], groups: np.ndarray, column: str, *, numeric: list[str]) -> None:
    """Every holdout value is a group, and one given as a YAML number (``numeric``) does not stand
    for another spelling (``[001]`` is the number 1, so ``'1'``, while the data has plates ``001`` and ``1``).

    Raises:
        DataError: a value that is no group, or that names several groups read as numbers.
    """
    present = set(groups.tolist())
    missing = sorted(set(holdout) - present)
    if missing:
        raise DataError(f"split.holdout: group(s) {missing} not found in column {column!r}")
    for value in numeric:
        num = _number(value)
        alike = sorted(g for g in present if g != value and num is not None and _number(g) == num)
        if alike:
            raise DataError(
                f"split.holdout: {value!r} is ambiguous: column {column!r} also has {', '.join(map(repr, alike))}, "
                f"the same number written another way (YAML reads an unquoted 001 as 1); quote the value as "
                f"written in the data, e.g. holdout: ['{alike[0]}']"
            )


def split_dataset(ds: ImageDataset, cfg: SplitConfig | None = None) -> Splits:
    """Train/val/test indices: whole groups per part, stratified by class where possible.

    The group column is ``cfg.group`` or ``ds.group_column`` (no group = per-sample split).
    ``cfg.holdout`` names the test groups explicitly; otherwise ``cfg.test`` of the data (by group)
    becomes the test set. ``cfg.val`` (a fraction of the whole) is then carved from the rest.

    Raises:
        DataError: unknown group column or holdout value, or too few groups to split.
    """
    cfg = cfg or SplitConfig()
    column = cfg.group or ds.group_column
    groups = None
    if column is not None:
        if column not in ds.meta.columns:
            raise DataError(f"split group column {column!r} not in the data set (columns: {', '.join(ds.meta.columns)})")
        groups = group_values(ds, column)
    idx = np.arange(len(ds))
    y = ds.targets
    where = str(ds.info.get("origin") or ds.name)
    if cfg.holdout:
        if groups is None:
            raise DataError("split.holdout needs a group column (set data.group or split.group)")
        _check_holdout(cfg.holdout, groups, column, numeric=cfg._numeric_holdout)
        in_test = np.isin(groups, cfg.holdout)
        rest, test = idx[~in_test], idx[in_test]
    else:
        rest, test = _carve(idx, cfg.test, y, groups, cfg.stratify, cfg.seed, where=where, column=column)
    val_frac = cfg.val / max(1e-9, rest.size / max(1, idx.size))
    val_frac = min(val_frac, 0.5)
    train, val = _carve(rest, val_frac if cfg.val > 0 else 0.0, y, groups, cfg.stratify, cfg.seed + 1,
                        where=where, column=column, part_name="val")
    if groups is not None:
        if not cfg.holdout:
            _warn_coarse("test", cfg.test, test, groups, column)
        _warn_coarse("val", cfg.val, val, groups, column)
    splits = _as_splits(train, val, test)
    warn_small_classes(ds, splits)
    return splits


def warn_small_classes(ds: ImageDataset, splits: Splits) -> list[str]:
    """Warn (naming them) about classes with fewer images than the split needs, or none in training.

    The split needs one image per class in training, plus one in each non-empty validation and
    test part; a class below that is either never learned or never scored. Returns the warned classes.
    """
    y = np.asarray(ds.targets)
    if not (y >= 0).any() or not len(ds.classes):
        return []
    counts = np.bincount(y[y >= 0], minlength=len(ds.classes))
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    needed = 1 + sum(1 for k in ("val", "test") if len(parts[k]))
    problems: list[str] = []
    names: list[str] = []
    empty = [str(ds.classes[c]) for c, n in enumerate(counts) if n == 0]
    if empty:  # a declared class (data.classes) that no image has: an output never trained or scored
        log.warning("%s: %d declared class(es) have no image at all: %s; the classifier keeps an output for each "
                    "that is never trained — remove them from data.classes if that is not meant",
                    ds.info.get("origin") or ds.name, len(empty), ", ".join(map(repr, empty[:10])))
    for c, n in enumerate(counts):
        if n == 0:
            continue
        missing = [k for k, rows in parts.items() if len(rows) and not (y[rows] == c).any()]
        if n < needed or "train" in missing:
            names.append(str(ds.classes[c]))
            problems.append(f"{ds.classes[c]!r} ({n} image(s); none in {'/'.join(missing) or '-'})"
                            if missing else f"{ds.classes[c]!r} ({n} image(s))")
    if problems:
        log.warning("%s: %d class(es) have fewer images than the split needs (%d: one for training%s): %s; "
                    "a class without training images is never learned, one without test images never "
                    "scored — add images or merge these classes", ds.info.get("origin") or ds.name,
                    len(problems), needed, " and one per val/test part" if needed > 1 else "",
                    ", ".join(problems[:10]) + (" ..." if len(problems) > 10 else ""))
    return names


def _warn_coarse(part: str, asked: float, rows: np.ndarray, groups: np.ndarray, column: str) -> None:
    """Warn when whole groups make a split part far larger than asked (e.g. 1 of 3 plates for 0.1)."""
    got = rows.size / max(1, groups.size)
    if asked > 0 and got > max(2 * asked, asked + 0.1):
        n_in, n_all = np.unique(groups[rows]).size, np.unique(groups).size
        log.warning("split.%s asked for %.2f of the samples but whole groups of %r give %.2f (%d of %d "
                    "groups); set split.%s: 0, a smaller value or a data set with more groups if that "
                    "is not what you meant", part, asked, column, got, n_in, n_all, part)


def group_folds(ds: ImageDataset, column: str | None = None, *, val: float = 0.0, seed: int = 0) -> list[Splits]:
    """Leave-one-group-out: one :class:`Splits` per value of ``column`` (default the group column).

    Each fold tests on one group and trains on the others; with ``val > 0`` a group-aware
    validation part (that fraction of the training rows) is carved from the training groups.
    """
    column = column or ds.group_column
    if column is None:
        raise DataError("group_folds needs a column (the data set has no group column)")
    if column not in ds.meta.columns:
        raise DataError(f"group_folds: column {column!r} not in the data set (columns: {', '.join(ds.meta.columns)})")
    groups = group_values(ds, column)
    values = sorted(set(groups.tolist()))
    if len(values) < 2:
        raise DataError(f"group_folds: column {column!r} has only {len(values)} value(s)")
    idx = np.arange(len(ds))
    folds = []
    for v in values:
        test = idx[groups == v]
        rest = idx[groups != v]
        train, va = _carve(rest, val, ds.targets, groups, True, seed)
        folds.append(_as_splits(train, va, test))
    return folds
