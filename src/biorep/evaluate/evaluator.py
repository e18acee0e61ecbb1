"""The :class:`Evaluator`: which evaluations apply to a run and data set, and their inputs.

It holds one run, the evaluated data (the run's own or ``--data``) and split, embeds rows as needed
(:mod:`biorep.evaluate.run_embeddings`), checks evaluation names and options (:func:`check_options`)
and builds each evaluation's :class:`~biorep.evaluate.context.EvalContext`, fitting models on the
run's training rows for :data:`FIT_EVALUATIONS`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from biorep.data import DATASETS, ImageDataset
from biorep.errors import BiorepError, ConfigError, DataError
from biorep.evaluate.context import EVALUATIONS, EvalContext, EvalResult, run_evaluation
from biorep.evaluate.karyotype import chromosome_columns
from biorep.evaluate.run_embeddings import Embedded, embed_rows
from biorep.evaluate.rundata import (
    EMBEDDINGS_DIR,
    SPLITS,
    _device,
    has_classifier,
    load_other_data,
    open_run,
    slug,
    split_indices,
)
from biorep.evaluate.selectors import describe, select

if TYPE_CHECKING:
    from biorep.training.loading import LoadedRun

#: Evaluations that fit a model on the run's training rows and score the evaluated rows.
FIT_EVALUATIONS = frozenset({"knn", "linear", "treated_vs_control"})
#: Evaluations that need the run's classifier outputs.
CLASSIFIER_EVALUATIONS = frozenset({"classification", "karyotype"})
#: Run-level option of every evaluation: a selector restricting the rows it sees.
WHERE = "where"
#: Columns added to the metadata the evaluations see: the data set's class and the run's target.
LABEL_COLUMN = "label_class"
TARGET_COLUMN = "target_class"

__all__ = [
    "CLASSIFIER_EVALUATIONS",
    "FIT_EVALUATIONS",
    "LABEL_COLUMN",
    "TARGET_COLUMN",
    "WHERE",
    "EvalData",
    "Evaluator",
    "check_options",
]


def _label_names(classes: Sequence[str], targets: np.ndarray) -> np.ndarray:
    names = np.asarray([str(c) for c in classes] or [""], dtype=object)
    t = np.asarray(targets, dtype=np.int64)
    return np.where(t >= 0, names[np.clip(t, 0, None)], None)


def _run_targets(run: LoadedRun, ds: ImageDataset) -> np.ndarray | None:
    """The class name of the run's training target per image (None where it has none)."""
    from biorep.methods import METHODS

    try:
        cls = METHODS.get(run.config.method.name)
        t, names = cls.make_targets(run.config.method.params, ds.meta, ds.targets, ds.classes)
    except BiorepError:
        return None
    return _label_names([str(c) for c in names], np.asarray(t, dtype=np.int64))


@dataclass
class EvalData:
    """One data set as the evaluations see it: class and target names added to the metadata."""

    ds: ImageDataset
    key: str  # "" for the run's own data, else a slug of --data
    meta: pd.DataFrame
    classes: list[str]

    @classmethod
    def build(cls, run: LoadedRun, ds: ImageDataset, key: str) -> EvalData:
        meta = ds.meta.copy()
        meta[LABEL_COLUMN] = _label_names(ds.classes, ds.targets)
        targets = _run_targets(run, ds)
        meta[TARGET_COLUMN] = targets if targets is not None else None
        return cls(ds, key, meta, [str(c) for c in ds.classes])

    def labelled(self, column: str) -> bool:
        return bool(self.meta[column].notna().any())


