"""Evaluate a run directory: embed its data, run the selected evaluations, write the results.

This is the layer between run directories and the evaluation functions of :mod:`biorep.evaluate`;
the ``embed``, ``evaluate``, ``karyotype`` and ``predict`` verbs and ``biorep study`` call it.

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

import inspect
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from biorep.data import DATASETS, DataConfig, GeometryConfig, ImageDataset, load_dataset
from biorep.errors import BiorepError, ConfigError, DataError, RunDirError
from biorep.evaluate.context import EVALUATIONS, EvalContext, EvalResult, run_evaluation, softmax, to_jsonable
from biorep.evaluate.embed import embed_dataset, read_embeddings, write_embeddings
from biorep.evaluate.karyotype import chromosome_columns
from biorep.evaluate.selectors import describe, select

log = logging.getLogger("biorep.evaluate")

SPLITS = ("test", "val", "train", "all")
#: Evaluations that fit a model on the run's training rows and score the evaluated rows.
FIT_EVALUATIONS = frozenset({"knn", "linear", "treated_vs_control"})
#: Evaluations that need the run's classifier outputs.
CLASSIFIER_EVALUATIONS = frozenset({"classification", "karyotype"})
#: Run-level option of every evaluation: a selector restricting the rows it sees.
WHERE = "where"
#: Columns added to the metadata the evaluations see: the data set's class and the run's target.
LABEL_COLUMN = "label_class"
TARGET_COLUMN = "target_class"
EVALUATION_FILE = "evaluation.json"
EVALUATION_DIR = "evaluation"
EMBEDDINGS_DIR = "embeddings"
KARYOTYPE_DIR = "karyotype"


# ----------------------------------------------------------------------------- small helpers
def atomic_write(target: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``target``, then ``os.replace`` it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _write_json(target: Path, obj: Any) -> Path:
    text = json.dumps(to_jsonable(obj), indent=1) + "\n"
    return atomic_write(target, lambda p: p.write_text(text))


def slug(text: str) -> str:
    """A file-name-safe short form of a data set name or path (``../new cells/`` → ``new_cells``)."""
    name = Path(str(text).rstrip("/")).name or str(text)
    if Path(name).suffix.lower() in (".csv", ".parquet", ".pq"):
        name = Path(name).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "data"


def open_run(run_dir: str | os.PathLike[str], data_root: str | os.PathLike[str] | None = None) -> Any:
    """:func:`biorep.training.load_run` with a clear error for a missing folder and a data-root override."""
    from biorep.training import load_run

    path = Path(run_dir)
    if not path.exists():
        raise RunDirError(f"run directory {path} does not exist")
    if not path.is_dir():
        raise RunDirError(f"run directory {path} is not a directory")
    run = load_run(path)
    if data_root is not None:
        run.config.data.root = Path(data_root)
    return run


def has_classifier(run: Any) -> bool:
    """Whether the run's method has a classifier (``classify`` returns logits)."""
    return bool(getattr(run.model, "has_classifier", False))


def _device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ----------------------------------------------------------------------------- preprocessing
def run_geometry(run: Any) -> GeometryConfig:
    """The run's geometry with the canvas scale and background it was actually trained with.

    ``scale: auto`` and a data-set default background are resolved when the data is first decoded,
    so new images must reuse those numbers rather than fit their own. They are read from
    ``data.json`` (``geometry``, when the training stage records it), else from the run's own decoded
    data set (``ds.info["scale"]``, ``ds.background``; the decode cache makes this cheap).
    """
    g = run.config.data.geometry
    if g.mode != "canvas":  # scale and background only matter on a canvas
        return g.model_copy(update={"size": int(run.info.get("size", g.size))})
    saved = run.info.get("geometry") or {}
    scale: Any = saved.get("scale", g.scale)
    background: Any = saved.get("background", run.info.get("background", g.background))
    needs_scale = scale is None or scale == "auto"
    if needs_scale or background is None or background == "auto":
        try:
            ds = run.dataset()
        except BiorepError as exc:
            raise DataError(
                f"the run's canvas scale/background are not in {run.run_dir}/data.json and its own data "
                f"cannot be loaded to recover them ({exc})"
            ) from None
        if needs_scale:
            scale = float(ds.info.get("scale") or 1.0)
        if background is None or background == "auto":
            background = float(ds.background)
    if scale is None or scale == "auto":
        scale = 1.0
    return GeometryConfig(mode=g.mode, size=int(run.info.get("size", g.size)), scale=float(scale),
                          background=float(background))


