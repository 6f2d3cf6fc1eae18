"""The Python API: fit a cross-modal model, save it as a run folder, reload, predict, evaluate.

A run folder holds everything needed to use the model again without the training data:

    config.yaml        the resolved `RunConfig`
    task.json          input/output shapes, task type and metric
    body/config.json   the body's architecture (weights are in model.safetensors)
    model.safetensors  embedder, body and head weights (best-validation epoch)
    metrics.json       metric, direction, validation and test values, history, timings
    log.txt            the run's log

A run is written to a temporary folder and renamed into place at the end, so a failed run
leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from xmodal.align.stage import AlignConfig, align_embedder
from xmodal.bodies import load_body
from xmodal.bodies.base import Body, BodyInfo
from xmodal.config import Config
from xmodal.data.arrays import DataError, TaskData, carve_validation, load_npz, prepare
from xmodal.data.splits import Splits
from xmodal.data.tasks import TASKS, get_task, load_task, task_names
from xmodal.model.network import CrossModalModel, ModelConfig, build_model
from xmodal.train.loop import TrainConfig, evaluate, fine_tune, predict
from xmodal.train.methods import METHODS, apply_trainable
from xmodal.train.metrics import DEFAULT_METRIC, get_metric

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RunConfig(Config):
    """Everything that defines a run."""

    data: str = "gunpoint"
    """Built-in task name (see `xmodal tasks`) or path to an .npz file."""
    task: str | None = None
    """Task type; inferred from the targets (or the built-in task) when not given."""
    dims: int | None = None
    """1 or 2; only needed to read 3-D inputs as (N, H, W) images."""
    metric: str | None = None
    """Metric for model selection and reporting; the task's default when not given."""
    scale: float = 1.0
    """Size multiplier for built-in tasks."""
    train_fraction: float = 1.0
    """Share of the training set to use (low-data experiments)."""
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    align: AlignConfig = dataclasses.field(default_factory=AlignConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.train.method not in METHODS:
            METHODS.get(self.train.method)  # raises with the list of methods
        if not 0 < self.train_fraction <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction!r}")


@dataclasses.dataclass
class RunResult:
    config: RunConfig
    model: CrossModalModel
    data: TaskData
    metrics: dict
    out: Path | None


def resolve_data(config: RunConfig) -> tuple[Splits, dict]:
    """Load the run's arrays and the built-in task's defaults (task type, dims, metric)."""
    if config.data in task_names():
        task = get_task(config.data)
        splits = load_task(config.data, config.scale, seed=0)
        defaults = {"task": task.task_type, "dims": task.dims, "metric": task.metric}
        return splits, defaults
    path = Path(config.data)
    if path.suffix != ".npz" or not path.exists():
        raise DataError(
            f"data {config.data!r} is neither a built-in task ({', '.join(TASKS.names())}) "
            "nor an existing .npz file"
        )
    return load_npz(path), {}


def prepare_run_data(config: RunConfig, splits: Splits | None = None) -> tuple[TaskData, str]:
    """Checked data with a validation split, and the metric name."""
    defaults = {}
    if splits is None:
        splits, defaults = resolve_data(config)
    if config.train_fraction < 1:
        splits = splits.subset_train(config.train_fraction, seed=config.train.seed)
    data = prepare(splits, config.task or defaults.get("task"), config.dims or defaults.get("dims"))
    metric = config.metric or defaults.get("metric") or DEFAULT_METRIC[data.task_type]
    get_metric(metric, data.task_type)
    data = carve_validation(data, config.train.val_fraction, config.train.seed)
    return data, metric


def fit(
    config: RunConfig,
    out: str | Path | None = None,
    splits: Splits | None = None,
    progress: bool = False,
) -> RunResult:
    """Build, (align,) fine-tune and evaluate a model; save a run folder to `out` if given.

    Args:
        config: the run's settings.
        out: run folder to write; must not exist yet.
        splits: arrays to use instead of `config.data` (the API path for numpy users).
        progress: show progress bars.
    """
    out = Path(out) if out is not None else None
    if out is not None and out.exists():
        raise FileExistsError(f"run folder {str(out)!r} already exists; choose another --out")
    timings = {}
    t0 = time.perf_counter()
    data, metric_name = prepare_run_data(config, splits)
    metric = get_metric(metric_name, data.task_type)
    method = METHODS.get(config.train.method)
    torch.manual_seed(config.train.seed)
    body = load_body(config.model.body, pretrained=method.pretrained)
    model = build_model(config.model, data, body)
    timings["setup_s"] = time.perf_counter() - t0
    with _run_folder(out) as tmp:
        align_info = {}
        if method.align:
            align_info = _align(model, data, config, tmp, progress)
            timings["align_s"] = align_info.pop("seconds")
        trainable = apply_trainable(model, method.trainable, config.train.lora_rank)
        logger.info("method %s: %s trainable parameters", method.name, f"{trainable:,}")
        result = fine_tune(model, data, config.train, metric, progress=progress)
        timings["finetune_s"] = result.seconds
        metrics = _metrics_record(result, data, trainable, timings, align_info)
        if tmp is not None:
            _save_run(tmp, config, data, metric_name, model, metrics)
    if out is not None:
        logger.info("saved run to %s", out)
    return RunResult(config, model, data, metrics, out)


def _align(model, data, config: RunConfig, folder, progress) -> dict:
    return align_embedder(model, data, config.align, config.train.seed, folder, progress)


def _metrics_record(result, data: TaskData, trainable: int, timings: dict, align: dict) -> dict:
    record = {
        "metric": result.metric,
        "direction": result.direction,
        "val": result.val_best,
        "test": result.test_best,
        "test_last_epoch": result.test_last,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "timings": timings,
        "trainable_parameters": trainable,
        "n_train": len(data.splits.x_train),
        "n_val": len(data.splits.x_val),
        "n_test": len(data.splits.x_test),
    }
    record.update(align)
    return record


