"""Evaluate an ensemble of runs: their class probabilities averaged on the same held-out rows.

A deep ensemble (Lakshminarayanan et al. 2017) of runs on one data set — other seeds, backbones,
methods or canvases — predicts the mean of its members' class probabilities. Each member scores the
rows with its own preprocessing, checkpoint and test-time flips (its stored logits are reused), so
members must share the data set, the evaluated rows and the classes, not the network or the canvas.
The mean goes through the same ``classification`` (with temperature scaling fitted on the shared
validation rows) and ``karyotype`` evaluations a single run gets. (scikit-learn's ``VotingClassifier``
averages estimators it fits itself, not trained run directories.)

Writes ``out``: ``ensemble.json`` (the members and each one's own numbers), ``evaluation.json`` and
``evaluation/<key>.csv`` like a run's. Each invocation replaces the folder as a whole (built beside it,
then renamed into place), so it never mixes two invocations' files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biorep.errors import ConfigError, DataError, RunDirError
from biorep.evaluate.context import EvalContext, EvalResult, run_evaluation
from biorep.evaluate.evaluator import Evaluator
from biorep.evaluate.rundata import EVALUATION_DIR, EVALUATION_FILE
from biorep.rundir import CONFIG, ENSEMBLE, read_json, write_json

#: The evaluations an ensemble runs: the ones that read class probabilities.
ENSEMBLE_EVALUATIONS = ("classification", "karyotype")
#: Headline numbers copied per member into ``ensemble.json``.
HEADLINES = {"classification": ("accuracy", "macro_f1"), "karyotype": ("accuracy_argmax", "accuracy_assigned")}

__all__ = ["ENSEMBLE_EVALUATIONS", "combine_contexts", "evaluate_ensemble", "val_accuracy"]


def combine_contexts(contexts: Sequence[EvalContext], members: Sequence[str]) -> EvalContext:
    """One context whose class probabilities are the members' mean (as log-probabilities, so
    temperature scaling and the coverage table apply unchanged).

    Raises:
        DataError: a member scores other rows, in another order, with other labels or classes (the
            message names it), or has no classifier outputs.
    """
    first = contexts[0]
    _, first_test = first.split()
    probs = []
    for ctx, name in zip(contexts, members):
        p = ctx.probabilities()
        if p is None:
            raise DataError(f"{name}: has no classifier outputs to average")
        if ctx.class_names() != first.class_names():
            raise DataError(f"{name}: classes {ctx.class_names()} differ from {members[0]}'s "
                            f"{first.class_names()}; ensemble members must predict the same classes")
        calib, test = ctx.split()
        if not _same_rows(ctx, test, first, first_test):
            raise DataError(f"{name}: evaluates other test rows than {members[0]} (another split of the data); "
                            "ensemble members must share the split")
        if (ctx.train_idx is None) != (first.train_idx is None) or (
                ctx.train_idx is not None and not _same_rows(ctx, calib, first, first.split()[0])):
            raise DataError(f"{name}: its validation rows (which calibrate the confidences) differ from "
                            f"{members[0]}'s; ensemble members must share the split")
        if not np.array_equal(ctx.targets(), first.targets()):
            raise DataError(f"{name}: its labels of the shared rows differ from {members[0]}'s")
        probs.append(p)
    mean = np.mean(probs, axis=0)
    return EvalContext(first.embeddings, first.meta, label_column=first.label_column, classes=first.classes,
                       logits=np.log(np.clip(mean, 1e-12, None)), group_columns=list(first.group_columns),
                       train_idx=first.train_idx, test_idx=first.test_idx)


def _same_rows(a: EvalContext, ia: np.ndarray, b: EvalContext, ib: np.ndarray) -> bool:
    return np.array_equal(a.meta["sample_index"].to_numpy()[ia], b.meta["sample_index"].to_numpy()[ib])


def val_accuracy(ctx: EvalContext) -> float | None:
    """Accuracy on the context's calibration rows (the run's validation split), None without them."""
    if ctx.train_idx is None or len(ctx.train_idx) == 0:
        return None
    probs = ctx.probabilities()
    if probs is None:
        return None
    rows = np.asarray(ctx.train_idx)
    return float((probs[rows].argmax(1) == ctx.targets()[rows]).mean())


def _check_out(out: Path, members: list[str], overwrite: bool) -> None:
    """Refuse an ``out`` that holds anything but an ensemble's results — another ensemble's only with
    ``overwrite`` — and a member's own run folder or one inside it."""
    resolved = out.resolve()
    for m in members:
        if resolved == Path(m) or resolved.is_relative_to(Path(m)):
            raise RunDirError(f"{out}: inside the member run {m}; choose an --out outside the runs")
    if not out.exists():
        return
    if not out.is_dir():
        raise RunDirError(f"{out}: exists and is not a folder; choose another --out")
    if not any(out.iterdir()):
        return
    record = out / ENSEMBLE
    if not record.is_file() or (out / CONFIG).exists():
        raise RunDirError(f"{out}: not empty and not an ensemble folder (no {ENSEMBLE}); choose another --out")
    saved = [m.get("run") for m in (read_json(record).get("members") or [])]
    if saved != members and not overwrite:
        raise RunDirError(f"{out}: holds the ensemble of {', '.join(map(str, saved))}; pass --overwrite to "
                          "replace it, or choose another --out")


