"""The benchmark report: tables and plots built from the cell files of `xmodal.bench.runner`.

`write_report(out)` reads `OUT/cells/*.json` and writes `results.csv` and `results.json` (one
row per cell), `report.md` (mean and standard deviation over seeds per task and method, the
low-data table, the performance profile's summary, timings and failures),
`performance_profile.png` and, when some cells ran the alignment stage,
`otdd_vs_error.png`. Everything is rebuilt from the cell files, so it can be run at any time.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from xmodal.bench.profile import as_loss, performance_profile, performance_ratios, tau_grid
from xmodal.bench.runner import load_cells

logger = logging.getLogger(__name__)

# Columns of results.csv / results.json, in order; timings follow as timing_<stage>.
RESULT_COLUMNS = (
    "task", "method", "seed", "fraction", "body", "scale", "status", "metric", "direction",
    "test", "test_last_epoch", "val", "best_epoch", "otdd_before", "otdd_after",
    "align_objective", "trainable_parameters", "baseline", "strength", "n_train", "n_val",
    "n_test", "seconds", "started", "finished", "error",
)  # fmt: skip
PROFILE_TAUS = (1.0, 1.1, 1.5, 2.0)  # columns of the profile summary table
ARROWS = {"min": "↓", "max": "↑"}
STAGE_ORDER = ("setup_s", "align_s", "finetune_s", "fit_s")


@dataclasses.dataclass
class Summary:
    """Test metric over the seeds of one (task, fraction, method)."""

    task: str
    fraction: float
    method: str
    metric: str | None
    direction: str | None
    mean: float | None  # None when no seed finished
    std: float | None  # sample standard deviation (ddof=1); 0 for a single seed
    n: int  # finished seeds
    failed: int


@dataclasses.dataclass
class Report:
    """Paths written by `write_report` and the headline table (Markdown)."""

    folder: Path
    files: list[Path]
    headline: str


def result_rows(records: list[dict]) -> list[dict]:
    """One flat row per cell: RESULT_COLUMNS, then timing_<stage> for every stage seen."""
    stages = _stages(records)
    rows = []
    for record in records:
        row = {key: record.get(key) for key in RESULT_COLUMNS}
        timings = record.get("timings") or {}
        row.update({f"timing_{s}": timings.get(s) for s in stages})
        rows.append(row)
    return rows


def _stages(records: list[dict]) -> list[str]:
    """Timing stages seen in `records`, in pipeline order (unknown stages last)."""
    seen = {s for r in records for s in (r.get("timings") or {})}
    return [s for s in STAGE_ORDER if s in seen] + sorted(seen - set(STAGE_ORDER))


def grid_order(records: list[dict], out: Path) -> tuple[list[dict], list[str]]:
    """Records sorted by task, fraction, seed and method as the grid in bench.yaml lists them,
    and the methods in that order (names not in bench.yaml follow, as first seen)."""
    saved = {}
    if (out / "bench.yaml").is_file():
        saved = yaml.safe_load((out / "bench.yaml").read_text()) or {}
    tasks = list(dict.fromkeys([*saved.get("tasks", []), *(r["task"] for r in records)]))
    methods = list(dict.fromkeys([*saved.get("methods", []), *(r["method"] for r in records)]))

    def position(r: dict) -> tuple:
        return tasks.index(r["task"]), r["fraction"], r["seed"], methods.index(r["method"])

    used = {r["method"] for r in records}
    return sorted(records, key=position), [m for m in methods if m in used]


def write_results(records: list[dict], out: Path) -> list[Path]:
    """results.csv and results.json under `out`."""
    rows = result_rows(records)
    columns = list(rows[0]) if rows else list(RESULT_COLUMNS)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    return [out / "results.csv", out / "results.json"]


def summarize(records: list[dict]) -> list[Summary]:
    """Mean and standard deviation of the test metric over seeds, in the cells' order."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["task"], record["fraction"], record["method"])].append(record)
    return [_summary(key, group) for key, group in groups.items()]


def _summary(key: tuple, group: list[dict]) -> Summary:
    ok = [r for r in group if r.get("status") == "ok" and r.get("test") is not None]
    values = np.array([r["test"] for r in ok], dtype=float)
    first = (ok or group)[0]
    mean = float(values.mean()) if len(values) else None
    std = float(values.std(ddof=1)) if len(values) > 1 else (0.0 if len(values) else None)
    return Summary(*key, first.get("metric"), first.get("direction"), mean, std, len(ok),
                   len(group) - len(ok))  # fmt: skip


def headline_fraction(summaries: list[Summary]) -> float:
    """The training fraction of the main table: the largest one run (usually 1)."""
    return max(s.fraction for s in summaries)


def low_data_summaries(summaries: list[Summary]) -> list[Summary]:
    """The summaries of the tasks run at more than one training fraction."""
    fractions = defaultdict(set)
    for s in summaries:
        fractions[s.task].add(s.fraction)
    return [s for s in summaries if len(fractions[s.task]) > 1]


