"""Heads: mlp_head and lightly's re-exported heads."""

from __future__ import annotations

import pytest
import torch

from biorep.models import BYOLPredictionHead, BYOLProjectionHead, SimCLRProjectionHead, mlp_head


def test_study_classifier_head() -> None:
    head = mlp_head(2048, [256], 2)
    assert [tuple(m.weight.shape) for m in head if isinstance(m, torch.nn.Linear)] == [(256, 2048), (2, 256)]
    assert head(torch.rand(3, 2048)).shape == (3, 2)


def test_mlp_head_options() -> None:
    head = mlp_head(16, 8, 4, batchnorm=True, activation="gelu", dropout=0.1, bias_last=False)
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "BatchNorm1d", "GELU", "Dropout", "Linear"]
    assert head[-1].bias is None
    assert mlp_head(16, [], 4)(torch.rand(2, 16)).shape == (2, 4)
    with pytest.raises(ValueError, match="activation"):
        mlp_head(4, [4], 2, activation="tanhh")


def test_lightly_heads_with_study_b_byol_sizes() -> None:
    proj = BYOLProjectionHead(2048, 2048, 64)
    pred = BYOLPredictionHead(64, 2048, 64)
    z = proj(torch.rand(4, 2048))
    assert z.shape == (4, 64) and pred(z).shape == (4, 64)
    assert SimCLRProjectionHead(32, 32, 8)(torch.rand(4, 32)).shape == (4, 8)
