import numpy as np
import pytest
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression

from xmodal.bench.classic import (
    MISSING_CLASS_SCORE,
    ClassicConfig,
    _cap_rows,
    _class_scores,
    baseline_for,
    fit_classic,
)
from xmodal.data.arrays import carve_validation, prepare
from xmodal.data.splits import Splits
from xmodal.train.metrics import DEFAULT_METRIC, get_metric


def _split(x: np.ndarray, y: np.ndarray, n_train: int) -> Splits:
    return Splits(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def easy_sines(n: int = 60, seed: int = 0) -> Splits:
    """1-D, two classes: a slow or a fast sine with a random phase, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    t = np.linspace(0, 1, 64)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    x = np.sin(2 * np.pi * np.where(y[:, None] == 1, 6, 2) * t + phase)
    x = x + 0.3 * rng.normal(size=x.shape)
    return _split(x[:, None].astype(np.float32), y, 40)


def easy_quadrants(n: int = 80, seed: int = 0) -> Splits:
    """2-D, four classes: the bright quadrant of an 8x8 noisy image."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(scale=0.5, size=(n, 1, 8, 8)).astype(np.float32)
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, 0, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 2.0
    return _split(x, y, 56)


def easy_multilabel(n: int = 80, seed: int = 0) -> Splits:
    """Label j is on when channel j is bright on average."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (n, 3))
    x = rng.normal(size=(n, 3, 16)) + 1.5 * (2 * y[:, :, None] - 1)
    return _split(x.astype(np.float32), y, 56)


def easy_dense(task: str, n: int = 40, seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    if task == "dense-regression":  # a global linear map: needs more examples than pixels
        x = rng.normal(size=(10 * n, 1, 8, 8)).astype(np.float32)
        return _split(x, 2 * x + 1, 10 * n - 10)
    x = rng.normal(size=(n, 2, 32)).astype(np.float32)
    if task == "dense-classification":
        return _split(x, (x[:, 0] > 0).astype(np.int64), 30)  # (N, L)
    return _split(x, (x > 0).astype(np.int64), 30)  # dense-multilabel: (N, K, L)


def easy_regression(n: int = 60, seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2, 12)).astype(np.float32)
    return _split(x, 3 * x[:, 0].mean(axis=1) + 1, 45)


def _fit(splits: Splits, task: str, dims: int | None = None, **config):
    data = carve_validation(prepare(splits, task, dims), 0.2, seed=0)
    metric = get_metric(DEFAULT_METRIC[task], task)
    return data, fit_classic(data, metric, ClassicConfig(**config), seed=0)


def test_rocket_beats_chance_on_sines():
    pytest.importorskip("numba")
    data, result = _fit(easy_sines(), "classification", rocket_kernels=200)
    assert result.baseline == "rocket"
    assert result.test_outputs.shape == (20, 2)
    assert result.test < 0.2  # chance: 0.5
    assert result.metric == "error" and result.direction == "min"


def test_logistic_beats_chance_on_images():
    data, result = _fit(easy_quadrants(), "classification")
    assert result.baseline == "logistic"
    assert result.test_outputs.shape == (24, 4)
    assert result.test < 0.2  # chance: 0.75
    assert result.strength in (0.01, 0.1, 1.0, 10.0)


def test_one_vs_rest_beats_chance_on_multilabel():
    data, result = _fit(easy_multilabel(), "multilabel")
    assert result.baseline == "one-vs-rest-logistic"
    assert result.test_outputs.shape == (24, 3)
    assert result.metric == "map" and result.test > 0.9  # chance: the positive rate, ~0.5


def test_ridge_beats_the_mean_on_regression():
    splits = easy_regression()
    data, result = _fit(splits, "regression")
    assert result.baseline == "ridge"
    assert result.test_outputs.shape == splits.y_test.shape
    mean_guess = np.mean(np.abs(splits.y_test - splits.y_train.mean()))
    assert result.test < 0.5 * mean_guess


@pytest.mark.parametrize(
    "task, baseline, shape, beats",
    [
        ("dense-classification", "window-logistic", (10, 2, 32), lambda v: v > 0.9),  # macro-f1
        ("dense-multilabel", "window-one-vs-rest-logistic", (10, 2, 32), lambda v: v < 0.7),
        ("dense-regression", "ridge", (10, 1, 8, 8), lambda v: v < 0.1),  # rel-l2; mean: ~1
    ],
)
def test_dense_baselines_give_per_position_outputs(task, baseline, shape, beats):
    metric = {"dense-classification": "macro-f1"}.get(task, DEFAULT_METRIC[task])
    data = carve_validation(prepare(easy_dense(task), task), 0.2, seed=0)
    result = fit_classic(data, get_metric(metric, task), ClassicConfig(window_radius=1))
    assert result.baseline == baseline
    assert result.test_outputs.shape == shape
    assert beats(result.test)  # dense-multilabel nll of chance: 2 log 2 = 1.39


def test_training_rows_are_capped():
    x, y = np.arange(200).reshape(100, 2), np.arange(100)
    kept_x, kept_y = _cap_rows(x, y, ClassicConfig(max_rows=30), seed=0)
    assert kept_x.shape == (30, 2) and len(set(kept_y.tolist())) == 30  # no row twice
    assert np.array_equal(kept_x[:, 0], 2 * kept_y)  # rows stay with their targets
    assert _cap_rows(x, y, ClassicConfig(max_rows=100), seed=0)[0] is x  # under the cap
    data, capped = _fit(easy_dense("dense-classification"), "dense-classification", max_rows=50)
    assert capped.test_outputs.shape == (10, 2, 32)
    assert np.isfinite(capped.test)


def test_a_class_missing_from_training_gets_the_missing_score():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(30, 3))
    labels = np.where(rows[:, 0] > 0, 2, 0)  # class 1 never appears
    model = LogisticRegression().fit(rows, labels)
    scores = _class_scores(model, rows, k=3)
    assert scores.shape == (30, 3)
    assert np.all(scores[:, 1] == MISSING_CLASS_SCORE)
    # Binary decision values are split so that the softmax gives the model's probabilities.
    probs = softmax(scores[:, [0, 2]], axis=1)
    np.testing.assert_allclose(probs, model.predict_proba(rows), rtol=1e-4, atol=1e-6)


def test_a_single_class_training_set_predicts_that_class():
    x = np.random.default_rng(0).normal(size=(12, 1, 8, 8)).astype(np.float32)
    splits = Splits(x[:8], np.ones(8, np.int64), x[8:], np.array([1, 1, 0, 1]))
    data = carve_validation(prepare(splits, "classification", num_outputs=2), 0.25, seed=0)
    result = fit_classic(data, get_metric("error", "classification"))
    assert result.test_outputs.argmax(1).tolist() == [1, 1, 1, 1]
    assert result.test == pytest.approx(0.25)


def test_every_task_type_has_a_baseline_and_bad_input_is_named():
    assert baseline_for("classification", 1).name == "rocket"
    assert baseline_for("classification", 2).name == "logistic"
    with pytest.raises(ValueError, match="task_type='ranking'"):
        baseline_for("ranking", 1)
    with pytest.raises(ValueError, match="max_rows"):
        ClassicConfig(max_rows=0)
