"""The benchmark grid: tasks x methods x seeds (x training fractions), one JSON file per cell.

Every cell is a call to `xmodal.api.fit` (or to the classic baseline) on a built-in task, and
its result is written atomically to `OUT/cells/<cell>.json`. A cell whose file exists is not
run again, so an interrupted benchmark resumes where it stopped; a cell that raises records
its error and the grid goes on. `xmodal.bench.report` turns the cell files into tables and
plots.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import re
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from xmodal import api
from xmodal.api import RunConfig
from xmodal.bench.classic import ClassicConfig, fit_classic_run
from xmodal.config import Config, check_positive
from xmodal.data.tasks import get_task, task_names
from xmodal.train.methods import METHODS

logger = logging.getLogger(__name__)

CLASSIC = "classic"  # the method name of the classic baselines (xmodal.bench.classic)
CELLS_DIR = "cells"
# Settings that may change between runs into one folder without making earlier cells stale.
GRID_KEYS = ("tasks", "methods", "seeds", "train_fractions", "out", "retry_failed", "save_runs")
# Keys of a fit's metrics record copied into the cell record (None when absent).
METRIC_KEYS = (
    "metric", "direction", "val", "test", "test_last_epoch", "best_epoch", "otdd_before",
    "otdd_after", "align_objective", "trainable_parameters", "baseline", "strength", "n_train",
    "n_val", "n_test", "timings", "history",
)  # fmt: skip


@dataclasses.dataclass
class BenchConfig(Config):
    """A benchmark grid and the run settings its cells share."""

    tasks: list[str] = dataclasses.field(default_factory=lambda: ["gunpoint"])
    """Built-in task names (see `xmodal tasks`)."""
    methods: list[str] = dataclasses.field(default_factory=lambda: ["finetune", CLASSIC])
    """Fine-tuning methods (see `xmodal methods`) and/or "classic" for the classic baseline."""
    seeds: int = 3
    """Seeds per cell: 0, 1, ..., seeds - 1 (initialisation, shuffling, validation split)."""
    scale: float = 1.0
    """Size multiplier of the built-in tasks."""
    train_fractions: list[float] = dataclasses.field(default_factory=lambda: [1.0])
    """Shares of the training set to use; more than one value adds the low-data study."""
    body_1d: str = "minilm"
    """Body for tasks with 1-D inputs (sequences)."""
    body_2d: str = "dinov2-small"
    """Body for tasks with 2-D inputs (images)."""
    out: str = "bench"
    """Output folder: cells/, results.csv, results.json, report.md and plots."""
    retry_failed: bool = False
    """Run again the cells whose file records an error (finished cells are always kept)."""
    save_runs: bool = False
    """Also keep each fine-tuning cell's run folder (weights included) under OUT/runs/."""
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    """Settings shared by every fine-tuning cell (model, alignment, training). The grid sets
    data, scale, train_fraction, model.body, train.method and train.seed per cell."""
    classic: ClassicConfig = dataclasses.field(default_factory=ClassicConfig)
    """Settings of the classic baselines."""

    def __post_init__(self) -> None:
        self.tasks, self.methods = list(self.tasks), list(self.methods)
        self.train_fractions = [float(f) for f in self.train_fractions]
        _check_names("tasks", self.tasks, task_names())
        _check_names("methods", self.methods, [*METHODS.names(), CLASSIC])
        check_positive("seeds", self.seeds)
        check_positive("scale", self.scale)
        if not self.train_fractions or not all(0 < f <= 1 for f in self.train_fractions):
            raise ValueError(
                f"train_fractions must be values in (0, 1], got {self.train_fractions!r}"
            )


def _check_names(name: str, values: list[str], allowed: list[str]) -> None:
    unknown = [v for v in values if v not in allowed]
    if not values or unknown:
        raise ValueError(
            f"{name}={values!r}: {'empty' if not values else f'unknown {unknown}'}; "
            f"choose from {allowed}"
        )


@dataclasses.dataclass(frozen=True)
class Cell:
    """One point of the grid."""

    task: str
    method: str
    seed: int
    fraction: float
    body: str | None  # None for the classic baseline

    @property
    def key(self) -> str:
        """File-name stem: readable and unique within a benchmark."""
        body = _slug(self.body) if self.body else "none"
        return f"{self.task}__{self.method}__{body}__seed{self.seed}__frac{self.fraction:g}"

    def describe(self) -> str:
        body = f" on {self.body}" if self.body else ""
        return f"{self.task} {self.method}{body} seed {self.seed} fraction {self.fraction:g}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def body_for(task: str, config: BenchConfig) -> str:
    """The body of `task`'s fine-tuning cells: `body_1d` or `body_2d` by its input dims."""
    return {1: config.body_1d, 2: config.body_2d}[get_task(task).dims]


