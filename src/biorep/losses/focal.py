"""Cross-entropy with optional label smoothing and focal modulation (Lin et al., 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FocalCrossEntropy(nn.Module):
    """``(1 - p_t)^γ``-weighted cross-entropy; γ=0 is plain (optionally label-smoothed) CE.

    Targets ``-1`` (unlabeled) are ignored. torch has no focal loss for multi-class logits, hence
    these few lines.

    Example:
        >>> loss_fn = FocalCrossEntropy(gamma=2.0)
        >>> loss = loss_fn(torch.randn(4, 3), torch.tensor([0, 2, 1, -1]))
    """

    def __init__(self, gamma: float = 0.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.gamma = gamma
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        keep = targets >= 0
        if not bool(keep.any()):
            return logits.sum() * 0.0
        logits, targets = logits[keep].float(), targets[keep]
        ce = F.cross_entropy(logits, targets, reduction="none", label_smoothing=self.label_smoothing)
        if self.gamma > 0:
            p_t = torch.softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
            ce = (1.0 - p_t).pow(self.gamma) * ce
        return ce.mean()
