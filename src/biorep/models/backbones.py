"""Backbone factory: registered builders (``simple_cnn``) first, every other name from timm.

Every backbone maps ``Tensor[B, C, H, W]`` to a representation ``Tensor[B, D]`` and has
``num_features = D``. Nothing is downloaded: timm models are built with ``pretrained=False`` and
``model.weights`` loads a local file.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Callable
from typing import Any

import timm
import torch
from torch import nn

from biorep.data.geometry import Size, as_hw, size_label
from biorep.errors import ConfigError
from biorep.models.config import ModelConfig
from biorep.models.simple_cnn import SimpleCNN
from biorep.models.weights import load_weights
from biorep.registry import Registry

log = logging.getLogger(__name__)

BackboneFactory = Callable[[ModelConfig, int, int], nn.Module]
BACKBONES: Registry[BackboneFactory] = Registry("backbone")

_HOW_TO_LIST = (
    "list timm names with: python -c \"import timm; print(timm.list_models('*resnet*'))\" "
    "(any timm architecture works, built from scratch)"
)


@BACKBONES.register("simple_cnn")
def _simple_cnn(cfg: ModelConfig, in_chans: int, img_size: Size) -> nn.Module:
    try:
        return SimpleCNN(in_chans=in_chans, img_size=img_size, **cfg.kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model.backbone simple_cnn: {err} (its only model.kwargs is micro_batch: images per "
                          "CPU chunk, 0 = the whole batch at once)") from None


@BACKBONES.register("classical")
def _classical(cfg: ModelConfig, in_chans: int, img_size: Size) -> nn.Module:
    """CellProfiler-style intensity, shape and texture features (no parameters; see models.classical)."""
    from biorep.models.classical import ClassicalFeatures

    try:
        return ClassicalFeatures(in_chans=in_chans, img_size=img_size, **cfg.kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model.backbone classical: {err} (model.kwargs: mask_channel, levels, "
                          "distances)") from None


def conv_stem(in_chans: int, embed_dim: int, stride: int) -> nn.Sequential:
    """Xiao et al. (NeurIPS 2021, "Early convolutions help transformers see better"): stacked 3×3
    conv-BN-ReLU layers, each halving the resolution, widths doubling up to ``embed_dim / 2``
    (the last one a 3×3 at stride 1 when ``stride`` needs fewer halvings than layers), so the tokens
    start from local edges and bands instead of one linear map of a raw patch."""
    n_down = int(round(math.log2(stride)))
    if 2**n_down != stride or not 1 <= n_down <= 5:
        raise ConfigError(f"model.kwargs.stem_stride must be 2, 4, 8, 16 or 32, got {stride}")
    widths = [max(embed_dim // 2 ** (n_down - i), 16) for i in range(n_down)]
    layers: list[nn.Module] = []
    prev = in_chans
    for w in widths:
        layers += [nn.Conv2d(prev, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        prev = w
    layers += [nn.Conv2d(prev, prev, 3, padding=1, bias=False), nn.BatchNorm2d(prev), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


@BACKBONES.register("vit_convstem")
def _vit_convstem(cfg: ModelConfig, in_chans: int, img_size: Size) -> nn.Module:
    """A ViT (timm ``VisionTransformer``, ViT-Tiny sizes by default) whose patch embedding is a
    convolutional stem of total stride ``stem_stride`` (default 4: a 64 px canvas gives 16 × 16 tokens)
    followed by a 1×1 projection (timm's ``HybridEmbed``). ``model.kwargs``: ``stem_stride``,
    ``embed_dim`` (192), ``depth`` (12), ``num_heads`` (3), and any other ``VisionTransformer`` argument
    (``drop_path_rate``, ``class_token``, ``global_pool``...)."""
    from functools import partial

    from timm.models.vision_transformer import VisionTransformer
    from timm.models.vision_transformer_hybrid import HybridEmbed

    kwargs = dict(cfg.kwargs)
    stride = int(kwargs.pop("stem_stride", 4))
    embed_dim = int(kwargs.pop("embed_dim", 192))
    stem = conv_stem(in_chans, embed_dim, stride)
    if any(n % stride for n in as_hw(img_size)):
        raise ConfigError(f"model.backbone vit_convstem: data.geometry.size {size_label(img_size)} is not a "
                          f"multiple of model.kwargs.stem_stride {stride}")
    base = {"depth": 12, "num_heads": 3, "mlp_ratio": 4.0, **kwargs}
    try:
        model = VisionTransformer(
            img_size=as_hw(img_size), patch_size=1, in_chans=in_chans, num_classes=0, embed_dim=embed_dim,
            embed_layer=partial(HybridEmbed, backbone=stem), **base,
        )
    except TypeError as err:
        raise ConfigError(f"model.kwargs {cfg.kwargs} not accepted by vit_convstem: {err}") from None
    return TimmBackbone(model, in_chans, img_size, "vit_convstem")


class TimmBackbone(nn.Module):
    """A timm model without its classifier (``num_classes=0``): ``forward(x) -> Tensor[B, D]``.

    Example:
        >>> model = timm.create_model("resnet18", num_classes=0, in_chans=1)
        >>> net = TimmBackbone(model, in_chans=1, img_size=32)
        >>> net(torch.rand(2, 1, 32, 32)).shape, net.num_features
        (torch.Size([2, 512]), 512)
    """

    def __init__(self, model: nn.Module, in_chans: int, img_size: Size, name: str = "") -> None:
        super().__init__()
        self.model = model
        self.name = name or type(model).__name__
        self.in_chans = in_chans
        self.img_size = img_size
        self.num_features = self._probe()

    @torch.no_grad()
    def _probe(self) -> int:
        """Run one dummy image through the model: checks the input size, returns D."""
        was_training = self.model.training
        self.model.eval()
        try:
            param = next(self.model.parameters(), None)
            device = param.device if param is not None else torch.device("cpu")
            out = self.model(torch.zeros(1, self.in_chans, *as_hw(self.img_size), device=device))
        except Exception as err:  # noqa: BLE001 - turned into a config error naming the model and size
            h, w = as_hw(self.img_size)
            raise ConfigError(
                f"model.backbone {self.name!r} cannot take {self.in_chans}×{h}×{w} "
                f"inputs: {type(err).__name__}: {err}. Use a data.geometry.size this model accepts "
                "(Swin: a multiple of patch size × 2^(stages-1), or set model.kwargs.window_size; "
                "ViT: a multiple of the patch size)"
            ) from None
        finally:
            self.model.train(was_training)
        if out.ndim != 2:
            raise ConfigError(
                f"model.backbone {self.name!r} returns shape {tuple(out.shape)} with num_classes=0, "
                "not a [B, D] representation; pick a classification architecture"
            )
        return int(out.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _timm_known(name: str) -> bool:
    return timm.is_model(name) or timm.is_model(name.split(".")[0])


def build_timm(cfg: ModelConfig, in_chans: int, img_size: Size) -> TimmBackbone:
    """Build ``cfg.backbone`` from timm from scratch, passing ``img_size`` to models that take it."""
    name = cfg.backbone
    if not _timm_known(name):
        close = difflib.get_close_matches(name, timm.list_models() + BACKBONES.names(), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"model.backbone {name!r} is neither a biorep backbone ({', '.join(BACKBONES)}) nor a timm "
            f"model{hint} — {_HOW_TO_LIST}"
        )
    base: dict[str, Any] = {"pretrained": False, "in_chans": in_chans, "num_classes": 0}
    kwargs = {"img_size": img_size, **cfg.kwargs}
    try:
        try:
            model = timm.create_model(name, **base, **kwargs)
        except TypeError as err:
            if "img_size" not in str(err) or "img_size" in cfg.kwargs:
                raise
            kwargs.pop("img_size")  # this architecture has no img_size argument (CNNs)
            model = timm.create_model(name, **base, **kwargs)
    except TypeError as err:
        raise ConfigError(f"model.kwargs {cfg.kwargs} not accepted by timm model {name!r}: {err}") from None
    except (RuntimeError, ValueError, AssertionError) as err:
        raise ConfigError(
            f"model.backbone {name!r} cannot be built for {in_chans} channels at {size_label(img_size)}: {err}"
        ) from None
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if patch is not None and any(
        n % int(q) for n, q in zip(as_hw(img_size), patch if isinstance(patch, tuple) else (patch, patch))
    ):
        log.warning(
            "model.backbone %s: image size %s is not a multiple of the patch size %s; the last pixels "
            "of each row/column are ignored",
            name,
            size_label(img_size),
            patch,
        )
    return TimmBackbone(model, in_chans, img_size, name)


def build_backbone(cfg: ModelConfig, in_chans: int, img_size: Size) -> nn.Module:
    """The backbone for ``cfg``: ``forward(x) -> Tensor[B, D]``, attribute ``num_features = D``.

    Registered names (``simple_cnn``) use their factory; anything else is a timm model. When
    ``cfg.weights`` is set the local file is loaded (see :func:`biorep.models.weights.load_weights`).

    Example:
        >>> net = build_backbone(ModelConfig(backbone="simple_cnn"), in_chans=1, img_size=64)
        >>> net.num_features
        2048
    """
    factory = BACKBONES.get(cfg.backbone) if cfg.backbone in BACKBONES else build_timm
    net = factory(cfg, in_chans, img_size)
    if cfg.weights:
        report = load_weights(net, cfg.weights)
        log.info("model.weights: loaded %d tensors from %s", len(report.loaded), cfg.weights)
    return net
