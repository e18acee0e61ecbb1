"""VICReg: variance-invariance-covariance regularisation of two views (lightly)."""

from __future__ import annotations

from typing import ClassVar

import torch
from lightly.loss import VICRegLoss
from lightly.models.modules.heads import VICRegProjectionHead
from pydantic import Field
from torch import Tensor

from biorep.methods.base import METHODS, BaseMethod, MethodParams
from biorep.methods.pairs import mean_over_pairs


class VICRegParams(MethodParams):
    hidden_dim: int = Field(2048, gt=0)
    out_dim: int = Field(2048, gt=0)
    lambda_param: float = Field(25.0, ge=0)
    mu_param: float = Field(25.0, ge=0)
    nu_param: float = Field(1.0, ge=0)
    gather_distributed: bool = True


@METHODS.register("vicreg")
class VICReg(BaseMethod):
    """lightly's ``VICRegProjectionHead`` + ``VICRegLoss``; multi-crop: mean over view pairs.

    Example:
        >>> cfg = {"method": {"name": "vicreg"}}
    """

    name = "vicreg"
    Params: ClassVar = VICRegParams
    n_views = 2
    params: VICRegParams

    def build_heads(self) -> None:
        p = self.params
        self.projector = VICRegProjectionHead(self.num_features, p.hidden_dim, p.out_dim, num_layers=2)
        self.criterion = VICRegLoss(
            lambda_param=p.lambda_param,
            mu_param=p.mu_param,
            nu_param=p.nu_param,
            gather_distributed=p.gather_distributed,
        )

    def compute_loss(self, views: list[Tensor], y: Tensor, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        b, n = views[0].shape[0], len(views)
        z = self.projector(self.backbone(torch.cat(views, 0))).view(n, b, -1)
        return mean_over_pairs(n, lambda i, j: self.criterion(z[i], z[j])), {}
