"""Class labels for the target side of OTDD.

OTDD compares labeled datasets. Classification targets are their own labels; dense,
multi-label and regression targets are clustered by k-means (on the flattened targets) and
the cluster ids serve as pseudo-labels, as in ORCA.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

CLASS_TASKS = ("classification",)


def target_labels(y: np.ndarray, task_type: str, k: int = 10, seed: int = 0) -> np.ndarray:
    """Integer labels (N,) for targets `y` of `task_type`.

    Args:
        y: targets, (N,) class ids or (N, ...) values.
        task_type: one of xmodal.data.splits.TASK_TYPES.
        k: number of k-means clusters for targets that are not class ids.
        seed: k-means seed.
    """
    if k < 1:
        raise ValueError(f"k (number of pseudo-labels) must be >= 1, got {k}")
    if task_type in CLASS_TASKS:
        return np.asarray(y, dtype=np.int64)
    flat = np.asarray(y, dtype=np.float64).reshape(len(y), -1)  # (N, prod(target shape))
    distinct = len(np.unique(flat, axis=0))
    clusters = min(k, distinct, len(flat))
    if clusters <= 1:
        return np.zeros(len(flat), dtype=np.int64)
    model = KMeans(n_clusters=clusters, n_init=4, random_state=seed)
    return model.fit_predict(flat).astype(np.int64)
