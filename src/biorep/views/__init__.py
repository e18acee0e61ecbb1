"""Views: augmentation × crop strategies applied to batched tensors with per-sample parameters.

Example:
    >>> import torch
    >>> from biorep.views import ViewsConfig, build_views
    >>> views = build_views(ViewsConfig(augment="random", crops="one"), size=64, seed=0)
    >>> a, b = views(torch.rand(4, 1, 64, 64), n_views=2)
    >>> a.shape
    torch.Size([4, 1, 64, 64])
"""

from __future__ import annotations

from biorep.views.config import PresetSpec, ViewsConfig, build_crops, build_ops, resolve_ops
from biorep.views.crops import (
    CROPS,
    CropGroup,
    CropStrategy,
    MultiCrop,
    OneCrop,
    RandomResizedCrop,
    crop_resize,
)
from biorep.views.generator import ViewGenerator, build_views
from biorep.views.ops import (
    AUGMENTATIONS,
    Augment,
    Brightness,
    Contrast,
    GaussianBlur,
    GaussianNoise,
    HFlip,
    Op,
    Rot90,
    Rotate,
    VFlip,
    build_op,
)
from biorep.views.presets import AUGMENT_PRESETS

__all__ = [
    "AUGMENTATIONS",
    "AUGMENT_PRESETS",
    "CROPS",
    "Augment",
    "Brightness",
    "Contrast",
    "CropGroup",
    "CropStrategy",
    "GaussianBlur",
    "GaussianNoise",
    "HFlip",
    "MultiCrop",
    "OneCrop",
    "Op",
    "PresetSpec",
    "RandomResizedCrop",
    "Rot90",
    "Rotate",
    "VFlip",
    "ViewGenerator",
    "ViewsConfig",
    "build_crops",
    "build_op",
    "build_ops",
    "build_views",
    "crop_resize",
    "resolve_ops",
]
