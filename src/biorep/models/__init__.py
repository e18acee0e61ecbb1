"""Models: backbones (timm or Study B's SimpleCNN, any number of channels), decoders and heads.

Example:
    >>> import torch
    >>> from biorep.models import ModelConfig, build_backbone, mlp_head
    >>> net = build_backbone(ModelConfig(backbone="simple_cnn"), in_chans=1, img_size=64)
    >>> head = mlp_head(net.num_features, [256], 2)
    >>> head(net(torch.rand(2, 1, 64, 64))).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

from biorep.models.backbones import BACKBONES, TimmBackbone, build_backbone, build_timm
from biorep.models.config import ModelConfig
from biorep.models.decoders import UpsamplingDecoder, build_decoder
from biorep.models.heads import (
    BarlowTwinsProjectionHead,
    BYOLPredictionHead,
    BYOLProjectionHead,
    MoCoProjectionHead,
    SimCLRProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
    VICRegProjectionHead,
    mlp_head,
)
from biorep.models.simple_cnn import SimpleCNN, SimpleDecoder
from biorep.models.weights import (
    LoadReport,
    adapt_conv_channels,
    init_heads_from,
    load_weights,
    read_state_dict,
    resolve_weights,
)

__all__ = [
    "BACKBONES",
    "BYOLPredictionHead",
    "BYOLProjectionHead",
    "BarlowTwinsProjectionHead",
    "LoadReport",
    "ModelConfig",
    "MoCoProjectionHead",
    "SimCLRProjectionHead",
    "SimSiamPredictionHead",
    "SimSiamProjectionHead",
    "SimpleCNN",
    "SimpleDecoder",
    "TimmBackbone",
    "UpsamplingDecoder",
    "VICRegProjectionHead",
    "adapt_conv_channels",
    "build_backbone",
    "build_decoder",
    "build_timm",
    "init_heads_from",
    "load_weights",
    "mlp_head",
    "read_state_dict",
    "resolve_weights",
]