class Evaluator:
    """Runs evaluations of one run on one data set and split, embedding rows as needed.

    A run that has not finished training is refused (``allow_unfinished``: used with a warning),
    the same way for every verb; ``verb`` names the command in that message.

    Example:
        >>> ev = Evaluator("runs/supcon")  # doctest: +SKIP
        >>> ev.run_one("knn", {"k": 10}).summary["accuracy"]  # doctest: +SKIP
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        data: str | os.PathLike[str] | None = None,
        split: str | None = None,
        data_root: str | os.PathLike[str] | None = None,
        progress: bool = False,
        device: str | None = None,
        batch_size: int = 256,
        verb: str = "evaluate",
        allow_unfinished: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.run_dir = Path(run_dir)
        _device(device)  # a device this machine lacks is refused before the run and data are read
        self.run = open_run(run_dir, data_root, verb=verb, allow_unfinished=allow_unfinished)
        self.overwrite = overwrite
        self.progress = progress
        self.device = device
        self.batch_size = batch_size
        self.foreign = data is not None
        self.split = split or ("all" if self.foreign else "test")
        if self.split not in SPLITS:
            raise ConfigError(f"--split {self.split!r}: choose one of {', '.join(SPLITS)}")
        if self.foreign and self.split != "all":
            raise ConfigError(f"--split {self.split}: other data (--data) has no saved splits; "
                              "use --split all")
        self.data_arg = None if data is None else str(data)
        self._own: EvalData | None = None
        self._other: EvalData | None = None
        self._emb: dict[str, Embedded] = {}

    # -- data ------------------------------------------------------------------------------------
    @property
    def own(self) -> EvalData:
        """The run's own data set."""
        if self._own is None:
            self._own = EvalData.build(self.run, self.run.dataset(progress=self.progress), "")
        return self._own

    @property
    def data(self) -> EvalData:
        """The evaluated data set (the run's own, or ``--data``)."""
        if not self.foreign:
            return self.own
        if self._other is None:
            assert self.data_arg is not None
            ds = load_other_data(self.run, self.data_arg, progress=self.progress)
            self._other = EvalData.build(self.run, ds, slug(self.data_arg))
        return self._other

    @property
    def suffix(self) -> str:
        """Key suffix of the results: ``""`` for the own test split, ``@<split>`` for another split,
        ``@<data>`` for other data."""
        if self.foreign:
            assert self.data_arg is not None
            return f"@{slug(self.data_arg)}"
        return "" if self.split == "test" else f"@{self.split}"

    def stem(self, which: str) -> str:
        """Embeddings file stem: the split, prefixed with the data's slug for other data."""
        return f"{self.data.key}.{which}" if self.foreign and which != "fit" else which

    def embeddings(self, which: str, *, reuse: bool = True, out_dir: Path | None = None,
                   formats: Sequence[str] = ("parquet", "h5ad")) -> Embedded:
        """Embeddings of the evaluated split (``which="eval"``) or the run's training split (``"fit"``)."""
        if which in self._emb and out_dir is None:
            return self._emb[which]
        if which == "fit":
            src, idx, stem = self.own, split_indices(self.run, self.own.ds, "train", own=True), "train"
        else:
            src = self.data
            idx = split_indices(self.run, src.ds, self.split, own=not self.foreign)
            stem = self.stem(self.split)
        emb = embed_rows(self.run, src.ds, idx, out_dir or self.run_dir / EMBEDDINGS_DIR, stem,
                         formats=formats, reuse=reuse, batch_size=self.batch_size, device=self.device,
                         overwrite=self.overwrite)
        if out_dir is None:
            self._emb[which] = emb
        return emb

    # -- what applies ----------------------------------------------------------------------------
    def defaults(self) -> dict[str, dict[str, Any]]:
        """Evaluations that apply to this run and data, with their default options."""
        plan: dict[str, dict[str, Any]] = {}
        d = self.data
        if has_classifier(self.run) and d.labelled(TARGET_COLUMN):
            plan["classification"] = {}
        if d.labelled(LABEL_COLUMN) and len(d.classes) >= 2 and (self.foreign or len(self.run.splits.train)):
            plan["knn"] = {}
            plan["linear"] = {}
        if has_classifier(self.run) and "karyogram" in d.meta.columns and _is_karyotype(self.run.classes):
            plan["karyotype"] = {"karyogram_column": "karyogram"}
        own_name = None if self.foreign else self.run.config.data.dataset
        name = d.ds.name if d.ds.name in DATASETS else own_name
        if name is not None and name in DATASETS:
            for ev, opts in DATASETS.get(name).evaluations.items():
                if ev == "karyotype" and "karyotype" not in plan:
                    continue  # needs a classifier over the chromosome classes
                plan[ev] = {**plan.get(ev, {}), **opts}
        return plan

    def plan(self, names: Sequence[str] | None, options: Mapping[str, Mapping[str, Any]] | None
             ) -> dict[str, dict[str, Any]]:
        """The evaluations to run with their options; names and options are checked before any work."""
        options = {k: dict(v) for k, v in (options or {}).items()}
        for n in options:
            EVALUATIONS.get(n)  # unknown names → ConfigError listing the known ones
        if names is not None:
            names = list(dict.fromkeys(names))
            for n in names:
                EVALUATIONS.get(n)
            stray = sorted(set(options) - set(names))
            if stray:
                raise ConfigError(f"options given for evaluation(s) {', '.join(stray)} that are not selected "
                                  f"(selected: {', '.join(names)})")
            for n, opts in options.items():
                check_options(n, opts, complete=False)
            defaults = self.defaults()
            plan = {n: {**defaults.get(n, {}), **options.get(n, {})} for n in names}
        else:
            for n, opts in options.items():
                check_options(n, opts, complete=False)
            plan = self.defaults()
            for n, opts in options.items():
                plan[n] = {**plan.get(n, {}), **opts}
        problems: list[str] = []  # every evaluation's problem at once, not one per attempt
        for n, opts in plan.items():
            try:
                check_options(n, opts, complete=True)
            except ConfigError as exc:
                problems.append(str(exc))
            if n in CLASSIFIER_EVALUATIONS and not has_classifier(self.run):
                problems.append(f"evaluation {n!r} needs a classifier; run {self.run_dir} "
                                f"({self.run.config.method.name}) has none (try knn or linear)")
        if problems:
            raise ConfigError("; ".join(problems))
        return plan

    # -- running ---------------------------------------------------------------------------------
    def context(self, name: str, options: Mapping[str, Any]) -> tuple[EvalContext, dict[str, Any]]:
        """The :class:`EvalContext` for one evaluation (and its options without ``where``)."""
        opts = dict(options)
        where = opts.pop(WHERE, None)
        d = self.data
        ev = self.embeddings("eval")
        meta_e = _attach(ev.meta, d.meta)
        z_e, logits_e = ev.z, ev.logits
        fit = name in FIT_EVALUATIONS
        if fit:
            fe = self.embeddings("fit")
            meta_f = _attach(fe.meta, self.own.meta)
            z_f = fe.z
            if not self.foreign:  # score only rows the model was not fitted on
                keep = ~np.isin(meta_e["sample_index"].to_numpy(), meta_f["sample_index"].to_numpy())
                if not keep.any():
                    raise DataError(f"{name}: split {self.split!r} has no rows outside the training "
                                    "split to score")
                z_e, meta_e = z_e[keep], meta_e.loc[keep].reset_index(drop=True)
                logits_e = logits_e[keep] if logits_e is not None else None
            if where is not None:
                mf = select(meta_f, where)
                z_f, meta_f = z_f[mf], meta_f.loc[mf].reset_index(drop=True)
        if where is not None:
            m = select(meta_e, where)
            if not m.any():
                raise DataError(f"{name}: where={describe(where)} matches none of the {len(m)} "
                                "evaluated rows")
            z_e, meta_e = z_e[m], meta_e.loc[m].reset_index(drop=True)
            logits_e = logits_e[m] if logits_e is not None else None
        uses_target = name in ("classification", "karyotype")
        label = TARGET_COLUMN if uses_target else LABEL_COLUMN
        classes = list(self.run.classes) if uses_target else self._label_classes(fit)
        groups = [c for c in [d.ds.group_column] if c and c in meta_e.columns]
        if fit:
            n_f = len(z_f)
            z = np.concatenate([z_f, z_e]) if n_f else z_e
            meta = pd.concat([meta_f, meta_e], ignore_index=True) if n_f else meta_e
            logits = None
            train_idx, test_idx = np.arange(n_f), np.arange(n_f, n_f + len(z_e))
        else:
            z, meta, logits, train_idx, test_idx = z_e, meta_e, logits_e, None, None
            cal = self._calibration_rows() if name == "classification" and logits is not None else None
            if cal is not None:  # the run's validation rows first: temperature scaling is fitted on them
                z_c, meta_c, logits_c = cal
                n_c = len(z_c)
                z, meta = np.concatenate([z_c, z_e]), pd.concat([meta_c, meta_e], ignore_index=True)
                logits = np.concatenate([logits_c, logits_e])
                train_idx, test_idx = np.arange(n_c), np.arange(n_c, n_c + len(z_e))
        ctx = EvalContext(z, meta, label_column=label, classes=classes or None, logits=logits,
                          group_columns=groups, train_idx=train_idx, test_idx=test_idx)
        return ctx, opts

    def _calibration_rows(self) -> tuple[np.ndarray, pd.DataFrame, np.ndarray] | None:
        """Embeddings, metadata and logits of the run's validation split, for calibrating the test
        split's confidences (None for other data or splits, or without validation rows)."""
        if self.foreign or self.split != "test":
            return None
        idx = split_indices(self.run, self.own.ds, "val", own=True)
        if len(idx) == 0:
            return None
        emb = embed_rows(self.run, self.own.ds, idx, self.run_dir / EMBEDDINGS_DIR, "val",
                         reuse=True, batch_size=self.batch_size, device=self.device)
        if emb.logits is None:
            return None
        return emb.z, _attach(emb.meta, self.own.meta), emb.logits

    def _label_classes(self, fit: bool) -> list[str]:
        classes = list(self.own.classes) if (not self.foreign or fit) else []
        for c in self.data.classes:
            if c not in classes:
                classes.append(c)
        return classes

    def evaluate(self, name: str, options: Mapping[str, Any] | None = None
                 ) -> tuple[EvalContext, dict[str, Any], EvalResult]:
        """Context, options and result of one evaluation on the evaluated split.

        A :class:`DataError` from the evaluation (a missing metadata column, say) is told with the
        data set it came from, since with ``--data`` the user may not know which one was short.
        """
        ctx, opts = self.context(name, options or {})
        try:
            res = run_evaluation(name, ctx, **opts)
        except DataError as exc:
            where = self.data_arg or self.run.config.data.dataset
            if where in str(exc):
                raise
            raise DataError(f"data {where}: {exc}") from exc
        return ctx, opts, res

    def run_one(self, name: str, options: Mapping[str, Any] | None = None) -> EvalResult:
        """Run one evaluation on the evaluated split."""
        return self.evaluate(name, options)[2]

    def record(self, result: EvalResult, n: int | None = None) -> dict[str, Any]:
        """What goes into ``evaluation.json`` for one result."""
        return {**result.to_dict(), "split": self.split,
                "data": self.data_arg or self.run.config.data.dataset, "n": n}


