"""The cross-modal network: embedder -> pretrained body -> head.

`build_model(config, data)` assembles the three parts for a checked dataset; the same
function rebuilds a saved run, with the body's architecture from the run folder.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import nn

from xmodal.bodies.base import Body
from xmodal.config import Config, check_choice, check_positive
from xmodal.data.arrays import TaskData
from xmodal.model.embedder import Embedder
from xmodal.model.heads import POOLINGS, DenseHead, PointHead

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ModelConfig(Config):
    """How to build the network around the body."""

    body: str = "minilm"
    """Packaged body name (see `xmodal bodies`), Hugging Face hub id or local folder."""
    max_tokens: int = 64
    """Upper bound on the token sequence length; the embedder's stride is the smallest that
    fits. Capped by the body's own limit. Fewer tokens train faster on a CPU."""
    pooling: str = "mean"
    """How a point head summarises tokens: "mean" or "cls" (a learned class token)."""
    init_embedder_from_body: bool = True
    """Start the embedder from the body's pretrained positions, norm and patch projection."""
    dropout: float = 0.0
    """Dropout on the embedder's tokens."""

    def __post_init__(self) -> None:
        check_positive("max_tokens", self.max_tokens)
        check_choice("pooling", self.pooling, POOLINGS)
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")


class TargetScaler(nn.Module):
    """Maps regression targets to zero mean and unit variance and back."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    @torch.no_grad()
    def fit(self, y: torch.Tensor) -> None:
        self.mean.copy_(y.mean())
        self.std.copy_(y.std().clamp_min(1e-6) if y.numel() > 1 else torch.ones(()))

    def scale(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.mean) / self.std

    def unscale(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean


class CrossModalModel(nn.Module):
    """Embedder, body and head. `forward` returns raw outputs in the loss's space."""

    def __init__(self, embedder: Embedder, body: Body, head: nn.Module, regression: bool):
        super().__init__()
        self.embedder, self.body, self.head = embedder, body, head
        self.target_scaler = TargetScaler() if regression else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.embedder(x)))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs in the targets' units (logits for classification)."""
        out = self(x)
        return self.target_scaler.unscale(out) if self.target_scaler is not None else out


def build_model(config: ModelConfig, data: TaskData, body: Body) -> CrossModalModel:
    """Assemble the network for `data` around `body`."""
    max_tokens = min(config.max_tokens, body.info.max_tokens)
    cls = config.pooling == "cls" and not data.dense
    embedder = Embedder(
        data.in_channels, data.spatial, body.width, max_tokens, cls_token=cls,
        dropout=config.dropout,
    )  # fmt: skip
    if config.init_embedder_from_body and body.info.pretrained:
        embedder.init_from_body(body)
    head = _build_head(config, data, body.width, embedder)
    regression = data.task_type in ("regression", "dense-regression")
    logger.info(
        "model: %s body (width %d), %d tokens of patch %d, %s head",
        body.info.name, body.width, embedder.num_tokens, embedder.patch, type(head).__name__,
    )  # fmt: skip
    return CrossModalModel(embedder, body, head, regression)


def _build_head(config: ModelConfig, data: TaskData, width: int, embedder: Embedder) -> nn.Module:
    if not data.dense:
        pooling = "cls" if embedder.cls is not None else "mean"
        return PointHead(width, data.num_outputs, pooling, squeeze=data.squeeze_output)
    return DenseHead(
        width, data.num_outputs, data.spatial, embedder.patch, embedder.grid,
        skip_tokens=int(embedder.cls is not None), squeeze=data.squeeze_output,
    )  # fmt: skip
