"""Batched augmentation ops with per-sample random parameters, on the tensor's own device.

torchvision.transforms.v2 draws one parameter set per call, so applying it to a batch gives every
image the same flip/angle/sigma. The ops here draw parameters per sample and apply them with
vectorised tensor code (masks, ``affine_grid``/``grid_sample``, shifted sums), which is why they are
hand-written rather than taken from torchvision or lightly (both transform one image at a time).

Each op is an ``nn.Module`` with a pydantic ``Params`` model (``extra="forbid"``); it is applied to
each sample independently with probability ``p``. Adding an op is adding a class registered in
:data:`AUGMENTATIONS`.

Example:
    >>> import torch
    >>> op = AUGMENTATIONS.get("blur")(kernel=3, sigma=(0.1, 2.0), p=0.2)
    >>> op(torch.rand(8, 1, 64, 64)).shape
    torch.Size([8, 1, 64, 64])
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from biorep.configmodel import ConfigModel
from biorep.registry import Registry
from biorep.views import _random

AUGMENTATIONS: Registry[type[Op]] = Registry("augmentation op")


def _range(
    value: float | tuple[float, float] | list[float], *, symmetric_around: float
) -> tuple[float, float]:
    """``d`` → ``(c - d, c + d)``; a pair is returned as an ordered tuple."""
    if isinstance(value, (int, float)):
        return (symmetric_around - float(value), symmetric_around + float(value))
    lo, hi = (float(v) for v in value)
    if lo > hi:
        raise ValueError(f"range [{lo}, {hi}] has low > high")
    return (lo, hi)


class OpParams(ConfigModel):
    """Parameters every op has: ``p`` = probability of applying it to each sample."""

    p: float = Field(1.0, ge=0.0, le=1.0)


class Op(nn.Module):
    """Base class: draws, per sample, whether to apply; subclasses implement :meth:`apply`.

    Example:
        >>> flip = HFlip(p=1.0)
        >>> x = torch.arange(4.0).view(1, 1, 1, 4)
        >>> flip(x).flatten().tolist()
        [3.0, 2.0, 1.0, 0.0]
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[OpParams]] = OpParams

    def __init__(self, **params: Any) -> None:
        super().__init__()
        self.params = self.Params(**params)

    @property
    def p(self) -> float:
        return self.params.p

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, *, inplace: bool = False
    ) -> torch.Tensor:
        """Apply to a random subset of ``x`` (each sample with probability ``p``).

        ``inplace=True`` lets the op write the transformed samples back into ``x`` (saves a copy of
        the batch when ``x`` is a temporary the caller owns).
        """
        n = x.shape[0]
        if self.p <= 0.0 or n == 0:
            return x
        if self.p >= 1.0:
            return self.apply(x, generator)
        idx = _random.bernoulli(n, self.p, x.device, generator).nonzero().squeeze(1)
        if idx.numel() == 0:
            return x
        if idx.numel() == n:
            return self.apply(x, generator)
        done = self.apply(x.index_select(0, idx), generator)
        return x.index_copy_(0, idx, done) if inplace else x.index_copy(0, idx, done)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Transform every sample of ``x`` (with its own random parameters)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.model_dump().items())


@AUGMENTATIONS.register("hflip")
class HFlip(Op):
    """Horizontal (left–right) flip."""

    name = "hflip"
    Params = OpParams

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return x.flip(-1)


@AUGMENTATIONS.register("vflip")
class VFlip(Op):
    """Vertical (top–bottom) flip."""

    name = "vflip"
    Params = OpParams

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return x.flip(-2)


class Rot90Params(OpParams):
    k: list[int] = Field(default_factory=lambda: [0, 1, 2, 3])

    @field_validator("k")
    @classmethod
    def _check_k(cls, v: list[int]) -> list[int]:
        if not v or any(k not in (0, 1, 2, 3) for k in v):
            raise ValueError(f"k must be a non-empty list of quarter turns in 0..3, got {v}")
        return v


