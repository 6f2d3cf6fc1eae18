"""Time and size one alignment step of the class-wise OTDD objectives against a reference.

The step is what the alignment stage does per optimiser step: the objective's forward and
backward pass for a target batch of `--target-classes` x `--per-class` points against a fixed
source of `--source-points` points, on one thread, for "otdd-classwise" and "otdd-orca". Its
peak memory, over what the source cache already holds, is checked against the project's budget
of twice the source features plus one target batch, in two ways: the rise of the resident set
(what the system sees, allocator overhead included) and the rise of the memory held by tensors
(what the code allocates). The build of the source cache (the source-only work, done once) is
sized the same way, its rise including the cache itself. The reference computes the distance
of one target class as the original ORCA code does: every problem solved on its own by plain
log-domain Sinkhorn (torch.logsumexp), all source-only work redone at each call. A last table
times this package's Sinkhorn kernel against POT's on one outer problem.

Run: python benchmarks/bench_otdd.py [--width 768 --source-points 5000 ...]
"""

from __future__ import annotations

import argparse
import math

import ot
import torch
from measure import peak_memory, peak_tensor_memory, timed

from xmodal.align import ObjectiveConfig, build_objective, sinkhorn


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=128, help="target points per class (b)")
    parser.add_argument("--source-points", type=int, default=5000)
    parser.add_argument("--source-classes", type=int, default=10)
    parser.add_argument("--width", type=int, default=768, help="feature dimension")
    parser.add_argument("--scale", type=float, default=0.1, help="cluster spread per coordinate")
    parser.add_argument("--reg", type=float, default=0.1)
    parser.add_argument("--tol", type=float, default=1e-2, help="Sinkhorn tolerance of the step")
    parser.add_argument("--kernel-tol", type=float, default=1e-4, help="tolerance, kernel table")
    parser.add_argument("--steps", type=int, default=3, help="warm steps timed after the first")
    parser.add_argument("--no-reference", action="store_true", help="skip the slow reference")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def clustered(n: int, classes: int, width: int, scale: float, seed: int):
    """(n, width) float32 points around one random centre per class, and (n,) labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.randn(classes, width, generator=generator) * scale
    return centres[labels] + torch.randn(n, width, generator=generator) * scale, labels


# --------------------------------------------------------------------------- measuring


OBJECTIVE_NAMES = ("otdd-classwise", "otdd-orca")


def step(objective, x: torch.Tensor, y: torch.Tensor) -> float:
    """One forward and backward pass of the objective; returns the value."""
    x = x.clone().requires_grad_()
    value = objective(x, y)
    value.backward()
    return value.item()


# --------------------------------------------------------------------------- the reference


def plain_sinkhorn(cost: torch.Tensor, reg: float, tol: float, symmetric: bool = False):
    """Entropic OT value with uniform weights, written directly from the definition.

    Log-domain updates by torch.logsumexp, annealed from the cost's spread down to `reg` (one
    update per level), then updates until the L1 column error is below `tol`. Self problems
    average each update with the previous potential. The value comes from a last row update
    taken with gradients, so its gradient is the plan (as the original code's solver does).
    """
    n, m = cost.shape
    log_a, log_b = -math.log(n), -math.log(m)
    fixed = cost.detach()
    f, g = torch.zeros(n, dtype=cost.dtype), torch.zeros(m, dtype=cost.dtype)
    spread = float((fixed.amax(1) - fixed.amin(1)).max())
    levels = [spread * 0.5**k for k in range(64) if spread * 0.5**k > reg] + [reg]
    for level, eps in enumerate(levels):
        for _ in range(1 if level < len(levels) - 1 else 1000):
            f = -eps * torch.logsumexp(log_b + (g[None, :] - fixed) / eps, dim=1)
            if symmetric:  # rows and columns are the same points: average the update
                error = float(((g - f) / eps).exp().sub(1).abs().mean())
                g = 0.5 * (g + f)
            else:
                new_g = -eps * torch.logsumexp(log_a + (f[:, None] - fixed) / eps, dim=0)
                error = float(((g - new_g) / eps).exp().sub(1).abs().mean())
                g = new_g
            if level == len(levels) - 1 and error < tol:
                break
    last_f = -reg * torch.logsumexp(log_b + (g[None, :] - cost) / reg, dim=1)
    return last_f.mean() + g.mean()


def reference_class_distance(source_x, source_y, target_x, reg, tol) -> torch.Tensor:
    """Debiased OTDD of one target class (one label) to the labeled source, from scratch."""
    classes = source_y.unique()
    members = [source_x[source_y == c] for c in classes]
    own = [plain_sinkhorn(torch.cdist(p, p) ** 2, reg, tol, symmetric=True) for p in members]
    target_own = plain_sinkhorn(torch.cdist(target_x, target_x) ** 2, reg, tol, symmetric=True)

    size = len(classes)
    source_labels = torch.zeros(size, size, dtype=source_x.dtype)
    for i in range(size):
        for j in range(i + 1, size):
            cross = plain_sinkhorn(torch.cdist(members[i], members[j]) ** 2, reg, tol)
            source_labels[i, j] = source_labels[j, i] = cross - 0.5 * (own[i] + own[j])
    to_source = torch.stack(
        [
            plain_sinkhorn(torch.cdist(target_x, p) ** 2, reg, tol) - 0.5 * (target_own + o)
            for p, o in zip(members, own)
        ]
    )

    index = torch.searchsorted(classes, source_y)
    source_cost = torch.cdist(source_x, source_x) ** 2 + source_labels[index][:, index]
    source_term = plain_sinkhorn(source_cost, reg, tol, symmetric=True)
    cross_cost = torch.cdist(target_x, source_x) ** 2 + to_source[index][None, :]
    return plain_sinkhorn(cross_cost, reg, tol) - 0.5 * (target_own + source_term)


# --------------------------------------------------------------------------- the runs


def run_fast(args, source, target, name: str) -> dict:
    """Build the objective `name`, time its first and warm steps, size its first step."""
    config = ObjectiveConfig(name=name, reg=args.reg, tol=args.tol, points_per_class=args.per_class)
    (objective, build), build_resident = peak_memory(
        lambda: timed(lambda: build_objective(config, *source))
    )
    (value, cold), resident = peak_memory(lambda: timed(lambda: step(objective, *target)))
    generator = torch.Generator().manual_seed(args.seed + 1)
    warm = []
    for _ in range(args.steps):  # the embedder moves a little between optimiser steps
        moved = target[0] + 0.02 * args.scale * torch.randn(target[0].shape, generator=generator)
        warm.append(timed(lambda moved=moved: step(objective, moved, target[1]))[1])
    # The profiler's build and first step, untimed.
    fresh, build_tensors = peak_tensor_memory(lambda: build_objective(config, *source))
    _, tensors = peak_tensor_memory(lambda: step(fresh, *target))
    return {"build": build, "build_resident": build_resident, "build_tensors": build_tensors,
            "cold": cold, "warm": sum(warm) / max(len(warm), 1), "value": value,
            "resident": resident, "tensors": tensors}  # fmt: skip


def run_reference(args, source, target) -> dict:
    """The reference on target class 0, and the fast path on the same single class."""
    x0 = target[0][target[1] == 0]
    fast_config = ObjectiveConfig(reg=args.reg, tol=args.tol, warm_start=False)
    fast = build_objective(fast_config, *source)(x0, torch.zeros(len(x0), dtype=torch.long))

    x = x0.clone().requires_grad_()

    def reference_step():
        value = reference_class_distance(*source, x, args.reg, args.tol)
        value.backward()
        return value.item()

    value, seconds = timed(reference_step)
    return {"seconds": seconds, "value": value, "fast_value": fast.item()}


def run_kernels(args, source, target) -> list[tuple[str, float, float]]:
    """This package's Sinkhorn and POT's on one (b, n_s) problem of squared distances."""
    x0 = target[0][target[1] == 0]
    cost = torch.cdist(x0, source[0]) ** 2
    tol = args.kernel_tol
    ours, ours_time = timed(lambda: sinkhorn(cost, reg=args.reg, max_iter=1000, tol=tol))
    a = torch.full((len(cost),), 1 / len(cost))
    b = torch.full((cost.shape[1],), 1 / cost.shape[1])
    rows = [("xmodal sinkhorn (annealed, clamped)", ours_time, float(ours.transport_cost()))]
    for method in ("sinkhorn_log", "sinkhorn_stabilized"):
        pot, seconds = timed(
            lambda method=method: ot.sinkhorn2(
                a, b, cost, args.reg, method=method, stopThr=tol, numItermax=1000
            )
        )
        rows.append((f"POT ot.sinkhorn2 method={method}", seconds, float(pot)))
    return rows


def step_rows(args, runs: dict, budget: float) -> list[tuple[str, ...]]:
    """(measure, value per objective) rows of the step table."""

    def verdict(mb: float) -> str:
        return "yes" if mb <= budget else "NO"

    measures = [
        ("source cache, built once (s)", lambda run: f"{run['build']:.2f}"),
        ("source cache: peak resident set rise (MB)",
         lambda run: f"{run['build_resident']:.1f}"),
        ("source cache: peak tensor memory rise (MB)",
         lambda run: f"{run['build_tensors']:.1f}"),
        ("step: forward + backward, first call (s)", lambda run: f"{run['cold']:.3f}"),
        (f"step: forward + backward, warm (mean of {args.steps}) (s)",
         lambda run: f"{run['warm']:.3f}"),
        ("objective value", lambda run: f"{run['value']:.6g}"),
        ("first step: peak resident set rise (MB)", lambda run: f"{run['resident']:.1f}"),
        ("first step: peak tensor memory rise (MB)", lambda run: f"{run['tensors']:.1f}"),
        ("memory budget: 2 x (source + target batch) (MB)", lambda run: f"{budget:.1f}"),
        ("within budget: cache resident / tensors",
         lambda run: f"{verdict(run['build_resident'])} / {verdict(run['build_tensors'])}"),
        ("within budget: step resident / tensors",
         lambda run: f"{verdict(run['resident'])} / {verdict(run['tensors'])}"),
    ]  # fmt: skip
    return [(label, *(cell(run) for run in runs.values())) for label, cell in measures]


def reference_rows(args, runs: dict, reference) -> list[tuple[str, str]]:
    """(measure, value) rows comparing one class with the reference."""
    per_class = runs["otdd-classwise"]["cold"] / args.target_classes
    agreement = abs(reference["fast_value"] - reference["value"]) / abs(reference["value"])
    return [
        ("reference: one class, forward + backward (s)", f"{reference['seconds']:.2f}"),
        ("ratio reference / (first step / classes)", f"{reference['seconds'] / per_class:.0f}"),
        ("class 0 value: fast path", f"{reference['fast_value']:.6g}"),
        ("class 0 value: reference", f"{reference['value']:.6g}"),
        ("relative difference", f"{agreement:.1e}"),
    ]


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    cells = [f" {header[0]:<{widths[0]}} "] + [
        f" {h:>{w}} " for h, w in zip(header[1:], widths[1:])
    ]
    print("|" + "|".join(cells) + "|")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        cells = [f" {row[0]:<{widths[0]}} "] + [f" {c:>{w}} " for c, w in zip(row[1:], widths[1:])]
        print("|" + "|".join(cells) + "|")


def report(args, runs, reference, kernels, sizes) -> None:
    n_target = args.target_classes * args.per_class
    source_mb, target_mb = sizes
    print(
        f"class-wise OTDD, one thread: {args.target_classes} target classes x {args.per_class}"
        f" points ({n_target}) vs {args.source_points} source points in {args.source_classes}"
        f" classes, width {args.width}, reg {args.reg}, tol {args.tol}; source features"
        f" {source_mb:.1f} MB, target batch {target_mb:.1f} MB\n"
    )
    budget = 2 * (source_mb + target_mb)
    print_table(("measure", *runs), step_rows(args, runs, budget))
    if reference is not None:
        print()
        print_table(("one target class against the reference", "value"),
                    reference_rows(args, runs, reference))  # fmt: skip

    title = f"Sinkhorn kernel on one class, tol {args.kernel_tol:g}"
    print()
    rows = [(name, f"{seconds:.3f}", f"{value:.6g}") for name, seconds, value in kernels]
    print_table((title, "seconds", "<P, C>"), rows)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    source = clustered(args.source_points, args.source_classes, args.width, args.scale, args.seed)
    n_target = args.target_classes * args.per_class
    target = clustered(n_target, args.target_classes, args.width, args.scale, args.seed + 7)
    runs = {name: run_fast(args, source, target, name) for name in OBJECTIVE_NAMES}
    reference = None if args.no_reference else run_reference(args, source, target)
    kernels = run_kernels(args, source, target)
    sizes = [x.numel() * x.element_size() / 2**20 for x in (source[0], target[0])]
    report(args, runs, reference, kernels, sizes)


if __name__ == "__main__":
    main()
