"""Decoders for autoencoders: the study's mirrored decoder for ``simple_cnn``, a generic upsampling
decoder from the D-dim representation for every other backbone."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from biorep.data.geometry import Size, as_hw


class UpsamplingDecoder(nn.Module):
    """``Linear(D → c·r·r)`` then ×2 upsampling blocks (conv-BN-ReLU) up to the image size, a 3×3
    conv to ``out_chans`` and a sigmoid. Channels start at ``width`` and halve per block (min 16).

    Example:
        >>> UpsamplingDecoder(512, out_chans=3, img_size=64)(torch.rand(2, 512)).shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(self, in_dim: int, out_chans: int = 1, img_size: Size = 64, *, width: int = 256) -> None:
        super().__init__()
        self.img_size = as_hw(img_size)
        h, w = self.img_size
        n_up = max(1, round(math.log2(max(min(h, w), 8) / 4)))
        self.base = (math.ceil(h / 2**n_up), math.ceil(w / 2**n_up))
        self.width = width
        self.fc = nn.Linear(in_dim, width * self.base[0] * self.base[1])
        blocks: list[nn.Module] = []
        ch = width
        for _ in range(n_up):
            nxt = max(16, ch // 2)
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(ch, nxt, 3, padding=1, bias=False),
                nn.BatchNorm2d(nxt),
                nn.ReLU(inplace=True),
            ]
            ch = nxt
        blocks.append(nn.Conv2d(ch, out_chans, 3, padding=1))
        self.blocks = nn.Sequential(*blocks)

    def forward_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The reconstruction before the sigmoid (for a fused, stable BCE)."""
        x = F.relu(self.fc(z)).view(z.shape[0], self.width, *self.base)
        out = self.blocks(x)
        if tuple(out.shape[-2:]) != self.img_size:
            out = F.interpolate(out, size=self.img_size, mode="bilinear", align_corners=False)
        return out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward_logits(z))


def build_decoder(backbone: nn.Module, in_chans: int, img_size: Size) -> nn.Module:
    """A decoder from ``backbone``'s representation back to ``in_chans × H × W`` (``img_size``) in [0, 1].

    A backbone that knows its own mirror (``build_decoder(out_chans)``, e.g. ``SimpleCNN``) provides
    it; otherwise an :class:`UpsamplingDecoder` from ``backbone.num_features``.

    Example:
        >>> from biorep.models.simple_cnn import SimpleCNN
        >>> type(build_decoder(SimpleCNN(1, 64), 1, 64)).__name__
        'SimpleDecoder'
    """
    own = getattr(backbone, "build_decoder", None)
    if callable(own):
        return own(in_chans)
    return UpsamplingDecoder(int(backbone.num_features), in_chans, img_size)