def task_losses(summaries: list[Summary], fraction: float) -> dict[str, dict[str, float]]:
    """losses[task][method] of the mean test metric at `fraction` (see `profile.as_loss`)."""
    losses: dict[str, dict[str, float]] = defaultdict(dict)
    for s in summaries:
        if s.fraction == fraction and s.direction is not None:
            losses[s.task][s.method] = as_loss(s.mean, s.direction)
    return dict(losses)


# ---------------------------------------------------------------------------------------------
# Markdown


def _cell_text(s: Summary | None, seeds: int, best: bool) -> str:
    if s is None:
        return ""
    if s.mean is None:
        return "failed"
    text = f"{s.mean:.4g}" if s.n == 1 else f"{s.mean:.4g} ± {s.std:.2g}"
    text = f"**{text}**" if best else text
    return text if s.n == seeds else f"{text} ({s.n}/{s.n + s.failed})"


def _best_methods(row: dict[str, Summary]) -> set[str]:
    """Methods whose mean is the best of the row (ties included)."""
    scored = {m: as_loss(s.mean, s.direction) for m, s in row.items() if s.mean is not None}
    if not scored:
        return set()
    top = min(scored.values())
    return {m for m, v in scored.items() if v == top}


def results_table(summaries: list[Summary], fractions: list[float], methods: list[str]) -> str:
    """Rows (task[, fraction]), a column per method: mean ± std over seeds; the best in bold."""
    show_fraction = len(fractions) > 1
    by_row: dict[tuple, dict[str, Summary]] = defaultdict(dict)
    for s in summaries:
        if s.fraction in fractions:
            by_row[(s.task, s.fraction)][s.method] = s
    head = ["task", *(["fraction"] if show_fraction else []), "metric", *methods]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (task, fraction), row in by_row.items():
        seeds = max(s.n + s.failed for s in row.values())
        best = _best_methods(row)
        cells = [_cell_text(row.get(m), seeds, m in best) for m in methods]
        lead = [task, *([f"{fraction:g}"] if show_fraction else []), _metric_text(row)]
        lines.append("| " + " | ".join(lead + cells) + " |")
    return "\n".join(lines)


def _metric_text(row: dict[str, Summary]) -> str:
    """The row's metric name with ↓ (minimise) or ↑ (maximise); empty when all failed."""
    known = [s for s in row.values() if s.metric]
    if not known:
        return ""
    return f"{known[0].metric} {ARROWS.get(known[0].direction, '')}"


