"""Cost of the alignment stage inside a real run: time against fine-tuning, and peak memory.

Runs `--method orca` on a task (default: the demo task, GunPoint with MiniLM) and reports

- alignment seconds / fine-tuning seconds of the same run (the target is under 10%);
- the peak memory rise during alignment, against the budget of twice the source features
  plus one batch of embedded target tokens, in two ways: the rise of the resident set (what
  the system sees, allocator overhead and first use of the libraries' kernels included) and
  what the code allocates, as tensors plus numpy arrays (the two peaks added, an upper
  bound).

Each seed runs twice: as a user's run does (the source-only work of the objective read from
the package or the disk cache), and with that work solved afresh, as on a first run with a
new body, proxy or settings. Every run has a process of its own, so no run inherits another's
heap; the tensor and array measures repeat the stage on copies of the untouched model,
untimed. With `--repeats N`, N - 1 more runs on copies are sized after the first, which
alone pays for the first use of the libraries' kernels.

    python benchmarks/bench_align_stage.py [--task gunpoint] [--body minilm] [--seeds 1]
        [--repeats 1]
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from measure import peak_array_memory, peak_memory, peak_tensor_memory

from xmodal.align.labels import target_labels
from xmodal.align.stage import align_embedder, sample_per_class
from xmodal.api import RunConfig, prepare_run_data
from xmodal.bodies import load_body
from xmodal.model.network import ModelConfig, build_model
from xmodal.train.loop import TrainConfig, fine_tune
from xmodal.train.methods import apply_trainable
from xmodal.train.metrics import get_metric


def measure(task: str, body: str, seed: int, fresh: bool, threads: int, repeats: int) -> dict:
    """Align and fine-tune as `xmodal fit` does, timing each stage and sizing the alignment.

    With `fresh`, the objective's source-only work is solved again rather than read back.
    With `repeats` > 1 the stage runs again on copies of the untouched model, each sized on
    its own: the first run pays for the first use of the libraries' kernels, later ones not.
    """
    torch.set_num_threads(threads)
    config = RunConfig(data=task, model=ModelConfig(body=body),
                       train=TrainConfig(method="orca", seed=seed))  # fmt: skip
    config.align.cache_source_work = not fresh
    data, metric_name = prepare_run_data(config)
    torch.manual_seed(seed)
    model = build_model(config.model, data, load_body(body))
    copies = [copy.deepcopy(model) for _ in range(repeats + 1)]  # the first two for sizing

    record, resident = peak_memory(lambda: align_embedder(model, data, config.align, seed))
    _, tensors = peak_tensor_memory(lambda: align_embedder(copies[0], data, config.align, seed))
    _, arrays = peak_array_memory(lambda: align_embedder(copies[1], data, config.align, seed))
    again = [peak_memory(lambda m=m: align_embedder(m, data, config.align, seed))[1]
             for m in copies[2:]]  # fmt: skip
    apply_trainable(model, "all")
    result = fine_tune(model, data, config.train, get_metric(metric_name, data.task_type))

    labels = target_labels(data.splits.y_train, data.task_type, config.align.pseudo_labels)
    per_class = config.align.objective.points_per_class
    n_batch = len(sample_per_class(labels, per_class, np.random.default_rng(0)))
    source_bytes = record["n_source"] * model.body.width * 4
    batch_bytes = n_batch * model.embedder.num_tokens * model.body.width * 4
    return {
        "seed": seed,
        "source_work": "solved afresh" if fresh else "read back",
        "align_s": record["seconds"],
        "finetune_s": result.seconds,
        "align_fraction": record["seconds"] / result.seconds,
        "resident_rise_mb": resident,
        "resident_rise_later_mb": again,
        "tensor_rise_mb": tensors,
        "array_rise_mb": arrays,
        "budget_mb": 2 * (source_bytes + batch_bytes) / 2**20,
        "otdd_before": record["otdd_before"],
        "otdd_after": record["otdd_after"],
        "test": result.test_best,
    }


def in_own_process(*args) -> dict:
    """`measure(*args)` in a new interpreter, so that no earlier run's heap is reused."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="gunpoint")
    parser.add_argument("--body", default="minilm")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="stage runs sized per process")
    args = parser.parse_args()

    rows = [
        in_own_process(args.task, args.body, seed, fresh, args.threads, args.repeats)
        for seed in range(args.seeds)
        for fresh in (False, True)
    ]
    print(json.dumps(rows, indent=1))
    for row in rows:
        allocated = row["tensor_rise_mb"] + row["array_rise_mb"]  # each peak on its own
        verdict = "within" if allocated <= row["budget_mb"] else "OVER"
        print(
            f"seed {row['seed']}, source work {row['source_work']}: alignment "
            f"{row['align_s']:.1f}s / fine-tuning {row['finetune_s']:.1f}s = "
            f"{100 * row['align_fraction']:.1f}%; peak rise: tensors "
            f"+{row['tensor_rise_mb']:.1f} MB + arrays +{row['array_rise_mb']:.1f} MB "
            f"({verdict} budget {row['budget_mb']:.1f} MB), "
            f"resident set +{row['resident_rise_mb']:.1f} MB"
            + "".join(f", then +{mb:.1f} MB" for mb in row["resident_rise_later_mb"])
        )


if __name__ == "__main__":
    main()