def data_config_for(run: Any, data: str | os.PathLike[str]) -> DataConfig:
    """The run's :class:`DataConfig` with ``dataset`` replaced and the run's resolved geometry.

    Label, group, classes and options are reset to the new data's defaults unless ``data`` names the
    run's own built-in data set. Channel selection and intensity settings are kept (the fitted scaler
    itself lives in the model).
    """
    own = run.config.data
    raw = own.model_dump()
    same = str(data) == own.dataset
    raw.update(dataset=str(data), geometry=run_geometry(run).model_dump())
    if not same:
        raw.update(label=None, group=None, classes=None, options={}, path_column="path")
    try:
        return DataConfig(**raw)
    except Exception as exc:  # pydantic ValidationError
        raise ConfigError(f"--data {data}: {exc}") from None


def load_other_data(run: Any, data: str | os.PathLike[str], *, progress: bool = False) -> ImageDataset:
    """Load another data set (built-in name, folder or manifest) with the run's preprocessing."""
    cfg = data_config_for(run, data)
    ds = load_dataset(cfg, progress=progress)
    want = int(run.info["channels"])
    if ds.channels != want:
        raise DataError(f"--data {data}: images have {ds.channels} channel(s) but run {run.run_dir} was "
                        "trained "
                        f"on {want}; choose the channels with the run's data.channels or convert the images")
    if ds.size != int(run.info["size"]):
        raise DataError(f"--data {data}: images are {ds.size} px but run {run.run_dir} expects "
                        f"{run.info['size']} px "
                        "(geometry mode 'none' needs images of the training size)")
    if str(ds.images.dtype) != str(run.info.get("dtype", ds.images.dtype)):
        log.warning("%s: pixel type %s differs from the run's %s; its intensity scaler is applied as is",
                    data, ds.images.dtype, run.info.get("dtype"))
    return ds


# ----------------------------------------------------------------------------- embeddings
@dataclass
class Embedded:
    """Embeddings of some rows of a data set: features, metadata (with ``sample_index``), logits."""

    z: np.ndarray
    meta: pd.DataFrame
    logits: np.ndarray | None
    paths: dict[str, Path] = field(default_factory=dict)
    reused: bool = False


def embedding_paths(out_dir: Path, stem: str) -> dict[str, Path]:
    """The files one set of embeddings is stored in."""
    return {"parquet": out_dir / f"{stem}.parquet", "h5ad": out_dir / f"{stem}.h5ad",
            "logits": out_dir / f"{stem}.logits.npy", "info": out_dir / f"{stem}.json"}


def _fingerprint(run: Any, ds: ImageDataset, idx: np.ndarray) -> dict[str, Any]:
    return {"checkpoint": run.checkpoint.name, "dataset": ds.name, "dataset_key": ds.info.get("key"),
            "n": int(len(idx)), "classes": list(run.classes) if has_classifier(run) else None}


def _reuse(run: Any, ds: ImageDataset, idx: np.ndarray, files: dict[str, Path],
           formats: Sequence[str]) -> Embedded | None:
    needed = [files["info"], files["parquet"], *(files[f] for f in formats)]
    if has_classifier(run):
        needed.append(files["logits"])
    if not all(p.is_file() for p in needed):
        return None
    ckpt_time = run.checkpoint.stat().st_mtime
    if any(p.stat().st_mtime < ckpt_time for p in needed):
        return None
    try:
        saved = json.loads(files["info"].read_text())
        if saved != json.loads(json.dumps(_fingerprint(run, ds, idx))):
            return None
        z, meta = read_embeddings(files["parquet"])
        logits = np.load(files["logits"]) if has_classifier(run) else None
    except (OSError, ValueError, BiorepError):
        return None
    if "sample_index" not in meta.columns or not np.array_equal(meta["sample_index"].to_numpy(), idx):
        return None
    if logits is not None and len(logits) != len(idx):
        return None
    return Embedded(z, meta, logits, {f: files[f] for f in formats}, reused=True)