def profile_table(ratios: dict[str, np.ndarray]) -> str:
    """Share of tasks within a factor tau of the best, for a few tau."""
    rho = performance_profile(ratios, PROFILE_TAUS)
    head = ["method", *(f"τ = {t:g}" for t in PROFILE_TAUS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, values in rho.items():
        lines.append("| " + " | ".join([method, *(f"{v:.2f}" for v in values)]) + " |")
    return "\n".join(lines)


def timing_table(records: list[dict], methods: list[str]) -> str:
    """Mean seconds per finished cell, by method and stage."""
    ok = [r for r in records if r.get("status") == "ok"]
    stages = _stages(ok)
    lines = ["| method | " + " | ".join([*stages, "total"]) + " |",
             "|" + "---|" * (len(stages) + 2)]  # fmt: skip
    for method in methods:
        mine = [r for r in ok if r["method"] == method]
        if not mine:
            continue
        means = [_mean([(r.get("timings") or {}).get(s) for r in mine]) for s in stages]
        means.append(_mean([r.get("seconds") for r in mine]))
        lines.append(f"| {method} | " + " | ".join(_seconds(v) for v in means) + " |")
    return "\n".join(lines)


def _mean(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def failures_section(records: list[dict], limit: int = 20) -> str:
    failed = [r for r in records if r.get("status") != "ok"]
    if not failed:
        return "No cell failed."
    lines = [f"{len(failed)} cell(s) failed:", ""]
    for r in failed[:limit]:
        error = str(r.get("error") or "").splitlines()[0] if r.get("error") else "unknown error"
        lines.append(f"- {r['task']} / {r['method']} / seed {r['seed']} / fraction "
                     f"{r['fraction']:g}: {error}")  # fmt: skip
    if len(failed) > limit:
        lines.append(f"- … and {len(failed) - limit} more (see results.csv)")
    return "\n".join(lines)


CONVENTIONS = """\
Conventions: each entry is the test metric of the best-validation weights, mean ± sample
standard deviation over seeds (the number of finished seeds follows in brackets when some
failed); ↓ marks metrics to minimise and ↑ metrics to maximise; the best mean of a row is in
bold. The performance profile (Dolan and Moré 2002) compares methods on the main table's
means: a metric to minimise is a loss as it is, a metric to maximise (at most 1) becomes the
loss 1 - value; a method's ratio on a task is its loss over the best loss (losses below 1e-6
count as 1e-6), and ρ(τ) is the share of tasks where that ratio is at most τ. A method with
no result on a task is never within any factor there."""


# ---------------------------------------------------------------------------------------------
# Plots (Agg canvas: no display and no change to pyplot's global backend)


def plot_profile(ratios: dict[str, np.ndarray], path: Path) -> None:
    """Step plot of rho_m(tau) against tau (log scale) for every method."""
    taus = tau_grid(ratios)
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for method, rho in performance_profile(ratios, taus).items():
        ax.step(taus, rho, where="post", label=method)
    ax.set_xscale("log", base=2)
    ax.set_xlim(1, taus[-1])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ (loss within a factor τ of the best method)")
    ax.set_ylabel("share of tasks")
    ax.set_title("Performance profile")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def otdd_points(records: list[dict]) -> list[dict]:
    """Finished cells that measured the alignment objective after alignment."""
    return [
        r for r in records
        if r.get("status") == "ok" and r.get("otdd_after") is not None and r.get("test") is not None
    ]  # fmt: skip


def plot_otdd(points: list[dict], path: Path) -> None:
    """Final alignment OTDD against test loss, one panel per task and a colour per method.

    The objective's scale depends on the task and the body, so points compare only within a
    panel (as in the ORCA paper's per-task plots), and each panel has its own axes.
    """
    tasks = list(dict.fromkeys(p["task"] for p in points))
    methods = list(dict.fromkeys(p["method"] for p in points))
    cols = min(4, len(tasks))
    rows = -(-len(tasks) // cols)  # ceiling division
    size = (max(6.5, 3.2 * cols + 1.5), 2.5 * rows + 0.8)  # inches: room for the labels
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)  # (rows, cols) array of panels
    for ax, task in zip(axes.flat, tasks):
        mine = [p for p in points if p["task"] == task]
        for i, method in enumerate(methods):
            dots = [p for p in mine if p["method"] == method]
            x = [p["otdd_after"] for p in dots]
            y = [as_loss(p["test"], p["direction"]) for p in dots]
            ax.scatter(x, y, s=20, color=f"C{i}", label=method)
        ax.set_title(f"{task} ({mine[0]['metric']})", fontsize="small")
        ax.tick_params(labelsize="x-small")
    for ax in axes.flat[len(tasks) :]:
        ax.set_visible(False)
    fig.supxlabel("alignment objective after alignment (OTDD unless set otherwise)")
    fig.supylabel("test loss (metric, or 1 - metric)")
    fig.suptitle("Final OTDD against test loss, per task")
    legend = {}  # one entry per method, whichever panels it appears in
    for ax in axes.flat[: len(tasks)]:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.legend(legend.values(), legend.keys(), loc="outside right upper", fontsize="small")
    fig.savefig(path, dpi=100)


# ---------------------------------------------------------------------------------------------
# The whole report


def write_report(out: str | Path) -> Report:
    """Rebuild results.csv/json, report.md and the plots from the cell files under `out`."""
    out = Path(out)
    records = load_cells(out)
    if not records:
        files = write_results(records, out)
        (out / "report.md").write_text("# Benchmark report\n\nNo cell has finished yet.\n")
        return Report(out, [*files, out / "report.md"], "no cells yet")

    records, methods = grid_order(records, out)
    files = write_results(records, out)
    summaries = summarize(records)
    main = headline_fraction(summaries)
    headline = results_table(summaries, [main], methods)
    ratios = performance_ratios(task_losses(summaries, main))
    plot_profile(ratios, out / "performance_profile.png")
    files.append(out / "performance_profile.png")

    sections = [
        f"# Benchmark report\n\n{_overview(records, main)}",
        f"## Test metric\n\n{headline}",
    ]
    low_data = low_data_summaries(summaries)
    if low_data:
        fractions = sorted({s.fraction for s in low_data})
        used = [m for m in methods if any(s.method == m for s in low_data)]
        sections.append(f"## Low-data study\n\n{results_table(low_data, fractions, used)}")
    sections.append(
        f"## Performance profile\n\n![performance profile](performance_profile.png)\n\n"
        f"{profile_table(ratios)}"
    )
    sections.append(f"## Alignment\n\n{_otdd_section(records, out, files)}")
    sections.append(f"## Time per cell (seconds)\n\n{timing_table(records, methods)}")
    sections.append(f"## Failures\n\n{failures_section(records)}")
    sections.append(CONVENTIONS)
    (out / "report.md").write_text("\n\n".join(sections) + "\n")
    files.append(out / "report.md")
    logger.info("report written to %s", out / "report.md")
    return Report(out, files, headline)


def _overview(records: list[dict], main: float) -> str:
    ok = sum(r.get("status") == "ok" for r in records)
    tasks = len({r["task"] for r in records})
    return (
        f"{len(records)} cells ({ok} finished, {len(records) - ok} failed) over {tasks} task(s); "
        f"the main table and the profile use training fraction {main:g}."
    )


def _otdd_section(records: list[dict], out: Path, files: list[Path]) -> str:
    points = otdd_points(records)
    if not points:
        return "No cell has an alignment OTDD (only ORCA methods run the alignment stage)."
    plot_otdd(points, out / "otdd_vs_error.png")
    files.append(out / "otdd_vs_error.png")
    return f"![final OTDD against test loss](otdd_vs_error.png)\n\n{len(points)} cell(s) plotted."
