"""Class-paired InfoNCE with a learnable temperature (the ICIP 2025 chromosome recipe)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biorep.losses.dist import gather_no_grad, gather_with_grad, is_distributed, rank


class ClassPairInfoNCE(nn.Module):
    """Symmetric InfoNCE between two images of the same class, plus the same within each side.

    ``a[i]`` and ``b[i]`` are embeddings of two different images of class ``labels[i]`` (one row per
    class in a class-balanced batch). The cross term is CLIP's symmetric loss on ``a @ b.T``; the
    within-side terms (``a @ a.T`` and ``b @ b.T`` with the diagonal as target) push the classes
    apart. Rows of other samples with the *same* label (e.g. the same class on another rank) are
    masked out of the denominators, so the loss stays a proper class-level loss under DDP, where
    ``a``, ``b`` and ``labels`` are gathered with gradients. The temperature is learnable
    (``logit_scale = log(1/τ)``, initialised at τ=0.07, clamped at 100 like CLIP).

    Hand-written because no library has this paired-class form.

    Example:
        >>> loss_fn = ClassPairInfoNCE()
        >>> a, b = torch.randn(24, 64), torch.randn(24, 64)
        >>> loss = loss_fn(a, b, torch.arange(24))
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learnable_temperature: bool = True,
        within_view: bool = True,
        gather_distributed: bool = True,
        max_logit_scale: float = 100.0,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        init = torch.tensor(math.log(1.0 / temperature))
        if learnable_temperature:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)
        self.within_view = within_view
        self.gather_distributed = gather_distributed
        self.max_logit_scale = max_logit_scale

    @property
    def temperature(self) -> float:
        """Current temperature τ = 1 / exp(logit_scale)."""
        return float(1.0 / self.logit_scale.detach().exp().clamp(max=self.max_logit_scale))

    def _term(
        self, q: Tensor, k_all: Tensor, q_labels: Tensor, k_labels: Tensor, offset: int, scale: Tensor
    ) -> Tensor:
        logits = scale * q @ k_all.T
        rows = torch.arange(q.shape[0], device=q.device)
        target = rows + offset
        same = q_labels[:, None] == k_labels[None, :]
        same[rows, target] = False
        logits = logits.masked_fill(same, float("-inf"))
        return F.cross_entropy(logits, target)

    def forward(self, a: Tensor, b: Tensor, labels: Tensor | None = None) -> Tensor:
        """Loss for paired embeddings ``a``, ``b`` of shape ``[P, D]`` (labels ``[P]``, default row ids)."""
        if a.shape != b.shape or a.dim() != 2:
            raise ValueError(f"a and b must both be [P, D], got {tuple(a.shape)} and {tuple(b.shape)}")
        if labels is None:
            labels = torch.arange(a.shape[0], device=a.device)
        a = F.normalize(a.float(), dim=-1)
        b = F.normalize(b.float(), dim=-1)
        if self.gather_distributed and is_distributed():
            a_all, b_all, l_all = gather_with_grad(a), gather_with_grad(b), gather_no_grad(labels)
            offset = rank() * a.shape[0]
        else:
            a_all, b_all, l_all, offset = a, b, labels, 0
        scale = self.logit_scale.exp().clamp(max=self.max_logit_scale)
        loss = 0.5 * (
            self._term(a, b_all, labels, l_all, offset, scale)
            + self._term(b, a_all, labels, l_all, offset, scale)
        )
        if self.within_view:
            loss = loss + 0.5 * (
                self._term(a, a_all, labels, l_all, offset, scale)
                + self._term(b, b_all, labels, l_all, offset, scale)
            )
        return loss