def embed_rows(
    run: Any,
    ds: ImageDataset,
    indices: np.ndarray,
    out_dir: str | os.PathLike[str],
    stem: str,
    *,
    formats: Sequence[str] = ("parquet", "h5ad"),
    reuse: bool = True,
    batch_size: int = 256,
    device: str | None = None,
) -> Embedded:
    """Embed ``ds`` rows ``indices`` with the run's model and store them as ``out_dir/stem.*``.

    Stored embeddings are reused when they were made from the same checkpoint and data (cache key,
    rows) and are newer than the checkpoint. The model's logits (when it has a classifier) are stored
    beside them as ``stem.logits.npy``. Every file is written atomically, the ``stem.json`` record last.
    """
    out = Path(out_dir)
    idx = np.asarray(indices, dtype=np.int64)
    files = embedding_paths(out, stem)
    formats = list(dict.fromkeys(["parquet", *formats]))
    if reuse:
        hit = _reuse(run, ds, idx, files, formats)
        if hit is not None:
            return hit
    if len(idx) == 0:
        raise DataError(f"{stem}: no rows to embed in data set {ds.name!r} (the split is empty)")
    z, meta, logits = embed_dataset(run.model, ds, idx, batch_size=batch_size, device=_device(device),
                                    with_logits=has_classifier(run))
    run.model.to("cpu")
    out.mkdir(parents=True, exist_ok=True)
    files["info"].unlink(missing_ok=True)  # the commit marker goes last
    written = write_embeddings(z, meta, out, stem, formats=formats)
    if logits is not None:
        def save_logits(p: Path) -> None:
            with open(p, "wb") as fh:
                np.save(fh, logits)

        atomic_write(files["logits"], save_logits)
    _write_json(files["info"], _fingerprint(run, ds, idx))
    return Embedded(z, meta, logits, written)


# ----------------------------------------------------------------------------- the evaluated data
def split_indices(run: Any, ds: ImageDataset, split: str, *, own: bool) -> np.ndarray:
    """Rows of ``split``: the run's saved split for its own data; for other data only ``all``."""
    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: choose one of {', '.join(SPLITS)}")
    if split == "all":
        return np.arange(len(ds), dtype=np.int64)
    if not own:
        raise ConfigError(f"--split {split}: other data (--data) has no saved splits; use --split all")
    idx = np.asarray(getattr(run.splits, split), dtype=np.int64)
    if len(idx) and idx.max() >= len(ds):
        raise RunDirError(f"{run.run_dir}/data.json: split indices exceed the {len(ds)} images of "
                          f"{ds.name!r}; "
                          "the data changed since training")
    return idx


def _label_names(classes: Sequence[str], targets: np.ndarray) -> np.ndarray:
    names = np.asarray([str(c) for c in classes] or [""], dtype=object)
    t = np.asarray(targets, dtype=np.int64)
    return np.where(t >= 0, names[np.clip(t, 0, None)], None)


def _run_targets(run: Any, ds: ImageDataset) -> np.ndarray | None:
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
    def build(cls, run: Any, ds: ImageDataset, key: str) -> EvalData:
        meta = ds.meta.copy()
        meta[LABEL_COLUMN] = _label_names(ds.classes, ds.targets)
        targets = _run_targets(run, ds)
        meta[TARGET_COLUMN] = targets if targets is not None else None
        return cls(ds, key, meta, [str(c) for c in ds.classes])

    def labelled(self, column: str) -> bool:
        return bool(self.meta[column].notna().any())


