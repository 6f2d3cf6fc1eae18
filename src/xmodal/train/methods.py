"""Fine-tuning methods: which weights train, from which initialisation, after which stage.

Every method is a `Method` record in the `METHODS` registry: whether the body starts from
pretrained weights, whether the embedder is first aligned to the source modality (ORCA),
and how the parameters to train are chosen (all of them, layer norms only as in FPT, the
embedder and head only, or LoRA adapters).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from torch import nn

from xmodal.model.network import CrossModalModel
from xmodal.registry import Registry

TRAINABLE: Registry[Callable[[CrossModalModel, int], None]] = Registry("trainable-parameter rule")


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    description: str
    trainable: str  # key in TRAINABLE
    pretrained: bool = True  # False: same body architecture, random initialisation
    align: bool = False  # run the alignment stage on the embedder before fine-tuning


METHODS: Registry[Method] = Registry("method")


def _method(name: str, description: str, trainable: str, **flags: bool) -> None:
    METHODS.add(name, Method(name, description, trainable, **flags))


_method("finetune", "fine-tune all weights from the pretrained body", "all")
_method("layernorm", "train embedder, head and the body's layer norms only (FPT)", "layernorm")
_method("linear-probe", "train embedder and head on a frozen body", "none")
_method("lora", "train embedder, head and LoRA adapters on the body", "lora")
_method("scratch", "same network, body randomly initialised, all weights", "all", pretrained=False)
_method("orca", "align the embedder to the source modality, then fine-tune all", "all", align=True)
_method("orca-layernorm", "align, then train layer norms, embedder, head", "layernorm", align=True)
_method("orca-lora", "align, then train LoRA adapters, embedder and head", "lora", align=True)


def apply_trainable(model: CrossModalModel, rule: str, lora_rank: int = 8) -> int:
    """Set `requires_grad` on the model's parameters by `rule`; return how many train."""
    for p in model.parameters():
        p.requires_grad_(True)
    TRAINABLE.get(rule)(model, lora_rank)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@TRAINABLE.register("all")
def _all(model: CrossModalModel, lora_rank: int) -> None:
    return None


@TRAINABLE.register("none")
def _frozen_body(model: CrossModalModel, lora_rank: int) -> None:
    model.body.requires_grad_(False)


@TRAINABLE.register("layernorm")
def _layer_norms(model: CrossModalModel, lora_rank: int) -> None:
    model.body.requires_grad_(False)
    for module in model.body.modules():
        if isinstance(module, nn.LayerNorm):
            module.requires_grad_(True)


@TRAINABLE.register("lora")
def _lora(model: CrossModalModel, lora_rank: int) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    targets = _attention_projections(model.body)
    config = LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, target_modules=targets)
    inject_adapter_in_model(config, model.body)
    for name, param in model.body.named_parameters():
        param.requires_grad_("lora_" in name)


def _attention_projections(body: nn.Module) -> list[str]:
    """Names of the linear layers that LoRA adapts: attention projections, else all linear."""
    names = {n.rsplit(".", 1)[-1] for n, m in body.named_modules() if isinstance(m, nn.Linear)}
    preferred = [n for n in ("query", "key", "value", "q_proj", "k_proj", "v_proj") if n in names]
    return preferred or sorted(names)
