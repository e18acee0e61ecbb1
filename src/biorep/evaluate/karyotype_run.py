"""Karyotype assembly of a run's karyograms: assignments, review lists and the summary.

:func:`assemble_run` runs the ``karyotype`` evaluation through the
:class:`~biorep.evaluate.evaluator.Evaluator` and returns the per-crop table (with each crop's image
file) and the summary, writing nothing; :func:`karyotype_run` also writes ``RUN/karyotype/``
(``assignments.csv``, ``summary.json``) and the ``karyotype`` entry of ``evaluation.json``.

Numbers before pictures: this module draws nothing. Karyogram figures are the report stage's
(:func:`biorep.report.karyogram.draw_karyograms`); the ``biorep karyotype`` verb passes that function
as ``figures``, so evaluate never imports report.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from biorep.errors import BiorepError, ConfigError
from biorep.evaluate.context import EvalResult, to_jsonable
from biorep.evaluate.evaluator import Evaluator
from biorep.evaluate.karyotype import chromosome_columns
from biorep.evaluate.rundata import data_config_for, has_classifier, merge_evaluation
from biorep.rundir import (
    EVALUATION_DIR,
    KARYOTYPE_ASSIGNMENTS,
    KARYOTYPE_DIR,
    KARYOTYPE_SUMMARY,
    atomic_write,
    write_json,
)

__all__ = ["ASSIGNMENTS", "KaryotypeAssembly", "Figures", "assemble_run", "karyotype_run", "review_list"]

#: The per-crop table in ``RUN/karyotype/``.
ASSIGNMENTS = KARYOTYPE_ASSIGNMENTS
#: Crops listed per karyogram for review at most (changed first, then by confidence).
MAX_REVIEW = 46

#: ``figures(crops, out_dir, max_images) -> names of the PNGs written`` (see ``draw_karyograms``).
Figures = Callable[[pd.DataFrame, Path, int], list[str]]


def _natural(s: str) -> list[Any]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t]


@dataclass
class KaryotypeAssembly:
    """One assembly of a split's karyograms: the per-crop table and its summary.

    ``crops`` has one row per crop: ``sample_index``, ``path`` (as in the data set), ``file`` (the
    image file, absolute), the metadata columns the evaluation returns (``karyogram``, ``true``,
    ``argmax``, ``assigned``, ``p_argmax``, ``p_assigned``, ``changed``, ``doubtful``, ``flagged``,
    ``reason``, ``sex``) and ``karyogram_column`` names the data's karyogram column.
    """

    run_dir: Path
    crops: pd.DataFrame
    summary: dict[str, Any]
    karyogram_column: str
    key: str
    record: dict[str, Any]
    result: EvalResult

    @property
    def out_dir(self) -> Path:
        return self.run_dir / KARYOTYPE_DIR


def review_list(rows: pd.DataFrame, limit: int = MAX_REVIEW) -> list[dict[str, Any]]:
    """The crops of one karyogram a person should look at: those the assembly changed or doubts.

    Changed crops first, then the least confident; each with its sample index, path, the argmax and
    assigned classes, the probability of the assigned class and why it is listed.
    """
    mask = rows["changed"].astype(bool) | rows["doubtful"].astype(bool)
    listed = rows[mask].copy()
    listed["_order"] = (~listed["changed"].astype(bool)).astype(int)
    listed = listed.sort_values(["_order", "p_assigned"], kind="stable").head(limit)
    out = []
    for _, r in listed.iterrows():
        why = "changed by the assembly" if bool(r["changed"]) else f"p = {float(r['p_assigned']):.2f}"
        if isinstance(r.get("reason"), str) and r["reason"]:
            why += f"; {r['reason']}"
        out.append({
            "sample_index": int(r["sample_index"]), "path": str(r["path"]),
            "argmax": str(r["argmax"]), "assigned": str(r["assigned"]),
            "p_assigned": round(float(r["p_assigned"]), 4),
            "true": None if pd.isna(r.get("true")) else str(r["true"]), "why": why,
        })
    return out


def _files(ev: Evaluator) -> list[str] | None:
    """Absolute image file per row of the evaluated data set (``None`` when the source is unreadable)."""
    from biorep.data import resolve_source

    try:
        cfg = data_config_for(ev.run, ev.data_arg) if ev.foreign else ev.run.config.data
        files = list(resolve_source(cfg).files)
    except BiorepError:
        return None
    return files if len(files) == len(ev.data.ds) else None


def assemble_run(
    run_dir: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    split: str | None = None,
    options: Mapping[str, Any] | None = None,
    data_root: str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: str | None = None,
) -> KaryotypeAssembly:
    """Constrained karyotype assembly of every karyogram of a split; writes nothing.

    Returns:
        The :class:`KaryotypeAssembly`; its summary holds accuracies before/after, flagged
        karyograms and, per karyogram, counts and a ``review`` list (:func:`review_list`).
    """
    ev = Evaluator(run_dir, data=data, split=split, data_root=data_root, progress=progress, device=device)
    if not has_classifier(ev.run):
        raise ConfigError(f"run {ev.run_dir} ({ev.run.config.method.name}) has no classifier; "
                          "karyotype assembly "
                          "needs class probabilities from a supervised / supcon / weak run")
    chromosome_columns(ev.run.classes)  # a ConfigError naming the missing chromosome classes
    plan = ev.plan(["karyotype"], {"karyotype": dict(options or {})})
    ctx, kw, res = ev.evaluate("karyotype", plan["karyotype"])
    crops = res.table.copy() if res.table is not None else pd.DataFrame()
    meta = ctx.meta.reset_index(drop=True)
    index = meta["sample_index"].to_numpy()
    crops.insert(0, "sample_index", index)
    crops.insert(1, "path", meta["path"].to_numpy())
    files = _files(ev)
    crops.insert(2, "file", [files[int(i)] for i in index] if files is not None else None)

    per_karyogram = []
    for k, rows in crops.groupby("karyogram", sort=False):
        t = rows["true"]
        known = t.notna().to_numpy()
        per_karyogram.append({
            "karyogram": str(k), "n_crops": int(len(rows)), "flagged": bool(rows["flagged"].any()),
            "sex": rows["sex"].dropna().iloc[0] if rows["sex"].notna().any() else None,
            "accuracy_argmax": float((rows["argmax"][known] == t[known]).mean()) if known.any() else None,
            "accuracy_assigned": float((rows["assigned"][known] == t[known]).mean()) if known.any() else None,
            "n_changed": int(rows["changed"].sum()),
            "n_doubtful": int(rows["doubtful"].sum()),
            "review": review_list(rows),
        })
    per_karyogram.sort(key=lambda r: _natural(r["karyogram"]))
    summary = {**to_jsonable(res.summary), "split": ev.split,
               "data": ev.data_arg or ev.run.config.data.dataset,
               "n_review": int(sum(len(r["review"]) for r in per_karyogram)),
               "per_karyogram": per_karyogram, "images": []}
    key = "karyotype" + ev.suffix
    return KaryotypeAssembly(run_dir=ev.run_dir, crops=crops, summary=summary,
                             karyogram_column=str(kw.get("karyogram_column", "karyogram")), key=key,
                             record=ev.record(res, len(crops)), result=res)


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
    figures: Figures | None = None,
) -> dict[str, Any]:
    """Assemble (:func:`assemble_run`) and store the result in the run directory.

    Writes ``RUN/karyotype/assignments.csv`` (one row per crop: metadata, image file, true, argmax,
    assigned, probabilities, changed, doubtful, flagged, reason, sex), ``RUN/karyotype/summary.json``
    (accuracy before/after, flagged karyograms, per-karyogram counts and review lists, figures drawn)
    and the ``karyotype`` entry of ``evaluation.json`` (with the usual ``@`` suffixes). With
    ``figures`` (e.g. :func:`biorep.report.karyogram.draw_karyograms`), up to ``max_images``
    karyogram PNGs are drawn into ``RUN/karyotype/`` and listed under ``images``.

    Returns:
        The summary (also written to ``summary.json``).
    """
    if max_images < 0:
        raise ConfigError(f"--max-images must be >= 0, got {max_images}")
    asm = assemble_run(run_dir, data=data, split=split, options=options, data_root=data_root,
                       progress=progress, device=device)
    out_dir = asm.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if figures is not None:
        asm.summary["images"] = list(figures(asm.crops, out_dir, max_images))
    atomic_write(out_dir / ASSIGNMENTS, lambda p: asm.crops.to_csv(p, index=False))
    write_json(out_dir / KARYOTYPE_SUMMARY, asm.summary)
    asm.result.save(asm.run_dir / EVALUATION_DIR, stem=asm.key)
    merge_evaluation(asm.run_dir, {asm.key: asm.record})
    return asm.summary
