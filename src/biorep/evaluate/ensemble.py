"""Evaluate an ensemble of runs: their class probabilities averaged on the same held-out rows.

A deep ensemble (Lakshminarayanan et al. 2017) of runs on one data set — other seeds, backbones,
methods or canvases — predicts the mean of its members' class probabilities. Each member scores the
rows with its own preprocessing, checkpoint and test-time flips (its stored logits are reused), so
members must share the data set, the evaluated rows and the classes, not the network or the canvas.
The mean goes through the same ``classification`` (with temperature scaling fitted on the shared
validation rows) and ``karyotype`` evaluations a single run gets. scikit-learn's ``VotingClassifier``
averages estimators it fits itself; nothing in the field averages trained run directories, hence
this module.

Writes into ``out``: ``ensemble.json`` (the members and each one's own numbers), ``evaluation.json``
and ``evaluation/<key>.csv`` like a run's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biorep.errors import ConfigError, DataError, RunDirError
from biorep.evaluate.context import EvalContext, EvalResult, run_evaluation
from biorep.evaluate.evaluator import Evaluator
from biorep.evaluate.rundata import EVALUATION_DIR, EVALUATION_FILE
from biorep.rundir import read_json, write_json

#: The evaluations an ensemble runs: the ones that read class probabilities.
ENSEMBLE_EVALUATIONS = ("classification", "karyotype")
#: The record of an ensemble folder: its members and their own numbers.
ENSEMBLE_FILE = "ensemble.json"
#: Headline numbers copied per member into ``ensemble.json``.
HEADLINES = {"classification": ("accuracy", "macro_f1"), "karyotype": ("accuracy_argmax", "accuracy_assigned")}

__all__ = ["ENSEMBLE_EVALUATIONS", "ENSEMBLE_FILE", "combine_contexts", "evaluate_ensemble"]


def combine_contexts(contexts: Sequence[EvalContext], members: Sequence[str]) -> EvalContext:
    """One context whose class probabilities are the members' mean (as log-probabilities, so
    temperature scaling and the coverage table apply unchanged).

    Raises:
        DataError: a member scores other rows, in another order, with other labels or classes (the
            message names it), or has no classifier outputs.
    """
    first = contexts[0]
    rows = first.meta["sample_index"].to_numpy()
    probs = []
    for ctx, name in zip(contexts, members):
        p = ctx.probabilities()
        if p is None:
            raise DataError(f"{name}: has no classifier outputs to average")
        if ctx.class_names() != first.class_names():
            raise DataError(f"{name}: classes {ctx.class_names()} differ from {members[0]}'s "
                            f"{first.class_names()}; ensemble members must predict the same classes")
        if not np.array_equal(ctx.meta["sample_index"].to_numpy(), rows):
            raise DataError(f"{name}: evaluates other rows than {members[0]} (another data set or split); "
                            "ensemble members must share the data set and its split")
        if not np.array_equal(ctx.targets(), first.targets()):
            raise DataError(f"{name}: its labels of the shared rows differ from {members[0]}'s")
        for part in ("train_idx", "test_idx"):
            a, b = getattr(ctx, part), getattr(first, part)
            if (a is None) != (b is None) or (a is not None and not np.array_equal(a, b)):
                raise DataError(f"{name}: its validation rows differ from {members[0]}'s")
        probs.append(p)
    mean = np.mean(probs, axis=0)
    return EvalContext(first.embeddings, first.meta, label_column=first.label_column, classes=first.classes,
                       logits=np.log(np.clip(mean, 1e-12, None)), group_columns=list(first.group_columns),
                       train_idx=first.train_idx, test_idx=first.test_idx)


def _check_out(out: Path, members: list[str], overwrite: bool) -> None:
    """Refuse an ``out`` that holds anything but this ensemble's own results (unless ``overwrite``)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RunDirError(f"{out}: exists and is not a folder; choose another --out")
    if not any(out.iterdir()) or overwrite:
        return
    record = out / ENSEMBLE_FILE
    if not record.is_file():
        raise RunDirError(f"{out}: not empty and not an ensemble folder (no {ENSEMBLE_FILE}); choose another "
                          "--out")
    saved = [m.get("run") for m in (read_json(record).get("members") or [])]
    if saved != members:
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
                            verb="evaluate") for r in runs]
    datasets = {ev.run.config.data.dataset for ev in evaluators}
    if len(datasets) > 1:
        raise DataError(f"the runs trained on different data sets ({', '.join(sorted(map(str, datasets)))}); "
                        "ensemble members must share one")
    plan = evaluators[0].plan(wanted, options)
    if names is None:  # the defaults: what applies to the first member (karyotype needs karyograms)
        plan = {n: o for n, o in plan.items() if n in ENSEMBLE_EVALUATIONS}
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
        saved.append((name, res))
    out_dir.mkdir(parents=True, exist_ok=True)
    for key, res in saved:
        res.save(out_dir / EVALUATION_DIR, stem=key)
    write_json(out_dir / EVALUATION_FILE, results)
    write_json(out_dir / ENSEMBLE_FILE, {"members": per_member, "combine": "mean of class probabilities",
                                         "split": "test", "evaluations": list(plan)})
    for key in results:
        results[key]["members"] = [{"run": m["run"], **(m.get(key) or {})} for m in per_member]
    return results
