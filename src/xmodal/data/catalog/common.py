"""Helpers shared by the built-in task loaders: example counts, seeded splits, normalisation
and an on-disk cache for generated arrays.

Generated tasks cache their arrays under `$XMODAL_CACHE` (default `~/.cache/xmodal/tasks`),
keyed by task name, generator version, scale and seed, so a second load is a file read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xmodal.data.splits import Splits

logger = logging.getLogger(__name__)

SPLIT_FIELDS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def cache_dir() -> Path:
    """The folder generated task arrays are cached in (`$XMODAL_CACHE` or the user cache)."""
    root = os.environ.get("XMODAL_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "xmodal" / "tasks"


def scaled(n: int, scale: float, minimum: int = 2) -> int:
    """`n` examples multiplied by `scale`, at least `minimum`."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    return max(minimum, int(round(n * scale)))


def cached_splits(name: str, version: int, params: dict, build: Callable[[], Splits]) -> Splits:
    """Return `build()`'s splits, read from the cache when an identical call was made before.

    `params` (JSON-serialisable: scale, seed, sizes) and `version` (bump it when the generator
    changes) form the key. Writes go through a temporary file so concurrent loads are safe.
    """
    key = json.dumps({"version": version, **params}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{digest}.npz"
    if path.exists():
        try:
            return _read_splits(path)
        except (OSError, ValueError, KeyError):  # a truncated or foreign file: rebuild it
            logger.warning("ignoring unreadable cache file %s", path)
    splits = build()
    _write_splits(path, splits)
    return splits


def _read_splits(path: Path) -> Splits:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in SPLIT_FIELDS if k in data.files}
    return Splits(**arrays)


def _write_splits(path: Path, splits: Splits) -> None:
    arrays = {k: getattr(splits, k) for k in splits.names()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as err:  # a read-only home should not stop a load
        logger.warning("could not cache task arrays at %s: %s", path, err)


def seeded_split(x: np.ndarray, y: np.ndarray, n_train: int, n_test: int, seed: int) -> Splits:
    """Draw disjoint random train and test sets of the given sizes from (x, y)."""
    if n_train + n_test > len(x):
        raise ValueError(f"n_train + n_test must be <= {len(x)} examples, got {n_train} + {n_test}")
    order = np.random.default_rng(seed).permutation(len(x))
    train, test = order[:n_train], order[n_train : n_train + n_test]
    return Splits(x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])


def subsample(
    x: np.ndarray, y: np.ndarray, n: int, seed: int, stratify: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Keep a seeded random `n` of the examples (all of them, in order, when n >= len(x)).

    With `stratify`, one example of every class is kept first (when n allows), so a small
    training set still shows the model each class.
    """
    if n >= len(x):
        return x, y
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    if stratify:
        _, first = np.unique(y[order], return_index=True)  # first of each class in `order`
        rest = np.setdiff1d(np.arange(len(x)), order[first])
        order = np.concatenate([order[first], rng.permutation(rest)])
    keep = np.sort(order[:n])
    return x[keep], y[keep]


def zscore_channels(splits: Splits) -> Splits:
    """Standardise every channel with the training set's mean and standard deviation.

    Statistics are pooled over examples and positions of `x_train` only, so no test
    information leaks into the inputs.
    """
    axes = (0,) + tuple(range(2, splits.x_train.ndim))  # all but the channel axis
    mean = splits.x_train.mean(axis=axes, keepdims=True)[0]  # (C, 1) or (C, 1, 1)
    std = splits.x_train.std(axis=axes, keepdims=True)[0]
    std = np.where(std > 1e-8, std, 1.0)
    out = {}
    for field in splits.names():
        value = getattr(splits, field)
        is_input = field.startswith("x_")
        out[field] = ((value - mean) / std).astype(np.float32) if is_input else value
    return Splits(**out)


def encode_labels(*label_arrays: np.ndarray) -> list[np.ndarray]:
    """Map string or numeric class labels to 0..K-1 ids, consistently across arrays."""
    pooled = np.concatenate(label_arrays)
    try:  # numeric labels stored as strings ("1", "10", "2") sort by value
        pooled, label_arrays = pooled.astype(float), [a.astype(float) for a in label_arrays]
    except ValueError:
        pass
    classes = np.unique(pooled)
    return [np.searchsorted(classes, labels).astype(np.int64) for labels in label_arrays]
