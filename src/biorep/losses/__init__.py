"""Pure loss modules; SSL losses that lightly already has are re-exported from lightly.

Example:
    >>> from biorep.losses import SupConLoss
    >>> loss = SupConLoss(temperature=0.1)(torch.randn(8, 2, 16), torch.arange(8) % 4)
"""

from __future__ import annotations

from lightly.loss import BarlowTwinsLoss, NegativeCosineSimilarity, NTXentLoss, VICRegLoss

from biorep.losses.class_pair import ClassPairInfoNCE
from biorep.losses.dist import gather_no_grad, gather_with_grad
from biorep.losses.focal import FocalCrossEntropy
from biorep.losses.supcon import SupConLoss

__all__ = [
    "BarlowTwinsLoss",
    "ClassPairInfoNCE",
    "FocalCrossEntropy",
    "NTXentLoss",
    "NegativeCosineSimilarity",
    "SupConLoss",
    "VICRegLoss",
    "gather_no_grad",
    "gather_with_grad",
]
