"""``ViewGenerator``: crops then augments a batch into views, per sample, on the batch's device."""

from __future__ import annotations

import torch
from torch import nn

from biorep.data.geometry import Size, as_hw, as_size
from biorep.errors import ConfigError
from biorep.views.config import ViewsConfig, build_crops, build_ops
from biorep.views.crops import CropStrategy, crop_resize
from biorep.views.ops import Augment


class ViewGenerator(nn.Module):
    """Turn ``x: Tensor[B, C, H, W]`` (float in [0, 1]) into a list of views ``Tensor[B, C, h, w]``.

    Every view is cut (crop strategy, one ``roi_align`` call for all views) and resized to ``size``
    (``n`` or ``(h, w)``),
    then augmented with parameters drawn per sample and per view (all views are augmented as one
    stacked batch). With ``crops: one`` a call returns ``n_views`` independently augmented copies of
    the whole image; with ``multi`` the configured crops are the views and ``n_views`` is ignored.
    Full-image crops come first: :meth:`n_global` says how many, :meth:`crop_scales` gives each
    view's area range.

    Pass ``seed`` (or a ``generator`` per call) for reproducible views; the generator lives on the
    CPU and only the per-sample parameters (a few numbers per sample) are moved to the device.

    On the CPU the batch is processed in chunks of about ``chunk_size`` output images so that every
    op's intermediate tensors stay in cache (several times faster than whole-batch passes); on
    accelerators the whole batch goes at once. Chunking changes only the order of random draws.

    Example:
        >>> import torch
        >>> views = build_views(ViewsConfig(augment="random", crops="multi"), size=64)
        >>> out = views(torch.rand(8, 1, 64, 64))
        >>> len(out), out[0].shape, views.n_global()
        (5, torch.Size([8, 1, 64, 64]), 1)
    """

    def __init__(
        self,
        augment: Augment,
        crops: CropStrategy,
        size: Size,
        *,
        seed: int | None = None,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        self.chunk_size = chunk_size
        self.augment = augment
        self.crops = crops
        self.size = as_size(size)
        self.hw = as_hw(size)
        self.seed = seed
        self._generator: torch.Generator | None = None
        if seed is not None:
            self._generator = torch.Generator().manual_seed(seed)

    def n_crops(self, n_views: int = 1) -> int:
        """How many views a call with ``n_views`` returns."""
        return self.crops.n_crops(n_views)

    def crop_scales(self, n_views: int = 1) -> list[tuple[float, float]]:
        """Area-fraction range of each returned view (``(1.0, 1.0)`` = the whole image)."""
        return self.crops.scales(n_views)

    def n_global(self, n_views: int = 1) -> int:
        """How many leading views are whole-image (global) views."""
        n = 0
        for lo, _ in self.crop_scales(n_views):
            if lo < 1.0:
                break
            n += 1
        return n

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
        """Crop boxes ``Tensor[n_crops, batch, 4]`` (``x1, y1, x2, y2`` pixels) for one call."""
        gen = generator if generator is not None else self._generator
        return self.crops.sample_boxes(batch, height, width, n_views, device=device, generator=gen)

    def forward(
        self,
        x: torch.Tensor,
        n_views: int = 1,
        *,
        boxes: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """Views of ``x``; ``boxes`` (from :meth:`sample_boxes`) fixes the crops."""
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(
                f"views expect a float Tensor[B, C, H, W] in [0, 1], got {x.dtype} {tuple(x.shape)}"
            )
        gen = generator if generator is not None else self._generator
        b, _, h, w = x.shape
        if boxes is None:
            boxes = self.sample_boxes(b, h, w, n_views, device=x.device, generator=gen)
        k = boxes.shape[0]
        per_chunk = self._chunk(x.device, k, b)
        if per_chunk >= b:
            return list(self.augment(crop_resize(x, boxes, self.size), gen, inplace=True).split(b, 0))
        out = x.new_empty((k, b, x.shape[1], *self.hw))
        for i in range(0, b, per_chunk):
            j = min(b, i + per_chunk)
            views = self.augment(crop_resize(x[i:j], boxes[:, i:j], self.size), gen, inplace=True)
            out[:, i:j] = views.view(k, j - i, *views.shape[1:])
        return list(out.unbind(0))

    def _chunk(self, device: torch.device, n_crops: int, batch: int) -> int:
        """Input samples per chunk: all of them on accelerators, ~``chunk_size`` outputs on the CPU."""
        if device.type != "cpu":
            return batch
        per = self.chunk_size or max(1, (2**20 // (self.hw[0] * self.hw[1])))
        return max(1, per // n_crops)

    def extra_repr(self) -> str:
        return f"size={self.size}, crops={self.crops!r}, seed={self.seed}"


def build_views(
    cfg: ViewsConfig, size: Size, *, seed: int | None = None, chunk_size: int | None = None
) -> ViewGenerator:
    """Build the :class:`ViewGenerator` for ``cfg`` at output size ``size``.

    Example:
        >>> build_views(ViewsConfig(), 64).n_crops(2)
        2
    """
    ops = build_ops(cfg.augment)
    h, w = as_hw(size)
    for op in ops:
        odd = [k for k in getattr(op.params, "k", []) if op.name == "rot90" and k % 2]
        if odd and h != w:
            raise ConfigError(
                f"views.augment rot90 with k {odd} (quarter turns) needs a square data.geometry.size, got "
                f"{h}×{w}; use k: [0, 2] or a square canvas"
            )
    return ViewGenerator(Augment(ops), build_crops(cfg.crops), size, seed=seed, chunk_size=chunk_size)
