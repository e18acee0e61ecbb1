"""Class predictions for new image files, folders or manifests with a run's preprocessing.

:func:`predict_images` decodes each input, brings it to the run's channels and geometry
(:func:`~biorep.evaluate.rundata.run_geometry`) and returns per-class probabilities, reporting
unusable files per row instead of failing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from biorep.data import GeometryConfig
from biorep.errors import BiorepError, ConfigError, DataError
from biorep.evaluate.context import softmax
from biorep.evaluate.rundata import _device, has_classifier, run_geometry

if TYPE_CHECKING:
    from biorep.evaluate.evaluator import Evaluator
    from biorep.training.loading import LoadedRun

__all__ = ["predict_images"]
log = logging.getLogger("biorep.evaluate")


def _input_files(inputs: Sequence[str | os.PathLike[str]], path_column: str
                 ) -> tuple[list[str], list[dict[str, Any]], list[str | None]]:
    """Expand folders / manifests / files into (files, metadata rows, error per input)."""
    from biorep.data.decode import is_image_file
    from biorep.data.sources import (
        MANIFEST_SUFFIXES,
        image_files_under,
        natural_sorted,
        read_manifest_table,
        resolve_manifest_paths,
        row_lines,
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
            found = image_files_under(p)
            if not found:
                add(str(p), error="folder holds no image files")
            for f in natural_sorted(found):
                add(f)
        elif p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            df = read_manifest_table(p, text_columns=None)  # metadata is passed through as written
            if path_column not in df.columns:
                raise DataError(f"{p}: manifest has no path column {path_column!r} "
                                f"(columns: {', '.join(map(str, df.columns))})")
            resolved = resolve_manifest_paths(df[path_column], p.parent, p, path_column, lines=row_lines(df))
            rest = df.drop(columns=[path_column, "path"], errors="ignore")
            for f, (_, row) in zip(resolved, rest.iterrows()):
                add(f, row.to_dict(), None if os.path.isfile(f) else f"file not found (listed in {p})")
        elif p.is_file():
            add(str(p), error=None if is_image_file(p) else f"unsupported file type {p.suffix or '(none)'}")
        else:
            add(str(p), error="file or folder not found")
    return files, metas, errors


def _prepare_image(path: str, run: LoadedRun, geom: GeometryConfig,
                   seen: list[tuple[str, int, int, int]] | None = None) -> np.ndarray:
    """Decode one file and bring it to the run's channels and geometry (raises on any problem).

    ``seen`` gets the file's (pixel type, channels kept, height, width) as decoded, for
    :func:`biorep.data.checks.compare_images`."""
    from biorep.data.decode import as_colour, read_image
    from biorep.data.geometry import apply_geometry

    arr = read_image(path)
    chans = run.config.data.channels
    if not isinstance(chans, list):  # as training reads it: a grey picture in a colour set, grey in each channel
        arr = as_colour(arr, path, int(run.data.channels))
    if isinstance(chans, list):
        if max(chans) >= arr.shape[0]:
            raise DataError(f"has {arr.shape[0]} channel(s); the run keeps channels {chans}")
        arr = arr[chans]
    if seen is not None:
        seen.append((str(arr.dtype), int(arr.shape[0]), int(arr.shape[1]), int(arr.shape[2])))
    want = int(run.data.channels)
    if arr.shape[0] != want:
        raise DataError(f"has {arr.shape[0]} channel(s) but the run was trained on {want}")
    if geom.mode == "none" and arr.shape[1:] != geom.hw:
        raise DataError(f"is {arr.shape[1]}×{arr.shape[2]} px but the run expects {geom.hw[0]}×{geom.hw[1]}")
    # only a canvas uses scale and background (run_geometry resolved them); resize/none may read "auto"
    scale, background = (float(geom.scale), float(geom.background)) if geom.mode == "canvas" else (1.0, 0.0)
    out, _ = apply_geometry(arr, geom.mode, geom.size, scale, background)
    return out.astype(np.float32, copy=False)


def predict_images(
    run_dir: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    path_column: str = "path",
    batch_size: int = 128,
    data_root: str | os.PathLike[str] | None = None,
    device: str | None = None,
    via: str = "auto",
    k: int = 20,
    allow_unfinished: bool = False,
    strict: bool = False,
) -> pd.DataFrame:
    """Class and per-class probabilities for new images with the run's preprocessing.

    Args:
        run_dir: a trained run.
        inputs: image files, folders (searched recursively) and CSV/Parquet manifests (their
            metadata columns are kept).
        path_column: the manifests' image path column.
        via: ``"classifier"`` (the run's own classifier head), ``"knn"`` (a cosine kNN vote over the
            representations of the run's labelled training images, as the ``knn`` evaluation does;
            what self-supervised runs without a classifier use) or ``"auto"`` (the classifier when
            the run has one, else kNN).
        k: neighbours of the kNN vote.
        strict: make a difference between the images and the run's training images (pixel type,
            channel count, size distribution; :func:`biorep.data.checks.compare_images`) an error
            instead of a warning.
        allow_unfinished: use a run that has not finished training (its latest checkpoint, with a
            warning) instead of refusing it (see :func:`biorep.rundir.check_usable`).

    Returns:
        One row per image, in input order: ``path``, manifest metadata, ``predicted``,
        ``confidence``, ``p_<class>`` per class, ``predicted_by`` and ``error`` (why an image could
        not be used; its prediction is empty). Images are brought to the run's geometry with its
        canvas scale and background (:func:`run_geometry`) and scaled by its fitted intensity scaler.

    Raises:
        ConfigError: no way to predict (no classifier and no labelled training images), or a bad
        ``via``. DataError: no input could be read at all.
    """
    if via not in ("auto", "classifier", "knn"):
        raise ConfigError(f"predict: --via {via!r}: choose auto, classifier or knn")
    if k < 1:
        raise ConfigError(f"predict: k must be at least 1, got {k}")
    from biorep.evaluate.evaluator import Evaluator

    ev = Evaluator(run_dir, data_root=data_root, device=device, verb="predict",  # opens the run once
                   allow_unfinished=allow_unfinished)
    run = ev.run
    if via == "classifier" and not has_classifier(run):
        raise ConfigError(f"run {run.run_dir} ({run.config.method.name}) has no classifier; use --via knn "
                          f"(a kNN vote over its labelled training images) or `biorep embed {run.run_dir} "
                          "--data IMAGES` for its representations")
    use_knn = via == "knn" or not has_classifier(run)
    if not inputs:
        raise ConfigError("predict: give at least one image file, folder or manifest")
    knn = _KnnVote.fit(ev, k) if use_knn else None
    geom = run_geometry(run)
    files, metas, errors = _input_files(inputs, path_column)
    arrays: dict[int, np.ndarray] = {}
    seen: list[tuple[str, int, int, int]] = []
    for i, f in enumerate(files):
        if errors[i] is not None:
            continue
        try:
            arrays[i] = _prepare_image(f, run, geom, seen)
        except BiorepError as exc:
            errors[i] = str(exc).removeprefix(f"{f}: ")
        except Exception as exc:  # any decoder failure is a per-file problem here
            errors[i] = f"cannot read image ({type(exc).__name__}: {exc})"
    ok = sorted(arrays)
    if not ok:
        raise DataError(f"predict: no image could be read ({summarise_errors(files, errors)})")
    _check_like_training(run, seen, strict)
    classes = knn.classes if knn is not None else [str(c) for c in run.classes]
    probs = np.full((len(files), len(classes)), np.nan)
    dev = _device(device)
    model = run.model.to(dev)
    with torch.inference_mode():
        for s in range(0, len(ok), batch_size):
            rows = ok[s : s + batch_size]
            x = torch.from_numpy(np.stack([arrays[i] for i in rows])).to(dev)
            if knn is not None:
                probs[rows] = knn(model.embed(x).float().cpu().numpy())
                continue
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
    table["predicted_by"] = np.where(good, f"knn (k={knn.k}, training images)" if knn else "classifier", None)
    table["error"] = errors
    return table


def summarise_errors(files: list[Any], errors: list[str | None], examples: int = 3) -> str:
    """One bounded line for many per-file errors: each distinct problem once, with how many files have
    it and the first ``examples`` of them (300 images with one wrong channel count made a 20 kB line)."""
    by_problem: dict[str, list[str]] = {}
    for f, e in zip(files, errors):
        if e is not None:
            by_problem.setdefault(e, []).append(str(f))
    parts = []
    for problem, names in by_problem.items():
        if len(names) == 1:
            parts.append(f"{names[0]}: {problem}")
            continue
        more = f" and {len(names) - examples} more" if len(names) > examples else ""
        parts.append(f"{len(names)} files: {problem} (e.g. {', '.join(names[:examples])}{more})")
    return "; ".join(parts)


def _check_like_training(run: LoadedRun, seen: list[tuple[str, int, int, int]], strict: bool) -> None:
    """Warn (``strict``: raise) when the decoded images differ from the run's training images."""
    from biorep.data.checks import compare_images

    record = getattr(run, "data", None) or getattr(run, "info", {})
    problems = compare_images(record, dtypes=[s[0] for s in seen], channels=[s[1] for s in seen],
                              heights=[s[2] for s in seen], widths=[s[3] for s in seen])
    if not problems:
        return
    what = f"images differ from the training images of run {run.run_dir}: " + "; ".join(problems)
    if strict:
        raise DataError(f"predict --strict: {what}")
    log.warning("predict: %s; the predictions may be wrong (--strict makes this an error)", what)


