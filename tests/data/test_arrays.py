import numpy as np
import pytest

from xmodal.data.arrays import DataError, carve_validation, infer_task, load_npz, prepare
from xmodal.data.splits import Splits

RNG = np.random.default_rng(0)


def splits(x, y, xt=None, yt=None):
    return Splits(x, y, x if xt is None else xt, y if yt is None else yt)


@pytest.mark.parametrize(
    ("y", "spatial", "expected"),
    [
        (np.array([0, 1, 2]), (10,), "classification"),
        (np.array([0.5, 1.5]), (10,), "regression"),
        (np.ones((3, 4), dtype=np.int64), (10,), "multilabel"),
        (RNG.normal(size=(3, 4)), (10,), "regression"),
        (np.zeros((3, 10), dtype=np.int64) + 2, (10,), "dense-classification"),
        (RNG.normal(size=(3, 10)), (10,), "dense-regression"),
        (RNG.normal(size=(3, 2, 10)), (10,), "dense-regression"),
        (np.ones((3, 2, 10), dtype=np.int64), (10,), "dense-multilabel"),
        (np.zeros((3, 6, 6), dtype=np.int64), (6, 6), "dense-classification"),
        (RNG.normal(size=(3, 6, 6)), (6, 6), "dense-regression"),
        (RNG.normal(size=(3, 1, 6, 6)), (6, 6), "dense-regression"),
    ],
)
def test_infer_task(y, spatial, expected):
    assert infer_task(y, spatial) == expected


@pytest.mark.parametrize(
    ("y", "spatial"),
    [
        (np.ones((3, 4)), (10,)),  # float 0/1 (N, K): multi-label or regression?
        (np.ones((3, 10), dtype=np.int64), (10,)),  # 0/1 (N, L) with K == L
        (np.ones((3, 2, 10), dtype=np.int64) * 3, (10,)),  # integer non-binary (N, K, L)
    ],
)
def test_ambiguous_targets_say_how_to_state_the_task(y, spatial):
    with pytest.raises(DataError, match="--task"):
        infer_task(y, spatial)


def test_inputs_are_brought_to_channel_form():
    x2 = RNG.normal(size=(5, 30)).astype(np.float32)
    data = prepare(splits(x2, np.arange(5) % 2))
    assert data.splits.x_train.shape == (5, 1, 30) and data.dims == 1
    x3 = RNG.normal(size=(5, 7, 7))
    data = prepare(splits(x3, np.arange(5) % 2), dims=2)
    assert data.splits.x_train.shape == (5, 1, 7, 7) and data.dims == 2
    assert data.splits.x_train.dtype == np.float32
    data = prepare(splits(x3, np.arange(5) % 2))
    assert data.splits.x_train.shape == (5, 7, 7) and data.in_channels == 7


def test_explicit_task_overrides_inference():
    x = RNG.normal(size=(6, 2, 10))
    y = np.ones((6, 4))
    assert prepare(splits(x, y), task="multilabel").task_type == "multilabel"
    assert prepare(splits(x, y), task="regression").num_outputs == 4


def test_num_outputs_and_squeeze():
    x = RNG.normal(size=(6, 2, 10))
    assert prepare(splits(x, np.arange(6) % 3)).num_outputs == 3
    reg = prepare(splits(x, RNG.normal(size=6)))
    assert (reg.num_outputs, reg.squeeze_output) == (1, True)
    dense = prepare(splits(x, RNG.normal(size=(6, 3, 10))))
    assert (dense.num_outputs, dense.squeeze_output) == (3, False)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: splits(RNG.normal(size=(4,)), np.zeros(4, int)), "expected"),
        (lambda: splits(RNG.normal(size=(2, 1, 2, 3, 4)), np.zeros(2, int)), "expected"),
        (lambda: splits(np.full((4, 1, 5), np.nan), np.arange(4) % 2), "NaN"),
        (lambda: splits(np.full((4, 1, 5), np.inf), np.arange(4) % 2), "NaN"),
        (lambda: splits(RNG.normal(size=(4, 1, 5)), np.array([0, 1, 0, np.nan])), "NaN"),
        (lambda: splits(RNG.normal(size=(4, 1, 5)), np.arange(3)), "4 examples but y_train has 3"),
        (
            lambda: splits(RNG.normal(size=(4, 1, 5)), np.arange(4) % 2, yt=np.array([0, 1, 5, 0])),
            "out of range",
        ),
        (lambda: splits(RNG.normal(size=(4, 1, 5)), np.array([0, -1, 0, 1])), "negative"),
        (lambda: splits(np.zeros((0, 1, 5)), np.zeros(0, int)), "empty"),
        (
            lambda: splits(
                RNG.normal(size=(4, 1, 5)), np.arange(4) % 2, xt=RNG.normal(size=(4, 1, 6))
            ),
            "items have shape",
        ),
        (lambda: splits(np.array([["a"] * 3] * 2), np.arange(2)), "numeric"),
        (lambda: splits(RNG.normal(size=(4, 1, 5)), np.zeros(4, int)), "at least 2 classes"),
    ],
)
def test_bad_input_is_rejected_with_its_message(make, message):
    with pytest.raises(DataError, match=message):
        prepare(make())


def test_bad_task_and_dims_name_the_choices():
    x, y = RNG.normal(size=(4, 1, 5)), np.arange(4) % 2
    with pytest.raises(DataError, match="choose one of"):
        prepare(splits(x, y), task="segmentation")
    with pytest.raises(DataError, match="choose 1 or 2"):
        prepare(splits(x, y), dims=3)


def test_load_npz_requires_the_four_arrays(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((2, 3)), y_train=np.zeros(2))
    with pytest.raises(DataError, match=r"lacks array\(s\) \['x_test', 'y_test'\]"):
        load_npz(path)
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")
    np.savez(path, x_train=np.zeros((2, 3)), y_train=np.zeros(2), x_test=np.zeros((1, 3)),
             y_test=np.zeros(1), x_val=np.zeros((1, 3)))  # fmt: skip
    with pytest.raises(DataError, match="both x_val and y_val"):
        load_npz(path)


def test_validation_is_carved_from_train_per_class_never_from_test():
    x = RNG.normal(size=(40, 1, 5)).astype(np.float32)
    y = np.array([0] * 30 + [1] * 10)
    xt = RNG.normal(size=(7, 1, 5)).astype(np.float32)
    data = carve_validation(prepare(Splits(x, y, xt, np.arange(7) % 2)), fraction=0.2, seed=1)
    s = data.splits
    assert len(s.x_train) + len(s.x_val) == 40 and len(s.x_test) == 7
    assert sorted(np.bincount(s.y_val)) == [2, 6]
    merged = np.concatenate([s.x_train, s.x_val]).reshape(40, -1)
    assert {tuple(r) for r in merged} == {tuple(r) for r in x.reshape(40, -1)}
