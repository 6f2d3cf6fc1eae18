"""The fine-tuning loop: optimiser, schedule, model selection on validation.

`fine_tune` trains a `CrossModalModel` on the training split, evaluates the task metric on
the validation split after every epoch, keeps the weights of the best epoch (ties in the
metric go to the lower validation loss), and reports the test metric both for the last epoch
and for the best-validation weights. The test set is never used to choose anything.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from xmodal.config import Config, check_choice, check_positive
from xmodal.data.arrays import TaskData
from xmodal.model.network import CrossModalModel
from xmodal.registry import Registry
from xmodal.train.metrics import Metric

logger = logging.getLogger(__name__)

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclasses.dataclass
class TrainConfig(Config):
    """Fine-tuning settings."""

    method: str = "finetune"
    """Fine-tuning method (see `xmodal.train.methods.METHODS`)."""
    epochs: int = 30
    """Passes over the training set."""
    batch_size: int = 16
    """Examples per optimiser step (split into `grad_accum` micro-batches)."""
    grad_accum: int = 1
    """Micro-batches whose gradients are summed before each step."""
    optimizer: str = "adamw"
    """"sgd" (momentum 0.9), "adam" or "adamw"."""
    lr: float = 5e-5
    """Peak learning rate of the body; embedder and head use `head_lr_scale` times it."""
    head_lr_scale: float = 20.0
    """Learning-rate multiplier for the new (randomly initialised) embedder and head."""
    weight_decay: float = 0.01
    """Weight decay (decoupled for AdamW)."""
    warmup: float = 0.1
    """Fraction of all steps spent warming the learning rate up linearly, then linear decay."""
    clip_grad: float = 1.0
    """Clip the gradient norm to this value; 0 disables clipping."""
    seed: int = 0
    """Seed for initialisation, shuffling and the validation split."""
    val_fraction: float = 0.2
    """Share of the training set kept for validation when no validation split is given."""
    eval_batch_size: int = 128
    """Examples per forward pass during evaluation."""
    lora_rank: int = 8
    """Rank of LoRA adapters (methods "lora" and "orca-lora")."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum", "lr", "eval_batch_size", "lora_rank"):
            check_positive(name, getattr(self, name))
        for name in ("weight_decay", "clip_grad", "head_lr_scale"):
            check_positive(name, getattr(self, name), allow_zero=True)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"batch_size={self.batch_size} must be a multiple of grad_accum={self.grad_accum}"
            )


# Training loss per task type, on raw model outputs (logits or scaled values).
LOSSES: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry("loss")
LOSSES.add("classification", F.cross_entropy)
LOSSES.add("dense-classification", F.cross_entropy)
LOSSES.add("multilabel", F.binary_cross_entropy_with_logits)
LOSSES.add("dense-multilabel", F.binary_cross_entropy_with_logits)
LOSSES.add("regression", F.mse_loss)
LOSSES.add("dense-regression", F.mse_loss)


@dataclasses.dataclass
class FitResult:
    """What fine-tuning measured. Metric values are on whole splits."""

    metric: str
    direction: str
    best_epoch: int
    val_best: float
    test_best: float  # test metric of the best-validation weights
    test_last: float  # test metric of the last epoch's weights
    history: list[dict]  # per epoch: train_loss, val_loss, val metric, seconds
    seconds: float


def to_tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(x), torch.from_numpy(y)


def fine_tune(
    model: CrossModalModel,
    data: TaskData,
    config: TrainConfig,
    metric: Metric,
    progress: bool = False,
) -> FitResult:
    """Train `model` on `data` (which must have a validation split) and select by validation."""
    if data.splits.x_val is None:
        raise ValueError("fine_tune needs a validation split; call carve_validation first")
    start = time.perf_counter()
    x_train, y_train = to_tensors(data.splits.x_train, data.splits.y_train)
    _fit_scalers(model, x_train, y_train)

    optimizer = _optimizer(model, config)
    steps = config.epochs * math.ceil(len(x_train) / config.batch_size)
    schedule = _warmup_linear(optimizer, steps, config.warmup)
    generator = torch.Generator().manual_seed(config.seed)
    step = functools.partial(
        _train_epoch, model, x_train, y_train, LOSSES.get(data.task_type), optimizer, schedule,
        config, generator=generator, progress=progress,
    )  # fmt: skip

    best, history = None, []  # best: (epoch, val metric, val loss, weights) of the best epoch
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        train_loss = step(desc=f"epoch {epoch}/{config.epochs}")
        val = _evaluate_split(model, data, "val", metric, config)
        history.append(_epoch_record(epoch, train_loss, val, metric, time.perf_counter() - t0))
        logger.info(
            "epoch %d/%d  train loss %.4f  val loss %.4f  val %s %.4f  (%.1fs)",
            epoch, config.epochs, train_loss, val["loss"], metric.name, val[metric.name],
            history[-1]["seconds"],
        )  # fmt: skip
        if best is None or improves(metric, val, best[1], best[2]):
            best = (epoch, val[metric.name], val["loss"], copy.deepcopy(model.state_dict()))

    # Test once with the last weights and once with the best-validation weights.
    test_last = _evaluate_split(model, data, "test", metric, config)[metric.name]
    model.load_state_dict(best[3])
    test_best = _evaluate_split(model, data, "test", metric, config)[metric.name]
    logger.info(
        "test %s: %.4f at best validation epoch %d, %.4f at the last epoch",
        metric.name, test_best, best[0], test_last,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return FitResult(metric.name, metric.direction, best[0], best[1], test_best, test_last,
                     history, seconds)  # fmt: skip


def improves(metric: Metric, val: dict, best_value: float, best_loss: float) -> bool:
    """True when validation results `val` beat the best so far: a better metric, or the same
    metric at a lower loss. Coarse metrics tie often on small validation splits (0-1 error on
    ten examples moves in steps of 0.1), and the loss tells the tied epochs apart. A metric
    the split leaves undefined (NaN) ranks below any defined value."""
    value = val[metric.name]
    undefined, best_undefined = math.isnan(value), math.isnan(best_value)
    if undefined != best_undefined:
        return best_undefined
    if undefined:  # neither is defined: the loss alone tells them apart
        return val["loss"] < best_loss
    return metric.better(value, best_value) or (value == best_value and val["loss"] < best_loss)


def _evaluate_split(model, data: TaskData, split: str, metric: Metric, config: TrainConfig):
    x, y = getattr(data.splits, f"x_{split}"), getattr(data.splits, f"y_{split}")
    return evaluate(model, x, y, data.task_type, metric, config.eval_batch_size)


def _epoch_record(epoch: int, train_loss: float, val: dict, metric: Metric, seconds: float):
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val["loss"],
        f"val_{metric.name}": val[metric.name],
        "seconds": seconds,
    }