class _KnnVote:
    """Class probabilities of new representations by the run's labelled training representations.

    The same vote as the ``knn`` evaluation (:func:`knn_predict_proba`: cosine, ``exp(sim / 0.07)``
    weights), fitted on the embeddings of the run's training split (reused from ``RUN/embeddings``
    when they are newer than the checkpoint).
    """

    def __init__(self, z: np.ndarray, y: np.ndarray, classes: list[str], k: int) -> None:
        self.z, self.y, self.classes, self.k = z, y, classes, k

    @classmethod
    def fit(cls, ev: Evaluator, k: int) -> _KnnVote:
        """Fit on the training split of the :class:`~biorep.evaluate.evaluator.Evaluator`'s run."""
        ds = ev.own.ds
        classes = [str(c) for c in ds.classes]
        fit = ev.embeddings("fit")
        y = np.asarray(ds.targets, dtype=np.int64)[fit.meta["sample_index"].to_numpy()]
        if len(classes) < 2 or not (y >= 0).any():
            raise ConfigError(f"run {ev.run_dir} has no classifier and its training images carry no class "
                              f"labels to vote with; use `biorep embed {ev.run_dir} --data IMAGES` for "
                              "its representations")
        return cls(fit.z, y, classes, k)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        from biorep.evaluate.probes import knn_predict_proba

        return knn_predict_proba(self.z, self.y, z, len(self.classes), k=self.k)
