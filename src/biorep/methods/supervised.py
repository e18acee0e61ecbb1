"""Supervised baseline: cross-entropy (optionally label-smoothed or focal) on the label column."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from torch import Tensor

from biorep.losses import FocalCrossEntropy
from biorep.methods.base import METHODS, BaseMethod, MethodParams, concat_crops, mlp


class SupervisedParams(MethodParams):
    """``hidden_dim: 0`` = a linear classifier on the backbone, else one hidden layer."""

    hidden_dim: int = Field(0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    focal_gamma: float = Field(0.0, ge=0)


@METHODS.register("supervised")
class Supervised(BaseMethod):
    """Backbone + classifier trained with cross-entropy; every crop is a training sample.

    Example:
        >>> cfg = {"method": {"name": "supervised", "label_smoothing": 0.1}}
    """

    name = "supervised"
    Params: ClassVar = SupervisedParams
    has_classifier = True
    needs_labels = True
    params: SupervisedParams

    def build_heads(self) -> None:
        p = self.params
        dims = [self.num_features] + ([p.hidden_dim] if p.hidden_dim else []) + [self.data_info.n_classes]
        self.classifier = mlp(dims)
        self.criterion = FocalCrossEntropy(gamma=p.focal_gamma, label_smoothing=p.label_smoothing)

    def logits_from_features(self, h: Tensor) -> Tensor:
        return self.classifier(h)

    def compute_loss(self, views: list[Tensor], y: Tensor, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = concat_crops(views, y)
        logits = self.classifier(self.backbone(x))
        keep = y >= 0
        acc = (logits[keep].argmax(1) == y[keep]).float().mean() if bool(keep.any()) else logits.sum() * 0
        return self.criterion(logits, y), {"acc": acc.detach()}
