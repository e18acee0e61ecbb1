"""``biorep embed``: Parquet + AnnData of a split and of a new folder, with the run's preprocessing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

from biorep.data import resolve_source
from biorep.evaluate.embed import FEATURE_PATTERN
from biorep.training import load_run


def _direct(run_dir: Path, rows: np.ndarray) -> np.ndarray:
    run = load_run(run_dir)
    ds = run.dataset()
    return run.model.embed(torch.from_numpy(np.asarray(ds.images[rows]))).numpy()


def test_embed_test_split_writes_parquet_and_h5ad(karyotype_copy: Path, cli: Callable) -> None:
    code, out, err = cli("embed", karyotype_copy, "--json", "--no-progress")
    assert code == 0, err
    info = json.loads(out)
    run = load_run(karyotype_copy)
    test = run.splits.test
    assert info["n"] == len(test) and info["dim"] == 512 and info["reused"] is False
    table = pd.read_parquet(karyotype_copy / "embeddings" / "test.parquet")
    feats = [c for c in table.columns if FEATURE_PATTERN.match(c)]
    assert len(table) == len(test) and len(feats) == 512
    assert {"path", "karyogram", "case", "chromosome", "sample_index"} <= set(table.columns)
    assert table["sample_index"].tolist() == test.tolist()
    np.testing.assert_allclose(table[feats].to_numpy(), _direct(karyotype_copy, test), rtol=1e-4, atol=1e-5)
    adata = ad.read_h5ad(karyotype_copy / "embeddings" / "test.h5ad")
    assert adata.X.shape == (len(test), 512)
    assert adata.obs["karyogram"].astype(str).tolist() == table["karyogram"].astype(str).tolist()
    # a second call reuses the stored embeddings
    code, out, _ = cli("embed", karyotype_copy, "--json")
    assert code == 0 and json.loads(out)["reused"] is True


def test_embed_other_folder_uses_the_runs_preprocessing(karyotype_copy: Path, tmp_path: Path,
                                                         cli: Callable) -> None:
    run = load_run(karyotype_copy)
    ds = run.dataset()
    # copy four source files of the run's own data into a new class-per-folder tree
    src_rows = run.splits.train[:4]
    files = resolve_source(run.config.data).files
    folder = tmp_path / "new"
    for i in src_rows:
        cls = ds.meta["chromosome"].iloc[i]
        (folder / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(files[i], folder / cls / f"img{i:04d}.png")
    out_dir = tmp_path / "emb"
    code, out, err = cli("embed", karyotype_copy, "--data", folder, "--out", out_dir, "--json", "--format", "parquet")
    assert code == 0, err
    table = pd.read_parquet(out_dir / "new.all.parquet")
    assert len(table) == 4 and not (out_dir / "new.all.h5ad").exists()
    feats = [c for c in table.columns if FEATURE_PATTERN.match(c)]
    # natural order of the new folder = order of (class, file); map back to the source rows
    order = [int(Path(p).stem[3:]) for p in table["path"]]
    # same pixels (same canvas scale and background as the run) → the same representation
    np.testing.assert_allclose(table[feats].to_numpy(), _direct(karyotype_copy, np.array(order)),
                               rtol=1e-4, atol=1e-4)
    assert set(table["label"]) == set(ds.meta["chromosome"].iloc[src_rows])


def test_embed_errors_exit_2(cells_copy: Path, karyotype_copy: Path, tmp_path: Path, cli: Callable) -> None:
    missing = tmp_path / "nope"
    code, _, err = cli("embed", missing)
    assert code == 2 and f"run directory {missing} does not exist" in err
    # the cells run was trained on 3 channels; karyotype crops have 1
    run = load_run(karyotype_copy)
    files = resolve_source(run.config.data).files
    folder = tmp_path / "grey" / "a"
    folder.mkdir(parents=True)
    shutil.copy(files[0], folder / "x.png")
    code, _, err = cli("embed", cells_copy, "--data", folder.parent, "--no-progress")
    assert code == 2 and "1 channel(s) but run" in err and "trained on 3" in err
    code, _, err = cli("embed", cells_copy, "--split", "nope")
    assert code == 2 and "--split 'nope'" in err
    code, _, err = cli("embed", cells_copy, "--format", "csv")
    assert code == 2 and "--format csv" in err
    assert not (cells_copy / "embeddings").exists()
