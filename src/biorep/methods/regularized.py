"""Regularized autoencoder: reconstruction + weight × (weak) classification."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field
from torch import Tensor

from biorep.losses import FocalCrossEntropy
from biorep.methods.autoencoder import build_decoder_for, reconstruction_bce
from biorep.methods.base import METHODS, BaseMethod, concat_crops, mlp
from biorep.methods.targets import ColumnTargetParams, column_targets


class RegularizedParams(ColumnTargetParams):
    """``detach_classifier: true`` reproduces the public code (CE gradient never reaches the encoder);
    the default ``false`` is the paper's intended sum."""

    hidden_dim: int = Field(256, gt=0)
    cls_weight: float = Field(1.0, ge=0)
    detach_classifier: bool = False


@METHODS.register("regularized")
class Regularized(BaseMethod):
    """Autoencoder whose encoder is also trained by a classifier head on a (weak) label.

    Example:
        >>> cfg = {"method": {"name": "regularized", "column": "compound", "control": ["DMSO"]}}
    """

    name = "regularized"
    Params: ClassVar = RegularizedParams
    has_classifier = True
    needs_labels = True
    params: RegularizedParams

    @classmethod
    def make_targets(
        cls, params: RegularizedParams, meta: pd.DataFrame, targets: np.ndarray, classes: list[str]
    ) -> tuple[np.ndarray, list[str]]:
        return column_targets(params, meta, targets, classes)

    def build_heads(self) -> None:
        self.decoder = build_decoder_for(self)
        self.classifier = mlp([self.num_features, self.params.hidden_dim, self.data_info.n_classes])
        self.criterion = FocalCrossEntropy()

    def logits_from_features(self, h: Tensor) -> Tensor:
        return self.classifier(h)

    def compute_loss(self, views: list[Tensor], y: Tensor, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = concat_crops(views, y)
        h = self.backbone(x)
        rec = reconstruction_bce(self.decoder, h, x)
        ce = self.criterion(self.classifier(h.detach() if self.params.detach_classifier else h), y)
        return rec + self.params.cls_weight * ce, {
            "reconstruction": rec.detach(),
            "classification": ce.detach(),
        }
