"""SimCLR: NT-Xent between views of the same image (lightly's head and loss)."""

from __future__ import annotations

from typing import ClassVar

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from pydantic import Field
from torch import Tensor

from biorep.losses import SupConLoss
from biorep.methods.base import METHODS, BaseMethod, MethodParams


class SimCLRParams(MethodParams):
    temperature: float = Field(0.5, gt=0)
    hidden_dim: int = Field(2048, gt=0)
    out_dim: int = Field(128, gt=0)
    projector_batch_norm: bool = True
    gather_distributed: bool = True


@METHODS.register("simclr")
class SimCLR(BaseMethod):
    """Two views → lightly's ``NTXentLoss`` (gathered across processes). With multi-crop (> 2 crops)
    every crop of the same image is a positive of every other: NT-Xent's multi-positive form, i.e.
    :class:`~biorep.losses.SupConLoss` with the sample index as label (solo-learn does the same).

    Example:
        >>> cfg = {"method": {"name": "simclr", "temperature": 0.2}}
    """

    name = "simclr"
    Params: ClassVar = SimCLRParams
    n_views = 2
    params: SimCLRParams

    def build_heads(self) -> None:
        p = self.params
        self.projector = SimCLRProjectionHead(
            self.num_features, p.hidden_dim, p.out_dim, batch_norm=p.projector_batch_norm
        )
        self.criterion = NTXentLoss(temperature=p.temperature, gather_distributed=p.gather_distributed)
        self.multi_criterion = SupConLoss(temperature=p.temperature, gather_distributed=p.gather_distributed)

    def compute_loss(self, views: list[Tensor], y: Tensor, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        b = views[0].shape[0]
        z = self.projector(self.backbone(torch.cat(views, 0))).view(len(views), b, -1)
        if len(views) == 2:
            return self.criterion(z[0], z[1]), {}
        return self.multi_criterion(z.transpose(0, 1), idx), {}
