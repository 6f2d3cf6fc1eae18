"""Train/validation/test arrays and the task type they describe.

`Splits` holds the raw numpy arrays a user gives (or a built-in task loads); `TASK_TYPES`
names the kinds of target xmodal trains on. Validation and inference of these lives in
`xmodal.data.arrays`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Target kinds. Point tasks predict one thing per example; dense tasks one per position.
TASK_TYPES = (
    "classification",  # y: (N,) integer class ids
    "multilabel",  # y: (N, K) in {0, 1}
    "regression",  # y: (N,) or (N, K) floats
    "dense-classification",  # y: (N, L) or (N, H, W) integer class ids per position
    "dense-multilabel",  # y: (N, K, L) or (N, K, H, W) in {0, 1}
    "dense-regression",  # y: (N, L), (N, K, L), (N, H, W) or (N, K, H, W) floats
)


@dataclasses.dataclass
class Splits:
    """Arrays of one dataset. `x_*` are (N, C, L) or (N, C, H, W) float arrays.

    `x_val`/`y_val` are optional: when absent, fine-tuning carves a validation split out of
    the training set (never out of the test set).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def subset_train(self, fraction: float, seed: int = 0) -> Splits:
        """Keep a random `fraction` of the training set (for low-data experiments)."""
        n = len(self.x_train)
        keep = max(1, int(round(fraction * n)))
        idx = np.sort(np.random.default_rng(seed).permutation(n)[:keep])
        return dataclasses.replace(self, x_train=self.x_train[idx], y_train=self.y_train[idx])
