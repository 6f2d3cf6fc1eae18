"""Classic baselines: one non-transformer model per task type, from maintained libraries.

A baseline turns inputs into feature rows (ROCKET features, flattened inputs, or a local window
around every position), fits a linear model for each regularisation strength of a small grid,
keeps the strength that scores best on the validation split, and returns outputs shaped like the
cross-modal network's (class logits, label logits or values). The task's own metric therefore
scores both on the whole test set in the same way, and the test set chooses nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.linalg import LinAlgWarning
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.preprocessing import StandardScaler

from xmodal.config import Config, check_positive
from xmodal.data.arrays import TaskData
from xmodal.data.splits import Splits
from xmodal.registry import Registry
from xmodal.train.metrics import Metric, get_metric

if TYPE_CHECKING:
    from xmodal.api import RunConfig

logger = logging.getLogger(__name__)

# Score of a class that the training rows never showed: a log-probability of about 1e-13, so
# the class is (almost) never predicted while `nll` stays finite.
MISSING_CLASS_SCORE = -30.0


@dataclasses.dataclass
class ClassicConfig(Config):
    """Settings of the classic baselines (benchmark method "classic")."""

    rocket_kernels: int = 2000
    """Random convolution kernels of ROCKET (1-D classification); each gives two features."""
    window_radius: int = 2
    """Dense classification and multi-label: a position's features are the input channels
    within this many positions on each side (2r+1 positions in 1-D, (2r+1)^2 pixels in 2-D)."""
    max_rows: int = 20000
    """At most this many training rows (examples, or positions for dense tasks), sampled."""
    max_iter: int = 300
    """Iteration limit of the logistic-regression solver."""

    def __post_init__(self) -> None:
        for name in ("rocket_kernels", "max_rows", "max_iter"):
            check_positive(name, getattr(self, name))
        check_positive("window_radius", self.window_radius, allow_zero=True)


# ---------------------------------------------------------------------------------------------
# Feature maps: inputs (N, C, *S) -> rows. Point maps give one row per example; dense maps one
# row per position, and convert targets and outputs between the two layouts.


class _PointRows:
    """One row per example: targets and outputs keep their own layout."""

    def target_rows(self, y: np.ndarray, task_type: str) -> np.ndarray:
        return y

    def outputs(self, scores: np.ndarray, n: int, spatial: tuple[int, ...]) -> np.ndarray:
        return scores


class FlattenFeatures(_PointRows):
    """Each example's input flattened to one row, standardised with training statistics."""

    def __init__(self, config: ClassicConfig, seed: int) -> None:
        self.scaler = StandardScaler()

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        return self.scaler.fit_transform(x.reshape(len(x), -1))  # (N, C * prod(S))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return self.scaler.transform(x.reshape(len(x), -1))


class RocketFeatures(_PointRows):
    """ROCKET (Dempster, Petitjean and Webb 2020) through sktime: for each random convolution
    kernel, the maximum and the proportion of positive values of the convolved series."""

    def __init__(self, config: ClassicConfig, seed: int) -> None:
        try:
            from sktime.transformations.rocket import Rocket
        except ImportError as exc:  # sktime or its numba dependency is missing
            raise ImportError(
                f"the ROCKET baseline needs sktime and numba ({exc}); "
                "install them with `pip install sktime numba`"
            ) from exc
        self.rocket = Rocket(num_kernels=config.rocket_kernels, random_state=seed, n_jobs=1)
        self.scaler = StandardScaler()

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        self.rocket.fit(x.astype(np.float64))
        return self.scaler.fit_transform(self._raw(x))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return self.scaler.transform(self._raw(x))

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.rocket.transform(x.astype(np.float64)))  # (N, 2 * kernels)


