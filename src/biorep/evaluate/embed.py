"""Embed a dataset with a trained model, and store / read embeddings with their metadata.

Two formats, written side by side and atomically (:func:`biorep.rundir.atomic_write`: temp file in the
same folder, fsync, rename; the files honour the umask):
- Parquet: the metadata columns followed by the feature columns ``f0000, f0001, ...``;
- AnnData ``.h5ad``: ``X`` = embeddings, ``obs`` = metadata (text columns as categoricals).

Example:
    >>> z, meta, logits = embed_dataset(model, dataset, batch_size=256)  # doctest: +SKIP
    >>> paths = write_embeddings(z, meta, "runs/r1/embeddings", "test")  # doctest: +SKIP
    >>> z2, meta2 = read_embeddings(paths["parquet"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from biorep.errors import DataError
from biorep.rundir import atomic_write, embedding_files

FEATURE_PATTERN = re.compile(r"^f\d{4,}$")
FORMATS = ("parquet", "h5ad")


class EmbeddingModel(Protocol):
    """What :func:`embed_dataset` needs from a model (see docs/architecture.md, ``biorep.methods``)."""

    def embed(self, x_raw: torch.Tensor) -> torch.Tensor: ...

    def classify(self, x_raw: torch.Tensor) -> torch.Tensor | None: ...


def _model_device(model: Any) -> torch.device:
    try:
        return next(iter(model.parameters())).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def _to_tensor(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """Raw intensities as a tensor of the same dtype (the model's ``prepare`` scales them)."""
    return torch.from_numpy(np.ascontiguousarray(batch)).to(device, non_blocking=True)


def embed_dataset(
    model: Any,
    dataset: Any,
    indices: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    *,
    with_logits: bool = True,
) -> tuple[np.ndarray, pd.DataFrame, np.ndarray | None]:
    """Run ``model.embed`` (and ``model.classify``) over ``dataset.images[indices]`` in batches.

    Args:
        model: a method exposing ``embed(x_raw) -> Tensor[B, D]`` and ``classify(x_raw) -> logits | None``
            (it scales raw intensities itself). Put in eval mode here.
        dataset: an ``ImageDataset`` (``images`` ``(N, C, H, W)`` array, ``meta`` DataFrame).
        indices: rows to embed, in this order (default: all).
        batch_size: images per forward pass.
        device: where to run (default: the device the model's parameters are on; the model is moved
            there when given).
        with_logits: also collect ``classify`` outputs (skipped after the first ``None``).

    Returns:
        ``(Z float32 (n, D), meta (n rows, RangeIndex, plus ``sample_index`` = the dataset row),
        logits float32 (n, K) or None)``.
    """
    n_total = len(dataset.images)
    idx = np.arange(n_total) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_total):
        raise DataError(f"embedding indices out of range for a dataset of {n_total} images")
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if device is not None:
        dev = torch.device(device)
        if hasattr(model, "to"):
            model = model.to(dev)
    else:
        dev = _model_device(model)
    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()

    feats: list[np.ndarray] = []
    logits: list[np.ndarray] | None = [] if with_logits else None
    try:
        with torch.inference_mode():
            for start in range(0, len(idx), batch_size):
                rows = idx[start : start + batch_size]
                # memmaps read fastest in ascending order; keep the caller's order in the output
                order = np.argsort(rows, kind="stable")
                batch = np.empty((len(rows), *dataset.images.shape[1:]), dtype=dataset.images.dtype)
                batch[order] = dataset.images[rows[order]]
                x = _to_tensor(batch, dev)
                feats.append(model.embed(x).detach().float().cpu().numpy())
                if logits is not None:
                    out = model.classify(x)
                    if out is None:
                        logits = None
                    else:
                        logits.append(out.detach().float().cpu().numpy())
    finally:
        if was_training and hasattr(model, "train"):
            model.train()

    if feats:
        z = np.concatenate(feats).astype(np.float32, copy=False)
    else:
        z = np.zeros((0, 0), dtype=np.float32)
    meta = dataset.meta.iloc[idx].reset_index(drop=True).copy()
    meta["sample_index"] = idx
    lg = np.concatenate(logits).astype(np.float32, copy=False) if logits else None
    return z, meta, lg