class Evaluator:
    """Runs evaluations of one run on one data set and split, embedding rows as needed.

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
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run = open_run(run_dir, data_root)
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
                         formats=formats, reuse=reuse, batch_size=self.batch_size, device=self.device)
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
        for n, opts in plan.items():
            check_options(n, opts, complete=True)
            if n in CLASSIFIER_EVALUATIONS and not has_classifier(self.run):
                raise ConfigError(f"evaluation {n!r} needs a classifier; run {self.run_dir} "
                                  f"({self.run.config.method.name}) has none (try knn or linear)")
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
        ctx = EvalContext(z, meta, label_column=label, classes=classes or None, logits=logits,
                          group_columns=groups, train_idx=train_idx, test_idx=test_idx)
        return ctx, opts

    def _label_classes(self, fit: bool) -> list[str]:
        classes = list(self.own.classes) if (not self.foreign or fit) else []
        for c in self.data.classes:
            if c not in classes:
                classes.append(c)
        return classes

    def run_one(self, name: str, options: Mapping[str, Any] | None = None) -> EvalResult:
        """Run one evaluation on the evaluated split."""
        ctx, opts = self.context(name, options or {})
        return run_evaluation(name, ctx, **opts)

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


def _natural(s: str) -> list[Any]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t]


def _is_karyotype(classes: Sequence[str]) -> bool:
    try:
        chromosome_columns(classes)
    except BiorepError:
        return False
    return True


def check_options(name: str, options: Mapping[str, Any], *, complete: bool) -> None:
    """Raise a :class:`ConfigError` for options ``name`` does not take (and, with ``complete``, for
    required options that are missing)."""
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
    if complete:
        missing = [p for p in allowed if params[p].default is inspect.Parameter.empty and p not in options]
        if missing:
            raise ConfigError(f"evaluation {name!r} needs option(s) {', '.join(missing)} "
                              f"(e.g. -o {name}.{missing[0]}=...); this data set has no default for them")


# ----------------------------------------------------------------------------- results on disk
def merge_evaluation(run_dir: Path, records: Mapping[str, Any]) -> Path:
    """Merge ``records`` into ``RUN/evaluation.json`` (same keys replaced, others kept), atomically."""
    path = run_dir / EVALUATION_FILE
    old: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text())
            old = loaded if isinstance(loaded, dict) else {}
        except (OSError, json.JSONDecodeError):
            log.warning("%s is unreadable; it is replaced", path)
    old.update(records)
    return _write_json(path, old)


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

    Returns:
        ``{key: {"name", "summary", "split", "data", "n"}}`` for the evaluations run now; with
        ``names=None`` an evaluation that cannot run on this data is returned as
        ``{"name", "error"}`` (and logged) instead of stopping the others. Explicitly named
        evaluations raise. Keys carry ``@data``/``@split`` suffixes off the own test split.

    Raises:
        RunDirError / ConfigError / DataError: missing run, unknown evaluation or option, bad data.
    """
    if data is not None and split == "test":
        split = None  # the signature's default means "the default split" for other data
    ev = Evaluator(run_dir, data=data, split=split, data_root=data_root, progress=progress, device=device)
    plan = ev.plan(names, options)
    results: dict[str, Any] = {}
    done: list[tuple[str, EvalResult]] = []
    for name, opts in plan.items():
        key = name + ev.suffix
        try:
            ctx, kw = ev.context(name, opts)
            res = run_evaluation(name, ctx, **kw)
        except BiorepError as exc:
            if names is not None:
                raise
            log.warning("evaluation %s skipped: %s", name, exc)
            results[key] = {"name": name, "error": str(exc)}
            continue
        n = int(len(ctx.split()[1]))
        results[key] = ev.record(res, n)
        done.append((key, res))
    out_dir = ev.run_dir / EVALUATION_DIR
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
) -> Embedded:
    """Embed the run's data (``split``, default ``test``) or other ``data`` (``all``) and store it.

    Files: ``RUN/embeddings/<split>.*`` (``<data>.<split>.*`` for other data) or under ``out``.
    """
    ev = Evaluator(run_dir, data=data, split=split, data_root=data_root, progress=progress, device=device)
    target = Path(out) if out is not None else None
    return ev.embeddings("eval", out_dir=target, formats=formats)


# ----------------------------------------------------------------------------- karyotype
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


# ----------------------------------------------------------------------------- predict
def _input_files(inputs: Sequence[str | os.PathLike[str]], path_column: str
                 ) -> tuple[list[str], list[dict[str, Any]], list[str | None]]:
    """Expand folders / manifests / files into (files, metadata rows, error per input)."""
    from biorep.data.decode import is_image_file
    from biorep.data.sources import (
        MANIFEST_SUFFIXES,
        natural_sorted,
        read_manifest_table,
        resolve_manifest_paths,
    )

    files: list[str] = []
    metas: list[dict[str, Any]] = []
    errors: list[str | None] = []

    def add(path: str, meta: dict[str, Any] | None = None, error: str | None = None) -> None:
        files.append(path)
        metas.append(meta or {})
        errors.append(error)

    for raw in inputs:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = []
            for dirpath, dirnames, filenames in os.walk(p, followlinks=True):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                found += [os.path.join(dirpath, f) for f in filenames
                          if not f.startswith(".") and is_image_file(f)]
            if not found:
                add(str(p), error="folder holds no image files")
            for f in natural_sorted(found):
                add(f)
        elif p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            df = read_manifest_table(p)
            if path_column not in df.columns:
                raise DataError(f"{p}: manifest has no path column {path_column!r} "
                                f"(columns: {', '.join(map(str, df.columns))})")
            resolved = resolve_manifest_paths(df[path_column], p.parent, p, path_column)
            rest = df.drop(columns=[path_column, "path"], errors="ignore")
            for f, (_, row) in zip(resolved, rest.iterrows()):
                add(f, row.to_dict(), None if os.path.isfile(f) else f"file not found (listed in {p})")
        elif p.is_file():
            add(str(p), error=None if is_image_file(p) else f"unsupported file type {p.suffix or '(none)'}")
        else:
            add(str(p), error="file or folder not found")
    return files, metas, errors


