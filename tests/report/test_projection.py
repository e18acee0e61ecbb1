"""Embedding maps: label column choice, subsampling, PCA fallback and one real UMAP run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from biorep.errors import RunDirError
from biorep.report.projection import MIN_UMAP_POINTS, pick_label_column, project, project_file


def _write(path: Path, n: int, *, extra: dict | None = None, d: int = 8) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "path": [f"p{i}" for i in range(n)],
            "plate": [f"P{i % 3}" for i in range(n)],
            "dose": rng.random(n),
            **(extra or {}),
        }
    )
    for j in range(d):
        frame[f"f{j:04d}"] = rng.normal(size=n).astype(np.float32)
    frame.to_parquet(path)
    return path


def test_label_column_prefers_config_then_first_categorical() -> None:
    table = pa.table(
        {
            "path": ["a", "b", "c"],
            "well": ["w1", "w1", "w2"],
            "compound": ["x", "y", "y"],
            "f0000": [0.1, 0.2, 0.3],
        }
    )
    assert pick_label_column(table, "compound") == "compound"
    assert pick_label_column(table, None) == "well"  # path is unique per row: never a colour
    assert pick_label_column(table, "missing") == "well"
    assert pick_label_column(pa.table({"path": ["a"], "f0000": [1.0]}), None) is None


def test_project_file_subsamples_and_falls_back_to_pca(tmp_path: Path) -> None:
    big = project_file(_write(tmp_path / "big.parquet", 300), max_points=100, method="pca")
    assert big.coords.shape == (100, 2) and big.n_total == 300 and big.method == "PCA"
    assert big.label_name == "plate" and set(big.labels) == {"P0", "P1", "P2"}
    few = project_file(_write(tmp_path / "few.parquet", MIN_UMAP_POINTS - 1), method="auto")
    assert few.method == "PCA" and few.coords.shape == (MIN_UMAP_POINTS - 1, 2)
    one = project(np.ones((1, 4)), "auto")
    assert one[0].shape == (1, 2)


def test_project_file_errors_name_the_file(tmp_path: Path) -> None:
    no_features = tmp_path / "nofeat.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(no_features)
    with pytest.raises(RunDirError, match="nofeat.parquet: no feature columns"):
        project_file(no_features)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(RunDirError, match="broken.parquet: cannot read Parquet"):
        project_file(broken)
    with pytest.raises(ValueError, match="unknown projection"):
        project(np.zeros((3, 2)), "tsne")


@pytest.mark.slow
def test_umap_is_deterministic(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.parquet", 40, extra={"label": ["a", "b"] * 20})
    first = project_file(path, label="label", method="auto")
    second = project_file(path, label="label", method="umap")
    assert first.method == "UMAP" and first.label_name == "label"
    np.testing.assert_allclose(first.coords, second.coords)
