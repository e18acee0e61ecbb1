"""Checks that stop silent wrong answers: too few classes to learn, and new images unlike the training ones.

- :func:`check_classes`: a method that learns to tell classes apart needs at least two of them in
  its training split (one class trains to a perfect, meaningless val/acc 1.0).
- :func:`image_stats` / :func:`compare_images`: pixel type, channel count and original size of a
  run's training images (what ``data.json`` records) against images given later to ``predict``;
  the intensity scaler was fitted on the training pixel type, so 16-bit images fed to a run trained
  on 8-bit ones turn almost black and still get a confident class.

Example:
    >>> check_classes(targets, classes, splits.train, method="supervised", where="cells.csv")  # doctest: +SKIP
    >>> compare_images(record, dtypes=["uint16"], heights=[64], widths=[64])                  # doctest: +SKIP
    ['pixel type: 1 of 1 image(s) are uint16, the run was trained on uint8 images']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from biorep.errors import DataError

__all__ = ["SIZE_RATIO", "check_classes", "compare_images", "image_stats"]

#: New images whose median height or width lies beyond the training images' 5–95 % range by more
#: than this factor (either way) are reported: a canvas keeps physical scale, so they would look
#: unlike the training images.
SIZE_RATIO = 1.5


def check_classes(
    targets: np.ndarray,
    classes: Sequence[str],
    train: np.ndarray | None = None,
    *,
    method: str,
    where: str = "",
    column: str | None = None,
) -> None:
    """Raise a :class:`DataError` when fewer than two classes have a training image.

    Call it for methods that learn from class labels (a classifier or label-based loss), with the
    method's targets (after ``make_targets``) and the training rows.

    Raises:
        DataError: naming the data set, the label column, the classes found and what to do.
    """
    t = np.asarray(targets, dtype=np.int64)
    if train is not None:
        t = t[np.asarray(train, dtype=np.int64)]
    present = sorted(set(int(v) for v in np.unique(t[t >= 0])))
    if len(present) >= 2:
        return
    names = [str(classes[i]) for i in present if i < len(classes)]
    prefix = f"{where}: " if where else ""
    col = f" in label column {column!r}" if column else ""
    found = f"only class {names[0]!r}" if names else "no labelled image"
    raise DataError(
        f"{prefix}method {method!r} learns to tell classes apart, but the training split has {found}{col} "
        f"({len(classes)} class(es) in all); give data with at least 2 classes, point data.label / "
        "method.column at another column, or use a self-supervised method (byol, simclr, vicreg, ...)"
    )


def _quantiles(v: np.ndarray) -> dict[str, float]:
    v = np.asarray(v, dtype=np.float64)
    return {"p05": float(np.quantile(v, 0.05)), "median": float(np.median(v)), "p95": float(np.quantile(v, 0.95))}


def image_stats(ds: Any) -> dict[str, Any]:
    """What the training images looked like before geometry, for ``data.json`` (key ``images``).

    ``{"dtype", "channels", "orig_height": {p05, median, p95}, "orig_width": {...}}``.
    """
    out: dict[str, Any] = {"dtype": str(ds.images.dtype), "channels": int(ds.channels)}
    for col in ("orig_height", "orig_width"):
        if col in ds.meta.columns and len(ds.meta):
            out[col] = _quantiles(ds.meta[col].to_numpy())
    return out


def _get(record: Any, key: str) -> Any:
    if isinstance(record, Mapping):
        return record.get(key)
    value = getattr(record, key, None)
    if value is None and hasattr(record, "model_extra"):
        value = (record.model_extra or {}).get(key)
    return value


def compare_images(
    record: Any,
    *,
    dtypes: Sequence[str],
    channels: Sequence[int] = (),
    heights: Sequence[int] = (),
    widths: Sequence[int] = (),
) -> list[str]:
    """How new images differ from a run's training images; one sentence per difference.

    Args:
        record: the run's ``data.json`` (a dict or :class:`~biorep.rundir.DataRecord`): ``dtype`` and
            ``channels`` of the training images, and ``images`` (:func:`image_stats`) when recorded.
        dtypes / channels / heights / widths: per new image, its pixel type, channel count (before
            channel selection) and original size.
    """
    problems: list[str] = []
    stats = _get(record, "images") or {}
    want_dtype = stats.get("dtype") or _get(record, "dtype")
    n = len(dtypes)
    if want_dtype and n:
        other = Counter(d for d in dtypes if d != want_dtype)
        if other:
            kinds = ", ".join(f"{k} {d}" for d, k in other.most_common())
            problems.append(
                f"pixel type: {sum(other.values())} of {n} image(s) are not {want_dtype} ({kinds}) but the run was "
                f"trained on {want_dtype} images, and its intensity scaler was fitted on {want_dtype} values "
                f"(convert the images to {want_dtype} or train on this pixel type)"
            )
    want_channels = stats.get("channels") or _get(record, "channels")
    if want_channels and channels:
        other_c = Counter(c for c in channels if c != want_channels)
        if other_c:
            kinds = ", ".join(f"{k} with {c}" for c, k in other_c.most_common())
            problems.append(f"channels: {sum(other_c.values())} of {len(channels)} image(s) do not have "
                            f"{want_channels} channel(s) like the training images ({kinds})")
    for name, values in (("height", heights), ("width", widths)):
        q = stats.get(f"orig_{name}") or {}
        ref = q.get("median")
        if not ref or not len(values):
            continue
        med = float(np.median(values))
        ratio = med / float(ref)
        low, high = float(q.get("p05", ref)) / SIZE_RATIO, float(q.get("p95", ref)) * SIZE_RATIO
        span = f"{q.get('p05', ref):g}–{q.get('p95', ref):g} px"
        if med > high or med < low:
            problems.append(
                f"size: the images' median {name} is {med:g} px, {ratio:.2g}× the training images' {ref:g} px "
                f"(their 5–95 % range: {span})"
            )
            continue
        arr = np.asarray(values, dtype=float)
        odd = arr[(arr > high) | (arr < low)]
        if len(odd):  # the median is like the training images', some images are not
            problems.append(
                f"size: {len(odd)} of {len(arr)} image(s) have a {name} ({odd.min():g}–{odd.max():g} px) more than "
                f"{SIZE_RATIO:g}× outside the training images' 5–95 % range ({span})"
            )
    return problems
