import json

import numpy as np
import pytest

from xmodal.api import RunConfig, evaluate_run, fit, load_run, predict_run
from xmodal.data.arrays import DataError
from xmodal.model.network import ModelConfig
from xmodal.train.loop import TrainConfig
from xmodal.train.metrics import get_metric


def _config(**train):
    return RunConfig(
        data="unused.npz",
        model=ModelConfig(body="tiny-text", max_tokens=8),
        train=TrainConfig(epochs=2, batch_size=12, lr=3e-3, **train),
    )


@pytest.mark.parametrize("task", ["classification", "dense-regression-2d", "multilabel"])
def test_fit_saves_a_run_that_reloads_with_the_same_numbers(task, splits_of, tmp_path):
    splits = splits_of(task)
    result = fit(_config(), out=tmp_path / "run", splits=splits)
    run = tmp_path / "run"
    for name in ("config.yaml", "task.json", "metrics.json", "model.safetensors", "log.txt"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"] == pytest.approx(result.metrics["test"])
    assert {"metric", "direction", "val", "test", "test_last_epoch", "history", "timings"} <= set(
        metrics
    )
    assert len(metrics["history"]) == 2
    assert evaluate_run(run, splits)["value"] == pytest.approx(metrics["test"], rel=1e-5)
    loaded = load_run(run)
    outputs = predict_run(loaded, splits)
    assert outputs.shape[0] == len(splits.x_test)
    assert "epoch 2/2" in (run / "log.txt").read_text()


@pytest.mark.parametrize(
    "task", ["classification", "multilabel", "regression", "dense-classification",
             "dense-regression", "dense-regression-2d", "dense-multilabel"],
)  # fmt: skip
def test_predict_reproduces_evaluate_for_every_task_type(task, splits_of, tmp_path):
    splits = splits_of(task)
    config = _config().replace(task="dense-multilabel" if task == "dense-multilabel" else None)
    fit(config, out=tmp_path / "run", splits=splits)
    run = load_run(tmp_path / "run")
    metric = get_metric(run.task["metric"], run.task["task_type"])
    outputs = predict_run(run, splits)
    assert outputs.shape[0] == len(splits.x_test)
    value = evaluate_run(run, splits)["value"]
    assert np.isfinite(value)
    assert metric(outputs, splits.y_test) == pytest.approx(value, rel=1e-6)


def test_metrics_cover_the_whole_test_set_whatever_the_batch_size(splits_of, tmp_path):
    splits = splits_of("dense-regression")  # relative L2: a ratio, so batch means differ
    fit(_config(), out=tmp_path / "run", splits=splits)
    run = load_run(tmp_path / "run")
    whole = evaluate_run(run, splits)["value"]
    run.config.train.eval_batch_size = 5  # 12 test examples: batches of 5, 5 and 2
    assert evaluate_run(run, splits)["value"] == pytest.approx(whole, rel=1e-5)
    metric = get_metric("rel-l2", "dense-regression")
    outputs, y = predict_run(run, splits), splits.y_test
    batch_mean = np.mean([metric(outputs[i : i + 5], y[i : i + 5]) for i in range(0, 12, 5)])
    assert abs(batch_mean - whole) > 1e-3 * whole  # the check above can tell the two apart


def test_lora_run_reloads(splits_of, tmp_path):
    splits = splits_of("regression")
    result = fit(_config(method="lora"), out=tmp_path / "run", splits=splits)
    assert evaluate_run(tmp_path / "run", splits)["value"] == pytest.approx(
        result.metrics["test"], rel=1e-5
    )


def test_failed_run_leaves_nothing_behind(splits_of, tmp_path):
    splits = splits_of("classification")
    splits.y_test[0] = 7  # out of range: fails before training
    with pytest.raises(DataError, match="out of range"):
        fit(_config(), out=tmp_path / "run", splits=splits)
    assert list(tmp_path.iterdir()) == []


def test_existing_run_folder_is_not_overwritten(splits_of, tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        fit(_config(), out=tmp_path / "run", splits=splits_of("classification"))


def test_run_config_round_trips_and_rejects_unknown_keys(tmp_path):
    config = _config(method="layernorm")
    config.to_yaml(tmp_path / "c.yaml")
    assert RunConfig.from_yaml(tmp_path / "c.yaml") == config
    with pytest.raises(ValueError, match="unknown key"):
        RunConfig.from_dict({"trian": {}})
    with pytest.raises(ValueError, match="unknown method"):
        RunConfig(train=TrainConfig(method="nope"))


def test_predict_checks_the_input_shape(splits_of, tmp_path):
    fit(_config(), out=tmp_path / "run", splits=splits_of("classification"))
    bad = splits_of("dense-classification")  # 2D inputs for a 1D run
    with pytest.raises(DataError, match="the run expects"):
        predict_run(tmp_path / "run", bad)


def test_low_data_fraction_uses_part_of_the_training_set(splits_of):
    config = _config().replace(train_fraction=0.5)
    result = fit(config, splits=splits_of("classification"))
    assert result.metrics["n_train"] + result.metrics["n_val"] == 18
    assert np.isfinite(result.metrics["test"])
