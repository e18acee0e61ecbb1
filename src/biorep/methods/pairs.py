"""Multi-view bookkeeping shared by the two-view paradigms.

With more than two crops (multi-crop), a two-view loss is averaged over **every unordered pair of
crops** (i < j). This is the simple, symmetric choice; solo-learn instead pairs the large crops
with all crops. With the usual two views it is the single standard pair.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

from torch import Tensor


def mean_over_pairs(n_views: int, loss_fn: Callable[[int, int], Tensor]) -> Tensor:
    """Average ``loss_fn(i, j)`` over all view pairs i < j."""
    pairs = list(combinations(range(n_views), 2))
    if not pairs:
        raise ValueError("a two-view loss needs at least two views")
    return sum(loss_fn(i, j) for i, j in pairs) / len(pairs)  # type: ignore[return-value]
