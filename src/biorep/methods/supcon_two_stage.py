"""SupCon, two-stage reading (Khosla et al.).

For ``pretrain_epochs`` epochs the encoder + an MLP projection head (→ ``proj_dim``, L2-normalised)
is trained with :class:`~biorep.losses.SupConLoss` on two views per image (every other image of the
class is a positive too); from then on, in the same run, a classifier on the frozen
(``finetune: false``; the backbone is in eval mode and gets no gradient) or fine-tuned encoder is
trained with cross-entropy. All parameters sit in one optimiser from the start (parameters without a
gradient are skipped by it). Each stage has its own LR schedule of the configured kind over its own
length (``stage_schedule``, default): one schedule over the whole run would leave the classifier
stage the anneal's tail (under one-cycle, lr ≈ 1e-4 → 0). ``stage_schedule: false`` is that older
reading.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from biorep.losses import FocalCrossEntropy, SupConLoss
from biorep.methods.base import concat_crops, mlp
from biorep.methods.staged_lr import StagedLR
from biorep.methods.supcon import SupCon, register_mode

log = logging.getLogger("biorep.training")


@register_mode("two_stage")
class SupConTwoStage(SupCon):
    """SupCon pre-training, then a classifier on the (frozen or fine-tuned) encoder."""

    def build_heads(self) -> None:
        p, d, n = self.params, self.num_features, self.data_info.n_classes
        self.projector = mlp([d, p.proj_hidden_dim or d, p.proj_dim])
        self.classifier = mlp([d] + ([p.classifier_hidden_dim] if p.classifier_hidden_dim else []) + [n])
        self.contrastive = SupConLoss(p.temperature, p.base_temperature, p.gather_distributed)
        self.criterion = FocalCrossEntropy()

    def has_unused_parameters(self) -> bool:
        return True

    def schedule_stages(self, epochs: int) -> list[int]:
        p = self.params
        if not p.stage_schedule or not 0 < p.pretrain_epochs < epochs:
            return [epochs]
        return [p.pretrain_epochs, epochs - p.pretrain_epochs]

    def first_monitored_epoch(self) -> int:
        return self.params.pretrain_epochs  # before it, val/acc is that of an untrained classifier

    @property
    def pretraining(self) -> bool:
        """True during the SupCon stage."""
        if self._trainer is None:
            return False
        return self.current_epoch < self.params.pretrain_epochs

    @property
    def n_views(self) -> int:  # type: ignore[override]
        return 2 if self.pretraining else 1

    def logits_from_features(self, h: Tensor) -> Tensor:
        return self.classifier(h)

    def on_train_epoch_start(self) -> None:
        if not self.pretraining and not self.params.finetune:
            self.backbone.eval()
        for config in self.trainer.lr_scheduler_configs:  # the schedule's stage follows the epochs'
            sched = config.scheduler
            if isinstance(sched, StagedLR) and sched.stage != int(not self.pretraining):
                log.warning("epoch %d: the LR schedule is in stage %d of %s, the training in stage %d (the "
                            "run's step count differs from the one estimated at its start)", self.current_epoch,
                            sched.stage, sched.lengths, int(not self.pretraining))

    def compute_loss(self, views: list[Tensor], y: Tensor, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
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
