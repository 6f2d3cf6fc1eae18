"""The pretrained transformer body that xmodal wraps, cut out of a Hugging Face model.

A `Body` keeps only what runs between the embedder and the head: the encoder layers and,
where the model has one, its final layer norm. The pretrained pieces an embedder can be
initialised from (position embeddings, the embedding layer norm, a vision patch projection)
and the model's own input embeddings (for proxy source features) stay reachable from it.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

MODALITIES = ("text", "vision", "protein", "any")


@dataclasses.dataclass(frozen=True)
class BodyInfo:
    """What the rest of xmodal needs to know about a body."""

    name: str  # short name or hub id / folder it came from
    modality: str  # the source modality: "text", "vision", "protein" or "any"
    width: int  # hidden size D
    max_tokens: int  # longest token sequence the body accepts
    pretrained: bool  # False when the weights are a random initialisation
    folder: str | None = None  # local folder with the model's files (tokenizer), if any


class Body(nn.Module):
    """Transformer layers mapping token embeddings (B, T, D) to hidden states (B, T, D).

    Args:
        info: name, modality, width and length limit.
        hf_model: the whole Hugging Face model; its encoder (and final norm) become
            children of the body, the rest (input embeddings) is kept unregistered so it is
            neither trained nor saved with the body.
    """

    def __init__(self, info: BodyInfo, hf_model: nn.Module) -> None:
        super().__init__()
        self.info = info
        self.encoder = _find_encoder(hf_model)
        norm = getattr(hf_model, "layernorm", None)
        self.final_norm = norm if isinstance(norm, nn.LayerNorm) else None
        object.__setattr__(self, "hf_model", hf_model)

    @property
    def width(self) -> int:
        return self.info.width

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        out = self.encoder(embeds)
        hidden = out[0] if isinstance(out, tuple) else out.last_hidden_state  # (B, T, D)
        return self.final_norm(hidden) if self.final_norm is not None else hidden

    @property
    def input_embeddings(self) -> nn.Module:
        """The model's own embedding module (tokens or patches to vectors)."""
        return self.hf_model.embeddings

    def position_embeddings(self) -> torch.Tensor | None:
        """Pretrained position embeddings (P, D) without any class-token row, if any."""
        emb = self.hf_model.embeddings
        table = getattr(emb, "position_embeddings", None)
        if isinstance(table, nn.Embedding):  # BERT-style: (max_positions, D)
            return table.weight.detach()
        if isinstance(table, nn.Parameter):  # ViT-style: (1, 1 + P, D), row 0 is the class token
            return table.detach()[0, 1:]
        return None

    def embedding_norm(self) -> nn.LayerNorm | None:
        """The layer norm applied to input embeddings (BERT-style bodies), if any."""
        norm = getattr(self.hf_model.embeddings, "LayerNorm", None)
        return norm if isinstance(norm, nn.LayerNorm) else None

    def patch_projection(self) -> nn.Conv2d | None:
        """The pretrained patch convolution of a vision body, if any."""
        patches = getattr(self.hf_model.embeddings, "patch_embeddings", None)
        proj = getattr(patches, "projection", None)
        return proj if isinstance(proj, nn.Conv2d) else None


def _find_encoder(hf_model: nn.Module) -> nn.Module:
    encoder = getattr(hf_model, "encoder", None)
    if encoder is None:
        raise TypeError(
            f"{type(hf_model).__name__} has no `.encoder` submodule; xmodal needs an encoder "
            "model (BERT, RoBERTa, ViT, DINOv2 and similar) whose layers take hidden states"
        )
    return encoder
