"""Karyotype assembly of a run's karyograms: assignments, summary and one karyogram figure per cell.

:func:`karyotype_run` runs the ``karyotype`` evaluation through the :class:`~biorep.evaluate.evaluator.Evaluator`
and writes ``RUN/karyotype/`` (``assignments.csv``, ``summary.json``, PNG karyograms).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from biorep.errors import ConfigError
from biorep.evaluate.context import run_evaluation, to_jsonable
from biorep.evaluate.evaluator import Evaluator
from biorep.evaluate.karyotype import chromosome_columns
from biorep.evaluate.rundata import (
    EVALUATION_DIR,
    KARYOTYPE_DIR,
    _write_json,
    atomic_write,
    has_classifier,
    merge_evaluation,
    slug,
)

__all__ = ["karyotype_run"]


def _natural(s: str) -> list[Any]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t]


def _crop_content(img: np.ndarray, background: float, pad: int = 1) -> np.ndarray:
    """The canvas image cut to its non-background box (so crops keep their relative sizes)."""
    a = np.asarray(img)
    a2 = a[0] if a.ndim == 3 else a
    tol = 0.04 * (float(np.iinfo(a2.dtype).max) if np.issubdtype(a2.dtype, np.integer) else
                  max(float(np.ptp(a2)), 1e-6))
    mask = np.abs(a2.astype(np.float64) - float(background)) > tol
    if not mask.any():
        return a2
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, a2.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, a2.shape[1])
    return a2[r0:r1, c0:c1]


def karyotype_run(
    run_dir: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    split: str | None = None,
    max_images: int = 12,
    options: Mapping[str, Any] | None = None,
    data_root: str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Constrained karyotype assembly of every karyogram of a split, with files and figures.

    Writes ``RUN/karyotype/assignments.csv`` (one row per crop: metadata, true, argmax, assigned,
    probabilities, changed, doubtful, flagged, reason, sex), ``RUN/karyotype/summary.json`` (accuracy
    before/after, flagged karyograms, per-karyogram counts, figures drawn) and one PNG per karyogram
    for the first ``max_images`` (flagged ones first, then by name; crops cut from the canvas images,
    grouped by assigned class, doubtful ones framed in red). The result is also stored in
    ``evaluation.json`` under ``karyotype`` (with the usual ``@`` suffixes).

    Returns:
        The summary (also written to ``summary.json``).
    """
    from biorep.report import render_karyogram

    if max_images < 0:
        raise ConfigError(f"--max-images must be >= 0, got {max_images}")
    ev = Evaluator(run_dir, data=data, split=split, data_root=data_root, progress=progress, device=device)
    if not has_classifier(ev.run):
        raise ConfigError(f"run {ev.run_dir} ({ev.run.config.method.name}) has no classifier; "
                          "karyotype assembly "
                          "needs class probabilities from a supervised / supcon / weak run")
    chromosome_columns(ev.run.classes)  # a ConfigError naming the missing chromosome classes
    plan = ev.plan(["karyotype"], {"karyotype": dict(options or {})})
    ctx, kw = ev.context("karyotype", plan["karyotype"])
    res = run_evaluation("karyotype", ctx, **kw)
    crops = res.table.copy() if res.table is not None else pd.DataFrame()
    meta = ctx.meta.reset_index(drop=True)
    crops.insert(0, "sample_index", meta["sample_index"].to_numpy())
    crops.insert(1, "path", meta["path"].to_numpy())

    kcol = kw.get("karyogram_column", "karyogram")
    flagged = crops.groupby("karyogram", sort=False)["flagged"].any().to_dict()
    order = sorted(flagged, key=lambda k: (not flagged[k], _natural(str(k))))
    per_karyogram = []
    for k, rows in crops.groupby("karyogram", sort=True):
        t = rows["true"]
        known = t.notna().to_numpy()
        per_karyogram.append({
            "karyogram": str(k), "n_crops": int(len(rows)), "flagged": bool(rows["flagged"].any()),
            "sex": rows["sex"].dropna().iloc[0] if rows["sex"].notna().any() else None,
            "accuracy_argmax": float((rows["argmax"][known] == t[known]).mean()) if known.any() else None,
            "accuracy_assigned": float((rows["assigned"][known] == t[known]).mean()) if known.any() else None,
            "n_doubtful": int(rows["doubtful"].sum()),
        })

    out_dir = ev.run_dir / KARYOTYPE_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = ev.data.ds
    images: list[str] = []
    for k in order[:max_images]:
        rows = crops[crops["karyogram"] == k]
        pics = [_crop_content(ds.images[int(i)], ds.background) for i in rows["sample_index"]]
        flag = " — flagged" if bool(rows["flagged"].any()) else ""
        png = render_karyogram(pics, rows["assigned"].tolist(), rows["doubtful"].tolist(),
                               title=f"{kcol} {k}{flag}")
        name = f"{slug(str(k))}.png"
        atomic_write(out_dir / name, lambda p, b=png: p.write_bytes(b))
        images.append(name)
    for old in out_dir.glob("*.png"):
        if old.name not in images:
            old.unlink(missing_ok=True)

    summary = {**to_jsonable(res.summary), "split": ev.split,
               "data": ev.data_arg or ev.run.config.data.dataset,
               "per_karyogram": per_karyogram, "images": images}
    atomic_write(out_dir / "assignments.csv", lambda p: crops.to_csv(p, index=False))
    _write_json(out_dir / "summary.json", summary)
    key = "karyotype" + ev.suffix
    res.save(ev.run_dir / EVALUATION_DIR, stem=key)
    merge_evaluation(ev.run_dir, {key: ev.record(res, len(crops))})
    return summary
