"""Heads (predictors) that map the body's hidden states to task outputs.

Point tasks pool the tokens (mean, or the class token) and apply a linear layer; dense
tasks apply a linear layer to every token that emits the outputs of the positions that
token covers, then fold them back onto the input grid and crop the padding.
"""

from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("mean", "cls")


class PointHead(nn.Module):
    """(N, T, D) hidden states to (N, K) outputs (or (N,) when `squeeze`)."""

    def __init__(self, width: int, num_outputs: int, pooling: str = "mean", squeeze: bool = False):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not supported; choose one of {POOLINGS}")
        self.pooling = pooling
        self.squeeze = squeeze
        self.linear = nn.Linear(width, num_outputs)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        pooled = hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)  # (N, D)
        out = self.linear(pooled)  # (N, K)
        return out.squeeze(-1) if self.squeeze else out


class DenseHead(nn.Module):
    """(N, T, D) hidden states to (N, K, *spatial) outputs, one per input position.

    Args:
        width: D.
        num_outputs: K, outputs per position.
        spatial: the input's (L,) or (H, W).
        patch: stride (1D) or patch side (2D) of the embedder.
        grid: the embedder's token grid, (T,) or (h, w).
        skip_tokens: leading tokens that cover no position (a class token).
        squeeze: drop the K axis (targets given as (N, *spatial)).
    """

    def __init__(
        self,
        width: int,
        num_outputs: int,
        spatial: tuple[int, ...],
        patch: int,
        grid: tuple[int, ...],
        skip_tokens: int = 0,
        squeeze: bool = False,
    ) -> None:
        super().__init__()
        self.k, self.patch, self.grid = num_outputs, patch, tuple(grid)
        self.spatial = tuple(spatial)
        self.skip_tokens, self.squeeze = skip_tokens, squeeze
        self.linear = nn.Linear(width, num_outputs * patch ** len(spatial))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out = self.linear(hidden[:, self.skip_tokens :])  # (N, T, K * p^dims)
        n, p = len(out), self.patch
        if len(self.grid) == 1:
            out = out.reshape(n, self.grid[0], self.k, p)  # (N, T, K, p)
            out = out.permute(0, 2, 1, 3).reshape(n, self.k, self.grid[0] * p)  # (N, K, T*p)
        else:
            h, w = self.grid
            out = out.reshape(n, h, w, self.k, p, p)  # (N, h, w, K, p, p)
            out = out.permute(0, 3, 1, 4, 2, 5).reshape(n, self.k, h * p, w * p)  # (N, K, H', W')
        out = out[(slice(None), slice(None), *(slice(0, s) for s in self.spatial))]
        return out.squeeze(1) if self.squeeze else out
