"""Checking a user's arrays and working out what task they describe.

`prepare(splits, task=None, dims=None)` is the boundary between user data and the rest of
xmodal: it rejects bad arrays with a one-line `DataError` that names the split and what is
wrong, puts inputs in (N, C, L) or (N, C, H, W) float32 form, infers the task type where
it is unambiguous, and returns a `TaskData` that describes the model's inputs and outputs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from xmodal.data.splits import TASK_TYPES, Splits

SPLIT_NAMES = ("train", "val", "test")


class DataError(ValueError):
    """User data that xmodal cannot train on; the message says what to change."""


@dataclasses.dataclass
class TaskData:
    """Checked arrays plus what the model needs to know about them."""

    splits: Splits
    task_type: str
    dims: int  # 1 or 2 spatial dimensions
    in_channels: int
    spatial: tuple[int, ...]  # (L,) or (H, W)
    num_outputs: int  # classes, labels or regression outputs per item (or per position)
    squeeze_output: bool  # regression targets lack the output axis: (N,) or (N, *spatial)

    @property
    def dense(self) -> bool:
        return self.task_type.startswith("dense")

    def describe(self) -> dict:
        """The facts needed to rebuild the model for this data (saved with a run)."""
        out = dataclasses.asdict(self)
        out.pop("splits")
        out["spatial"] = list(self.spatial)
        return out


def load_npz(path: str | Path) -> Splits:
    """Read an `.npz` holding x_train, y_train, x_test, y_test (and optionally x_val, y_val)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in keys]
        if missing:
            raise DataError(f"{path.name} lacks array(s) {missing}; it holds {sorted(keys)}")
        if ("x_val" in keys) != ("y_val" in keys):
            raise DataError(f"{path.name} must hold both x_val and y_val, or neither")
        arrays = {k: archive[k] for k in keys if k in {f.name for f in dataclasses.fields(Splits)}}
    return Splits(**arrays)


def prepare(
    splits: Splits, task: str | None = None, dims: int | None = None, num_outputs: int | None = None
) -> TaskData:
    """Check `splits` and describe the task.

    Args:
        splits: raw arrays. Inputs (N, L), (N, C, L), (N, H, W) or (N, C, H, W).
        task: task type (one of TASK_TYPES); inferred from the targets when None.
        dims: 1 or 2. Needed only for 3-D inputs, which are read as (N, C, L) unless dims=2
            says they are (N, H, W) one-channel images.
        num_outputs: number of classes for classification; inferred from the training
            labels when None.
    """
    if task is not None and task not in TASK_TYPES:
        raise DataError(f"task={task!r} is not a task type; choose one of {list(TASK_TYPES)}")
    if dims not in (None, 1, 2):
        raise DataError(f"dims={dims!r} is not supported; choose 1 or 2")
    xs = {name: _inputs(name, getattr(splits, f"x_{name}"), dims) for name in _present(splits)}
    ys = {name: _targets(name, getattr(splits, f"y_{name}")) for name in _present(splits)}
    _check_agreement(xs, ys)
    spatial = xs["train"].shape[2:]
    task = task or infer_task(ys["train"], spatial)
    ys = {name: _cast_targets(name, y, task, spatial) for name, y in ys.items()}
    outputs, squeeze = _output_size(task, ys, spatial, num_outputs)
    checked = Splits(**{f"x_{n}": x for n, x in xs.items()}, **{f"y_{n}": y for n, y in ys.items()})
    return TaskData(checked, task, len(spatial), xs["train"].shape[1], spatial, outputs, squeeze)


def _present(splits: Splits) -> list[str]:
    names = [n for n in SPLIT_NAMES if getattr(splits, f"x_{n}") is not None]
    for name in names:
        if getattr(splits, f"y_{name}") is None:
            raise DataError(f"x_{name} is given without y_{name}")
    return names


def _inputs(split: str, x: object, dims: int | None) -> np.ndarray:
    """Return x as float32 (N, C, L) or (N, C, H, W)."""
    if not isinstance(x, np.ndarray):
        raise DataError(f"x_{split} must be a numpy array, got {type(x).__name__}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"x_{split} must be numeric, got dtype {x.dtype}")
    if x.ndim not in (2, 3, 4):
        raise DataError(
            f"x_{split} has shape {x.shape}; expected (N, L), (N, C, L), (N, H, W) with "
            "dims=2, or (N, C, H, W)"
        )
    if len(x) == 0:
        raise DataError(f"x_{split} is empty")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise DataError(f"x_{split} contains NaN or infinite values")
    if x.ndim == 2 or (x.ndim == 3 and dims == 2):
        return x[:, None]  # one channel
    if x.ndim == 4 and dims == 1:
        raise DataError(f"x_{split} has shape {x.shape}, which is 2D, but dims=1 was given")
    return x


def _targets(split: str, y: object) -> np.ndarray:
    if not isinstance(y, np.ndarray):
        raise DataError(f"y_{split} must be a numpy array, got {type(y).__name__}")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise DataError(f"y_{split} must be numeric, got dtype {y.dtype}")
    if y.ndim == 0 or len(y) == 0:
        raise DataError(f"y_{split} is empty")
    if not np.isfinite(y.astype(np.float64)).all():
        raise DataError(f"y_{split} contains NaN or infinite values")
    return y


def _check_agreement(xs: dict[str, np.ndarray], ys: dict[str, np.ndarray]) -> None:
    ref = xs["train"].shape[1:]
    for name in xs:
        if len(xs[name]) != len(ys[name]):
            raise DataError(
                f"x_{name} has {len(xs[name])} examples but y_{name} has {len(ys[name])}"
            )
        if xs[name].shape[1:] != ref:
            raise DataError(
                f"x_{name} items have shape {xs[name].shape[1:]} but x_train items have {ref}"
            )
        if ys[name].shape[1:] != ys["train"].shape[1:]:
            raise DataError(
                f"y_{name} items have shape {ys[name].shape[1:]} but y_train items have "
                f"{ys['train'].shape[1:]}"
            )


def _integral(y: np.ndarray) -> bool:
    return np.issubdtype(y.dtype, np.integer) or y.dtype == bool


def _binary(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0, 1)).all())


