"""On a learnable toy problem every paradigm's loss goes down (40 Adam steps, no Trainer)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from biorep.methods.supcon_two_stage import SupConTwoStage

from .conftest import make_method, toy_batch

SMALL = {"hidden_dim": 64, "out_dim": 32}
CASES: list[tuple[str, dict[str, Any]]] = [
    ("supervised", {}),
    ("weak", {"hidden_dim": 32}),
    ("autoencoder", {}),
    ("regularized", {"hidden_dim": 32}),
    ("supcon", {"mode": "two_stage", "pretrain_epochs": 1, "temperature": 0.1, "proj_dim": 32}),
    ("supcon", {"mode": "two_stage", "pretrain_epochs": 0, "finetune": True}),
    ("supcon", {"mode": "joint", "embed_hidden_dim": 64, "embed_dim": 32, "cls_hidden_dim": 32}),
    ("simclr", SMALL),
    (
        "byol",
        {
            "proj_hidden_dim": 64,
            "proj_out_dim": 16,
            "pred_hidden_dim": 64,
            "momentum": 0.9,
            "momentum_schedule": "constant",
        },
    ),
    ("barlow_twins", SMALL),
    ("vicreg", SMALL),
]


@pytest.mark.parametrize(
    ("name", "params"),
    CASES,
    ids=[f"{n}-{p.get('mode', '')}{p.get('pretrain_epochs', '')}" for n, p in CASES],
)
def test_loss_goes_down(name: str, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    if name == "supcon" and params.get("pretrain_epochs") == 1:  # the SupCon stage of two_stage
        monkeypatch.setattr(SupConTwoStage, "pretraining", property(lambda self: True))
    method = make_method(name, augment="random", **params)
    opt = torch.optim.Adam(method.trainable_parameters(), lr=1e-3)
    x_raw, y, idx = toy_batch()
    losses = []
    for step in range(40):
        torch.manual_seed(step)
        if hasattr(method, "backbone_momentum"):
            from lightly.models.utils import update_momentum

            update_momentum(method.backbone, method.backbone_momentum, 0.9)
            update_momentum(method.projector, method.projector_momentum, 0.9)
        loss, _ = method.compute_loss(method.make_views(method.prepare(x_raw), method.n_views), y, idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    start, end = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert end < start - 0.1 * abs(start) - 1e-3, (name, losses[:3], losses[-3:])
