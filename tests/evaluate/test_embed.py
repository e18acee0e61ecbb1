"""embed_dataset with a fake model/dataset; Parquet and h5ad round trips."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from biorep.errors import DataError
from biorep.evaluate import embed_dataset, read_embeddings, write_embeddings


class FakeModel(torch.nn.Module):
    """embed = per-channel means (raw units / 100); classify = a fixed linear map, or None."""

    def __init__(self, with_classifier: bool = True) -> None:
        super().__init__()
        self.head = torch.nn.Linear(2, 3)
        self.with_classifier = with_classifier
        self.calls: list[int] = []
        self.grad_enabled: list[bool] = []
        self.dtypes: set[torch.dtype] = set()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        self.grad_enabled.append(torch.is_grad_enabled())
        self.dtypes.add(x.dtype)
        return x.float().mean(dim=(2, 3)) / 100.0

    def classify(self, x: torch.Tensor) -> torch.Tensor | None:
        return self.head(self.embed(x)) if self.with_classifier else None


@dataclass
class FakeDataset:
    images: np.ndarray
    meta: pd.DataFrame


def _dataset(n: int = 10, dtype: type = np.uint16) -> FakeDataset:
    images = np.zeros((n, 2, 4, 4), dtype=dtype)
    for i in range(n):
        images[i, 0] = (1000 if dtype == np.uint16 else 100) + i  # > 255: uint16 values must survive
        images[i, 1] = i
    meta = pd.DataFrame({"case": [f"c{i % 3}" for i in range(n)], "dose": np.arange(n) * 0.5})
    return FakeDataset(images, meta)


def test_embed_batches_and_order() -> None:
    ds, model = _dataset(), FakeModel()
    model.train()
    idx = np.array([7, 2, 9, 0, 5])
    z, meta, logits = embed_dataset(model, ds, indices=idx, batch_size=2)
    assert z.dtype == np.float32 and z.shape == (5, 2)
    assert np.allclose(z[:, 0], (1000 + idx) / 100.0) and np.allclose(z[:, 1], idx / 100.0)
    assert meta["sample_index"].tolist() == idx.tolist()
    assert meta["case"].tolist() == ds.meta["case"].iloc[idx].tolist()
    assert logits is not None and logits.shape == (5, 3)
    with torch.no_grad():
        assert np.allclose(logits, model.head(torch.from_numpy(z)).numpy(), atol=1e-5)
    assert model.calls[::2] == [2, 2, 1]  # embed calls (classify calls embed again in between)
    assert not any(model.grad_enabled)  # inference mode
    assert model.training  # restored
    assert model.dtypes == {torch.uint16}  # raw values reach the model untouched


def test_embed_without_classifier_and_bad_indices() -> None:
    z, meta, logits = embed_dataset(FakeModel(with_classifier=False), _dataset(4, np.uint8))
    assert logits is None and z.shape == (4, 2) and len(meta) == 4
    with pytest.raises(DataError):
        embed_dataset(FakeModel(), _dataset(4), indices=[0, 4])


def test_write_read_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 3)).astype(np.float32)
    meta = pd.DataFrame({
        "case": ["a", "b", None, "a", "b", "c"],
        "mixed": [1, "x", 2.5, None, "y", 3],  # object column of mixed types
        "dose": [0.0, 5, 15, 50, np.nan, 5],
        "plate": [1, 1, 2, 2, 3, 3],
        "treated": [True, False, True, False, True, False],
    })
    paths = write_embeddings(z, meta, tmp_path / "emb", "test")
    assert set(paths) == {"parquet", "h5ad"}
    assert sorted(p.name for p in (tmp_path / "emb").iterdir()) == ["test.h5ad", "test.parquet"]  # no temp left
    table = pd.read_parquet(paths["parquet"])
    assert [c for c in table.columns if c.startswith("f0")] == ["f0000", "f0001", "f0002"]
    for path in paths.values():
        z2, meta2 = read_embeddings(path)
        assert np.array_equal(z2, z)
        assert list(meta2.columns) == list(meta.columns)
        assert meta2["plate"].tolist() == [1, 1, 2, 2, 3, 3]
        assert meta2["mixed"].astype(object).tolist()[:3] == ["1", "x", "2.5"]
        assert pd.isna(meta2["case"].iloc[2]) and pd.isna(meta2["dose"].iloc[4])


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    z = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(DataError, match="feature columns"):
        write_embeddings(z, pd.DataFrame({"f0001": [1, 2]}), tmp_path, "x")
    with pytest.raises(DataError):
        write_embeddings(z, pd.DataFrame({"a": [1]}), tmp_path, "x")
    with pytest.raises(DataError):
        read_embeddings(tmp_path / "missing.parquet")


def test_a_failed_write_leaves_no_folder_it_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk while writing the second format: the folders made for it and the first file go."""
    import biorep.evaluate.embed as embed_mod

    real = embed_mod.atomic_write

    def full_disk(target: Path, write: object) -> Path:
        if Path(target).suffix == ".h5ad":
            raise OSError(28, "No space left on device")
        return real(target, write)

    monkeypatch.setattr(embed_mod, "atomic_write", full_disk)
    z, meta = np.zeros((2, 2), dtype=np.float32), pd.DataFrame({"a": [1, 2]})
    with pytest.raises(OSError, match="No space"):
        write_embeddings(z, meta, tmp_path / "new" / "emb", "x")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("the user's")
    with pytest.raises(OSError, match="No space"):
        write_embeddings(z, meta, tmp_path / "mine", "x")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["keep.txt", "x.parquet"]
