import numpy as np
import pytest
import torch

from xmodal.bodies import load_body
from xmodal.data.arrays import prepare
from xmodal.data.splits import Splits
from xmodal.model.embedder import Embedder, patch_size
from xmodal.model.heads import DenseHead, PointHead
from xmodal.model.network import ModelConfig, build_model


@pytest.mark.parametrize(
    ("spatial", "max_tokens", "expected"),
    [((150,), 64, 3), ((150,), 150, 1), ((28, 28), 49, 4), ((8, 8), 64, 1), ((7, 9), 6, 4)],
)
def test_patch_size_is_the_smallest_that_fits(spatial, max_tokens, expected):
    assert patch_size(spatial, max_tokens) == expected


@pytest.mark.parametrize("spatial", [(37,), (13, 10)])
def test_embedder_token_count_and_width(spatial):
    embedder = Embedder(3, spatial, width=16, max_tokens=12)
    tokens = embedder(torch.randn(2, 3, *spatial))
    assert tokens.shape == (2, embedder.num_tokens, 16)
    assert embedder.num_tokens <= 12


def test_class_token_adds_one_token():
    embedder = Embedder(1, (40,), width=8, max_tokens=11, cls_token=True)
    assert embedder(torch.randn(2, 1, 40)).shape == (2, embedder.num_tokens, 8)
    assert embedder.num_tokens <= 11


@pytest.mark.parametrize("spatial", [(37,), (13, 10)])
def test_dense_head_folds_tokens_back_onto_the_input_grid(spatial):
    embedder = Embedder(1, spatial, width=8, max_tokens=10)
    head = DenseHead(8, 3, spatial, embedder.patch, embedder.grid)
    out = head(torch.randn(2, embedder.num_tokens, 8))
    assert out.shape == (2, 3, *spatial)


def test_dense_head_places_each_token_on_its_own_patch():
    # One token per patch of 4 positions: token t must fill positions 4t..4t+3.
    head = DenseHead(2, 1, (10,), patch=4, grid=(3,), squeeze=True)
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.weight[:, 0] = 1.0
        head.linear.bias.zero_()
    hidden = torch.zeros(1, 3, 2)
    hidden[0, :, 0] = torch.tensor([1.0, 2.0, 3.0])
    assert head(hidden).tolist() == [[1, 1, 1, 1, 2, 2, 2, 2, 3, 3]]


def test_point_head_pooling():
    head = PointHead(4, 2, pooling="cls")
    hidden = torch.randn(3, 5, 4)
    assert torch.allclose(head(hidden), head.linear(hidden[:, 0]))
    with pytest.raises(ValueError, match="pooling='max'"):
        PointHead(4, 2, pooling="max")


def test_model_config_checks_and_round_trip():
    config = ModelConfig(body="tiny-text", max_tokens=16)
    assert ModelConfig.from_yaml(config.to_yaml()) == config
    with pytest.raises(ValueError, match="valid keys are"):
        ModelConfig.from_dict({"bdy": "minilm"})
    with pytest.raises(ValueError, match="max_tokens must be > 0"):
        ModelConfig(max_tokens=0)


def _data(x, y):
    return prepare(Splits(x, y, x, y))


def test_build_model_outputs_match_targets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 2, 30)).astype(np.float32)
    body = load_body("tiny-text")
    cases = {(4, 3): rng.integers(0, 2, (4, 3)), (4,): rng.normal(size=4),
             (4, 2, 30): rng.normal(size=(4, 2, 30))}  # fmt: skip
    for shape, y in cases.items():
        model = build_model(ModelConfig(max_tokens=8), _data(x, y), body)
        assert model(torch.from_numpy(x)).shape == shape


def test_embedder_starts_from_pretrained_positions_when_the_body_is_pretrained():
    body = load_body("tiny-vision")  # random, but exercise the vision code path
    embedder = Embedder(1, (16, 16), body.width, max_tokens=16)
    embedder.init_from_body(body)
    assert embedder.positions.shape == (1, 16, body.width)
    assert torch.isfinite(embedder.positions).all()
    proj = body.patch_projection()
    assert proj is not None
    expected = proj.weight.mean(dim=1).sum() * (proj.kernel_size[0] / embedder.patch) ** 2
    assert torch.allclose(embedder.projection.weight.sum(), expected, rtol=1e-3, atol=1e-4)
