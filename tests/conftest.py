"""Shared fixtures: seeded tiny arrays for every task type, and a quiet, isolated cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmodal.data.splits import Splits


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(2)


def make_splits(task_type: str, n: int = 48, seed: int = 0) -> Splits:
    """Learnable tiny data of `task_type`: targets depend on the inputs' first channel."""
    rng = np.random.default_rng(seed)
    if task_type == "dense-classification" or task_type == "dense-regression-2d":
        x = rng.normal(size=(n, 1, 8, 8)).astype(np.float32)
    else:
        x = rng.normal(size=(n, 2, 24)).astype(np.float32)
    signal = x[:, 0]  # (n, *spatial)
    mean = signal.reshape(n, -1).mean(axis=1)
    targets = {
        "classification": lambda: (mean > 0).astype(np.int64) + (mean > 0.2),
        "multilabel": lambda: np.stack([mean > 0, signal[:, 0] > 0, signal[:, 1] > 0], 1),
        "regression": lambda: 3 * mean + 1,
        "dense-classification": lambda: (signal > 0).astype(np.int64),
        "dense-regression": lambda: np.stack([2 * signal, -signal], 1),
        "dense-regression-2d": lambda: 2 * signal,
        "dense-multilabel": lambda: np.stack([signal > 0, signal < -1], 1),
    }
    y = targets[task_type]()
    y = y.astype(np.int64) if y.dtype == bool else y
    cut = int(0.75 * n)
    return Splits(x[:cut], y[:cut], x[cut:], y[cut:])


@pytest.fixture
def splits_of():
    return make_splits


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep caches that tests write out of the user's home, but share them across tests."""
    import os

    if "XMODAL_CACHE" not in os.environ:
        monkeypatch.setenv("XMODAL_CACHE", str(tmp_path_factory.getbasetemp() / "xmodal-cache"))
