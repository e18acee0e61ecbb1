"""Embeddings of a run's data rows, stored in the run directory and reused while they are current.

:func:`embed_rows` embeds rows of a data set with the run's model and writes ``<stem>.parquet`` /
``.h5ad`` / ``.logits.npy`` plus a ``<stem>.json`` record of what they were made from; stored files
are reused while that record matches and they are newer than the checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biorep.data import ImageDataset
from biorep.errors import BiorepError, DataError
from biorep.evaluate.embed import embed_dataset, read_embeddings, write_embeddings
from biorep.evaluate.rundata import _device, _write_json, atomic_write, has_classifier

__all__ = ["Embedded", "embed_rows", "embedding_paths"]


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
