"""Seeded tiny labeled point sets shared by the alignment tests."""

from __future__ import annotations

import torch


def clusters(
    sizes: list[int],
    dim: int = 2,
    spread: float = 2.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    labels: list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (sum(sizes), dim) around one random centre per class, and their labels.

    Class k has sizes[k] points with unit spread around its centre; centres have `spread`.
    """
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(len(sizes), dim, generator=generator, dtype=dtype) * spread
    names = labels if labels is not None else list(range(len(sizes)))
    x = [c + torch.randn(n, dim, generator=generator, dtype=dtype) for c, n in zip(centres, sizes)]
    y = [torch.full((n,), name) for name, n in zip(names, sizes)]
    return torch.cat(x), torch.cat(y)
