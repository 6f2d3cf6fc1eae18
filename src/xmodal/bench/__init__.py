"""Benchmarks: the grid of tasks x methods x seeds, classic baselines, and the report.

`run_bench(BenchConfig(...))` runs the grid (one JSON file per cell, resumable) and
`write_report(out)` turns the cell files into tables and plots; `xmodal bench` does both.
"""

from xmodal.bench.classic import BASELINES, ClassicConfig, ClassicResult, fit_classic
from xmodal.bench.profile import as_loss, performance_profile, performance_ratios
from xmodal.bench.report import Report, write_report
from xmodal.bench.runner import BenchConfig, Cell, grid, load_cells, run_bench

__all__ = [
    "BASELINES",
    "BenchConfig",
    "Cell",
    "ClassicConfig",
    "ClassicResult",
    "Report",
    "as_loss",
    "fit_classic",
    "grid",
    "load_cells",
    "performance_profile",
    "performance_ratios",
    "run_bench",
    "write_report",
]
