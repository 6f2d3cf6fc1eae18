"""`xmodal fit`: build, (align,) fine-tune and evaluate a model, writing a run folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xmodal.cli.common import add_config_flags, add_output_flags, overrides


def flag_groups() -> list[tuple[str, type, str, dict[str, str]]]:
    """(section path, config class, flag prefix, renamed flags) for every part of RunConfig."""
    from xmodal.align.objectives import ObjectiveConfig
    from xmodal.align.stage import AlignConfig
    from xmodal.api import RunConfig
    from xmodal.model.network import ModelConfig
    from xmodal.train.loop import TrainConfig

    return [
        ("", RunConfig, "", {}),
        ("model", ModelConfig, "", {}),
        ("train", TrainConfig, "", {}),
        ("align", AlignConfig, "align-", {}),
        ("align.objective", ObjectiveConfig, "align-", {"name": "align-objective"}),
    ]


def build_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("fit", help="fine-tune a pretrained body on a task")
    parser.add_argument("data", help="built-in task name (xmodal tasks) or .npz file")
    parser.add_argument("--out", type=Path, help="run folder to write (must not exist)")
    parser.add_argument("--config", type=Path, help="YAML run config; flags override it")
    add_output_flags(parser)
    for section, cls, prefix, rename in flag_groups():
        add_config_flags(parser, cls, section, ("data",), prefix, rename)
    parser.set_defaults(run=run)


def resolve_config(args: argparse.Namespace):
    """RunConfig from --config, then the flags given on the command line."""
    from xmodal.api import RunConfig

    merged = (RunConfig.from_yaml(args.config) if args.config else RunConfig()).to_dict()
    for section, cls, _, _ in flag_groups():
        node = merged
        for key in filter(None, section.split(".")):
            node = node[key]
        node.update(overrides(args, cls, section))
    merged["data"] = args.data
    return RunConfig.from_dict(merged)


def run(args: argparse.Namespace) -> int:
    from xmodal.api import fit

    config = resolve_config(args)
    result = fit(config, out=args.out, progress=not args.quiet)
    summary = {k: result.metrics[k] for k in ("metric", "direction", "val", "test",
                                              "test_last_epoch", "best_epoch")}  # fmt: skip
    summary["method"] = config.train.method
    summary["body"] = config.model.body
    if args.out is not None:
        summary["run"] = str(args.out)
    print(json.dumps(summary), file=sys.stdout)
    return 0
