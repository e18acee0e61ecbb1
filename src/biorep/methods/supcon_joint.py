"""SupCon, joint reading (the chromosome group's ICIP 2025 recipe).

backbone → Linear(→4096) → Linear(4096→1024, no bias) = embedding (L2-normalised for the contrastive
term), MLP classifier 1024→1024→n on the embedding; batches hold ``samples_per_class`` images of
every class (class-balanced sampler); loss = class-paired symmetric InfoNCE (+ within-view term,
learnable temperature from 0.07) + ``cls_weight`` × cross-entropy (``focal_gamma > 0``: focal loss).
Images of the same class are paired in order of appearance (1st with 2nd, 3rd with 4th, …); with
multi-crop every crop is an image.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from biorep.losses import ClassPairInfoNCE, FocalCrossEntropy
from biorep.methods.base import concat_crops, mlp
from biorep.methods.supcon import SupCon, register_mode


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


@register_mode("joint")
class SupConJoint(SupCon):
    """Class-paired InfoNCE on the embedding + cross-entropy, one stage, class-balanced batches."""

    def build_heads(self) -> None:
        p, d, n = self.params, self.num_features, self.data_info.n_classes
        self.embed_head = nn.Sequential(
            nn.Linear(d, p.embed_hidden_dim), nn.Linear(p.embed_hidden_dim, p.embed_dim, bias=False)
        )
        self.classifier = mlp([p.embed_dim, p.cls_hidden_dim, n])
        self.contrastive = ClassPairInfoNCE(
            p.temperature, p.learnable_temperature, p.within_view, p.gather_distributed
        )
        self.criterion = FocalCrossEntropy(gamma=p.focal_gamma)

    def batch_sampling(self) -> dict[str, Any]:
        return {"kind": "class_balanced", "samples_per_class": self.params.samples_per_class}

    def logits_from_features(self, h: Tensor) -> Tensor:
        return self.classifier(self.embed_head(h))

    def compute_loss(self, views: list[Tensor], y: Tensor, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = concat_crops(views, y)
        e = self.embed_head(self.backbone(x))
        ce = self.criterion(self.classifier(e), y)
        ia, ib = class_pairs(y)
        con = self.contrastive(e[ia], e[ib], y[ia]) if ia.numel() > 0 else e.sum() * 0.0
        logs = {
            "contrastive": con.detach(),
            "classification": ce.detach(),
            "temperature": torch.tensor(self.contrastive.temperature),
        }
        return con + self.params.cls_weight * ce, logs
