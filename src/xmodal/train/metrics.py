"""Evaluation metrics, computed on a whole split at once (never averaged over batches).

Each metric takes the model's raw outputs and the targets as numpy arrays and returns a
float; `METRICS` maps names to `Metric` records that also say whether lower is better.
Outputs are logits for classification and multi-label tasks and values for regression.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy.special import log_softmax
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from xmodal.registry import Registry


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # "min" or "max"
    fn: Callable[[np.ndarray, np.ndarray], float]
    description: str

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return float(self.fn(outputs, targets))

    def better(self, a: float, b: float) -> bool:
        """True when value `a` is strictly better than `b`."""
        return a < b if self.direction == "min" else a > b


METRICS: Registry[Metric] = Registry("metric")


def _register(name: str, direction: str, description: str) -> Callable:
    def add(fn: Callable[[np.ndarray, np.ndarray], float]) -> Callable:
        METRICS.add(name, Metric(name, direction, fn, description))
        return fn

    return add


def _class_last(outputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten class logits (N, K, *S) and targets (N, *S) to (M, K) and (M,)."""
    k = outputs.shape[1]
    logits = np.moveaxis(outputs, 1, -1).reshape(-1, k)  # (N * prod(S), K)
    return logits, targets.reshape(-1)


@_register("error", "min", "0-1 classification error (1 - accuracy)")
def error(outputs: np.ndarray, targets: np.ndarray) -> float:
    logits, labels = _class_last(outputs, targets)
    return float(np.mean(logits.argmax(-1) != labels))


@_register("macro-f1", "max", "F1 score averaged over classes")
def macro_f1(outputs: np.ndarray, targets: np.ndarray) -> float:
    logits, labels = _class_last(outputs, targets)
    return float(f1_score(labels, logits.argmax(-1), average="macro"))


@_register("nll", "min", "cross-entropy (multi-label: binary NLL summed over labels), per item")
def nll(outputs: np.ndarray, targets: np.ndarray) -> float:
    if outputs.shape == targets.shape:  # multi-label: sum over labels, mean over the rest
        logp = -np.logaddexp(0.0, -outputs)  # log sigmoid
        log1mp = -np.logaddexp(0.0, outputs)
        bce = -(targets * logp + (1 - targets) * log1mp)
        return float(bce.sum(axis=1).mean())
    logits, labels = _class_last(outputs, targets)
    logp = log_softmax(logits, axis=-1)  # (M, K)
    return float(-logp[np.arange(len(labels)), labels.astype(int)].mean())


def _label_columns(outputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multi-label (N, K, *S) arrays as (M, K) score and 0/1 matrices."""
    k = outputs.shape[1]
    scores = np.moveaxis(outputs, 1, -1).reshape(-1, k)  # (M, K)
    return scores, np.moveaxis(targets, 1, -1).reshape(-1, k)


def _mean_over_labels(score: Callable, outputs: np.ndarray, targets: np.ndarray) -> float:
    """Average `score` over labels that have both positives and negatives."""
    scores, truth = _label_columns(outputs, targets)
    usable = [j for j in range(truth.shape[1]) if 0 < truth[:, j].sum() < len(truth)]
    if not usable:
        return float("nan")
    return float(np.mean([score(truth[:, j], scores[:, j]) for j in usable]))


@_register("auroc", "max", "area under the ROC curve, mean over labels")
def auroc(outputs: np.ndarray, targets: np.ndarray) -> float:
    return _mean_over_labels(roc_auc_score, outputs, targets)


@_register("map", "max", "average precision, mean over labels")
def mean_average_precision(outputs: np.ndarray, targets: np.ndarray) -> float:
    return _mean_over_labels(average_precision_score, outputs, targets)


@_register("rel-l2", "min", "relative L2 error ||pred - y|| / ||y|| per example, averaged")
def relative_l2(outputs: np.ndarray, targets: np.ndarray) -> float:
    diff = (outputs - targets).reshape(len(targets), -1)  # (N, prod(rest))
    norm = np.linalg.norm(targets.reshape(len(targets), -1), axis=1)
    return float(np.mean(np.linalg.norm(diff, axis=1) / np.maximum(norm, 1e-12)))


@_register("mae", "min", "mean absolute error")
def mae(outputs: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean(np.abs(outputs - targets)))


@_register("mse", "min", "mean squared error")
def mse(outputs: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean((outputs - targets) ** 2))


# Default metric per task type, as in the ORCA paper's task table.
DEFAULT_METRIC = {
    "classification": "error",
    "multilabel": "map",
    "regression": "mae",
    "dense-classification": "error",
    "dense-multilabel": "nll",
    "dense-regression": "rel-l2",
}

# Which metrics make sense for which task types.
METRIC_TASK_TYPES = {
    "error": ("classification", "dense-classification"),
    "macro-f1": ("classification", "dense-classification"),
    "nll": ("classification", "dense-classification", "multilabel", "dense-multilabel"),
    "auroc": ("multilabel", "dense-multilabel"),
    "map": ("multilabel", "dense-multilabel"),
    "rel-l2": ("regression", "dense-regression"),
    "mae": ("regression", "dense-regression"),
    "mse": ("regression", "dense-regression"),
}


def get_metric(name: str, task_type: str) -> Metric:
    """Return metric `name`, checking that it suits `task_type`."""
    metric = METRICS.get(name)
    if task_type not in METRIC_TASK_TYPES[name]:
        raise ValueError(
            f"metric {name!r} does not apply to task type {task_type!r}; "
            f"use one of {[m for m, t in METRIC_TASK_TYPES.items() if task_type in t]}"
        )
    return metric