def _fit_scalers(model: CrossModalModel, x: torch.Tensor, y: torch.Tensor) -> None:
    model.embedder.standardize.fit(x)
    if model.target_scaler is not None:
        model.target_scaler.fit(y)


def _optimizer(model: CrossModalModel, config: TrainConfig) -> torch.optim.Optimizer:
    """Body parameters at `lr`; the new embedder and head at `lr * head_lr_scale`."""
    body = [p for p in model.body.parameters() if p.requires_grad]
    new = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("body.")]
    groups = [
        {"params": body, "lr": config.lr},
        {"params": new, "lr": config.lr * config.head_lr_scale},
    ]
    groups = [g for g in groups if g["params"]]
    kwargs = {"weight_decay": config.weight_decay}
    if config.optimizer == "sgd":
        kwargs["momentum"] = 0.9
    return OPTIMIZERS[config.optimizer](groups, **kwargs)


def _warmup_linear(
    optimizer: torch.optim.Optimizer, steps: int, warmup: float
) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, int(warmup * steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _train_epoch(
    model, x, y, loss_fn, optimizer, schedule, config: TrainConfig,
    generator: torch.Generator, desc: str, progress: bool,
) -> float:  # fmt: skip
    """One pass over (x, y) in shuffled batches; returns the mean training loss."""
    model.train()
    micro = config.batch_size // config.grad_accum
    order = torch.randperm(len(x), generator=generator)
    total, count = 0.0, 0
    batches = range(0, len(x), config.batch_size)
    for start in tqdm(batches, desc=desc, disable=not progress, leave=False):
        idx = order[start : start + config.batch_size]
        optimizer.zero_grad(set_to_none=True)
        for part in idx.split(micro):
            loss = _loss(model, x[part], y[part], loss_fn)
            (loss * len(part) / len(idx)).backward()
            total, count = total + loss.item() * len(part), count + len(part)
        if config.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
        optimizer.step()
        schedule.step()
    return total / max(count, 1)


def _loss(model: CrossModalModel, x: torch.Tensor, y: torch.Tensor, loss_fn) -> torch.Tensor:
    out = model(x)
    if model.target_scaler is not None:
        y = model.target_scaler.scale(y)
    return loss_fn(out, y.to(out.dtype) if y.is_floating_point() else y)


@torch.no_grad()
def predict(model: CrossModalModel, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Outputs for all of `x`, in the targets' units (logits for classification)."""
    model.eval()
    parts = [model.predict(torch.from_numpy(x[i : i + batch_size])) for i in
             range(0, len(x), batch_size)]  # fmt: skip
    return torch.cat(parts).float().numpy()


@torch.no_grad()
def evaluate(
    model: CrossModalModel, x: np.ndarray, y: np.ndarray, task_type: str, metric: Metric,
    batch_size: int = 128,
) -> dict[str, float]:  # fmt: skip
    """The metric and the training loss on the whole of (x, y)."""
    outputs = predict(model, x, batch_size)
    out_t, y_t = torch.from_numpy(outputs), torch.from_numpy(y)
    if model.target_scaler is not None:
        out_t, y_t = model.target_scaler.scale(out_t), model.target_scaler.scale(y_t)
    loss = LOSSES.get(task_type)(out_t, y_t.to(out_t.dtype) if y_t.is_floating_point() else y_t)
    return {metric.name: metric(outputs, y), "loss": float(loss)}
