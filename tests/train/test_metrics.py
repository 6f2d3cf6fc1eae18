import numpy as np
import pytest

from xmodal.train.metrics import METRICS, get_metric


def test_error_and_macro_f1_on_hand_made_numbers():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    labels = np.array([0, 0, 0, 1])
    assert METRICS.get("error")(logits, labels) == pytest.approx(0.25)
    # class 0: precision 1, recall 2/3; class 1: precision 1/2, recall 1
    f1 = (2 * (2 / 3) / (1 + 2 / 3) + 2 * 0.5 / 1.5) / 2
    assert METRICS.get("macro-f1")(logits, labels) == pytest.approx(f1)


def test_dense_error_counts_positions():
    logits = np.zeros((1, 2, 4))
    logits[0, 1, :2] = 1.0  # predicts class 1 at positions 0, 1
    assert METRICS.get("error")(logits, np.array([[1, 0, 0, 0]])) == pytest.approx(0.25)


def test_nll_matches_log_softmax_and_binary_nll():
    logits = np.array([[0.0, np.log(3.0)]])  # p = (1/4, 3/4)
    assert METRICS.get("nll")(logits, np.array([1])) == pytest.approx(-np.log(0.75))
    scores = np.array([[0.0, 0.0]])  # p = 1/2 per label, summed over 2 labels
    assert METRICS.get("nll")(scores, np.array([[1, 0]])) == pytest.approx(2 * np.log(2))


def test_auroc_and_map_of_an_imperfect_ranking():
    scores = np.array([[0.9], [0.8], [0.3], [0.1]])
    truth = np.array([[1], [0], [1], [0]])
    # AUROC: 3 of the 4 (positive, negative) pairs are ordered right.
    assert METRICS.get("auroc")(scores, truth) == pytest.approx(0.75)
    # Average precision: hits at ranks 1 and 3, precisions 1 and 2/3.
    assert METRICS.get("map")(scores, truth) == pytest.approx((1 + 2 / 3) / 2)


def test_auroc_and_map_average_over_labels_with_both_classes():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.5], [0.7, 0.3, 0.5]])
    truth = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 1]])  # last label has no negatives
    assert METRICS.get("auroc")(scores, truth) == pytest.approx((1.0 + 1.0) / 2)
    assert METRICS.get("map")(scores, truth) == pytest.approx(1.0)


def test_regression_metrics():
    y = np.array([[3.0, 4.0], [1.0, 0.0]])
    pred = np.array([[3.0, 4.0], [2.0, 0.0]])
    assert METRICS.get("rel-l2")(pred, y) == pytest.approx((0 + 1) / 2)
    assert METRICS.get("mae")(pred, y) == pytest.approx(0.25)


def test_direction_and_task_check():
    assert get_metric("error", "classification").better(0.1, 0.2)
    assert get_metric("auroc", "multilabel").better(0.9, 0.8)
    with pytest.raises(ValueError, match="does not apply"):
        get_metric("rel-l2", "classification")
    with pytest.raises(ValueError, match="unknown metric"):
        get_metric("accuracy", "classification")
