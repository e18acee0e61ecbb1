"""Evaluate a run directory: embed its data, run the selected evaluations, write the results.

This is the layer between run directories and the evaluation functions of :mod:`biorep.evaluate`;
the ``embed``, ``evaluate``, ``karyotype`` and ``predict`` verbs and ``biorep study`` call it. The
work lives in :mod:`~biorep.evaluate.rundata` (reading a run and its data),
:mod:`~biorep.evaluate.run_embeddings` (stored embeddings), :mod:`~biorep.evaluate.evaluator`
(what runs, on which rows), :mod:`~biorep.evaluate.karyotype_run` and :mod:`~biorep.evaluate.predict`;
this module runs them and re-exports their public names.

What it writes into ``RUN/``:

- ``embeddings/<stem>.parquet`` / ``.h5ad`` (metadata + features), ``<stem>.logits.npy`` (classifier
  outputs) and ``<stem>.json`` (what they were made from: checkpoint, data cache key, rows). ``stem`` is
  the split (``test``, ``train``, ``val``, ``all``) for the run's own data and ``<data>.<split>`` for
  other data. They are reused while they match and are newer than the checkpoint.
- ``evaluation.json``: ``{key: {"name", "summary", "split", "data", "n"}}``, merged with what is there.
  ``key`` is the evaluation name, plus ``@<data>`` / ``@<split>`` when not the run's own test split.
- ``evaluation/<key>.csv`` (+ ``<key>.json``): each evaluation's table and summary.
- ``karyotype/``: ``assignments.csv``, ``summary.json`` and one karyogram PNG per cell (see
  :func:`karyotype_run`).

Rows: every evaluation sees the rows of the chosen ``split``. Evaluations that fit a model (``knn``,
``linear``, ``treated_vs_control``; :data:`FIT_EVALUATIONS`) fit it on the run's training split
and score the chosen split's other rows, so every paradigm gets comparable numbers. The option
``where`` (a ``{column: value}`` selector) restricts any evaluation to matching rows.

Example:
    >>> results = evaluate_run("runs/supcon", names=["knn", "classification"])  # doctest: +SKIP
    >>> results["knn"]["summary"]["accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from biorep.errors import BiorepError, DataError
from biorep.rundir import RunPaths
from biorep.evaluate.context import EvalResult
from biorep.evaluate.evaluator import (
    CLASSIFIER_EVALUATIONS,
    FIT_EVALUATIONS,
    LABEL_COLUMN,
    TARGET_COLUMN,
    WHERE,
    EvalData,
    Evaluator,
    check_options,
)
from biorep.evaluate.karyotype_run import karyotype_run
from biorep.evaluate.predict import predict_images
from biorep.evaluate.run_embeddings import Embedded, embed_rows, embedding_paths
from biorep.evaluate.rundata import (
    EMBEDDINGS_DIR,
    EVALUATION_DIR,
    EVALUATION_FILE,
    KARYOTYPE_DIR,
    SPLITS,
    data_config_for,
    has_classifier,
    load_other_data,
    merge_evaluation,
    open_run,
    run_geometry,
    slug,
    split_indices,
)

log = logging.getLogger("biorep.evaluate")

__all__ = [
    "CLASSIFIER_EVALUATIONS",
    "EMBEDDINGS_DIR",
    "EVALUATION_DIR",
    "EVALUATION_FILE",
    "FIT_EVALUATIONS",
    "KARYOTYPE_DIR",
    "LABEL_COLUMN",
    "SPLITS",
    "TARGET_COLUMN",
    "WHERE",
    "Embedded",
    "EvalData",
    "Evaluator",
    "check_options",
    "data_config_for",
    "embed_rows",
    "embed_run",
    "embedding_paths",
    "evaluate_run",
    "has_classifier",
    "karyotype_run",
    "load_other_data",
    "merge_evaluation",
    "open_run",
    "predict_images",
    "run_geometry",
    "slug",
    "split_indices",
]


# ----------------------------------------------------------------------------- evaluate
def evaluate_run(
    run_dir: str | os.PathLike[str],
    names: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    data: str | os.PathLike[str] | None = None,
    split: str | None = "test",
    progress: bool = False,
    data_root: str | os.PathLike[str] | None = None,
    device: str | None = None,
    allow_unfinished: bool = False,
) -> dict[str, Any]:
    """Run evaluations on a run directory and store them in it.

    Args:
        run_dir: a trained run directory.
        names: evaluations to run (see :data:`EVALUATIONS`); None = what applies (see
            :meth:`Evaluator.defaults`: ``classification`` with a classifier, ``knn`` and ``linear``
            with labels, ``karyotype`` with a karyogram column and chromosome classes, and the data
            set's own defaults, e.g. the screening tasks).
        options: ``{name: {option: value}}`` on top of the defaults; ``where`` restricts rows.
        data: another data set (built-in name, folder, manifest) to evaluate with the run's
            preprocessing; ``split`` must then be ``all`` (the default for other data).
        split: rows evaluated (``test``, ``val``, ``train``, ``all``); None = ``test`` (``all`` with data).
        progress: progress bars on stderr while decoding.
        data_root: override of the run's data root.
        device: ``cpu``, ``cuda``... (default: CUDA when available).
        allow_unfinished: evaluate a run that has not finished training (its latest checkpoint,
            with a warning) instead of refusing it (:func:`biorep.rundir.check_usable`).

    Returns:
        ``{key: {"name", "summary", "split", "data", "n"}}`` for the evaluations run now; with
        ``names=None`` an evaluation that cannot run on this data is returned as
        ``{"name", "error"}`` (and logged) instead of stopping the others. Explicitly named
        evaluations raise. Keys carry ``@data``/``@split`` suffixes off the own test split.

    Raises:
        RunDirError / ConfigError / DataError: missing or unfinished run, unknown evaluation or
        option, bad data.
    """
    if data is not None and split == "test":
        split = None  # the signature's default means "the default split" for other data
    ev = Evaluator(run_dir, data=data, split=split, data_root=data_root, progress=progress, device=device,
                   verb="evaluate", allow_unfinished=allow_unfinished)
    plan = ev.plan(names, options)
    results: dict[str, Any] = {}
    done: list[tuple[str, EvalResult]] = []
    for name, opts in plan.items():
        key = name + ev.suffix
        try:
            ctx, _, res = ev.evaluate(name, opts)
        except BiorepError as exc:
            if names is not None:
                raise
            log.warning("evaluation %s skipped: %s", name, exc)
            results[key] = {"name": name, "error": str(exc)}
            continue
        n = int(len(ctx.split()[1]))
        results[key] = ev.record(res, n)
        done.append((key, res))
    if not done:  # every evaluation was skipped (or none applies): say why, instead of "results in …"
        why = "; ".join(f"{r['name']}: {r['error']}" for r in results.values()) or "no evaluation applies"
        raise DataError(f"evaluate {ev.run_dir}{f' --data {data}' if data is not None else ''}: nothing could "
                        f"be evaluated ({why})")
    out_dir = RunPaths(ev.run_dir).evaluation_dir
    for key, res in done:
        res.save(out_dir, stem=key)
    if done:
        merge_evaluation(ev.run_dir, {k: results[k] for k, _ in done})
    return results


# ----------------------------------------------------------------------------- embed
def embed_run(
    run_dir: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    split: str | None = None,
    out: str | os.PathLike[str] | None = None,
    formats: Sequence[str] = ("parquet", "h5ad"),
    data_root: str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: str | None = None,
    overwrite: bool = False,
    allow_unfinished: bool = False,
) -> Embedded:
    """Embed the run's data (``split``, default ``test``) or other ``data`` (``all``) and store it.

    Files: ``RUN/embeddings/<split>.*`` (``<data>.<split>.*`` for other data) or under ``out``.
    Files another run wrote under ``out`` are refused unless ``overwrite``; a run that has not
    finished training is refused unless ``allow_unfinished``.
    """
    ev = Evaluator(run_dir, data=data, split=split, data_root=data_root, progress=progress, device=device,
                   verb="embed", allow_unfinished=allow_unfinished, overwrite=overwrite)
    target = Path(out) if out is not None else None
    return ev.embeddings("eval", out_dir=target, formats=formats)
