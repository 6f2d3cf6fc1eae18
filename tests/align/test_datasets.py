import json

import numpy as np
import pytest

from xmodal.align.datasets import dataset_points, load_dataset
from xmodal.cli.main import main


def _npz(path, seed, shift=0.0, length=12):
    rng = np.random.default_rng(seed)
    y = np.arange(60) % 3
    x = rng.normal(size=(60, 1, length)) + y[:, None, None] + shift
    np.savez(path, x_train=x, y_train=y, x_test=x[:6], y_test=y[:6])
    return str(path)


def test_points_are_flattened_training_inputs_with_their_labels(tmp_path):
    data = load_dataset(_npz(tmp_path / "a.npz", 0))
    x, y = dataset_points(data, max_points=25)
    assert x.shape == (25, 12) and y.shape == (25,)
    assert set(y.tolist()) <= {0, 1, 2}


def test_body_embedding_maps_different_shapes_to_one_width(tmp_path):
    a = load_dataset(_npz(tmp_path / "a.npz", 0, length=12))
    b = load_dataset(_npz(tmp_path / "b.npz", 1, length=30))
    xa, _ = dataset_points(a, 20, body="tiny-text")
    xb, _ = dataset_points(b, 20, body="tiny-text")
    assert xa.shape == (20, 32) and xb.shape == (20, 32)


def test_distance_cli_prints_json_and_orders_datasets(tmp_path, capsys):
    a = _npz(tmp_path / "a.npz", 0)
    near = _npz(tmp_path / "near.npz", 1, shift=0.1)
    far = _npz(tmp_path / "far.npz", 2, shift=3.0)
    values = {}
    for name, other in (("self", a), ("near", near), ("far", far)):
        assert main(["distance", a, other, "--max-points", "60"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert {"otdd", "method", "n_source", "n_target"} <= set(out)
        assert out["n_source"] == out["n_target"] == 60
        values[name] = out["otdd"]
    assert abs(values["self"]) < 1e-3
    assert values["self"] < values["near"] < values["far"]


def test_distance_cli_rejects_mismatched_raw_features(tmp_path, capsys):
    a = _npz(tmp_path / "a.npz", 0, length=12)
    b = _npz(tmp_path / "b.npz", 1, length=30)
    assert main(["distance", a, b]) == 2
    assert "pass --body" in capsys.readouterr().err


def test_unknown_dataset_is_rejected():
    with pytest.raises(ValueError, match="neither a built-in task"):
        load_dataset("nope")