def _prepare_image(path: str, run: Any, geom: GeometryConfig) -> np.ndarray:
    """Decode one file and bring it to the run's channels and geometry (raises on any problem)."""
    from biorep.data.decode import read_image
    from biorep.data.geometry import apply_geometry

    arr = read_image(path)
    chans = run.config.data.channels
    if isinstance(chans, list):
        if max(chans) >= arr.shape[0]:
            raise DataError(f"has {arr.shape[0]} channel(s); the run keeps channels {chans}")
        arr = arr[chans]
    want = int(run.info["channels"])
    if arr.shape[0] != want:
        raise DataError(f"has {arr.shape[0]} channel(s) but the run was trained on {want}")
    if geom.mode == "none" and arr.shape[1:] != (geom.size, geom.size):
        raise DataError(f"is {arr.shape[1]}×{arr.shape[2]} px but the run expects {geom.size}×{geom.size}")
    out, _ = apply_geometry(arr, geom.mode, geom.size, float(geom.scale), float(geom.background))
    return out.astype(np.float32, copy=False)


def predict_images(
    run_dir: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    path_column: str = "path",
    batch_size: int = 128,
    data_root: str | os.PathLike[str] | None = None,
    device: str | None = None,
) -> pd.DataFrame:
    """Class and per-class probabilities for new images with the run's preprocessing.

    Args:
        run_dir: a run whose method has a classifier.
        inputs: image files, folders (searched recursively) and CSV/Parquet manifests (their
            metadata columns are kept).
        path_column: the manifests' image path column.

    Returns:
        One row per image, in input order: ``path``, manifest metadata, ``predicted``,
        ``confidence``, ``p_<class>`` per class and ``error`` (why an image could not be used; its
        prediction is empty). Images are brought to the run's geometry with its canvas scale and
        background (:func:`run_geometry`) and scaled by its fitted intensity scaler.

    Raises:
        ConfigError: the run has no classifier. DataError: no input could be read at all.
    """
    run = open_run(run_dir, data_root)
    if not has_classifier(run):
        raise ConfigError(f"run {run.run_dir} ({run.config.method.name}) has no classifier, so it cannot "
                          "predict "
                          f"classes; use `biorep embed {run.run_dir} --data IMAGES` for its representations")
    if not inputs:
        raise ConfigError("predict: give at least one image file, folder or manifest")
    geom = run_geometry(run)
    files, metas, errors = _input_files(inputs, path_column)
    arrays: dict[int, np.ndarray] = {}
    for i, f in enumerate(files):
        if errors[i] is not None:
            continue
        try:
            arrays[i] = _prepare_image(f, run, geom)
        except BiorepError as exc:
            errors[i] = str(exc).removeprefix(f"{f}: ")
        except Exception as exc:  # any decoder failure is a per-file problem here
            errors[i] = f"cannot read image ({type(exc).__name__}: {exc})"
    ok = sorted(arrays)
    if not ok:
        detail = "; ".join(f"{f}: {e}" for f, e in zip(files, errors))
        raise DataError(f"predict: no image could be read ({detail})")
    classes = [str(c) for c in run.classes]
    probs = np.full((len(files), len(classes)), np.nan)
    dev = _device(device)
    model = run.model.to(dev)
    with torch.inference_mode():
        for s in range(0, len(ok), batch_size):
            rows = ok[s : s + batch_size]
            x = torch.from_numpy(np.stack([arrays[i] for i in rows])).to(dev)
            logits = model.classify(x)
            assert logits is not None
            probs[rows] = softmax(logits.float().cpu().numpy().astype(np.float64))
    model.to("cpu")
    table = pd.DataFrame(metas)
    table.insert(0, "path", files)
    good = ~np.isnan(probs[:, 0])
    names = np.asarray(classes, dtype=object)
    table["predicted"] = np.where(good, names[np.nan_to_num(probs, nan=-1).argmax(1)], None)
    table["confidence"] = np.where(good, np.nan_to_num(probs, nan=0).max(1), np.nan)
    for j, c in enumerate(classes):
        table[f"p_{c}"] = probs[:, j]
    table["error"] = errors
    return table
