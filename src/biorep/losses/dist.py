"""Cross-process gathering for losses that compare samples across the whole (global) batch.

The all-gather with gradients is lightly's ``GatherLayer`` (``lightly.utils.dist.gather``): its
backward all-reduces (sums) the incoming gradients and returns this rank's slice, which, combined
with DDP's gradient *averaging*, gives exactly the gradient of the global-batch loss when every
rank's loss is the mean over its own anchors (checked by ``tests/losses/test_dist.py``).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from lightly.utils.dist import gather as _lightly_gather
from lightly.utils.dist import rank, world_size

__all__ = ["gather_with_grad", "gather_no_grad", "is_distributed", "rank", "world_size"]


def is_distributed() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` from every process along dim 0, keeping the autograd graph.

    Identity when not distributed.

    Example:
        >>> z = torch.randn(4, 8, requires_grad=True)
        >>> gather_with_grad(z).shape  # single process
        torch.Size([4, 8])
    """
    if not is_distributed():
        return t
    return torch.cat(_lightly_gather(t.contiguous()), dim=0)


def gather_no_grad(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` (e.g. labels) from every process along dim 0, without gradients."""
    if not is_distributed():
        return t
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t.contiguous())
    return torch.cat(out, dim=0)
