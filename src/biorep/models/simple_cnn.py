"""Study B's simple CNN encoder and its mirrored decoder (Dmitrenko et al., MIDL 2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class SimpleCNN(nn.Module):
    """``Conv(C→64)-ReLU-MaxPool2 · Conv(64→32)-ReLU-MaxPool2 · Conv(32→16)-ReLU · Conv(16→8)`` → flatten.

    All convolutions are 3×3, stride 1, padding 1. The representation is the flattened 8×(H/4)×(W/4)
    map: 2048-d for 64×64 inputs. Module indices match the study's code (``encoder.0`` … ``encoder.8``),
    so its published weights load as they are.

    Example:
        >>> SimpleCNN(in_chans=1, img_size=64)(torch.rand(2, 1, 64, 64)).shape
        torch.Size([2, 2048])
    """

    def __init__(self, in_chans: int = 1, img_size: int | tuple[int, int] = 64) -> None:
        super().__init__()
        h, w = _pair(img_size)
        if h < 4 or w < 4:
            raise ValueError(f"SimpleCNN needs inputs of at least 4×4 pixels, got {h}×{w}")
        self.in_chans = in_chans
        self.img_size = (h, w)
        self.feature_shape = (8, h // 4, w // 4)
        self.num_features = 8 * (h // 4) * (w // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(in_chans, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 16, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 8, 3, padding=1),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 8×(H/4)×(W/4) feature map."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)

    def build_decoder(self, out_chans: int | None = None) -> SimpleDecoder:
        """The mirrored decoder for this encoder's input shape."""
        return SimpleDecoder(out_chans or self.in_chans, self.img_size)


class SimpleDecoder(nn.Module):
    """The study's decoder: ``ConvT(8→32)-ReLU-Up2 · ConvT(32→64)-ReLU-Up2 · ConvT(64→64)-ReLU ·
    ConvT(64→C)-Sigmoid`` (3×3, padding 1), from the 8×(H/4)×(W/4) code back to C×H×W in [0, 1].

    Accepts the flat ``[B, 8·(H/4)·(W/4)]`` representation or the ``[B, 8, H/4, W/4]`` map; sizes not
    divisible by 4 are interpolated to exactly H×W before the sigmoid.

    Example:
        >>> SimpleDecoder(out_chans=1, img_size=64)(torch.rand(2, 2048)).shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(self, out_chans: int = 1, img_size: int | tuple[int, int] = 64) -> None:
        super().__init__()
        h, w = _pair(img_size)
        self.img_size = (h, w)
        self.code_shape = (8, h // 4, w // 4)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(8, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2),
            nn.ConvTranspose2d(32, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2),
            nn.ConvTranspose2d(64, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(64, out_chans, 3, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim == 2:
            z = z.view(z.shape[0], *self.code_shape)
        out = self.decoder(z)
        if tuple(out.shape[-2:]) != self.img_size:
            out = F.interpolate(out, size=self.img_size, mode="bilinear", align_corners=False)
        return torch.sigmoid(out)
