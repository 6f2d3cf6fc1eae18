"""The embedder: turns a 1D or 2D target input into a token sequence of the body's width.

As in ORCA, a strided convolution (kernel = stride) cuts the input into patches, then
position embeddings and a layer norm make the tokens look like the body's own input
embeddings. The embedder is the part the alignment stage trains; it can start from the
body's pretrained position embeddings, embedding norm and (for vision bodies) patch
projection.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from xmodal.bodies.base import Body


def patch_size(spatial: tuple[int, ...], max_tokens: int) -> int:
    """Smallest stride (1D) or square patch side (2D) giving at most `max_tokens` tokens."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    size = 1
    while _token_grid(spatial, size, prod=True) > max_tokens:
        size += 1
    return size


def _token_grid(spatial: tuple[int, ...], size: int, prod: bool = False) -> tuple[int, ...] | int:
    grid = tuple(math.ceil(s / size) for s in spatial)
    return math.prod(grid) if prod else grid


class Standardize(nn.Module):
    """Per-channel standardisation with statistics taken from the training inputs."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        dims = [0, *range(2, x.dim())]  # every axis but channels
        self.mean.copy_(x.mean(dim=dims))
        self.std.copy_(x.std(dim=dims).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)


class Embedder(nn.Module):
    """(N, C, L) or (N, C, H, W) inputs to (N, T, D) tokens.

    Args:
        in_channels: C.
        spatial: (L,) or (H, W) of the inputs.
        width: D, the body's hidden size.
        max_tokens: upper bound on T; the stride/patch size is the smallest that fits.
        cls_token: prepend a learned class token (T grows by one).
        dropout: dropout on the tokens.
    """

    def __init__(
        self,
        in_channels: int,
        spatial: tuple[int, ...],
        width: int,
        max_tokens: int,
        cls_token: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.spatial = tuple(spatial)
        self.dims = len(spatial)
        self.patch = patch_size(self.spatial, max_tokens - int(cls_token))
        self.grid = _token_grid(self.spatial, self.patch)
        conv = nn.Conv1d if self.dims == 1 else nn.Conv2d
        self.standardize = Standardize(in_channels)
        self.projection = conv(in_channels, width, kernel_size=self.patch, stride=self.patch)
        self.positions = nn.Parameter(torch.randn(1, math.prod(self.grid), width) * 0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, width)) if cls_token else None
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid) + int(self.cls is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x)
        x = F.pad(x, self._padding())  # spatial sizes become multiples of the patch
        tokens = self.projection(x).flatten(2).transpose(1, 2)  # (N, T, D)
        tokens = tokens + self.positions
        if self.cls is not None:
            tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1)
        return self.dropout(self.norm(tokens))

    def _padding(self) -> tuple[int, ...]:
        pads = []
        for size, n in zip(reversed(self.spatial), reversed(self.grid)):
            pads += [0, n * self.patch - size]  # F.pad lists the last axis first
        return tuple(pads)

    @torch.no_grad()
    def init_from_body(self, body: Body) -> None:
        """Start from the body's pretrained positions, embedding norm and patch projection."""
        table = body.position_embeddings()
        if table is not None:
            self.positions.copy_(self._fit_positions(table.to(self.positions))[None])
        norm = body.embedding_norm()
        if norm is not None:
            self.norm.load_state_dict(norm.state_dict())
        proj = body.patch_projection()
        if proj is not None and self.dims == 2:
            self._init_projection(proj)

    def _fit_positions(self, table: torch.Tensor) -> torch.Tensor:
        """Resize a pretrained (P, D) position table to this embedder's (T, D) grid."""
        t = math.prod(self.grid)
        side = math.isqrt(len(table))
        if self.dims == 2 and side * side == len(table):  # a vision body's square grid
            square = table.T.reshape(1, -1, side, side)  # (1, D, side, side)
            resized = F.interpolate(square, size=self.grid, mode="bicubic", align_corners=False)
            return resized.flatten(2)[0].T  # (T, D)
        if len(table) >= t:  # a text body's sequence positions
            return table[:t]
        line = table.T[None]  # (1, D, P)
        return F.interpolate(line, size=t, mode="linear", align_corners=False)[0].T  # (T, D)

    def _init_projection(self, proj: nn.Conv2d) -> None:
        """Average the pretrained filters over colour channels and resize them to our patch."""
        weight = proj.weight.mean(dim=1, keepdim=True)  # (D, 1, k, k)
        k = weight.shape[-1]
        weight = F.interpolate(weight, size=(self.patch, self.patch), mode="bilinear")
        weight = weight * (k / self.patch) ** 2  # keep the response to a constant patch
        channels = self.projection.in_channels
        self.projection.weight.copy_(weight.expand(-1, channels, -1, -1) / channels)
        if proj.bias is not None:
            self.projection.bias.copy_(proj.bias)
