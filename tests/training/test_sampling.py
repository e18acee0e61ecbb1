"""Batch samplers: deterministic, class-balanced, rank slices of global batches, resumable skip."""

from __future__ import annotations

import numpy as np
import pytest

from biorep.training import sampling
from biorep.training.sampling import BatchDataset, ClassBalancedBatchSampler, ShuffledBatchSampler


def test_shuffled_batches_are_deterministic_per_epoch() -> None:
    s = ShuffledBatchSampler(np.arange(100, 150), batch_size=8, seed=3)
    e0 = list(s)
    assert len(e0) == len(s) == 6 and all(len(b) == 8 for b in e0)
    assert len({i for b in e0 for i in b}) == 48 and min(min(b) for b in e0) >= 100
    assert list(s) == e0
    s.set_epoch(1)
    assert list(s) != e0


def test_rank_slices_make_up_the_global_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    single = ShuffledBatchSampler(np.arange(40), batch_size=8, seed=0)
    per_rank = []
    for rank in range(2):
        monkeypatch.setattr(sampling, "_rank_world", lambda r=rank: (r, 2))
        per_rank.append(list(ShuffledBatchSampler(np.arange(40), batch_size=4, seed=0)))
    monkeypatch.setattr(sampling, "_rank_world", lambda: (0, 1))
    assert [a + b for a, b in zip(*per_rank)] == list(single)


def test_class_balanced_batches() -> None:
    targets = np.repeat(np.arange(6), [10, 10, 10, 10, 3, 1])
    targets = np.concatenate([targets, [-1, -1]])
    s = ClassBalancedBatchSampler(np.arange(len(targets)), targets, samples_per_class=2, classes_per_batch=6)
    batches = list(s)
    assert len(batches) == 44 // 12
    for b in batches:
        counts = np.bincount(targets[b], minlength=6)
        assert counts.tolist() == [2] * 6  # rare classes repeat
    few = ClassBalancedBatchSampler(
        np.arange(len(targets)), targets, samples_per_class=2, classes_per_batch=3
    )
    for b in few:
        assert sorted(np.bincount(targets[b], minlength=6)[np.bincount(targets[b], minlength=6) > 0]) == [
            2,
            2,
            2,
        ]


def test_resume_skips_done_batches_once() -> None:
    s = ShuffledBatchSampler(np.arange(40), batch_size=8, seed=0)
    s.set_epoch(2)
    full = list(s)
    s.resume_at(2, 3)
    assert list(s) == full[3:]
    assert list(s) == full


def test_batch_dataset_reads_whole_batches() -> None:
    images = np.arange(5 * 4, dtype=np.uint16).reshape(5, 1, 2, 2)
    x, y, idx = BatchDataset(images, np.array([0, 1, 2, 3, -1]))[[4, 1]]
    assert x.dtype.is_floating_point is False and x.shape == (2, 1, 2, 2)
    assert x[0].flatten().tolist() == [16, 17, 18, 19] and y.tolist() == [-1, 1] and idx.tolist() == [4, 1]


@pytest.mark.parametrize("n", [1, 3])
def test_every_rank_gets_every_batch_when_rows_are_fewer_than_ranks(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """A 1-image val split on 2 ranks gave rank 1 no batch, so the ranks' collectives no longer matched
    (a gloo error); like DistributedSampler, the short rank repeats a row."""
    per_rank = []
    for rank in range(2):
        monkeypatch.setattr(sampling, "_rank_world", lambda r=rank: (r, 2))
        per_rank.append(ShuffledBatchSampler(np.arange(n), 8, shuffle=False, drop_last=False).batches())
    assert len(per_rank[0]) == len(per_rank[1]) >= 1
    assert all(len(b) for batches in per_rank for b in batches)
    assert {i for batches in per_rank for b in batches for i in b} == set(range(n))