def feature_names(dim: int) -> list[str]:
    """``f0000 .. f{dim-1}`` (zero-padded to at least 4 digits)."""
    width = max(4, len(str(max(dim - 1, 0))))
    return [f"f{i:0{width}d}" for i in range(dim)]


def _text_or_none(v: Any) -> str | None:
    """A metadata value as text; missing values (None, NaN, NA) stay missing."""
    if np.ndim(v) == 0 and pd.isna(v):
        return None
    return str(v)


def _meta_for_parquet(meta: pd.DataFrame) -> pd.DataFrame:
    out = meta.reset_index(drop=True).copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(_text_or_none)
    out.columns = [str(c) for c in out.columns]
    return out


def _meta_for_h5ad(meta: pd.DataFrame) -> pd.DataFrame:
    """obs: text/mixed/categorical columns → categoricals of strings; numbers and booleans kept."""
    out = _meta_for_parquet(meta)
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[col] = s.astype(object).map(_text_or_none).astype("category")
        elif pd.api.types.is_bool_dtype(s) and s.dtype.kind == "b":
            continue
        elif pd.api.types.is_numeric_dtype(s):
            if s.dtype.kind not in "iuf":  # nullable extension numbers → plain floats
                out[col] = s.astype("float64")
        else:
            out[col] = s.astype(object).map(_text_or_none).astype("category")
    out.index = [str(i) for i in range(len(out))]
    return out


def write_embeddings(
    z: np.ndarray,
    meta: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    stem: str,
    formats: Iterable[str] = FORMATS,
) -> dict[str, Path]:
    """Write ``out_dir/stem.parquet`` and/or ``out_dir/stem.h5ad``; returns ``{format: path}``.

    Raises:
        DataError: shapes disagree, or a metadata column would clash with a feature column name.
    """
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or len(z) != len(meta):
        raise DataError(f"embeddings {z.shape} do not match metadata with {len(meta)} rows")
    formats = list(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise DataError(f"unknown embedding format(s) {unknown}; known: {list(FORMATS)}")
    clash = [c for c in map(str, meta.columns) if FEATURE_PATTERN.match(c)]
    if clash:
        raise DataError(f"metadata column(s) {clash} look like feature columns (f0000…); rename them")
    out = Path(out_dir)
    made = [d for d in (out, *out.parents) if not d.exists()]  # deepest first: removed again on failure
    out.mkdir(parents=True, exist_ok=True)
    names = feature_names(z.shape[1])
    files = embedding_files(out, stem)
    written: dict[str, Path] = {}
    try:
        if "parquet" in formats:
            table = pd.concat([_meta_for_parquet(meta), pd.DataFrame(z, columns=names)], axis=1)
            written["parquet"] = atomic_write(files["parquet"], lambda p: table.to_parquet(p, index=False))
        if "h5ad" in formats:
            import anndata as ad

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                adata = ad.AnnData(X=z, obs=_meta_for_h5ad(meta), var=pd.DataFrame(index=names))
                written["h5ad"] = atomic_write(files["h5ad"], lambda p: adata.write_h5ad(p))
    except BaseException:  # e.g. a full disk: nothing left behind in a folder made here (files are atomic)
        if made:
            for f in written.values():
                f.unlink(missing_ok=True)
        for d in made:
            try:
                d.rmdir()
            except OSError:
                break
        raise
    return written


def read_embeddings(path: str | os.PathLike[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Read embeddings written by :func:`write_embeddings` (``.parquet`` or ``.h5ad``).

    Returns ``(Z float32 (N, D), meta with a RangeIndex)``.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: embeddings file not found")
    if p.suffix == ".parquet":
        table = pd.read_parquet(p)
        feats = [c for c in table.columns if FEATURE_PATTERN.match(str(c))]
        if not feats:
            raise DataError(f"{p}: no feature columns (f0000, f0001, ...)")
        z = table[feats].to_numpy(dtype=np.float32)
        return z, table.drop(columns=feats).reset_index(drop=True)
    if p.suffix == ".h5ad":
        import anndata as ad

        adata = ad.read_h5ad(p)
        z = np.asarray(adata.X, dtype=np.float32)
        return z, adata.obs.reset_index(drop=True)
    raise DataError(f"{p}: unknown embeddings format (expected .parquet or .h5ad)")
