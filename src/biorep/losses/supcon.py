"""Supervised contrastive loss (Khosla et al., 2020) with cross-process gathering."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biorep.losses.dist import gather_no_grad, gather_with_grad, is_distributed, rank


class SupConLoss(nn.Module):
    """SupCon "L_out": every other sample with the same label is a positive of an anchor.

    Hand-written because lightly has no SupCon and pytorch-metric-learning's version neither gathers
    across processes with gradients nor takes a views axis. With one positive per anchor (labels =
    sample ids, two views) it equals SimCLR's NT-Xent.

    Features may be ``[B, D]`` with ``labels [B]`` or ``[B, V, D]`` (V views of each sample) with
    ``labels [B]``. Features are L2-normalised here. Anchors without any positive in the (global)
    batch are left out of the mean. Under DDP, features and labels of all ranks are gathered (with
    gradients) and each rank averages over its own anchors; DDP's gradient averaging then yields the
    global-batch gradient.

    Args:
        temperature: softmax temperature τ (> 0).
        base_temperature: the loss is scaled by ``temperature / base_temperature`` (Khosla's code);
            ``None`` means no scaling.
        gather_distributed: gather other processes' samples as extra positives/negatives.

    Example:
        >>> loss_fn = SupConLoss(temperature=0.1)
        >>> z = torch.randn(8, 2, 16)              # 8 samples, 2 views
        >>> y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
        >>> loss = loss_fn(z, y)
    """

    def __init__(
        self,
        temperature: float = 0.07,
        base_temperature: float | None = None,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.base_temperature = base_temperature
        self.gather_distributed = gather_distributed

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """Loss averaged over the local anchors that have at least one positive."""
        if features.dim() == 2:
            features = features.unsqueeze(1)
        if features.dim() != 3:
            raise ValueError(f"features must be [B, D] or [B, V, D], got shape {tuple(features.shape)}")
        b, v, _ = features.shape
        if labels.shape != (b,):
            raise ValueError(f"labels must be [B]={b}, got shape {tuple(labels.shape)}")
        z = F.normalize(features.float(), dim=-1)
        # anchors: local samples, view-major rows (view 0 of all samples, then view 1, ...)
        anchors = z.transpose(0, 1).reshape(b * v, -1)
        anchor_labels = labels.repeat(v)
        if self.gather_distributed and is_distributed():
            z_all = gather_with_grad(z)
            labels_all = gather_no_grad(labels)
            offset = rank() * b
        else:
            z_all, labels_all, offset = z, labels, 0
        n = z_all.shape[0]
        contrast = z_all.transpose(0, 1).reshape(n * v, -1)
        contrast_labels = labels_all.repeat(v)

        logits = anchors @ contrast.T / self.temperature  # [b*v, n*v]
        # own position of each anchor in the contrast set (to exclude self-similarity)
        rows = torch.arange(b * v, device=z.device)
        self_cols = (rows // b) * n + offset + rows % b
        self_mask = torch.zeros_like(logits, dtype=torch.bool)
        self_mask[rows, self_cols] = True
        pos_mask = (anchor_labels[:, None] == contrast_labels[None, :]) & ~self_mask

        logits = logits - logits.detach().max(dim=1, keepdim=True).values
        logits = logits.masked_fill(self_mask, float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        n_pos = pos_mask.sum(1)
        has_pos = n_pos > 0
        mean_log_prob_pos = (log_prob.masked_fill(~pos_mask, 0.0)).sum(1)[has_pos] / n_pos[has_pos]
        scale = 1.0 if self.base_temperature is None else self.temperature / self.base_temperature
        if mean_log_prob_pos.numel() == 0:  # no positives anywhere: zero loss, graph kept
            return features.sum() * 0.0
        return -scale * mean_log_prob_pos.mean()
