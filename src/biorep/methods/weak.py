"""Weak supervision from a metadata column (the screening study's drug-vs-control classifier)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field
from torch import Tensor

from biorep.losses import FocalCrossEntropy
from biorep.methods.base import METHODS, BaseMethod, concat_crops, mlp
from biorep.methods.targets import ColumnTargetParams, column_targets


class WeakParams(ColumnTargetParams):
    """Classifier ``D → hidden_dim → n_classes`` (the study: 2048→256→2)."""

    hidden_dim: int = Field(256, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)


@METHODS.register("weak")
class Weak(BaseMethod):
    """Cross-entropy on a weak label (``column``, optionally binarised by ``control`` values).

    Example:
        >>> cfg = {"method": {"name": "weak", "column": "compound", "control": ["DMSO", "PBS"]}}
    """

    name = "weak"
    Params: ClassVar = WeakParams
    has_classifier = True
    needs_labels = True
    params: WeakParams

    @classmethod
    def make_targets(
        cls, params: WeakParams, meta: pd.DataFrame, targets: np.ndarray, classes: list[str]
    ) -> tuple[np.ndarray, list[str]]:
        return column_targets(params, meta, targets, classes)

    def build_heads(self) -> None:
        self.classifier = mlp([self.num_features, self.params.hidden_dim, self.data_info.n_classes])
        self.criterion = FocalCrossEntropy(label_smoothing=self.params.label_smoothing)

    def logits_from_features(self, h: Tensor) -> Tensor:
        return self.classifier(h)

    def compute_loss(self, views: list[Tensor], y: Tensor, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = concat_crops(views, y)
        return self.criterion(self.classifier(self.backbone(x)), y), {}