def evaluate_ensemble(
    run_dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    names: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    overwrite: bool = False,
    data_root: str | os.PathLike[str] | None = None,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate the mean class probabilities of ``run_dirs`` on their shared test split; write to ``out``.

    Returns ``{key: {"name", "summary", "split", "data", "n", "members": [{run, <headlines>}]}}``.

    Raises:
        ConfigError: fewer than two runs, a run named twice, an evaluation that does not read
            probabilities. RunDirError: a member is not a finished run, ``out`` holds something
            else. DataError: the members do not share data, rows or classes.
    """
    runs = [Path(r) for r in run_dirs]
    if len(runs) < 2:
        raise ConfigError("an ensemble needs at least two runs")
    resolved = [str(r.resolve()) for r in runs]
    twice = sorted({r for r in resolved if resolved.count(r) > 1})
    if twice:
        raise ConfigError(f"run(s) named twice: {', '.join(twice)}")
    wanted = list(names or ENSEMBLE_EVALUATIONS)
    other = [n for n in wanted if n not in ENSEMBLE_EVALUATIONS]
    if other:
        raise ConfigError(f"an ensemble evaluates {', '.join(ENSEMBLE_EVALUATIONS)} (class probabilities); "
                          f"not {', '.join(other)}")
    out_dir = Path(out)
    _check_out(out_dir, resolved, overwrite)
    evaluators = [Evaluator(r, split="test", data_root=data_root, progress=progress, device=device,
                            verb="ensemble") for r in runs]
    first = evaluators[0].run
    for r, ev in zip(runs[1:], evaluators[1:]):
        if _data_identity(ev.run.data) != _data_identity(first.data):
            raise DataError(f"{r}: trained on other data ({ev.run.data.dataset}, {ev.run.data.n_images} images) "
                            f"than {runs[0]} ({first.data.dataset}, {first.data.n_images} images); ensemble "
                            "members must share one data set")
    if names is None:  # the defaults: what applies to the first member (karyotype needs karyograms)
        plan = {n: o for n, o in evaluators[0].plan(None, options).items() if n in ENSEMBLE_EVALUATIONS}
        if not plan:
            raise ConfigError(f"{runs[0]}: neither {' nor '.join(ENSEMBLE_EVALUATIONS)} applies to it "
                              "(an ensemble needs classifiers)")
    else:
        plan = evaluators[0].plan(wanted, options)
    for ev in evaluators[1:]:
        ev.plan(list(plan), {n: plan[n] for n in plan})  # every member must have a classifier
    results: dict[str, Any] = {}
    saved: list[tuple[str, EvalResult]] = []
    per_member: list[dict[str, Any]] = [{"run": r, "checkpoint": ev.run.checkpoint.name,
                                         "backbone": ev.run.config.model.backbone,
                                         "method": ev.run.config.method.name} for r, ev in zip(resolved, evaluators)]
    for name, opts in plan.items():
        pairs = [ev.context(name, opts) for ev in evaluators]
        kwargs = pairs[0][1]
        contexts = [ctx for ctx, _ in pairs]
        combined = combine_contexts(contexts, [str(r) for r in runs])
        res = run_evaluation(name, combined, **kwargs)
        for record, ctx in zip(per_member, contexts):
            own = run_evaluation(name, ctx, **kwargs).summary
            record[name] = {k: own.get(k) for k in HEADLINES.get(name, ()) if k in own}
        n = int(len(combined.split()[1]))
        results[name] = {**evaluators[0].record(res, n)}
        if name == "classification":
            results[name]["val_accuracy"] = val_accuracy(combined)
            for record, ctx in zip(per_member, contexts):
                record[name]["val_accuracy"] = val_accuracy(ctx)
        saved.append((name, res))
    _write_folder(out_dir, saved, results, {"members": per_member, "combine": "mean of class probabilities",
                                            "split": "test", "evaluations": list(plan)})
    for key in results:
        results[key]["members"] = [{"run": m["run"], **(m.get(key) or {})} for m in per_member]
    return results


def _data_identity(data: Any) -> tuple[Any, ...]:
    """What identifies a run's data set whatever its preprocessing: name, image count, file list hash."""
    fp = data.fingerprint or {}
    return data.dataset, data.n_images, fp.get("files_sha1"), tuple(data.dataset_classes)


def _write_folder(out: Path, saved: list[tuple[str, EvalResult]], results: dict[str, Any],
                  record: dict[str, Any]) -> None:
    """Write the ensemble's files into a sibling folder, then swap it in for ``out`` (whole or nothing)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.staging-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.mkdir()
        for key, res in saved:
            res.save(stage / EVALUATION_DIR, stem=key)
        write_json(stage / EVALUATION_FILE, results)
        write_json(stage / ENSEMBLE, record)  # the folder's record last
        if out.exists():
            out.rename(old)
        stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)
