"""Cost of the alignment stage inside a real run: time against fine-tuning, and peak memory.

Runs `--method orca` on a task (default: the demo task, GunPoint with MiniLM) and reports

- alignment seconds / fine-tuning seconds of the same run (the target is under 10%);
- the peak resident-memory increase during alignment, against the budget of twice the
  cached source features plus one batch of embedded target tokens.

Each seed runs twice: as a user's run does (the source-only work of the objective read from
the package or the disk cache), and with that work solved afresh, as on a first run with a
new body, proxy or settings. Memory is sampled from a background thread (psutil RSS every
2 ms), so it measures the stage itself rather than the start-up before it.

    python benchmarks/bench_align_stage.py [--task gunpoint] [--body minilm] [--seeds 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from xmodal.align import stage
from xmodal.align.labels import target_labels
from xmodal.align.stage import align_embedder, sample_per_class
from xmodal.api import RunConfig, prepare_run_data
from xmodal.bodies import load_body
from xmodal.model.network import ModelConfig, build_model
from xmodal.train.loop import TrainConfig, fine_tune
from xmodal.train.methods import apply_trainable
from xmodal.train.metrics import get_metric


class PeakRSS:
    """Highest resident set size seen while the context is open, minus the size at entry."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval, self.peak, self.start = interval, 0, 0
        self._stop = threading.Event()

    def _poll(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = psutil.Process().memory_info().rss
        self.peak = self.start
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def increase(self) -> int:
        return self.peak - self.start


def measure(config: RunConfig, fresh: bool) -> dict:
    """Align and fine-tune as `xmodal fit` does, timing each stage and watching memory.

    With `fresh`, the objective's source-only work is solved again rather than read back.
    """
    data, metric_name = prepare_run_data(config)
    torch.manual_seed(config.train.seed)
    model = build_model(config.model, data, load_body(config.model.body))
    shipped = stage.SHIPPED_WORK
    if fresh:
        config.align.cache_source_work = False
        stage.SHIPPED_WORK = Path(tempfile.mkdtemp())  # an empty folder: nothing shipped
    try:
        with PeakRSS() as rss:
            record = align_embedder(model, data, config.align, config.train.seed)
    finally:
        stage.SHIPPED_WORK = shipped
    apply_trainable(model, "all")
    result = fine_tune(model, data, config.train, get_metric(metric_name, data.task_type))

    n_batch = len(sample_per_class(labels_of(data, config), config.align.objective.points_per_class,
                                    np.random.default_rng(0)))  # fmt: skip
    source_bytes = record["n_source"] * model.body.width * 4
    batch_bytes = n_batch * model.embedder.num_tokens * model.body.width * 4
    return {
        "source_work": "solved afresh" if fresh else "read back",
        "align_s": record["seconds"],
        "finetune_s": result.seconds,
        "align_fraction": record["seconds"] / result.seconds,
        "peak_increase_mb": rss.increase / 2**20,
        "budget_mb": 2 * (source_bytes + batch_bytes) / 2**20,
        "otdd_before": record["otdd_before"],
        "otdd_after": record["otdd_after"],
        "test": result.test_best,
    }


def labels_of(data, config: RunConfig) -> np.ndarray:
    return target_labels(data.splits.y_train, data.task_type, config.align.pseudo_labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="gunpoint")
    parser.add_argument("--body", default="minilm")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for seed in range(args.seeds):
        for fresh in (False, True):
            config = RunConfig(data=args.task, model=ModelConfig(body=args.body),
                               train=TrainConfig(method="orca", seed=seed))  # fmt: skip
            rows.append({"seed": seed, **measure(config, fresh)})
    print(json.dumps(rows, indent=1))
    for row in rows:
        print(
            f"seed {row['seed']}, source work {row['source_work']}: alignment "
            f"{row['align_s']:.1f}s / fine-tuning {row['finetune_s']:.1f}s = "
            f"{100 * row['align_fraction']:.1f}%; peak memory +{row['peak_increase_mb']:.0f} MB "
            f"vs budget {row['budget_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
