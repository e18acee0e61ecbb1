"""Supervised contrastive learning for fine-grained recognition (the chromosome study), two readings.

``mode: two_stage`` (Khosla et al.): for ``pretrain_epochs`` epochs the encoder + an MLP projection
head (→ ``proj_dim``, L2-normalised) is trained with :class:`~biorep.losses.SupConLoss` on two views
per image (every other image of the class is a positive too); from then on, in the same run, a
classifier on the frozen (``finetune: false``; the backbone is in eval mode and gets no gradient) or
fine-tuned encoder is trained with cross-entropy. All parameters sit in one optimiser from the start
(parameters without a gradient are skipped by it), and the LR schedule spans the whole run.

``mode: joint`` (the group's ICIP 2025 recipe): backbone → Linear(→4096) → Linear(4096→1024, no
bias) = embedding (L2-normalised for the contrastive term), MLP classifier 1024→1024→n on the
embedding; batches hold ``samples_per_class`` images of every class (class-balanced sampler); loss =
class-paired symmetric InfoNCE (+ within-view term, learnable temperature from 0.07) +
``cls_weight`` × cross-entropy (``focal_gamma > 0``: focal loss). Images of the same class are paired
in order of appearance (1st with 2nd, 3rd with 4th, …); with multi-crop every crop is an image.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from biorep.losses import ClassPairInfoNCE, FocalCrossEntropy, SupConLoss
from biorep.methods.base import METHODS, BaseMethod, MethodParams, concat_crops, mlp


class SupConParams(MethodParams):
    mode: Literal["two_stage", "joint"] = "two_stage"
    temperature: float = Field(0.07, gt=0)
    gather_distributed: bool = True
    # two_stage
    base_temperature: float | None = Field(None, gt=0)
    proj_hidden_dim: int | None = Field(None, gt=0, description="None = the backbone's width")
    proj_dim: int = Field(128, gt=0)
    pretrain_epochs: int = Field(10, ge=0)
    finetune: bool = False
    classifier_hidden_dim: int = Field(0, ge=0)
    # joint
    embed_hidden_dim: int = Field(4096, gt=0)
    embed_dim: int = Field(1024, gt=0)
    cls_hidden_dim: int = Field(1024, gt=0)
    cls_weight: float = Field(2.0, ge=0)
    focal_gamma: float = Field(0.0, ge=0)
    learnable_temperature: bool = True
    within_view: bool = True
    samples_per_class: int = Field(2, ge=2)


def class_pairs(y: Tensor) -> tuple[Tensor, Tensor]:
    """Positions ``(ia, ib)`` pairing images of the same class in order of appearance."""
    groups: dict[int, list[int]] = {}
    for pos, label in enumerate(y.tolist()):
        if label >= 0:
            groups.setdefault(label, []).append(pos)
    ia, ib = [], []
    for positions in groups.values():
        for k in range(0, len(positions) - 1, 2):
            ia.append(positions[k])
            ib.append(positions[k + 1])
    return torch.tensor(ia, dtype=torch.long, device=y.device), torch.tensor(
        ib, dtype=torch.long, device=y.device
    )


@METHODS.register("supcon")
class SupCon(BaseMethod):
    """Supervised contrastive paradigm (``mode: two_stage | joint``, see the module docstring).

    Example:
        >>> cfg = {"method": {"name": "supcon", "mode": "two_stage", "pretrain_epochs": 50}}
        >>> cfg = {"method": {"name": "supcon", "mode": "joint", "cls_weight": 2.0}}
    """

    name = "supcon"
    Params: ClassVar = SupConParams
    has_classifier = True
    needs_labels = True
    params: SupConParams

    # ------------------------------------------------------------------ structure
    def build_heads(self) -> None:
        p, d, n = self.params, self.num_features, self.data_info.n_classes
        if p.mode == "two_stage":
            self.projector = mlp([d, p.proj_hidden_dim or d, p.proj_dim])
            self.classifier = mlp([d] + ([p.classifier_hidden_dim] if p.classifier_hidden_dim else []) + [n])
            self.contrastive = SupConLoss(p.temperature, p.base_temperature, p.gather_distributed)
            self.criterion = FocalCrossEntropy()
        else:
            self.embed_head = nn.Sequential(
                nn.Linear(d, p.embed_hidden_dim), nn.Linear(p.embed_hidden_dim, p.embed_dim, bias=False)
            )
            self.classifier = mlp([p.embed_dim, p.cls_hidden_dim, n])
            self.contrastive = ClassPairInfoNCE(
                p.temperature, p.learnable_temperature, p.within_view, p.gather_distributed
            )
            self.criterion = FocalCrossEntropy(gamma=p.focal_gamma)

    def batch_sampling(self) -> dict[str, Any]:
        if self.params.mode == "joint":
            return {"kind": "class_balanced", "samples_per_class": self.params.samples_per_class}
        return {"kind": "random"}

    def has_unused_parameters(self) -> bool:
        return self.params.mode == "two_stage"

    @property
    def pretraining(self) -> bool:
        """True during the SupCon stage of ``two_stage``."""
        if self.params.mode != "two_stage" or self._trainer is None:
            return False
        return self.current_epoch < self.params.pretrain_epochs

    @property
    def n_views(self) -> int:  # type: ignore[override]
        return 2 if self.pretraining else 1

    def logits_from_features(self, h: Tensor) -> Tensor:
        if self.params.mode == "joint":
            return self.classifier(self.embed_head(h))
        return self.classifier(h)

    def on_train_epoch_start(self) -> None:
        if self.params.mode == "two_stage" and not self.pretraining and not self.params.finetune:
            self.backbone.eval()

    # ------------------------------------------------------------------ losses
    def compute_loss(self, views: list[Tensor], y: Tensor, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if self.params.mode == "joint":
            return self._joint_loss(views, y)
        if self.pretraining:
            b, n = views[0].shape[0], len(views)
            z = self.projector(self.backbone(torch.cat(views, 0))).view(n, b, -1).transpose(0, 1)
            return self.contrastive(z, y), {}
        x, y = concat_crops(views, y)
        if self.params.finetune:
            h = self.backbone(x)
        else:
            with torch.no_grad():
                h = self.backbone(x)
        return self.criterion(self.classifier(h), y), {}

    def _joint_loss(self, views: list[Tensor], y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = concat_crops(views, y)
        e = self.embed_head(self.backbone(x))
        ce = self.criterion(self.classifier(e), y)
        ia, ib = class_pairs(y)
        if ia.numel() > 0:
            con = self.contrastive(e[ia], e[ib], y[ia])
        else:
            con = e.sum() * 0.0
        logs = {
            "contrastive": con.detach(),
            "classification": ce.detach(),
            "temperature": torch.tensor(self.contrastive.temperature),
        }
        return con + self.params.cls_weight * ce, logs
