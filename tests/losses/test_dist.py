"""Two CPU processes (gloo) with gathering give the gradients of one process on the global batch.

Each rank computes the loss of its half (its own anchors against the gathered global batch) and
back-propagates; lightly's GatherLayer all-reduces (sums) the feature gradients in backward, and DDP
then *averages* the parameter gradients over the 2 ranks. Since the global-batch loss is the mean of
the two per-rank losses (equal numbers of anchors per rank, every anchor has a positive), the averaged
gradient must equal the single-process full-batch gradient. The model has no BatchNorm, so per-rank
batch statistics cannot differ.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightly.loss import NTXentLoss
from torch import nn

from biorep.losses import ClassPairInfoNCE, SupConLoss, gather_with_grad

B, V, D_IN = 8, 2, 12  # global batch of 8 samples × 2 views


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D_IN, 16), nn.ReLU(), nn.Linear(16, 8))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(B, V, D_IN, generator=g), torch.tensor([0, 1, 2, 0, 1, 2, 3, 3])


def _loss(kind: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gather: bool) -> torch.Tensor:
    z = model(x)  # [b, V, 8]
    if kind == "supcon":
        return SupConLoss(0.1, gather_distributed=gather)(z, y)
    if kind == "simclr":
        return NTXentLoss(0.2, gather_distributed=gather)(z[:, 0], z[:, 1])
    torch.manual_seed(5)
    return ClassPairInfoNCE(0.1, gather_distributed=gather)(z[:, 0], z[:, 1], y)


KINDS = ["supcon", "simclr", "class_pair"]


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        results = {}
        for kind in KINDS:
            model = nn.parallel.DistributedDataParallel(_model())
            x, y = _data()
            half = slice(rank * B // 2, (rank + 1) * B // 2)
            loss = _loss(kind, model, x[half], y[half], gather=True)
            loss.backward()  # DDP all-reduces (averages) the parameter gradients
            results[kind] = {"grads": [p.grad for p in model.parameters()], "loss": loss.detach()}
        results["gathered"] = gather_with_grad(torch.full((2, 3), float(rank)))
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """One spawn of 2 gloo processes computing every loss kind (process start-up is the slow part)."""
    out = tmp_path_factory.mktemp("ddp")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # fork: the children inherit the imported modules (spawn would re-import torch+lightly, ~20 s here)
    mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=2, join=True, start_method="fork")
    return tuple(torch.load(out / f"rank{r}.pt") for r in range(2))  # type: ignore[return-value]


@pytest.mark.parametrize("kind", KINDS)
def test_two_process_gradients_equal_single_process(
    kind: str, two_process_results: tuple[dict, dict]
) -> None:
    r0, r1 = (r[kind] for r in two_process_results)

    model = _model()
    x, y = _data()
    loss = _loss(kind, model, x, y, gather=False)
    loss.backward()
    # the global loss is the mean of the per-rank losses
    torch.testing.assert_close((r0["loss"] + r1["loss"]) / 2, loss.detach(), rtol=1e-5, atol=1e-6)
    for single, g0, g1 in zip((p.grad for p in model.parameters()), r0["grads"], r1["grads"]):
        torch.testing.assert_close(g0, g1)  # DDP synchronised them
        torch.testing.assert_close(g0, single, rtol=1e-5, atol=1e-6)


def test_gather_with_grad_concatenates_in_rank_order(two_process_results: tuple[dict, dict]) -> None:
    torch.testing.assert_close(
        two_process_results[0]["gathered"], torch.tensor([[0.0] * 3] * 2 + [[1.0] * 3] * 2)
    )
