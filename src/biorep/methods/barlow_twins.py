"""Barlow Twins: decorrelate the cross-correlation of two views' projections (lightly)."""

from __future__ import annotations

from typing import ClassVar

import torch
from lightly.loss import BarlowTwinsLoss
from lightly.models.modules import BarlowTwinsProjectionHead
from pydantic import Field
from torch import Tensor

from biorep.methods.base import METHODS, BaseMethod, MethodParams
from biorep.methods.pairs import mean_over_pairs


class BarlowTwinsParams(MethodParams):
    hidden_dim: int = Field(2048, gt=0)
    out_dim: int = Field(2048, gt=0)
    lambda_param: float = Field(5e-3, gt=0)
    gather_distributed: bool = True


@METHODS.register("barlow_twins")
class BarlowTwins(BaseMethod):
    """lightly's ``BarlowTwinsProjectionHead`` + ``BarlowTwinsLoss``; multi-crop: mean over view pairs.

    Example:
        >>> cfg = {"method": {"name": "barlow_twins", "out_dim": 1024}}
    """

    name = "barlow_twins"
    Params: ClassVar = BarlowTwinsParams
    n_views = 2
    params: BarlowTwinsParams

    def build_heads(self) -> None:
        p = self.params
        self.projector = BarlowTwinsProjectionHead(self.num_features, p.hidden_dim, p.out_dim)
        self.criterion = BarlowTwinsLoss(lambda_param=p.lambda_param, gather_distributed=p.gather_distributed)

    def compute_loss(self, views: list[Tensor], y: Tensor, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        b, n = views[0].shape[0], len(views)
        z = self.projector(self.backbone(torch.cat(views, 0))).view(n, b, -1)
        return mean_over_pairs(n, lambda i, j: self.criterion(z[i], z[j])), {}
