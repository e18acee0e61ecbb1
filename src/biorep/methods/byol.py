"""BYOL: online network predicts an EMA target network's projection (lightly's heads and loss)."""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Literal

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad
from lightly.utils.scheduler import cosine_schedule
from pydantic import Field
from torch import Tensor, nn

from biorep.methods.base import METHODS, BaseMethod, MethodParams
from biorep.methods.early_stop import LossTrendStop
from biorep.methods.pairs import mean_over_pairs


@torch.no_grad()
def update_momentum(online: nn.Module, target: nn.Module, m: float) -> None:
    """``target ← m · target + (1 − m) · online`` over the parameters, in place (one fused ``lerp``).

    The same update as lightly's ``update_momentum``, which rebinds every ``param.data`` to a new
    tensor each step: on a CPU that cost 15 % of Study B's bf16 BYOL step (``benchmarks/step``), the
    fresh weight tensors defeating the reuse of their prepared copies.
    """
    targets, onlines = list(target.parameters()), list(online.parameters())
    if len(targets) != len(onlines):
        raise ValueError(f"update_momentum: {len(onlines)} online vs {len(targets)} target parameters")
    torch._foreach_lerp_(targets, onlines, 1.0 - m)


class BYOLParams(MethodParams):
    """``momentum_schedule: cosine`` goes from ``momentum`` to 1 over training (lightly's default,
    0.99); ``constant`` keeps ``momentum`` (the screening study: 0.8). ``study_early_stop`` enables the
    study's rule (stop when the epoch loss rises twice in a row, exceeds the first epoch's, or
    changes by less than ``stall_tol`` relative)."""

    proj_hidden_dim: int = Field(2048, gt=0)
    proj_out_dim: int = Field(64, gt=0)
    pred_hidden_dim: int = Field(2048, gt=0)
    momentum: float = Field(0.99, ge=0, le=1)
    momentum_schedule: Literal["cosine", "constant"] = "cosine"
    study_early_stop: bool = False
    stall_tol: float = Field(1e-3, ge=0)


@METHODS.register("byol")
class BYOL(BaseMethod):
    """BYOL with projector ``D→2048→64`` and predictor ``64→2048→64`` (configurable).

    Example:
        >>> cfg = {"method": {"name": "byol", "momentum": 0.8, "momentum_schedule": "constant"}}
    """

    name = "byol"
    Params: ClassVar = BYOLParams
    n_views = 2
    params: BYOLParams

    def build_heads(self) -> None:
        p = self.params
        self.projector = BYOLProjectionHead(self.num_features, p.proj_hidden_dim, p.proj_out_dim)
        self.predictor = BYOLPredictionHead(p.proj_out_dim, p.pred_hidden_dim, p.proj_out_dim)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projector_momentum = copy.deepcopy(self.projector)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projector_momentum)
        self.criterion = NegativeCosineSimilarity()

    def current_momentum(self) -> float:
        p = self.params
        if p.momentum_schedule == "constant" or self._trainer is None:
            return p.momentum
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        return float(cosine_schedule(self.global_step, total, p.momentum, 1.0))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_start(batch, batch_idx)
        m = self.current_momentum()
        update_momentum(self.backbone, self.backbone_momentum, m=m)
        update_momentum(self.projector, self.projector_momentum, m=m)

    def compute_loss(self, views: list[Tensor], y: Tensor, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        b, n = views[0].shape[0], len(views)
        x = torch.cat(views, 0)
        p = self.predictor(self.projector(self.backbone(x))).view(n, b, -1)
        with torch.no_grad():
            z = self.projector_momentum(self.backbone_momentum(x)).view(n, b, -1)
        loss = mean_over_pairs(
            n, lambda i, j: 0.5 * (self.criterion(p[i], z[j]) + self.criterion(p[j], z[i]))
        )
        return loss, {}

    def stop_reason(self) -> str | None:
        if self._trainer is None:
            return None
        trend = next((c for c in self.trainer.callbacks if isinstance(c, LossTrendStop)), None)
        return None if trend is None else trend.reason

    def configure_callbacks(self) -> list[Any]:
        if self.params.study_early_stop:
            return [LossTrendStop(monitor="train/loss", stall_tol=self.params.stall_tol)]
        return []
