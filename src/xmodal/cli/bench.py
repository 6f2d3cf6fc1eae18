"""`xmodal bench`: run a grid of tasks x methods x seeds, then write and print the report.

    xmodal bench --tasks gunpoint,digits --methods finetune,orca,classic --seeds 3 --out DIR
    xmodal bench --report-only --out DIR

Finished cells are kept, so the same command resumes an interrupted benchmark. Run settings
(model, training, alignment) take the same flags as `xmodal fit`; a YAML file given with
--config sets any field of `BenchConfig`, and flags override it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from xmodal.cli.common import add_config_flags, add_output_flags, overrides

# BenchConfig's list fields: comma-separated flags of their own.
LIST_FIELDS = ("tasks", "methods", "train_fractions")
# Loggers whose INFO messages reach the terminal without --verbose: progress per cell.
SPEAKERS = ("xmodal.bench.runner", "xmodal.bench.report")
# BenchConfig's sub-configs: set by their own flags ("run" is also the parser's runner).
SECTIONS = ("run", "classic")
# Fields of RunConfig that the grid sets per cell, so they get no flag here.
PER_CELL = {"": "all", "model": ("body",), "train": ("method", "seed")}


def build_parser(sub: argparse._SubParsersAction) -> None:
    from xmodal.bench.classic import ClassicConfig
    from xmodal.bench.runner import BenchConfig

    parser = sub.add_parser("bench", help="benchmark methods over tasks and seeds, with a report")
    parser.add_argument("--tasks", type=_names, help="comma-separated built-in task names")
    methods_help = 'comma-separated methods; "classic" is the classic baseline'
    parser.add_argument("--methods", type=_names, help=methods_help)
    parser.add_argument("--fractions", type=_fractions, dest="train_fractions",
                        help="comma-separated training-set shares, e.g. 0.1,0.3,1.0")  # fmt: skip
    parser.add_argument("--config", type=Path, help="YAML BenchConfig; flags override it")
    report_help = "rebuild the report from the cell files in --out; run nothing"
    parser.add_argument("--report-only", action="store_true", help=report_help)
    add_output_flags(parser)
    add_config_flags(parser, BenchConfig, "", skip=LIST_FIELDS)
    for section, cls, prefix, rename in _run_flag_groups():
        add_config_flags(parser, cls, section, PER_CELL.get(section, ()), prefix, rename)
    add_config_flags(parser, ClassicConfig, "classic", prefix="classic-")
    parser.set_defaults(run=run)


def _run_flag_groups() -> list[tuple[str, type, str, dict[str, str]]]:
    """`xmodal fit`'s flag groups, less RunConfig's own fields (data, scale, ...)."""
    from xmodal.cli.fit import flag_groups

    return [group for group in flag_groups() if PER_CELL.get(group[0]) != "all"]


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _fractions(text: str) -> list[float]:
    try:
        return [float(value) for value in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--fractions={text!r} must be comma-separated numbers, e.g. 0.1,0.3,1.0"
        ) from None


def resolve_config(args: argparse.Namespace):
    """BenchConfig from --config, then the flags given on the command line."""
    from xmodal.bench.classic import ClassicConfig
    from xmodal.bench.runner import BenchConfig

    merged = (BenchConfig.from_yaml(args.config) if args.config else BenchConfig()).to_dict()
    given = overrides(args, BenchConfig, "")  # the list flags share their fields' names
    merged.update({k: v for k, v in given.items() if k not in SECTIONS})
    for section, cls, _, _ in _run_flag_groups():
        node = merged["run"]
        for key in filter(None, section.split(".")):
            node = node[key]
        node.update(overrides(args, cls, section))
    merged["classic"].update(overrides(args, ClassicConfig, "classic"))
    return BenchConfig.from_dict(merged)


class _CellProgressOnly(logging.Filter):
    """On the terminal: the benchmark's own messages, and warnings from everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name in SPEAKERS or record.levelno >= logging.WARNING


def run(args: argparse.Namespace) -> int:
    from xmodal.bench.report import write_report
    from xmodal.bench.runner import run_bench

    config = resolve_config(args)
    if not args.verbose:  # per-epoch lines of every cell would bury the per-cell progress
        for handler in logging.getLogger("xmodal").handlers:
            handler.addFilter(_CellProgressOnly())
    if not args.report_only:
        records = run_bench(config)
        failed = sum(r.get("status") != "ok" for r in records)
        if failed:
            print(f"{failed} of {len(records)} cells failed; see report.md", file=sys.stderr)
    report = write_report(config.out)
    print(report.headline)
    print(f"\nreport: {report.folder / 'report.md'}")
    return 0