class WindowFeatures:
    """One row per position: the standardised input channels in a window centred on it.

    Inputs are padded with zeros (the training mean after standardisation) at the borders.
    """

    def __init__(self, config: ClassicConfig, seed: int) -> None:
        self.radius = config.window_radius

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        axes = (0, *range(2, x.ndim))
        self.mean = x.mean(axis=axes, keepdims=True)  # (1, C, 1, ...)
        self.std = x.std(axis=axes, keepdims=True) + 1e-6
        return self.transform(x)

    def transform(self, x: np.ndarray) -> np.ndarray:
        d, width = x.ndim - 2, 2 * self.radius + 1
        z = np.pad((x - self.mean) / self.std, [(0, 0), (0, 0)] + [(self.radius,) * 2] * d)
        windows = sliding_window_view(z, (width,) * d, axis=tuple(range(2, 2 + d)))
        windows = np.moveaxis(windows, 1, 1 + d)  # (N, C, *S, *w) -> (N, *S, C, *w)
        return windows.reshape(-1, x.shape[1] * width**d)  # (N * prod(S), C * w^d)

    def target_rows(self, y: np.ndarray, task_type: str) -> np.ndarray:
        if task_type == "dense-classification":
            return y.reshape(-1)  # (N, *S) -> (N * prod(S),)
        return np.moveaxis(y, 1, -1).reshape(-1, y.shape[1])  # (N, K, *S) -> (N * prod(S), K)

    def outputs(self, scores: np.ndarray, n: int, spatial: tuple[int, ...]) -> np.ndarray:
        return np.moveaxis(scores.reshape(n, *spatial, -1), -1, 1)  # (N * P, K) -> (N, K, *S)


FEATURES: Registry[Callable[[ClassicConfig, int], object]] = Registry("feature map")
FEATURES.add("flatten", FlattenFeatures)
FEATURES.add("rocket", RocketFeatures)
FEATURES.add("window", WindowFeatures)


# ---------------------------------------------------------------------------------------------
# Estimators: fit on rows for one regularisation strength; return rows -> raw outputs.

Predictor = Callable[[np.ndarray], np.ndarray]
ESTIMATORS: Registry[Callable[..., Predictor]] = Registry("classic estimator")


def _or_constant(model, rows: np.ndarray, labels: np.ndarray):
    """Fit `model`, or a class-prior predictor when the rows hold a single class."""
    if np.unique(labels).size < 2:
        model = DummyClassifier(strategy="prior")
    return _quiet_fit(model, rows, labels)


