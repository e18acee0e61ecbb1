"""Embeddings of a run's data rows, stored in the run directory and reused while they are current.

:func:`embed_rows` embeds rows of a data set with the run's model and writes ``<stem>.parquet`` /
``.h5ad`` / ``.logits.npy`` plus a ``<stem>.json`` record of what they were made from and by which
run; stored files are reused while that record matches and they are newer than the checkpoint.
Outside the run's own folder (``embed --out``) files another run wrote are never replaced without
``overwrite``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from biorep.data import ImageDataset
from biorep.errors import BiorepError, DataError, RunDirError
from biorep.evaluate.embed import embed_dataset, read_embeddings, write_embeddings
from biorep.evaluate.rundata import _device, _write_json, has_classifier
from biorep.rundir import atomic_write, embedding_files, read_json

if TYPE_CHECKING:
    from biorep.training.loading import LoadedRun

#: Key of the ``<stem>.json`` record naming the run (its resolved folder) that wrote the files.
OWNER = "run"

__all__ = ["OWNER", "Embedded", "check_owner", "embed_rows", "embedding_paths"]


@dataclass
class Embedded:
    """Embeddings of some rows of a data set: features, metadata (with ``sample_index``), logits."""

    z: np.ndarray
    meta: pd.DataFrame
    logits: np.ndarray | None
    paths: dict[str, Path] = field(default_factory=dict)
    reused: bool = False


def embedding_paths(out_dir: Path, stem: str) -> dict[str, Path]:
    """The files one set of embeddings is stored in (:func:`biorep.rundir.embedding_files`)."""
    return embedding_files(out_dir, stem)


def _fingerprint(run: LoadedRun, ds: ImageDataset, idx: np.ndarray) -> dict[str, Any]:
    return {"checkpoint": run.checkpoint.name, "dataset": ds.name, "dataset_key": ds.info.get("key"),
            "n": int(len(idx)), "classes": list(run.classes) if has_classifier(run) else None,
            **({"tta": list(run.config.model.tta)} if run.config.model.tta else {})}


def _owner(run: LoadedRun) -> str:
    return str(Path(run.run_dir).resolve())


def _own_folder(run: LoadedRun, out: Path) -> bool:
    """Whether ``out`` lies inside the run's own folder (whatever is there is the run's)."""
    return out.resolve().is_relative_to(Path(run.run_dir).resolve())


def _recorded_owner(info: Path) -> str | None:
    try:
        saved = read_json(info)
    except BiorepError:
        return None
    owner = saved.get(OWNER) if isinstance(saved, dict) else None
    return str(owner) if owner else None


def check_owner(run: LoadedRun, out: Path, stem: str, *, overwrite: bool = False) -> None:
    """Refuse to replace ``out/stem.*`` that another run (or something else) wrote, unless ``overwrite``.

    Files in the run's own folder are always its own; elsewhere the ``<stem>.json`` record must name
    this run. The error names the files and the run that wrote them.
    """
    files = embedding_paths(out, stem)
    present = [p for p in files.values() if p.exists()]
    if overwrite or not present or _own_folder(run, out):
        return
    owner = _recorded_owner(files["info"])
    if owner == _owner(run):
        return
    if owner:
        who = f"run {owner}"
    elif files["info"].is_file():
        who = f"an earlier biorep whose record {files['info'].name} names no run"
    else:
        who = "something other than this run (no record of a biorep run)"
    raise RunDirError(f"{out}: {', '.join(p.name for p in present)} already there, written by {who}; "
                      "pass --overwrite to replace them, or choose another --out")


def _reuse(run: LoadedRun, ds: ImageDataset, idx: np.ndarray, files: dict[str, Path],
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
        saved = read_json(files["info"])
        if not isinstance(saved, dict):
            return None
        owner = saved.pop(OWNER, None)
        if owner != _owner(run) and not _own_folder(run, files["info"].parent):
            return None  # another run's embeddings (check_owner has allowed replacing them)
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
    run: LoadedRun,
    ds: ImageDataset,
    indices: np.ndarray,
    out_dir: str | os.PathLike[str],
    stem: str,
    *,
    formats: Sequence[str] = ("parquet", "h5ad"),
    reuse: bool = True,
    batch_size: int = 256,
    device: str | None = None,
    overwrite: bool = False,
) -> Embedded:
    """Embed ``ds`` rows ``indices`` with the run's model and store them as ``out_dir/stem.*``.

    Stored embeddings are reused when this run made them from the same checkpoint and data (cache
    key, rows) and they are newer than the checkpoint. The model's logits (when it has a classifier)
    are stored beside them as ``stem.logits.npy``. Every file is written atomically, the ``stem.json``
    record (what they were made from, and by which run) last; files of the set that are not
    rewritten (another format, logits of a classifier) are removed so none is left describing
    something else.

    Raises:
        RunDirError: ``out_dir`` (outside the run's folder) holds ``stem.*`` of another run and
        ``overwrite`` is not set (see :func:`check_owner`).
    """
    out = Path(out_dir)
    idx = np.asarray(indices, dtype=np.int64)
    files = embedding_paths(out, stem)
    formats = list(dict.fromkeys(["parquet", *formats]))
    check_owner(run, out, stem, overwrite=overwrite)
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
    for kind, path in files.items():  # stale members of the set (another format, old logits)
        if kind not in written and kind != "info" and not (kind == "logits" and logits is not None):
            path.unlink(missing_ok=True)
    _write_json(files["info"], {**_fingerprint(run, ds, idx), OWNER: _owner(run)})
    return Embedded(z, meta, logits, written)