@AUGMENTATIONS.register("rot90")
class Rot90(Op):
    """Rotation by a random multiple of 90° (counter-clockwise, as ``torch.rot90``); exact, no fill.

    Odd quarter turns need square images.
    """

    name = "rot90"
    Params = Rot90Params

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        k = _random.choice(x.shape[0], self.params.k, x.device, generator).view(-1, 1, 1, 1)
        odd = (k % 2) == 1
        if bool(odd.any()) and x.shape[-1] != x.shape[-2]:
            raise ValueError(f"rot90 with odd k needs square images, got {tuple(x.shape[-2:])}")
        # rot90(k) = transpose for odd k, then flip rows (k in 1, 2) and/or columns (k in 2, 3).
        out = torch.where(odd, x.transpose(-1, -2), x) if bool(odd.any()) else x
        out = torch.where((k == 1) | (k == 2), out.flip(-2), out)
        return torch.where((k == 2) | (k == 3), out.flip(-1), out)


class RotateParams(OpParams):
    degrees: float | tuple[float, float] = 90.0
    fill: float | list[float] = 0.0
    interpolation: Literal["bilinear", "nearest"] = "bilinear"

    @field_validator("degrees")
    @classmethod
    def _check_degrees(cls, v: float | tuple[float, float]) -> float | tuple[float, float]:
        if isinstance(v, (int, float)) and v < 0:
            raise ValueError(f"degrees must be >= 0 (rotation in [-degrees, degrees]), got {v}")
        _range(v, symmetric_around=0.0)
        return v


@AUGMENTATIONS.register("rotate")
class Rotate(Op):
    """Rotation by a per-sample angle in ``degrees`` (counter-clockwise positive), corners = ``fill``.

    ``fill`` is in scaled intensity units (images are scaled so background ≈ 0); one value or one
    per channel.
    """

    name = "rotate"
    Params = RotateParams

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n, c, h, w = x.shape
        lo, hi = _range(self.params.degrees, symmetric_around=0.0)
        theta = _random.uniform(n, lo, hi, x.device, generator) * (math.pi / 180.0)
        cos, sin = torch.cos(theta), torch.sin(theta)
        zero = torch.zeros_like(cos)
        # output (normalised) coords -> input coords; aspect-corrected for non-square images
        mat = torch.stack(
            [torch.stack([cos, -sin * (h / w), zero], 1), torch.stack([sin * (w / h), cos, zero], 1)], 1
        ).to(x.dtype)
        grid = F.affine_grid(mat, [n, c, h, w], align_corners=False)
        fill = torch.as_tensor(self.params.fill, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
        if fill.shape[1] not in (1, c):
            raise ValueError(f"rotate fill has {fill.shape[1]} values for {c} channels")
        out = F.grid_sample(
            x - fill, grid, mode=self.params.interpolation, padding_mode="zeros", align_corners=False
        )
        return out + fill


class BlurParams(OpParams):
    kernel: int = Field(3, ge=1)
    sigma: tuple[float, float] = (0.1, 2.0)

    @field_validator("kernel")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"blur kernel must be odd, got {v}")
        return v

    @field_validator("sigma")
    @classmethod
    def _sigma(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] <= 0 or v[0] > v[1]:
            raise ValueError(f"blur sigma must be a range 0 < low <= high, got {list(v)}")
        return v


