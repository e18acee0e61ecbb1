"""Feeding an :class:`~biorep.data.ImageDataset` to Lightning: whole batches, deterministic, resumable.

Images live in a (memory-mapped) uint array, so a batch is one fancy-index read; there is no per-item
collate and augmentation happens later on the device (``method.views``). The batch samplers are
rank-aware (each rank takes its slice of every *global* batch, so N processes see exactly the batches
one process with an N× batch would see) and deterministic in ``(seed, epoch)``; they can skip the
batches of an epoch already done before a mid-epoch checkpoint (see :class:`SamplerResume`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class BatchDataset(torch.utils.data.Dataset):
    """``dataset[list_of_rows] -> (images, targets, rows)`` as tensors, one read per batch.

    uint16 images are widened to int32 (torch's uint16 support is partial); uint8 and float32 stay.

    Example:
        >>> ds = BatchDataset(np.zeros((10, 1, 8, 8), np.uint8), np.arange(10))
        >>> x, y, idx = ds[[3, 1]]
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray) -> None:
        self.images = images
        self.targets = np.asarray(targets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, rows: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = np.asarray(rows, dtype=np.int64)
        x = np.ascontiguousarray(self.images[rows])
        if x.dtype == np.uint16:
            x = x.astype(np.int32)
        return torch.from_numpy(x), torch.from_numpy(self.targets[rows]), torch.from_numpy(rows)


class _ResumableBatchSampler:
    """Base: ``epoch`` set by Lightning (``set_epoch``), optional one-off skip after a resume."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, skip: int) -> None:
        """Start at ``epoch`` and drop its first ``skip`` batches (once)."""
        self.epoch = epoch
        self._resume = (epoch, skip)

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    def batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1]
        self._resume = None
        yield from batches[skip:]

    def __len__(self) -> int:
        return self.n_batches()

    def n_batches(self) -> int:
        raise NotImplementedError


class ShuffledBatchSampler(_ResumableBatchSampler):
    """Random batches of ``batch_size`` rows (per rank) from ``indices``; sequential when ``shuffle=False``.

    Example:
        >>> s = ShuffledBatchSampler(np.arange(10), batch_size=4, seed=0)
        >>> [len(b) for b in s]
        [4, 4]
    """

    def __init__(
        self,
        indices: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last

    def _per_rank(self) -> tuple[int, int, int]:
        rank, world = _rank_world()
        n = len(self.indices)
        bs = self.batch_size
        if n < bs * world:  # fewer rows than one global batch: one (smaller) batch per rank
            bs = max(n // world, 1)
        return rank, world, bs

    def n_batches(self) -> int:
        _, world, bs = self._per_rank()
        n = len(self.indices)
        if self.drop_last:
            return max(n // (bs * world), 1 if n >= world else 0)
        return -(-n // (bs * world))

    def batches(self) -> list[list[int]]:
        rank, world, bs = self._per_rank()
        order = self._rng().permutation(self.indices) if self.shuffle else self.indices
        out = []
        n = len(order)
        for b in range(self.n_batches()):
            start = (b * world + rank) * bs
            chunk = order[start : start + bs]
            if not len(chunk) and n:  # the last batch has fewer rows than ranks: repeat one, as PyTorch's
                chunk = order[[start % n]]  # DistributedSampler pads, so every rank steps (and syncs) alike
            out.append(chunk.tolist())
        return out


class ClassBalancedBatchSampler(_ResumableBatchSampler):
    """Batches of ``samples_per_class`` images of each of ``classes_per_batch`` classes.

    The chromosome study's joint recipe: 24 classes × 2 images = 48 per batch. Every rank gets its own
    class-balanced batch. Classes are drawn without replacement within a batch (all of them when
    ``classes_per_batch`` ≥ the number of classes); images cycle through a fresh permutation of their
    class, so rare classes repeat within an epoch. An epoch has ``len(indices) // batch`` batches.
    Rows with target −1 are never drawn.

    Example:
        >>> s = ClassBalancedBatchSampler(np.arange(12), np.arange(12) % 3, samples_per_class=2)
        >>> sorted(np.arange(12)[next(iter(s))] % 3)
        [0, 0, 1, 1, 2, 2]
    """

    def __init__(
        self,
        indices: np.ndarray,
        targets: np.ndarray,
        *,
        samples_per_class: int = 2,
        classes_per_batch: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        indices = np.asarray(indices, dtype=np.int64)
        t = np.asarray(targets)[indices]
        self.by_class = {int(c): indices[t == c] for c in np.unique(t[t >= 0])}
        if not self.by_class:
            raise ValueError("class-balanced batches need labeled training images")
        self.k = samples_per_class
        n_cls = len(self.by_class)
        self.cpb = min(classes_per_batch or n_cls, n_cls)
        self.n_labeled = int((t >= 0).sum())

    def n_batches(self) -> int:
        _, world = _rank_world()
        return max(self.n_labeled // (self.k * self.cpb * world), 1)

    def batches(self) -> list[list[int]]:
        rank, world = _rank_world()
        rng = self._rng()
        classes = sorted(self.by_class)
        queues = {c: list(rng.permutation(self.by_class[c])) for c in classes}
        out = []
        for g in range(self.n_batches() * world):
            chosen = (
                classes if self.cpb == len(classes) else sorted(rng.choice(classes, self.cpb, replace=False))
            )
            batch = []
            for c in chosen:
                for _ in range(self.k):
                    if not queues[c]:
                        queues[c] = list(rng.permutation(self.by_class[c]))
                    batch.append(int(queues[c].pop()))
            if g % world == rank:
                out.append(batch)
        return out


class ResumableLoader(torch.utils.data.DataLoader):
    """A DataLoader that tells Lightning it is resumable (its position is restored by
    :class:`SamplerResume`, which knows the loop's counters), so no "not resumable" warning."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        return None


def make_loader(
    images: np.ndarray, targets: np.ndarray, sampler: _ResumableBatchSampler, num_workers: int = 0
) -> torch.utils.data.DataLoader:
    """A DataLoader yielding ``(images, targets, rows)`` batches from ``sampler``."""
    return ResumableLoader(
        BatchDataset(images, targets),
        batch_size=None,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


class SamplerResume(L.Callback):
    """Saves how far the current epoch got, and makes the sampler skip those batches after ``--resume``.

    Lightning restores model, optimiser, scheduler and loop counters from ``last.ckpt`` but re-iterates
    a plain dataloader from the start of the epoch; together with the per-step augmentation seed
    (:meth:`biorep.methods.BaseMethod.on_train_batch_start`) this makes a resumed run see exactly the
    batches and views of an uninterrupted one.
    """

    def __init__(self, sampler: _ResumableBatchSampler) -> None:
        self.sampler = sampler
        self._trainer: L.Trainer | None = None

    @property
    def state_key(self) -> str:
        return "SamplerResume"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        t = self._trainer
        if t is None:
            return {}
        processed = int(t.fit_loop.epoch_loop.batch_progress.current.processed)
        done = processed >= t.num_training_batches
        return {"epoch": int(t.current_epoch), "processed": processed, "epoch_done": bool(done)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        if state_dict["epoch_done"]:
            self.sampler.resume_at(state_dict["epoch"] + 1, 0)
        else:
            self.sampler.resume_at(state_dict["epoch"], state_dict["processed"])