def _attach(emb_meta: pd.DataFrame, full: pd.DataFrame) -> pd.DataFrame:
    """Stored embedding metadata + the derived class/target columns (aligned by ``sample_index``)."""
    idx = emb_meta["sample_index"].to_numpy(dtype=np.int64)
    out = emb_meta.drop(columns=[c for c in (LABEL_COLUMN, TARGET_COLUMN) if c in emb_meta.columns])
    out[LABEL_COLUMN] = full[LABEL_COLUMN].to_numpy()[idx]
    out[TARGET_COLUMN] = full[TARGET_COLUMN].to_numpy()[idx]
    return out.reset_index(drop=True)


def _is_karyotype(classes: Sequence[str]) -> bool:
    try:
        chromosome_columns(classes)
    except BiorepError:
        return False
    return True


def check_options(name: str, options: Mapping[str, Any], *, complete: bool) -> None:
    """Raise a :class:`ConfigError` for options ``name`` does not take, for values that do not fit the
    evaluation's signature or :data:`OPTION_LIMITS` (naming the option, the value and what is
    allowed) and, with ``complete``, for required options that are missing."""
    fn = EVALUATIONS.get(name)
    params = inspect.signature(fn).parameters
    allowed = [p for p in list(params)[1:] if params[p].kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed) - {WHERE})
    if unknown:
        raise ConfigError(f"evaluation {name!r}: unknown option(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join([*allowed, WHERE])}")
    where = options.get(WHERE)
    if where is not None and not (isinstance(where, Mapping) and where):
        raise ConfigError(f"evaluation {name!r}: option where must be a {{column: value}} mapping, "
                          f"got {where!r}")
    from biorep.evaluate.options import check_option_values

    check_option_values(name, {k: v for k, v in options.items() if k != WHERE})
    if complete:
        missing = [p for p in allowed if params[p].default is inspect.Parameter.empty and p not in options]
        if missing:
            raise ConfigError(f"evaluation {name!r} needs option(s) {', '.join(missing)} "
                              f"(e.g. -o {name}.{missing[0]}=...); this data set has no default for them")