@AUGMENTATIONS.register("blur")
class GaussianBlur(Op):
    """Gaussian blur with a per-sample sigma, separable, reflect padding (like torchvision's).

    Implemented as two depthwise convolutions (one group per sample and channel, so every sample
    has its own kernel).
    """

    name = "blur"
    Params = BlurParams

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        k = self.params.kernel
        if k == 1:
            return x
        n, c, h, w = x.shape
        sigma = _random.uniform(n, *self.params.sigma, x.device, generator).to(x.dtype)
        t = torch.arange(k, device=x.device, dtype=x.dtype) - (k - 1) / 2
        g = torch.exp(-(t[None, :] ** 2) / (2 * sigma[:, None] ** 2))
        g = (g / g.sum(1, keepdim=True)).repeat_interleave(c, 0)
        r = k // 2
        mode = "reflect" if min(h, w) > r else "replicate"
        y = F.pad(x.reshape(1, n * c, h, w), (r, r, r, r), mode=mode)
        y = F.conv2d(y, g.view(n * c, 1, 1, k), groups=n * c)
        y = F.conv2d(y, g.view(n * c, 1, k, 1), groups=n * c)
        return y.view(n, c, h, w)


class JitterParams(OpParams):
    factor: tuple[float, float] = (0.8, 1.2)
    per_channel: bool = False

    @field_validator("factor")
    @classmethod
    def _factor(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] < 0 or v[0] > v[1]:
            raise ValueError(f"factor must be a range 0 <= low <= high, got {list(v)}")
        return v


class _Jitter(Op):
    Params = JitterParams

    def _factors(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n, c = x.shape[:2]
        shape = (c,) if self.params.per_channel else (1,)
        return _random.uniform(n, *self.params.factor, x.device, generator, shape=shape).to(x.dtype)[
            ..., None, None
        ]


@AUGMENTATIONS.register("brightness")
class Brightness(_Jitter):
    """Multiply intensities by a per-sample (optionally per-channel) factor; background 0 stays 0."""

    name = "brightness"

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return (x * self._factors(x, generator)).clamp_(0.0, 1.0)


@AUGMENTATIONS.register("contrast")
class Contrast(_Jitter):
    """Scale deviations from each channel's mean by a per-sample (optionally per-channel) factor."""

    name = "contrast"

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        mean = x.mean(dim=(-2, -1), keepdim=True)
        return (x - mean).mul_(self._factors(x, generator)).add_(mean).clamp_(0.0, 1.0)


class NoiseParams(OpParams):
    sigma: tuple[float, float] = (0.0, 0.05)


@AUGMENTATIONS.register("noise")
class GaussianNoise(Op):
    """Add Gaussian noise with a per-sample standard deviation; clamped to [0, 1]."""

    name = "noise"
    Params = NoiseParams

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n = x.shape[0]
        std = _random.uniform(n, *self.params.sigma, x.device, generator).to(x.dtype).view(n, 1, 1, 1)
        gdev = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, device=gdev, dtype=x.dtype).to(x.device)
        return (x + std * noise).clamp_(0.0, 1.0)


def build_op(spec: dict[str, Any]) -> Op:
    """Build one op from ``{"op": name, **params}``.

    Example:
        >>> build_op({"op": "hflip", "p": 0.5})
        HFlip(p=0.5)
    """
    spec = dict(spec)
    name = spec.pop("op", None)
    if name is None:
        raise ValueError(f"augmentation op {spec} has no 'op' key; known ops: {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS.get(name)(**spec)


class Augment(nn.Module):
    """A sequence of ops applied in order; identity when empty.

    Example:
        >>> aug = Augment([HFlip(p=0.5), GaussianBlur(kernel=3, p=0.2)])
        >>> aug(torch.rand(4, 3, 32, 32)).shape
        torch.Size([4, 3, 32, 32])
    """

    def __init__(self, ops: list[Op]) -> None:
        super().__init__()
        self.ops = nn.ModuleList(ops)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, *, inplace: bool = False
    ) -> torch.Tensor:
        """Apply the ops in order; ``inplace=True`` may overwrite ``x`` (a temporary the caller owns)."""
        owned = inplace
        for op in self.ops:
            out = op(x, generator, inplace=owned)
            owned = owned or out is not x  # a fresh tensor from an earlier op may be overwritten
            x = out
        return x
