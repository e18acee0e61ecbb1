"""Heads: lightly's projection/prediction heads re-exported, plus :func:`mlp_head` for the rest
(Study B's 2048→256→n classifier, Study A's embedding and classifier MLPs)."""

from __future__ import annotations

from collections.abc import Sequence

from lightly.models.modules.heads import (
    BarlowTwinsProjectionHead,
    BYOLPredictionHead,
    BYOLProjectionHead,
    MoCoProjectionHead,
    SimCLRProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
    VICRegProjectionHead,
)
from torch import nn

__all__ = [
    "BYOLPredictionHead",
    "BYOLProjectionHead",
    "BarlowTwinsProjectionHead",
    "MoCoProjectionHead",
    "SimCLRProjectionHead",
    "SimSiamPredictionHead",
    "SimSiamProjectionHead",
    "VICRegProjectionHead",
    "mlp_head",
]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def mlp_head(
    in_dim: int,
    hidden_dims: Sequence[int] | int = (),
    out_dim: int = 2,
    *,
    batchnorm: bool = False,
    activation: str = "relu",
    dropout: float = 0.0,
    bias_last: bool = True,
) -> nn.Sequential:
    """``Linear → [BatchNorm] → act → [Dropout]`` per hidden layer, then ``Linear(→ out_dim)``.

    Example:
        >>> head = mlp_head(2048, [256], 2)  # Study B's classifier
        >>> [m.__class__.__name__ for m in head]
        ['Linear', 'ReLU', 'Linear']
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation {activation!r} unknown; known: {', '.join(_ACTIVATIONS)}")
    hidden = [hidden_dims] if isinstance(hidden_dims, int) else list(hidden_dims)
    layers: list[nn.Module] = []
    prev = in_dim
    for h in hidden:
        layers.append(nn.Linear(prev, h, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(_ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        prev = h
    layers.append(nn.Linear(prev, out_dim, bias=bias_last))
    return nn.Sequential(*layers)