class _run_folder:
    """Context manager: a temporary folder renamed to `out` on success, removed on failure."""

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.tmp: Path | None = None
        self.handler: logging.Handler | None = None

    def __enter__(self) -> Path | None:
        if self.out is None:
            return None
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=self.out.parent))
        self.handler = logging.FileHandler(self.tmp / "log.txt")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        self.handler.setLevel(logging.INFO)
        package = logging.getLogger("xmodal")
        self.level = package.level
        package.setLevel(min(package.getEffectiveLevel(), logging.INFO))  # the file gets INFO
        package.addHandler(self.handler)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp is None:
            return
        package = logging.getLogger("xmodal")
        package.removeHandler(self.handler)
        package.setLevel(self.level)
        self.handler.close()
        if exc_type is None:
            self.tmp.rename(self.out)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _save_run(folder: Path, config, data: TaskData, metric: str, model, metrics: dict) -> None:
    config.to_yaml(folder / "config.yaml")
    task = {**data.describe(), "metric": metric, "body": dataclasses.asdict(model.body.info)}
    (folder / "task.json").write_text(json.dumps(task, indent=2))
    model.body.hf_model.config.save_pretrained(folder / "body")
    save_model(model, str(folder / "model.safetensors"))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))


@dataclasses.dataclass
class Run:
    """A reloaded run: its config, task description and model."""

    path: Path
    config: RunConfig
    task: dict
    model: CrossModalModel


def load_run(path: str | Path) -> Run:
    """Rebuild the model of a run folder from its saved architecture and weights."""
    from transformers import AutoConfig, AutoModel

    path = Path(path)
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{str(path)!r} is not a run folder (no model.safetensors)")
    config = RunConfig.from_yaml(path / "config.yaml")
    task = json.loads((path / "task.json").read_text())
    hf_model = AutoModel.from_config(AutoConfig.from_pretrained(path / "body"))
    body = Body(BodyInfo(**task["body"]), hf_model)
    data = _shape_only_task(task)
    model = build_model(config.model.replace(init_embedder_from_body=False), data, body)
    apply_trainable(model, METHODS.get(config.train.method).trainable, config.train.lora_rank)
    load_model(model, str(path / "model.safetensors"))
    model.eval()
    return Run(path, config, task, model)


def _shape_only_task(task: dict) -> TaskData:
    fields = {f.name for f in dataclasses.fields(TaskData)} - {"splits"}
    values = {k: task[k] for k in fields}
    values["spatial"] = tuple(values["spatial"])
    return TaskData(splits=None, **values)


def _run_inputs(run: Run, data: str | Splits, need_targets: bool) -> tuple[np.ndarray, np.ndarray]:
    """Test inputs and targets of `data`, checked against the run's task and input shape."""
    splits = data if isinstance(data, Splits) else _test_split(run, data)
    x, y = splits.x_test, splits.y_test
    if need_targets and y is None:
        raise DataError("the data has inputs but no targets (y_test or y) to evaluate against")
    task, classes = run.task["task_type"], run.task["num_outputs"]
    if not need_targets:  # any target passes: only the inputs are checked
        y, task, classes = np.zeros(len(x), np.float32), "regression", None
    elif not task.endswith("classification"):
        classes = None
    dims = run.task["dims"] if np.ndim(x) == 3 else None  # only 3-D inputs need telling
    checked = prepare(Splits(x, y, x, y), task=task, dims=dims, num_outputs=classes)
    expected = (run.task["in_channels"], *run.task["spatial"])
    if checked.splits.x_test.shape[1:] != expected:
        raise DataError(
            f"inputs have item shape {checked.splits.x_test.shape[1:]}, but the run expects "
            f"{expected}"
        )
    return checked.splits.x_test, checked.splits.y_test


def _test_split(run: Run, data: str) -> Splits:
    """The test split of a built-in task, or the arrays of an npz (x_test/y_test or x/y)."""
    if data in task_names():
        return load_task(data, run.config.scale, seed=0)
    path = Path(data)
    if not path.is_file():
        raise DataError(f"data {data!r} is neither a built-in task nor an existing file")
    with np.load(path, allow_pickle=False) as archive:
        key = "x_test" if "x_test" in archive.files else "x"
        if key not in archive.files:
            raise DataError(f"{path.name} holds neither x_test nor x; it holds {archive.files}")
        y_key = "y_test" if key == "x_test" else "y"
        x = archive[key]
        y = archive[y_key] if y_key in archive.files else None
    return Splits(x, y, x, y)


def predict_run(path: str | Path | Run, data: str | Splits) -> np.ndarray:
    """Outputs of a saved run on the test inputs of `data` (task name, npz or Splits)."""
    run = path if isinstance(path, Run) else load_run(path)
    x, _ = _run_inputs(run, data, need_targets=False)
    return predict(run.model, x, run.config.train.eval_batch_size)


def evaluate_run(path: str | Path | Run, data: str | Splits) -> dict[str, float]:
    """The run's metric (and loss) on the test split of `data`."""
    run = path if isinstance(path, Run) else load_run(path)
    x, y = _run_inputs(run, data, need_targets=True)
    metric = get_metric(run.task["metric"], run.task["task_type"])
    values = evaluate(run.model, x, y, run.task["task_type"], metric,
                      run.config.train.eval_batch_size)  # fmt: skip
    return {"metric": metric.name, "value": values[metric.name], "loss": values["loss"],
            "n": len(x)}  # fmt: skip