def grid(config: BenchConfig) -> list[Cell]:
    """All cells, ordered task, fraction, seed, method (a seed's methods run side by side)."""
    cells = []
    for task in config.tasks:
        body = body_for(task, config)
        for fraction in config.train_fractions:
            for seed in range(config.seeds):
                for method in config.methods:
                    cell_body = None if method == CLASSIC else body
                    cells.append(Cell(task, method, seed, fraction, cell_body))
    return cells


def cell_run_config(cell: Cell, config: BenchConfig) -> RunConfig:
    """The RunConfig of `cell`: the shared `config.run` with the cell's own settings."""
    run = config.run.to_dict()
    run.update(data=cell.task, scale=config.scale, train_fraction=cell.fraction)
    run["model"]["body"] = cell.body or run["model"]["body"]
    run["train"]["method"] = "finetune" if cell.method == CLASSIC else cell.method
    run["train"]["seed"] = cell.seed
    return RunConfig.from_dict(run)


def cell_path(out: str | Path, cell: Cell) -> Path:
    return Path(out) / CELLS_DIR / f"{cell.key}.json"


# ---------------------------------------------------------------------------------------------
# Running cells


def _fit_cell(cell: Cell, config: BenchConfig) -> dict:
    """Fine-tune (and align, for ORCA methods) through the public API."""
    out = None
    if config.save_runs:
        out = Path(config.out) / "runs" / cell.key
        shutil.rmtree(out, ignore_errors=True)  # left by a run whose cell file was never written
    return api.fit(cell_run_config(cell, config), out=out).metrics


def _classic_cell(cell: Cell, config: BenchConfig) -> dict:
    return fit_classic_run(cell_run_config(cell, config), config.classic)


# How each method's cells are computed; methods not listed here fine-tune through the API.
CELL_RUNNERS: dict[str, Callable[[Cell, BenchConfig], dict]] = {CLASSIC: _classic_cell}


def run_cell(cell: Cell, config: BenchConfig) -> dict:
    """Compute one cell and return its record; an exception becomes status "error"."""
    record = {**dataclasses.asdict(cell), "scale": config.scale, "started": _now()}
    start = time.perf_counter()
    try:
        metrics = CELL_RUNNERS.get(cell.method, _fit_cell)(cell, config)
    except Exception as exc:  # one failing cell must not stop the grid
        logger.warning("cell %s failed: %s: %s", cell.describe(), type(exc).__name__, exc)
        logger.debug("%s", traceback.format_exc())
        metrics = {}
        record.update(status="error", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())  # fmt: skip
    else:
        record.update(status="ok", error=None)
    record.update({key: metrics.get(key) for key in METRIC_KEYS})
    record.update(seconds=time.perf_counter() - start, finished=_now())
    return json_safe(record)


def json_safe(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers and NaN or infinities as None (strict JSON)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: object) -> None:
    """Write `data` as JSON to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False))
    os.replace(tmp, path)


def load_cells(out: str | Path) -> list[dict]:
    """The records of all cell files under `out`, in file-name order."""
    folder = Path(out) / CELLS_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"{str(folder)!r} does not exist: no benchmark cells to report")
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _is_done(path: Path, retry_failed: bool) -> dict | None:
    """The finished record at `path`, or None when the cell must (re)run."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        logger.warning("unreadable cell file %s: running the cell again", path)
        return None
    if retry_failed and record.get("status") != "ok":
        return None
    return record


def run_bench(config: BenchConfig) -> list[dict]:
    """Run every cell of the grid that has no file yet; return the records of all cells."""
    out = Path(config.out)
    _save_config(out, config)
    cells = grid(config)
    records = []
    for i, cell in enumerate(cells, 1):
        path = cell_path(out, cell)
        done = _is_done(path, config.retry_failed)
        if done is not None:
            logger.info("[%d/%d] %s: already done (%s)", i, len(cells), cell.describe(),
                        done.get("status"))  # fmt: skip
            records.append(done)
            continue
        logger.info("[%d/%d] %s: running", i, len(cells), cell.describe())
        record = run_cell(cell, config)
        write_json_atomic(path, record)
        records.append(record)
        logger.info("[%d/%d] %s: %s (%.1fs)", i, len(cells), cell.describe(),
                    _outcome(record), record["seconds"])  # fmt: skip
    return records


def _outcome(record: dict) -> str:
    if record["status"] != "ok":
        return f"failed ({record['error']})"
    if record["test"] is None:
        return f"test {record['metric']} undefined"
    return f"test {record['metric']} {record['test']:.4g}"


def _save_config(out: Path, config: BenchConfig) -> None:
    """Keep the grid's config as bench.yaml; warn when it differs from an earlier run's."""
    path = out / "bench.yaml"
    if path.is_file():
        earlier = yaml.safe_load(path.read_text()) or {}
        changed = [k for k, v in config.to_dict().items()
                   if earlier.get(k) != v and k not in GRID_KEYS]  # fmt: skip
        if changed:
            logger.warning("settings %s differ from the earlier run in %s; its finished cells "
                           "are kept as they are", changed, out)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_yaml())