def infer_task(y: np.ndarray, spatial: tuple[int, ...]) -> str:
    """Infer the task type from training targets `y` and the input's spatial shape."""
    rest = y.shape[1:]
    if rest == ():
        return "classification" if _integral(y) else "regression"
    is_dense = rest[-len(spatial) :] == tuple(spatial)
    if len(rest) == 1 and not is_dense:
        if _integral(y) and _binary(y):
            return "multilabel"
        if not _integral(y) and not _binary(y):
            return "regression"
        raise DataError(_ambiguous(y, "multilabel", "regression"))
    if not is_dense:
        raise DataError(
            f"y_train items have shape {rest}, which matches neither a point target "
            f"((), (K,)) nor the input's spatial shape {tuple(spatial)}"
        )
    if len(rest) == 1 and _integral(y) and _binary(y):  # (N, L) with L == K is also (N, K)
        raise DataError(_ambiguous(y, "multilabel", "dense-classification"))
    if len(rest) == len(spatial):
        return "dense-classification" if _integral(y) else "dense-regression"
    if _integral(y) and _binary(y):
        return "dense-multilabel"
    if not _integral(y):
        return "dense-regression"
    raise DataError(_ambiguous(y, "dense-multilabel", "dense-regression"))


def _ambiguous(y: np.ndarray, *choices: str) -> str:
    return (
        f"cannot tell the task from y_train of shape {y.shape} and dtype {y.dtype}: state it "
        f"with --task (or task=) as one of {list(choices)}"
    )


def _cast_targets(split: str, y: np.ndarray, task: str, spatial: tuple[int, ...]) -> np.ndarray:
    """Cast targets to int64 class ids or float32 values, checking they fit `task`."""
    if task in ("classification", "dense-classification"):
        if not np.all(np.mod(y, 1) == 0):
            raise DataError(f"y_{split} must hold integer class ids for {task}")
        return y.astype(np.int64)
    if task in ("multilabel", "dense-multilabel") and not _binary(y):
        raise DataError(f"y_{split} must hold only 0 and 1 for {task}")
    expected = _expected_rank(task, len(spatial))
    if y.ndim - 1 not in expected:
        raise DataError(
            f"y_{split} has shape {y.shape}, which does not fit task {task!r} on inputs with "
            f"spatial shape {tuple(spatial)}"
        )
    return y.astype(np.float32)


def _expected_rank(task: str, dims: int) -> tuple[int, ...]:
    return {
        "multilabel": (1,),
        "regression": (0, 1),
        "dense-multilabel": (dims + 1,),
        "dense-regression": (dims, dims + 1),
    }[task]


def _output_size(
    task: str, ys: dict[str, np.ndarray], spatial: tuple[int, ...], num_outputs: int | None
) -> tuple[int, bool]:
    y = ys["train"]
    if task in ("classification", "dense-classification"):
        return _num_classes(ys, num_outputs), False
    dense = task.startswith("dense")
    squeeze = y.ndim - 1 == (len(spatial) if dense else 0)
    return (1 if squeeze else y.shape[1]), squeeze


def _num_classes(ys: dict[str, np.ndarray], num_outputs: int | None) -> int:
    if (ys["train"] < 0).any():
        raise DataError("y_train holds negative class ids; classes must be 0, 1, ..., K-1")
    k = num_outputs or int(ys["train"].max()) + 1
    if k < 2:
        raise DataError(f"classification needs at least 2 classes, y_train has {k}")
    for name, y in ys.items():
        if y.min() < 0 or y.max() >= k:
            raise DataError(
                f"y_{name} holds label {int(y.max() if y.max() >= k else y.min())}, out of "
                f"range for {k} classes (0..{k - 1})"
            )
    return k


def carve_validation(data: TaskData, fraction: float = 0.2, seed: int = 0) -> TaskData:
    """Split a validation set off the training set when none is given (never off test).

    Classification tasks are split per class so that every class keeps training examples.
    """
    s = data.splits
    if s.x_val is not None:
        return data
    n = len(s.x_train)
    if n < 2:
        raise DataError(f"the training set has {n} example; need at least 2 to carve validation")
    val_idx = _validation_indices(s.y_train, data.task_type, fraction, seed)
    train_idx = np.setdiff1d(np.arange(n), val_idx)
    splits = Splits(
        s.x_train[train_idx], s.y_train[train_idx], s.x_test, s.y_test,
        s.x_train[val_idx], s.y_train[val_idx],
    )  # fmt: skip
    return dataclasses.replace(data, splits=splits)


def _validation_indices(y: np.ndarray, task: str, fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if task != "classification":
        n_val = min(len(y) - 1, max(1, int(round(fraction * len(y)))))
        return np.sort(rng.permutation(len(y))[:n_val])
    picked = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_val = int(round(fraction * len(members))) if len(members) > 1 else 0
        picked.append(members[:n_val])
    idx = np.concatenate(picked)
    if len(idx) == 0:  # tiny sets: take one example anyway
        idx = rng.permutation(len(y))[:1]
    return np.sort(idx)
