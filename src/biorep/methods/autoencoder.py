"""Autoencoder: BCE reconstruction of [0, 1] inputs (the screening study's unsupervised paradigm)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biorep.methods.base import METHODS, BaseMethod, MethodParams, concat_crops


def build_decoder_for(method: BaseMethod) -> nn.Module:
    """The backbone's mirror decoder (``SimpleDecoder`` for ``simple_cnn``, else an upsampling one)."""
    from biorep.models import build_decoder

    return build_decoder(method.backbone, method.data_info.in_chans, method.data_info.size)


def reconstruction_loss(decoder: nn.Module, recon: Tensor, x: Tensor) -> Tensor:
    """BCE between the reconstruction (in [0, 1]) and the [0, 1] input, in float32 (safe under autocast)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        recon, x = recon.float(), x.float().clamp(0, 1)
        return F.binary_cross_entropy(recon.clamp(1e-6, 1 - 1e-6), x)


def reconstruction_bce(decoder: nn.Module, h: Tensor, x: Tensor) -> Tensor:
    """BCE of ``decoder(h)`` against the [0, 1] input ``x``, in float32.

    A decoder with ``forward_logits`` (both of biorep's) is scored with the fused
    ``binary_cross_entropy_with_logits`` on its pre-sigmoid output: the same loss as BCE on the
    sigmoid, without the sigmoid's saturation (where :func:`reconstruction_loss` clamps the
    probabilities to [1e-6, 1 − 1e-6], the logits form stays exact) and one pass over the
    ``B×C×H×W`` reconstruction instead of four. Other decoders go through :func:`reconstruction_loss`.
    """
    logits_fn = getattr(decoder, "forward_logits", None)
    if logits_fn is None:
        return reconstruction_loss(decoder, decoder(h), x)
    logits = logits_fn(h)
    with torch.autocast(device_type=x.device.type, enabled=False):
        return F.binary_cross_entropy_with_logits(logits.float(), x.float().clamp(0, 1))


class AutoencoderParams(MethodParams):
    """No options: the decoder follows the backbone."""


@METHODS.register("autoencoder")
class Autoencoder(BaseMethod):
    """Encoder (backbone) + decoder trained to reconstruct every crop with BCE.

    Example:
        >>> cfg = {"method": {"name": "autoencoder"}, "model": {"backbone": "simple_cnn"}}
    """

    name = "autoencoder"
    Params: ClassVar = AutoencoderParams

    def build_heads(self) -> None:
        self.decoder = build_decoder_for(self)

    def compute_loss(self, views: list[Tensor], y: Tensor, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        (x,) = concat_crops(views)
        return reconstruction_bce(self.decoder, self.backbone(x), x), {}
