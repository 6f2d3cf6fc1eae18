"""Labeled feature sets for comparing whole datasets (`xmodal distance`).

A dataset (built-in task or npz) becomes points and labels: its training inputs, either
flattened as they are or embedded by a body (a seeded, untrained xmodal embedder followed
by the pretrained body, mean-pooled over tokens, so that datasets of different shapes land
in the same space), and its labels (k-means pseudo-labels when the targets are not classes).
"""

from __future__ import annotations

import numpy as np
import torch

from xmodal.align.labels import target_labels
from xmodal.data.arrays import DataError, TaskData, load_npz, prepare
from xmodal.data.tasks import get_task, load_task, task_names


def load_dataset(name: str, scale: float = 1.0) -> TaskData:
    """A built-in task by name or an npz path, checked."""
    if name in task_names():
        task = get_task(name)
        return prepare(load_task(name, scale), task.task_type, task.dims)
    if not name.endswith(".npz"):
        raise DataError(f"{name!r} is neither a built-in task nor an .npz file")
    return prepare(load_npz(name))


def dataset_points(
    data: TaskData,
    max_points: int = 2000,
    body: str | None = None,
    pseudo_labels: int = 10,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (n, d) and labels (n,) of up to `max_points` training examples."""
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    x, y = data.splits.x_train, data.splits.y_train
    keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:max_points])
    labels = target_labels(y[keep], data.task_type, pseudo_labels, seed)
    if body is None:
        features = torch.from_numpy(x[keep].reshape(len(keep), -1))  # (n, C * prod(spatial))
    else:
        features = _embedded(data, x[keep], body, seed)
    return features.float(), torch.from_numpy(labels)


@torch.no_grad()
def _embedded(data: TaskData, x: np.ndarray, body_name: str, seed: int) -> torch.Tensor:
    from xmodal.bodies import load_body
    from xmodal.model.network import ModelConfig, build_model

    torch.manual_seed(seed)
    model = build_model(ModelConfig(body=body_name), data, load_body(body_name)).eval()
    inputs = torch.from_numpy(x)
    model.embedder.standardize.fit(inputs)
    hidden = [model.body(model.embedder(part)) for part in inputs.split(64)]
    return torch.cat(hidden).mean(dim=1)  # (n, T, D) -> (n, D)
