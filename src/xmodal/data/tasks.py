"""The catalog of built-in tasks: a registry of named, offline, seeded datasets.

Each `TaskDef` says what a task is (input shape, target type, metric) and how to load its
`Splits`. Modules under `xmodal.data.catalog` register the tasks; `xmodal tasks` lists them
and `xmodal fit TASK` accepts their names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from xmodal.data.splits import Splits
from xmodal.registry import Registry

TASKS: Registry[TaskDef] = Registry("task")


@dataclasses.dataclass(frozen=True)
class TaskDef:
    """A built-in task.

    `loader(scale, seed)` returns the task's `Splits`; `scale` multiplies the default
    number of examples (1.0 keeps benchmarks to minutes on 2 CPU cores) and `seed` fixes
    any generator. The same (scale, seed) gives the same arrays on every machine.
    """

    name: str
    description: str
    family: str  # e.g. "time series", "image", "music", "pde", "genomics", "logic"
    dims: int  # 1 for (N, C, L) inputs, 2 for (N, C, H, W)
    task_type: str  # one of xmodal.data.splits.TASK_TYPES
    metric: str  # name in xmodal.train.metrics.METRICS
    loader: Callable[[float, int], Splits]
    source: str = ""  # where the data comes from (package, generator)


def register_task(task: TaskDef) -> TaskDef:
    TASKS.add(task.name, task)
    return task


def get_task(name: str) -> TaskDef:
    _load_catalog()
    return TASKS.get(name)


def task_names() -> list[str]:
    _load_catalog()
    return TASKS.names()


def load_task(name: str, scale: float = 1.0, seed: int = 0) -> Splits:
    """Load the arrays of built-in task `name`."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    return get_task(name).loader(scale, seed)


def _load_catalog() -> None:
    import xmodal.data.catalog  # noqa: F401  (registers the built-in tasks on import)
