"""Crop strategies: which boxes each view is cut from, resized to the model input size.

A strategy samples boxes ``Tensor[n_crops, B, 4]`` (``x1, y1, x2, y2`` in pixels, continuous) and
:func:`crop_resize` cuts them all out in one ``torchvision.ops.roi_align`` call (bilinear, with
adaptive anti-aliasing sampling), so every sample gets its own box without a per-image loop.
Adding a strategy is adding a class registered in :data:`CROPS`.

Example:
    >>> import torch
    >>> multi = CROPS.get("multi")()
    >>> multi.n_crops(1), multi.scales(1)[1]
    (5, (0.5, 0.75))
    >>> multi.sample_boxes(8, 64, 64).shape
    torch.Size([5, 8, 4])
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, Field, field_validator
from torchvision.ops import roi_align

from biorep.configmodel import ConfigModel
from biorep.data.geometry import Size, as_hw
from biorep.registry import Registry
from biorep.views import _random

CROPS: Registry[type[CropStrategy]] = Registry("crop strategy")

_MAX_TRIES = 10


class CropGroup(ConfigModel):
    """``n`` crops whose area is a fraction in ``scale`` of the image, aspect ratio in ``ratio``.

    ``ratio`` is relative to the image's own aspect (box ``w/h`` ÷ image ``w/h``): on square images it
    is torchvision's ``RandomResizedCrop`` ratio; on a tall canvas a ratio-1 crop is as tall as the
    canvas is, so resizing it to the view size does not squeeze its content.
    """

    n: int = Field(1, ge=1)
    scale: tuple[float, float] = (1.0, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not (0 < v[0] <= v[1] <= 1):
            raise ValueError(f"crop scale must satisfy 0 < low <= high <= 1 (area fraction), got {list(v)}")
        return v

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not (0 < v[0] <= v[1]):
            raise ValueError(f"crop ratio must satisfy 0 < low <= high, got {list(v)}")
        return v

    @property
    def is_full(self) -> bool:
        return self.scale[0] >= 1.0


def sample_group_boxes(
    group: CropGroup,
    batch: int,
    height: int,
    width: int,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """``Tensor[batch, 4]`` boxes like ``RandomResizedCrop.get_params``, vectorised over the batch.

    Draws ``_MAX_TRIES`` (area, log-ratio) candidates per sample and keeps the first that fits;
    samples where none fits get the whole image (torchvision falls back to a centre crop).
    """
    if group.is_full:
        box = torch.tensor([0.0, 0.0, float(width), float(height)], device=device)
        return box.expand(batch, 4).clone()
    area = height * width * _random.uniform(batch, *group.scale, device, generator, shape=(_MAX_TRIES,))
    log_r = _random.uniform(
        batch, math.log(group.ratio[0]), math.log(group.ratio[1]), device, generator, shape=(_MAX_TRIES,)
    )
    r = torch.exp(log_r) * (width / height)  # ratio relative to the image's own aspect: no distortion
    w = torch.sqrt(area * r)
    h = torch.sqrt(area / r)
    ok = (w <= width) & (h <= height)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((batch,), -1, device=device))
    pick = first.clamp(min=0).unsqueeze(1)
    w = torch.where(first >= 0, w.gather(1, pick).squeeze(1), torch.full_like(w[:, 0], float(width)))
    h = torch.where(first >= 0, h.gather(1, pick).squeeze(1), torch.full_like(h[:, 0], float(height)))
    x1 = _random.uniform(batch, 0.0, 1.0, device, generator) * (width - w)
    y1 = _random.uniform(batch, 0.0, 1.0, device, generator) * (height - h)
    return torch.stack([x1, y1, x1 + w, y1 + h], 1)


def crop_resize(x: torch.Tensor, boxes: torch.Tensor, size: Size) -> torch.Tensor:
    """Cut ``boxes`` (``[K, B, 4]``) out of ``x`` (``[B, C, H, W]``) → ``[K·B, C, h, w]`` (``size``).

    A whole-image box at ``size`` returns the pixels unchanged (``aligned=True`` puts the sampling
    points on pixel centres).
    """
    k, b = boxes.shape[:2]
    c = x.shape[1]
    oh, ow = as_hw(size)
    boxes = boxes.to(device=x.device, dtype=x.dtype)
    full = torch.zeros(k, dtype=torch.bool)
    if x.shape[-2] == oh and x.shape[-1] == ow:
        whole = torch.tensor([0.0, 0.0, float(ow), float(oh)], device=x.device, dtype=x.dtype)
        full = (boxes == whole).all(-1).all(-1).cpu()  # views that are the image itself: no resampling
    out = x.new_empty((k, b, c, oh, ow))
    if bool(full.any()):
        out[full] = x
    part = (~full).nonzero().squeeze(1).tolist()
    if part:
        sel = boxes[part].reshape(-1, 4)
        idx = torch.arange(b, device=x.device, dtype=x.dtype).repeat(len(part)).unsqueeze(1)
        rois = torch.cat([idx, sel], 1)
        cut = roi_align(x, rois, output_size=(oh, ow), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        out[part] = cut.view(len(part), b, c, oh, ow)
    return out.view(k * b, c, oh, ow)


class CropStrategy:
    """Base class: which crops make up the views.

    Subclasses set ``Params`` (pydantic, ``extra="forbid"``) and implement :meth:`groups`.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]]

    def __init__(self, **params: Any) -> None:
        self.params = self.Params(**params)

    def groups(self, n_views: int) -> list[CropGroup]:
        """The crop groups that produce the views for a call with ``n_views``."""
        raise NotImplementedError

    def n_crops(self, n_views: int = 1) -> int:
        """How many views a call with ``n_views`` returns."""
        return sum(g.n for g in self.groups(n_views))

    def scales(self, n_views: int = 1) -> list[tuple[float, float]]:
        """The area-fraction range of each returned view, in output order."""
        return [g.scale for g in self.groups(n_views) for _ in range(g.n)]

    def sample_boxes(
        self,
        batch: int,
        height: int,
        width: int,
        n_views: int = 1,
        *,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Boxes ``Tensor[n_crops, batch, 4]`` (``x1, y1, x2, y2`` pixels), one per view and sample."""
        device = torch.device(device)
        out = [
            sample_group_boxes(g, batch, height, width, device, generator)
            for g in self.groups(n_views)
            for _ in range(g.n)
        ]
        return torch.stack(out, 0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"


class _NoParams(ConfigModel):
    """No parameters: any key is an error."""


@CROPS.register("one")
class OneCrop(CropStrategy):
    """The whole image, ``n_views`` times (each copy augmented independently)."""

    name = "one"
    Params = _NoParams

    def groups(self, n_views: int) -> list[CropGroup]:
        return [CropGroup(n=max(1, n_views), scale=(1.0, 1.0))]


def _default_groups() -> list[CropGroup]:
    return [
        CropGroup(n=1, scale=(1.0, 1.0)),
        CropGroup(n=2, scale=(0.5, 0.75)),
        CropGroup(n=2, scale=(0.25, 0.5)),
    ]


class MultiParams(ConfigModel):
    groups: list[CropGroup] = Field(default_factory=_default_groups, min_length=1)


@CROPS.register("multi")
class MultiCrop(CropStrategy):
    """A fixed set of crops (default: 1 full + 2 at 50–75 % + 2 at 25–50 % of the area).

    The crops ARE the views: ``n_views`` is ignored. List full-image groups first so callers can
    treat the leading views as global.
    """

    name = "multi"
    Params = MultiParams

    def groups(self, n_views: int) -> list[CropGroup]:
        return list(self.params.groups)


class RandomResizedParams(ConfigModel):
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)


@CROPS.register("random_resized")
class RandomResizedCrop(CropStrategy):
    """``n_views`` random resized crops (SimCLR/BYOL style), area fraction in ``scale``."""

    name = "random_resized"
    Params = RandomResizedParams

    def groups(self, n_views: int) -> list[CropGroup]:
        return [CropGroup(n=max(1, n_views), scale=self.params.scale, ratio=self.params.ratio)]
