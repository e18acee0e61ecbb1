"""Per-sample random draws that honour an optional (possibly CPU) ``torch.Generator``."""

from __future__ import annotations

import torch


def uniform(
    n: int,
    low: float,
    high: float,
    device: torch.device,
    generator: torch.Generator | None = None,
    *,
    shape: tuple[int, ...] = (),
) -> torch.Tensor:
    """``n`` (× ``shape``) floats uniform in ``[low, high)`` on ``device``.

    With a generator the draw happens on the generator's device and is moved afterwards, so a CPU
    generator seeds GPU augmentations reproducibly.
    """
    gdev = generator.device if generator is not None else device
    u = torch.rand((n, *shape), generator=generator, device=gdev)
    return (low + (high - low) * u).to(device)


def bernoulli(
    n: int, p: float, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A boolean mask of ``n`` independent draws that are True with probability ``p``."""
    return uniform(n, 0.0, 1.0, device, generator) < p


def choice(
    n: int, values: list[int], device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` integers drawn uniformly from ``values``."""
    gdev = generator.device if generator is not None else device
    idx = torch.randint(len(values), (n,), generator=generator, device=gdev)
    return torch.as_tensor(values, device=gdev)[idx].to(device)