def _quiet_fit(model, rows: np.ndarray, targets: np.ndarray):
    """Fit without solver warnings: the validation split picks among the strengths of the
    grid, so a fit that stopped early or was ill-conditioned simply scores worse there."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", LinAlgWarning)
        return model.fit(rows, targets)


def _class_scores(model, rows: np.ndarray, k: int) -> np.ndarray:
    """Scores (M, k) of a fitted classifier: logits (decision values) where it has them.

    Logistic regression's decision values are its logits, whose softmax is its probability;
    `predict_log_proba` would round tiny probabilities to log(0) = -inf.
    """
    if hasattr(model, "decision_function"):
        raw = model.decision_function(rows)
    else:  # the class-prior predictor of a single-class training set
        raw = model.predict_log_proba(rows)
    if raw.ndim == 1:  # binary: d > 0 favours classes_[1]; softmax([-d/2, d/2]) = sigmoid(d)
        raw = np.stack([-raw, raw], axis=1) / 2
    scores = np.full((len(rows), k), MISSING_CLASS_SCORE, dtype=np.float32)
    scores[:, model.classes_.astype(int)] = raw
    return scores


def _binary_logit(model, rows: np.ndarray) -> np.ndarray:
    scores = _class_scores(model, rows, 2)
    return scores[:, 1] - scores[:, 0]  # log-odds of the label being on


@ESTIMATORS.register("ridge")
def _ridge(rows: np.ndarray, y: np.ndarray, alpha: float, k: int, config: ClassicConfig):
    shape = y.shape[1:]
    model = _quiet_fit(Ridge(alpha=alpha), rows, y.reshape(len(y), -1))  # (M, prod(shape))
    return lambda r: model.predict(r).reshape(len(r), *shape).astype(np.float32)


@ESTIMATORS.register("ridge-classifier")
def _ridge_classifier(rows: np.ndarray, y: np.ndarray, alpha: float, k: int, config):
    model = _or_constant(RidgeClassifier(alpha=alpha), rows, y)
    return functools.partial(_class_scores, model, k=k)


@ESTIMATORS.register("logistic")
def _logistic(rows: np.ndarray, y: np.ndarray, c: float, k: int, config: ClassicConfig):
    model = _or_constant(LogisticRegression(C=c, max_iter=config.max_iter), rows, y)
    return functools.partial(_class_scores, model, k=k)


@ESTIMATORS.register("logistic-per-label")
def _logistic_per_label(rows: np.ndarray, y: np.ndarray, c: float, k: int, config):
    """One-vs-rest: an independent binary logistic regression for each label column."""
    models = [
        _or_constant(LogisticRegression(C=c, max_iter=config.max_iter), rows, y[:, j])
        for j in range(y.shape[1])
    ]
    return lambda r: np.stack([_binary_logit(m, r) for m in models], axis=1)  # (M, K)


# ---------------------------------------------------------------------------------------------
# Baselines: a feature map, an estimator and the grid of strengths chosen on validation.


@dataclasses.dataclass(frozen=True)
class Baseline:
    name: str
    description: str
    features: str  # key in FEATURES
    estimator: str  # key in ESTIMATORS
    strengths: tuple[float, ...]  # the estimator's own parameter: ridge alpha or logistic C


BASELINES: Registry[Baseline] = Registry("classic baseline")


def _baseline(name: str, description: str, features: str, estimator: str, strengths) -> None:
    BASELINES.add(name, Baseline(name, description, features, estimator, tuple(strengths)))


_LOGISTIC_C = (0.01, 0.1, 1.0, 10.0)
_baseline("rocket", "ROCKET features, ridge classifier", "rocket", "ridge-classifier",
          np.logspace(-3, 3, 7).tolist())  # fmt: skip
_baseline("logistic", "logistic regression on flattened inputs", "flatten", "logistic",
          _LOGISTIC_C)  # fmt: skip
_baseline("one-vs-rest-logistic", "a logistic regression per label on flattened inputs",
          "flatten", "logistic-per-label", _LOGISTIC_C)  # fmt: skip
_baseline("ridge", "ridge regression from flattened input to flattened output", "flatten",
          "ridge", (0.1, 1.0, 10.0, 100.0, 1000.0))  # fmt: skip
_baseline("window-logistic", "per-position logistic regression on a local window",
          "window", "logistic", _LOGISTIC_C)  # fmt: skip
_baseline("window-one-vs-rest-logistic", "per-position, per-label logistic regression on a "
          "local window", "window", "logistic-per-label", (0.1, 1.0, 10.0))  # fmt: skip

# The baseline of each task type; a (task type, dims) entry wins over (task type, None).
BASELINE_FOR_TASK: dict[tuple[str, int | None], str] = {
    ("classification", 1): "rocket",
    ("classification", None): "logistic",
    ("multilabel", None): "one-vs-rest-logistic",
    ("regression", None): "ridge",
    ("dense-classification", None): "window-logistic",
    ("dense-multilabel", None): "window-one-vs-rest-logistic",
    ("dense-regression", None): "ridge",
}


def baseline_for(task_type: str, dims: int) -> Baseline:
    """The classic baseline used for `task_type` on `dims`-dimensional inputs."""
    name = BASELINE_FOR_TASK.get((task_type, dims)) or BASELINE_FOR_TASK.get((task_type, None))
    if name is None:
        known = sorted({t for t, _ in BASELINE_FOR_TASK})
        raise ValueError(f"task_type={task_type!r} has no classic baseline; known: {known}")
    return BASELINES.get(name)


@dataclasses.dataclass
class ClassicResult:
    """What a classic baseline measured; metric values are on whole splits."""

    baseline: str
    metric: str
    direction: str
    strength: float  # the regularisation strength chosen on validation
    val: float
    test: float
    test_outputs: np.ndarray  # shaped like the network's outputs on the test split
    seconds: float


def fit_classic(
    data: TaskData, metric: Metric, config: ClassicConfig | None = None, seed: int = 0
) -> ClassicResult:
    """Fit the task type's classic baseline, choose its strength on validation, test it.

    Args:
        data: checked data with a validation split (see `carve_validation`).
        metric: the task's metric; it chooses the strength on the validation split.
        config: feature and solver settings.
        seed: seed of ROCKET's kernels and of the training-row sample.
    """
    if data.splits.x_val is None:
        raise ValueError("fit_classic needs a validation split; call carve_validation first")
    config = config or ClassicConfig()
    baseline = baseline_for(data.task_type, data.dims)
    start = time.perf_counter()
    features = FEATURES.get(baseline.features)(config, seed)
    s = data.splits
    train_rows = features.fit_transform(s.x_train)
    rows = {"val": features.transform(s.x_val), "test": features.transform(s.x_test)}
    x, y = _cap_rows(train_rows, features.target_rows(s.y_train, data.task_type), config, seed)

    def outputs(predictor: Predictor, split: str) -> np.ndarray:
        n = len(getattr(s, f"x_{split}"))
        return features.outputs(predictor(rows[split]), n, data.spatial)

    best = None  # (strength, validation value, predictor)
    for strength in baseline.strengths:
        predictor = ESTIMATORS.get(baseline.estimator)(x, y, strength, data.num_outputs, config)
        value = metric(outputs(predictor, "val"), s.y_val)
        logger.debug("classic %s strength %g: val %s %.4f", baseline.name, strength,
                     metric.name, value)  # fmt: skip
        if best is None or _improves(metric, value, best[1]):
            best = (strength, value, predictor)

    test_outputs = outputs(best[2], "test")
    test = metric(test_outputs, s.y_test)
    seconds = time.perf_counter() - start
    logger.info("classic %s (strength %g): val %s %.4f, test %.4f (%.1fs)", baseline.name,
                best[0], metric.name, best[1], test, seconds)  # fmt: skip
    return ClassicResult(baseline.name, metric.name, metric.direction, best[0], best[1], test,
                         test_outputs, seconds)  # fmt: skip


def _improves(metric: Metric, value: float, best: float) -> bool:
    """`value` beats `best`; an undefined (NaN) value never beats a defined one."""
    if np.isnan(value):
        return False
    return bool(np.isnan(best) or metric.better(value, best))


def _cap_rows(
    x: np.ndarray, y: np.ndarray, config: ClassicConfig, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """At most `config.max_rows` training rows, sampled without replacement."""
    if len(x) <= config.max_rows:
        return x, y
    keep = np.sort(np.random.default_rng(seed).choice(len(x), config.max_rows, replace=False))
    return x[keep], y[keep]


def fit_classic_run(
    run: RunConfig, config: ClassicConfig | None = None, splits: Splits | None = None
) -> dict:
    """The classic baseline on the data of RunConfig `run`, as `xmodal.api.fit` would see it.

    The training subset (`run.train_fraction`) and the validation split come from the same
    code and seed as a fine-tuning run, so the two are compared on identical splits. Returns a
    metrics record with the keys of `fit`'s (`test_last_epoch` and `best_epoch` are None).
    """
    from xmodal.api import prepare_run_data

    start = time.perf_counter()
    data, metric_name = prepare_run_data(run, splits)
    metric = get_metric(metric_name, data.task_type)
    setup = time.perf_counter() - start
    result = fit_classic(data, metric, config, seed=run.train.seed)
    return {
        "metric": result.metric,
        "direction": result.direction,
        "val": result.val,
        "test": result.test,
        "test_last_epoch": None,
        "best_epoch": None,
        "baseline": result.baseline,
        "strength": result.strength,
        "timings": {"setup_s": setup, "fit_s": result.seconds},
        "n_train": len(data.splits.x_train),
        "n_val": len(data.splits.x_val),
        "n_test": len(data.splits.x_test),
    }
