"""Small helpers for the method tests: a toy batch and a method factory (no Lightning Trainer)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from biorep.methods import METHODS, BaseMethod, DataInfo, OptimConfig
from biorep.models import ModelConfig
from biorep.views import ViewsConfig

SIZE = 16
CLASSES = ["a", "b", "c", "d"]


def toy_batch(n_per_class: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images [n, 1, 16, 16]: a bright square whose position encodes the class, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(len(CLASSES)).repeat_interleave(n_per_class)
    x = torch.randint(0, 60, (len(y), 1, SIZE, SIZE), generator=g).float()
    for i, c in enumerate(y.tolist()):
        r, col = divmod(c, 2)
        x[i, 0, r * 8 + 1 : r * 8 + 7, col * 8 + 1 : col * 8 + 7] += 180
    return x.clamp(0, 255).to(torch.uint8), y, torch.arange(len(y))


def make_method(
    name: str, backbone: str = "simple_cnn", augment: str = "none", crops: str = "one", **params: Any
) -> BaseMethod:
    torch.manual_seed(0)
    cls = METHODS.get(name)
    return cls(
        cls.Params(**params),
        model=ModelConfig(backbone=backbone),
        views=ViewsConfig(augment=augment, crops=crops),
        data=DataInfo(in_chans=1, size=SIZE, classes=CLASSES),
        optim=OptimConfig(lr=1e-3),
    )


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
