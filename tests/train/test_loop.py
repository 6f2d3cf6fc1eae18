import numpy as np
import pytest
import torch

from xmodal.bodies import load_body
from xmodal.data.arrays import carve_validation, prepare
from xmodal.model.network import ModelConfig, build_model
from xmodal.train.loop import TrainConfig, evaluate, fine_tune, improves
from xmodal.train.methods import METHODS, apply_trainable
from xmodal.train.metrics import DEFAULT_METRIC, get_metric

TASKS = ["classification", "multilabel", "regression", "dense-classification",
         "dense-regression", "dense-regression-2d", "dense-multilabel"]  # fmt: skip


def _train(splits, task=None, method="finetune", epochs=6, **train):
    torch.manual_seed(0)
    data = carve_validation(prepare(splits, task=task))
    body = load_body("tiny-text", pretrained=METHODS.get(method).pretrained)
    for module in body.modules():  # deterministic steps: gradient accumulation is compared
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model = build_model(ModelConfig(max_tokens=16), data, body)
    apply_trainable(model, METHODS.get(method).trainable)
    config = TrainConfig(method=method, epochs=epochs, batch_size=12, lr=3e-3, **train)
    metric = get_metric(DEFAULT_METRIC[data.task_type], data.task_type)
    return model, fine_tune(model, data, config, metric)


@pytest.mark.parametrize("task", TASKS)
def test_every_task_type_trains_and_lowers_the_loss(task, splits_of):
    explicit = "dense-multilabel" if task == "dense-multilabel" else None
    _, result = _train(splits_of(task), task=explicit)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.8 * losses[0]
    assert np.isfinite(result.test_best) and np.isfinite(result.test_last)


@pytest.mark.parametrize("method", ["finetune", "layernorm", "linear-probe", "lora", "scratch"])
def test_every_method_runs_and_trains_only_its_parameters(method, splits_of):
    before = {n: p.detach().clone() for n, p in load_body("tiny-text").named_parameters()}
    model, result = _train(splits_of("classification"), method=method, epochs=2)
    assert len(result.history) == 2
    changed = {n for n, p in model.body.named_parameters() if n in before
               and not np.allclose(p.detach().numpy(), before[n].numpy())}  # fmt: skip
    norms = {n for n in before if "LayerNorm" in n or "layernorm" in n}
    if method == "linear-probe":
        assert changed == set()
    elif method == "layernorm":
        assert changed and changed <= norms
    elif method == "lora":
        assert changed == set()  # base weights frozen; only adapters train
        assert any("lora_" in n and p.requires_grad for n, p in model.named_parameters())
    else:
        assert len(changed) > len(norms)


def test_best_validation_weights_are_kept(splits_of):
    model, result = _train(splits_of("regression"), epochs=4)
    ranked = [(row["val_mae"], row["val_loss"], row["epoch"]) for row in result.history]
    assert result.val_best == min(ranked)[0]
    assert result.best_epoch == min(ranked)[2]
    assert result.best_epoch < 4  # else the last weights are the best ones and prove nothing
    data = carve_validation(prepare(splits_of("regression")))  # the split _train used
    metric = get_metric("mae", "regression")
    again = evaluate(model, data.splits.x_val, data.splits.y_val, "regression", metric)
    assert again["mae"] == pytest.approx(result.val_best, rel=1e-5)  # the best weights are back


def test_metric_ties_go_to_the_lower_validation_loss():
    error, auroc = get_metric("error", "classification"), get_metric("auroc", "multilabel")
    assert improves(error, {"error": 0.1, "loss": 0.9}, best_value=0.2, best_loss=0.1)
    assert improves(error, {"error": 0.1, "loss": 0.2}, best_value=0.1, best_loss=0.5)
    assert not improves(error, {"error": 0.1, "loss": 0.5}, best_value=0.1, best_loss=0.2)
    assert not improves(error, {"error": 0.3, "loss": 0.0}, best_value=0.1, best_loss=0.5)
    assert improves(auroc, {"auroc": 0.9, "loss": 0.9}, best_value=0.8, best_loss=0.1)
    assert not improves(auroc, {"auroc": 0.7, "loss": 0.0}, best_value=0.8, best_loss=0.1)
    nan = float("nan")  # a metric the validation split leaves undefined
    assert improves(auroc, {"auroc": 0.1, "loss": 0.9}, best_value=nan, best_loss=0.1)
    assert not improves(auroc, {"auroc": nan, "loss": 0.0}, best_value=0.1, best_loss=0.9)
    assert improves(auroc, {"auroc": nan, "loss": 0.1}, best_value=nan, best_loss=0.9)
    assert not improves(auroc, {"auroc": nan, "loss": 0.9}, best_value=nan, best_loss=0.1)


def test_gradient_accumulation_matches_a_full_batch(splits_of):
    a, ra = _train(splits_of("regression"), epochs=1, grad_accum=1, clip_grad=0)
    b, rb = _train(splits_of("regression"), epochs=1, grad_accum=3, clip_grad=0)
    assert ra.history[0]["train_loss"] == pytest.approx(rb.history[0]["train_loss"], rel=1e-4)


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="multiple of grad_accum"):
        TrainConfig(batch_size=10, grad_accum=3)
    with pytest.raises(ValueError, match="lr must be > 0"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="unknown method"):
        METHODS.get("full")
